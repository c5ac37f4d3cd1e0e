"""Parsing the host commands' raw outputs (recorded from Debian 12 hosts)."""

from __future__ import annotations

import ipaddress

from conformance.host.parse import (
    firewall_restrictions,
    is_listener,
    parse_hosts,
    parse_proxy_env,
    parse_resolvers,
    parse_settings,
    parse_ss,
    split_endpoint,
)

SS = """\
udp   UNCONN 0      0        127.0.0.53%lo:53          0.0.0.0:*     users:(("resolved",fd=13))
udp   UNCONN 0      0              0.0.0.0:5060        0.0.0.0:*
tcp   LISTEN 0      4096           0.0.0.0:22          0.0.0.0:*     users:(("sshd",pid=600,fd=3))
tcp   LISTEN 0      128         192.0.2.10:8080        0.0.0.0:*
tcp   LISTEN 0      4096              [::]:9443           [::]:*
tcp   ESTAB  0      0           192.0.2.10:40112   198.51.100.7:443   users:(("java",pid=900,fd=77))
tcp   ESTAB  0      0      [::ffff:192.0.2.10]:22  [::ffff:192.0.2.200]:50000
udp   ESTAB  0      0     [2001:db8:1::10]:123 [2001:db8:ffff::7]:123
garbage line
"""


def test_split_endpoint_handles_wildcards_brackets_interfaces_and_mapped_v4() -> None:
    assert split_endpoint("0.0.0.0:22") == (None, 22)
    assert split_endpoint("*:*") == (None, 0)
    assert split_endpoint("[::]:9443") == (None, 9443)
    assert split_endpoint("127.0.0.53%lo:53") == (ipaddress.ip_address("127.0.0.53"), 53)
    assert split_endpoint("[::ffff:192.0.2.10]:22") == (ipaddress.ip_address("192.0.2.10"), 22)
    assert split_endpoint("[fe80::1]%eth0:546") == (ipaddress.ip_address("fe80::1"), 546)
    assert split_endpoint("nonsense") is None


def test_parse_ss_counts_what_it_cannot_read() -> None:
    sockets, bad = parse_ss(SS, "sockets")
    assert bad == 1
    assert len(sockets) == 8
    listeners = [s for s in sockets if is_listener(s)]
    assert [(s.local_port, s.wildcard) for s in listeners] == [
        (53, False),
        (5060, True),
        (22, True),
        (8080, False),
        (9443, True),
    ]
    java = sockets[5]
    assert (str(java.peer), java.peer_port, java.line) == ("198.51.100.7", 443, 6)
    assert "java" in java.process


def test_hosts_resolvers_proxy_and_settings() -> None:
    hosts = parse_hosts("127.0.0.1 localhost\n# c\n203.0.113.99 API.imagicle.com. x  # why\n")
    assert [(e.address, e.names, e.line) for e in hosts] == [
        ("127.0.0.1", ("localhost",), 1),
        ("203.0.113.99", ("api.imagicle.com", "x"), 3),
    ]
    assert parse_resolvers("search lab\nnameserver 192.0.2.53\nnameserver ::1 # x\n") == (
        "192.0.2.53",
        "::1",
    )
    env = "PATH=/bin\nhttps_proxy=http://192.0.2.80:3128\nexport HTTP_PROXY='192.0.2.80:3128'\n"
    assert parse_proxy_env(env, "environment") == {
        "environment:https_proxy": "http://192.0.2.80:3128",
        "environment:HTTP_PROXY": "192.0.2.80:3128",
    }
    assert parse_settings('{"mode": "hybrid", "telemetry": "enabled"}') == {
        "mode": "hybrid",
        "telemetry": "enabled",
    }
    assert parse_settings("Mode = air-gapped\ntelemetry: off # opt-out\n") == {
        "mode": "air-gapped",
        "telemetry": "off",
    }
    assert parse_settings("") is None


def test_firewall_default_policies() -> None:
    nft = """table inet ucx_host_firewall {
        chain input {
                type filter hook input priority filter; policy drop;
                iif "lo" accept
        }
}"""
    assert firewall_restrictions(nft, None) == ("nftables", True, False)
    assert firewall_restrictions("", "-P INPUT ACCEPT\n-P OUTPUT DROP\n") == (
        "iptables",
        False,
        True,
    )
    assert firewall_restrictions("", None) == ("nftables", False, False)
    assert firewall_restrictions(None, None) == ("", None, None)
