"""ECH classified by the observers from the capture's HTTPS answers and HelloRetryRequests.

Fail-closed cases first: without the client's own answer, after the flow, expired, or for
another client, an ECH extension stays UNKNOWN (the real name may be hidden).
"""

from __future__ import annotations

import csv
import io

import pytest
from scapy.packet import Packet

from conformance.decode.quic import VERSION_1
from conformance.observe.records import EchKind, Observations
from conformance.report.tables import TLS_COLUMNS, write_tls
from tests import quic_captures as qc
from tests.decode.quic_packets import crypto_frame, initial
from tests.decode.test_quic import client_hello
from tests.defects import ADMIN, _Clock
from tests.observe.conftest import Observe

SERVER = "203.0.113.10"
PUBLIC = "public.example.com"  # the client-facing server's public_name
CONFIG = 7


def stamped(*parts: list[Packet], gap: float = 0.0) -> list[tuple[float, bytes]]:
    """Packets 1 ms apart, with `gap` seconds between the parts."""
    clock = _Clock()
    out: list[tuple[float, bytes]] = []
    for part in parts:
        out += [(float(p.time), bytes(p)) for p in clock.stamp(part)]
        clock.now += gap
    return out


def kinds(obs: Observations) -> list[EchKind]:
    return [h.ech for h in obs.client_hellos]


def test_no_dns_is_unknown(observe: Observe) -> None:
    obs = observe(stamped(qc.ech_session(SERVER, PUBLIC, CONFIG)))
    assert kinds(obs) == [EchKind.UNKNOWN]


def test_a_config_in_the_capture_for_the_public_name_is_real(observe: Observe) -> None:
    # the config came in the answer for the hidden name; the visible SNI is its public name
    lookup = qc.https_lookup("hidden.example.org", configs=[(CONFIG, PUBLIC)])
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG)))
    assert kinds(obs) == [EchKind.REAL]


def test_the_clients_own_answer_without_that_config_is_grease(observe: Observe) -> None:
    lookup = qc.https_lookup(PUBLIC, configs=None)  # an HTTPS record without `ech`
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG)))
    assert kinds(obs) == [EchKind.GREASE]


@pytest.mark.parametrize("rcode", [0, 3])
def test_an_answer_without_records_is_grease(observe: Observe, rcode: int) -> None:
    lookup = qc.https_lookup(PUBLIC, configs=[], rcode=rcode)  # NODATA, NXDOMAIN
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG)))
    assert kinds(obs) == [EchKind.GREASE]


def test_a_port_prefixed_query_counts_for_the_name(observe: Observe) -> None:
    lookup = qc.https_lookup(f"_8443._https.{PUBLIC}", configs=[(9, "other.example.net")])
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG)))
    assert kinds(obs) == [EchKind.GREASE]


def test_the_answers_config_id_is_unknown_not_grease(observe: Observe) -> None:
    # the SNI's own answer holds a config with the extension's config_id for another name
    lookup = qc.https_lookup(PUBLIC, configs=[(CONFIG, "front.example.net")])
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG)))
    assert kinds(obs) == [EchKind.UNKNOWN]


def test_an_answer_after_the_flow_is_unknown(observe: Observe) -> None:
    lookup = qc.https_lookup(PUBLIC, configs=None)
    obs = observe(stamped(qc.ech_session(SERVER, PUBLIC, CONFIG), lookup))
    assert kinds(obs) == [EchKind.UNKNOWN]


def test_an_answer_arriving_after_the_flow_began_is_unknown(observe: Observe) -> None:
    query, response = qc.https_lookup(PUBLIC, configs=None)
    syn, *rest = qc.ech_session(SERVER, PUBLIC, CONFIG)
    obs = observe(stamped([query, syn, response, *rest]))
    assert kinds(obs) == [EchKind.UNKNOWN]


def test_an_expired_answer_is_unknown(observe: Observe) -> None:
    lookup = qc.https_lookup(PUBLIC, configs=None, ttl=60)
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG), gap=120))
    assert kinds(obs) == [EchKind.UNKNOWN]
    within = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG), gap=30))
    assert kinds(within) == [EchKind.GREASE]


def test_another_clients_answer_is_unknown(observe: Observe) -> None:
    lookup = qc.https_lookup(PUBLIC, configs=None, client=ADMIN)
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG)))
    assert kinds(obs) == [EchKind.UNKNOWN]


def test_hello_retry_request_with_ech_confirmation_is_real(observe: Observe) -> None:
    hrr = qc.hello_retry_request(ech_confirmed=True)
    lookup = qc.https_lookup(PUBLIC, configs=None)  # would say GREASE without the HRR
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG, response=hrr)))
    assert kinds(obs) == [EchKind.REAL] and obs.server_hellos == ()
    plain = qc.hello_retry_request(ech_confirmed=False)
    obs = observe(stamped(lookup, qc.ech_session(SERVER, PUBLIC, CONFIG, response=plain)))
    assert kinds(obs) == [EchKind.GREASE]


def test_ech_in_a_quic_client_hello(observe: Observe) -> None:
    ech = qc.ech_extension(CONFIG)
    packet = initial(crypto_frame(0, client_hello(PUBLIC, ext=ech)), pad_to=1200)
    lookup = qc.https_lookup("hidden.example.org", configs=[(CONFIG, PUBLIC)])
    obs = observe(stamped(lookup, qc.datagrams(SERVER, [packet])))
    ((hello_kind, quic),) = [(h.ech, h.quic_version) for h in obs.client_hellos]
    assert (hello_kind, quic) == (EchKind.REAL, VERSION_1)


def test_a_malformed_https_answer_is_counted_and_never_grease(observe: Observe) -> None:
    lookup = qc.https_lookup(PUBLIC, configs=[(CONFIG, PUBLIC)])
    raw = bytearray(bytes(lookup[1]))
    raw[raw.index(b"\xfe\x0d") - 2] ^= 0x7F  # the ECHConfigList length: now it lies
    answer = lookup[1].__class__(bytes(raw))
    obs = observe(stamped([lookup[0], answer], qc.ech_session(SERVER, PUBLIC, CONFIG)))
    assert kinds(obs) == [EchKind.UNKNOWN]
    ((reason, count),) = [(n.reason, n.count) for n in obs.captures[0].payload_not_understood]
    assert reason.startswith("DNS: HTTPS RDATA: SvcParam ech: ECHConfigList length") and count == 1
    assert [a.rtype for q in obs.dns for a in q.answers] == [65]  # the answer is still kept


def test_no_extension_is_none(observe: Observe) -> None:
    from tests.defects import TARGET, tcp_session
    from tests.defects import client_hello as tls_hello

    obs = observe(stamped(tcp_session(TARGET, 40001, SERVER, 443, tls_hello(PUBLIC))))
    assert kinds(obs) == [EchKind.NONE]


def test_tls_csv_shows_quic_version_and_ech(observe: Observe) -> None:
    ech = qc.ech_extension(CONFIG)
    packet = initial(crypto_frame(0, client_hello(PUBLIC, ext=ech)), pad_to=1200)
    obs = observe(stamped(qc.datagrams(SERVER, [packet]), qc.ech_session(SERVER, PUBLIC, CONFIG)))
    out = io.StringIO()
    write_tls(out, obs.client_hellos, obs.server_hellos, [])
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert list(rows[0]) == list(TLS_COLUMNS)
    assert [(r["quic_version"], r["ech"]) for r in rows] == [
        ("0x00000001", "unknown"),
        ("", "unknown"),
    ]
