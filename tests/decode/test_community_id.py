"""Community ID v1 against the published vectors.

The addresses below are the spec's own test vectors (corelight/pycommunityid
tests/communityid_test.py and community-id-spec baseline/baseline_deflt.json); they
are only hashed here, never used in a capture.
"""

from __future__ import annotations

import ipaddress

import pytest

from conformance.decode.community_id import community_id, of_flow


def packed(text: str) -> bytes:
    return ipaddress.ip_address(text).packed


@pytest.mark.parametrize(
    ("proto", "src", "dst", "sport", "dport", "expected"),
    [
        (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
        (6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
        (6, "10.0.0.1", "10.0.0.2", 10, 11569, "1:SXBGMX1lBOwhhoDrZynfROxnhnM="),
        (17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
        (17, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
        (132, "192.168.170.8", "192.168.170.56", 7, 80, "1:jQgCxbku+pNGw8WPbEc/TS/uTpQ="),
        (
            6,
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            "2607:f8b0:400c:c03::1a",
            63943,
            25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
        ),
        # ICMP: type and code; echo request and reply hash alike, code ignored for paired types
        (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
        (1, "192.168.0.1", "192.168.0.89", 0, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
        (1, "192.168.0.1", "192.168.0.89", 0, 20, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),
        # one-way types keep their order and their code
        (1, "192.168.0.89", "192.168.0.1", 20, 0, "1:3o2RFccXzUgjl7zDpqmY7yJi8rI="),
        (1, "192.168.0.89", "192.168.0.1", 20, 1, "1:tz/fHIDUHs19NkixVVoOZywde+I="),
        (1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM="),
        # ICMPv6 neighbour solicitation / advertisement pair
        (
            58,
            "fe80::200:86ff:fe05:80da",
            "fe80::260:97ff:fe07:69ea",
            135,
            0,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
        ),
        (
            58,
            "fe80::260:97ff:fe07:69ea",
            "fe80::200:86ff:fe05:80da",
            136,
            0,
            "1:dGHyGvjMfljg6Bppwm3bg0LO8TY=",
        ),
        (
            58,
            "3ffe:507:0:1:260:97ff:fe07:69ea",
            "3ffe:507:0:1:200:86ff:fe05:80da",
            3,
            0,
            "1:NdobDX8PQNJbAyfkWxhtL2Pqp5w=",
        ),
        (
            58,
            "3ffe:507:0:1:200:86ff:fe05:80da",
            "3ffe:507:0:1:260:97ff:fe07:69ea",
            3,
            0,
            "1:/OGBt9BN1ofenrmSPWYicpij2Vc=",
        ),
        (58, "fe80::200:86ff:fe05:80da", "ff02::2", 133, 0, "1:hO+sN4H+MG5MY/8hIrXPqc4ZQz0="),
        # other protocols: addresses only
        (46, "10.1.24.4", "10.1.12.1", 0, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4="),
        (46, "10.1.12.1", "10.1.24.4", 0, 0, "1:/nQI4Rh/TtY3mf0R2gJFBkVlgS4="),
    ],
)
def test_spec_vectors(
    proto: int, src: str, dst: str, sport: int, dport: int, expected: str
) -> None:
    assert community_id(proto, packed(src), packed(dst), sport, dport) == expected


def test_seed() -> None:
    got = community_id(17, packed("192.168.1.52"), packed("8.8.8.8"), 54585, 53, seed=1)
    assert got == "1:Q9We8WO3piVF8yEQBNJF4uiSVrI="


def test_mixed_families_are_refused() -> None:
    with pytest.raises(ValueError, match="same family"):
        community_id(6, packed("192.0.2.1"), packed("2001:db8::1"), 1, 2)


@pytest.mark.parametrize(
    ("transport", "proto"), [("tcp", 6), ("udp", 17), ("icmp", 1), ("ip-46", 46), ("ip-6", 6)]
)
def test_a_flow_is_hashed_by_its_transport_ends_and_ports(transport: str, proto: int) -> None:
    """What records.Flow.community_id gives: "ip-6" is TCP seen by its IP header alone (ports
    0), hashed as TCP, as the spec hashes any packet of the protocol."""
    a, b = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address("198.51.100.7")
    ports = (0, 0) if transport.startswith("ip-") else (8, 0) if proto == 1 else (40000, 443)
    assert of_flow(transport, a, b, *ports) == community_id(proto, a.packed, b.packed, *ports)


@pytest.mark.parametrize(
    ("transport", "ports", "second"),
    [
        ("sctp", (1, 2), "198.51.100.7"),
        ("ip-", (0, 0), "198.51.100.7"),
        ("ip-256", (0, 0), "198.51.100.7"),
        ("ip-٣", (0, 0), "198.51.100.7"),  # a digit, but not ASCII
        ("tcp", (1, 65536), "198.51.100.7"),
        ("udp", (-1, 53), "198.51.100.7"),
        ("tcp", (1, 2), "2001:db8::7"),
    ],
)
def test_ends_no_flow_has_have_no_community_id(
    transport: str, ports: tuple[int, int], second: str
) -> None:
    """A record the observers never make (a test's, a damaged spill's) shows an empty cell
    rather than failing the report."""
    a, b = ipaddress.ip_address("192.0.2.1"), ipaddress.ip_address(second)
    assert of_flow(transport, a, b, *ports) == ""
