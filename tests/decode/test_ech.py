"""ECHConfigList decoding and real-versus-GREASE ECH (decision 9), fail-closed cases first.

ClientHellos are hand-made (no ECH-capable client is installed); DNS answers are
built by scapy, an independent encoder of HTTPS records.
"""

from __future__ import annotations

import struct

import pytest
from scapy.layers.dns import DNS, DNSQR, DNSRRHTTPS, SvcParam

from conformance.decode.dns import SvcbRecord, parse_dns, parse_svcb_rdata
from conformance.decode.ech import EchConfig, classify_ech, parse_ech_config_list
from conformance.decode.errors import DecodeError
from conformance.decode.tls import ClientHelloInfo, EchExtension
from conformance.observe.records import EchKind

PUBLIC = "public.example.com"  # the client-facing server's public_name
OTHER_PUBLIC = "ech.example.net"
TLS13 = 0x0304


def ech_config(config_id: int, public_name: str, version: int = 0xFE0D) -> bytes:
    """One ECHConfig: X25519 key, HKDF-SHA256 / AES-128-GCM, no extensions."""
    name = public_name.encode()
    contents = (
        bytes([config_id])
        + b"\x00\x20"  # DHKEM(X25519, HKDF-SHA256)
        + struct.pack("!H", 32)
        + bytes(range(32))
        + struct.pack("!H", 4)
        + b"\x00\x01\x00\x01"
        + b"\x00"  # maximum_name_length
        + bytes([len(name)])
        + name
        + b"\x00\x00"
    )
    return struct.pack("!HH", version, len(contents)) + contents


def config_list(*configs: bytes) -> bytes:
    """An ECHConfigList with its length prefix."""
    body = b"".join(configs)
    return struct.pack("!H", len(body)) + body


def hello(sni: str | None = PUBLIC, config_id: int = 7, *, inner: bool = False) -> ClientHelloInfo:
    """A TLS 1.3 ClientHello's info with an outer (or inner) ECH extension."""
    ech = EchExtension(True) if inner else EchExtension(False, 1, 1, config_id, 32, 200)
    return ClientHelloInfo(sni, (TLS13,), (0x1301,), ("h2",), ech=ech)


def service(*configs: EchConfig, ech: bool = True) -> SvcbRecord:
    """A ServiceMode HTTPS record, with an `ech` param holding `configs` (or none)."""
    return SvcbRecord(1, "", (1, 5) if ech else (1,), ("h2",), None, configs if ech else None)


REAL_CONFIG = EchConfig(7, 0x0020, ((1, 1),), 0, PUBLIC)


# --- ECHConfigList ------------------------------------------------------------------


def test_config_list_with_an_unknown_version_skipped() -> None:
    data = config_list(ech_config(7, "Public.Example.COM."), ech_config(9, "x.test", 0xFE0C))
    assert parse_ech_config_list(data) == (EchConfig(7, 0x0020, ((1, 1),), 0, PUBLIC),)


def test_two_configs() -> None:
    data = config_list(ech_config(1, PUBLIC), ech_config(2, OTHER_PUBLIC))
    assert [(c.config_id, c.public_name) for c in parse_ech_config_list(data)] == [
        (1, PUBLIC),
        (2, OTHER_PUBLIC),
    ]


GOOD = ech_config(7, PUBLIC)
PUBLIC_KEY_LENGTH_AT = 2 + 4 + 3  # list length, config header, config_id + kem_id
SUITES_LENGTH_AT = PUBLIC_KEY_LENGTH_AT + 2 + 32


def damaged(at: int, replacement: bytes) -> bytes:
    """The one-config list with bytes at `at` (in the list) replaced."""
    data = bytearray(config_list(GOOD))
    data[at : at + len(replacement)] = replacement
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "problem", "offset"),
    [
        (b"\x00", "length missing", 0),
        (config_list(GOOD)[:-1], "does not fill", 0),
        (config_list(b"\xfe\x0d\x00"), "header truncated", 2),
        (config_list(b"\xfe\x0d\x00\x50" + bytes(4)), "runs past end", 4),
        (damaged(PUBLIC_KEY_LENGTH_AT, b"\x00\x00"), "public_key is empty", PUBLIC_KEY_LENGTH_AT),
        (damaged(SUITES_LENGTH_AT, b"\x00\x06"), "cipher_suites length 6", SUITES_LENGTH_AT),
        (damaged(SUITES_LENGTH_AT + 7, b"\x00"), "public_name is empty", SUITES_LENGTH_AT + 7),
        (damaged(len(config_list(GOOD)) - 1, b"\x01"), "do not end the config", 69),
    ],
)
def test_malformed_config_list(data: bytes, problem: str, offset: int) -> None:
    with pytest.raises(DecodeError, match=problem) as caught:
        parse_ech_config_list(data)
    assert caught.value.offset == offset


# --- classify_ech: the rule of decision 9 -------------------------------------------


def test_no_extension_is_none() -> None:
    plain = ClientHelloInfo("api.imagicle.com", (TLS13,), (0x1301,), ())
    assert classify_ech(plain, sni_records=()) is EchKind.NONE


def test_nothing_known_is_unknown() -> None:
    assert classify_ech(hello()) is EchKind.UNKNOWN


def test_config_naming_the_sni_with_that_id_is_real() -> None:
    # The HTTPS answer was for the hidden name, not for the public one.
    assert classify_ech(hello(), configs_seen=[REAL_CONFIG]) is EchKind.REAL
    # ... and it stays REAL whatever the public name's own answer said.
    kind = classify_ech(hello(), configs_seen=[REAL_CONFIG], sni_records=[service(ech=False)])
    assert kind is EchKind.REAL


def test_hello_retry_confirmation_is_real() -> None:
    assert classify_ech(hello(), hrr_confirmed=True) is EchKind.REAL


def test_sni_answer_without_ech_is_grease() -> None:
    kind = classify_ech(hello(), sni_records=[service(ech=False)])
    assert kind is EchKind.GREASE


def test_sni_without_any_https_record_is_grease() -> None:
    assert classify_ech(hello(), sni_records=()) is EchKind.GREASE


def test_sni_answer_with_configs_for_another_public_name_is_grease() -> None:
    # The client had a config for the SNI's name, but using it would have put its
    # public_name (ech.example.net) in the SNI, and its config_id differs.
    other = EchConfig(3, 0x0020, ((1, 1),), 0, OTHER_PUBLIC)
    kind = classify_ech(hello(), configs_seen=[other], sni_records=[service(other)])
    assert kind is EchKind.GREASE


def test_config_naming_the_sni_with_another_id_is_unknown() -> None:
    # A config for some hidden name uses this public_name: the client may hold an
    # older one of it (key rotation), so the extension may well be real.
    stale = EchConfig(99, 0x0020, ((1, 1),), 0, PUBLIC)
    kind = classify_ech(hello(), configs_seen=[stale], sni_records=[service(ech=False)])
    assert kind is EchKind.UNKNOWN


def test_alias_mode_answer_is_unknown() -> None:
    alias = SvcbRecord(0, "cdn.example.net", ())
    assert classify_ech(hello(), sni_records=[alias]) is EchKind.UNKNOWN


def test_sni_answer_config_with_that_id_is_unknown() -> None:
    same_id = EchConfig(7, 0x0020, ((1, 1),), 0, OTHER_PUBLIC)
    kind = classify_ech(hello(), configs_seen=[same_id], sni_records=[service(same_id)])
    assert kind is EchKind.UNKNOWN


def test_inner_extension_in_the_clear_is_unknown() -> None:
    assert classify_ech(hello(inner=True), sni_records=()) is EchKind.UNKNOWN


def test_outer_extension_without_sni_is_unknown() -> None:
    assert classify_ech(hello(sni=None), sni_records=()) is EchKind.UNKNOWN


# --- from DNS answers on the wire to a kind -----------------------------------------


def https_answer(owner: str, *params: SvcParam) -> SvcbRecord:
    """The HTTPS record of a scapy-built response, decoded as the observer would."""
    response = DNS(
        id=1,
        qr=1,
        qd=DNSQR(qname=owner, qtype="HTTPS"),
        an=DNSRRHTTPS(rrname=owner, svc_priority=1, target_name=".", svc_params=list(params)),
    )
    (answer,) = parse_dns(bytes(response)).answers
    return parse_svcb_rdata(bytes.fromhex(answer.value))


def test_real_and_grease_from_wire_answers() -> None:
    hidden = https_answer(
        "hidden.example.org",
        SvcParam(key="alpn", value=[b"h2"]),
        SvcParam(key="ech", value=config_list(ech_config(7, PUBLIC))),
    )
    public = https_answer(PUBLIC, SvcParam(key="alpn", value=[b"h2"]))
    seen = [config for record in (hidden, public) for config in record.ech or ()]
    assert classify_ech(hello(config_id=7), configs_seen=seen) is EchKind.REAL
    # Without the hidden name's answer, the public name's own answer shows no config.
    assert classify_ech(hello(config_id=7), sni_records=[public]) is EchKind.GREASE
    # With both, a config_id that matches nothing cannot be called GREASE: the
    # public name fronts a real config.
    kind = classify_ech(hello(config_id=8), configs_seen=seen, sni_records=[public])
    assert kind is EchKind.UNKNOWN
