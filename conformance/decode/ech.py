"""Encrypted ClientHello: ECHConfigList decoding and telling real ECH from GREASE.

With ECH (RFC 9849) the visible ClientHello names only the client-facing server's
`public_name`; the name the client wants travels encrypted. Clients without a
config send GREASE ECH instead (§6.2), built to look the same. Nothing in the
extension tells the two apart; the evidence around it can:

- the ECHConfigs the capture holds (HTTPS/SVCB answers carry them in their `ech`
  SvcParam, RFC 9460 §7 / RFC 9848, decoded by `decode/dns.py` with
  `parse_ech_config_list`);
- the client's own HTTPS/SVCB answer for the name in the SNI;
- a HelloRetryRequest carrying an ECH confirmation, which a server sends only when
  it accepted ECH (RFC 9849 §7.2.1).

`classify_ech` turns that into an `EchKind` and fails closed (decision 9): a
ClientHello whose ECH could hide a real name is REAL or UNKNOWN, never GREASE,
unless the capture shows the client had no config that could hide one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from conformance.decode.errors import DecodeError
from conformance.decode.tls import ClientHelloInfo


class EchKind(StrEnum):
    """What a ClientHello's encrypted_client_hello extension means (controls.md decision 9)."""

    NONE = "none"  # no ECH extension: the SNI is the name the client wants
    GREASE = "grease"  # an ECH extension shown to carry no real inner ClientHello
    REAL = "real"  # real ECH: the visible SNI is only the public name, the real one is hidden
    # an ECH extension that could not be told GREASE or real: the real name may be hidden
    UNKNOWN = "unknown"


if TYPE_CHECKING:  # decode/dns.py imports this module to decode `ech` SvcParams
    from conformance.decode.dns import SvcbRecord

ECH_VERSION = 0xFE0D  # RFC 9849 §4: the ECHConfig version this module reads
MAX_PUBLIC_NAME = 255  # RFC 9849 §4: opaque public_name<1..255>
_SUITE_LENGTH = 4  # HpkeSymmetricCipherSuite: kdf_id(2) aead_id(2)


@dataclass(frozen=True, slots=True)
class EchConfig:
    """One ECHConfig (RFC 9849 §4) of version 0xfe0d."""

    config_id: int
    kem_id: int  # HPKE KEM (RFC 9180 §7.1): 0x0020 X25519, 0x0010 P-256, ...
    cipher_suites: tuple[tuple[int, int], ...]  # (kdf_id, aead_id)
    maximum_name_length: int
    public_name: str  # lower-case, no trailing dot: the SNI a client using it sends


def parse_ech_config_list(data: bytes) -> tuple[EchConfig, ...]:
    """Decode an ECHConfigList (RFC 9849 §4), length prefix included.

    ECHConfigs of other versions are skipped by their length, as clients must skip
    them (§4). Raises DecodeError (offsets in `data`) when a length does not fit.
    """
    size = len(data)
    if size < 2:
        raise DecodeError("ECHConfigList length missing", 0)
    end = 2 + int.from_bytes(data[:2], "big")
    if end != size:
        raise DecodeError(f"ECHConfigList length {end - 2} does not fill its {size - 2} bytes", 0)
    configs: list[EchConfig] = []
    pos = 2
    while pos < end:
        if pos + 4 > end:
            raise DecodeError("ECHConfig header truncated", pos)
        version = int.from_bytes(data[pos : pos + 2], "big")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        body = pos + 4
        if body + length > end:
            raise DecodeError(f"ECHConfig of {length} bytes runs past end", pos + 2)
        if version == ECH_VERSION:
            configs.append(_contents(data, body, body + length))
        pos = body + length
    return tuple(configs)


def classify_ech(
    hello: ClientHelloInfo,
    *,
    configs_seen: Iterable[EchConfig] = (),
    sni_records: Sequence[SvcbRecord] | None = None,
    hrr_confirmed: bool = False,
) -> EchKind:
    """What a ClientHello's ECH extension means, from the evidence around it.

    - `configs_seen`: every ECHConfig of every HTTPS/SVCB answer in the evidence,
      whatever name it was for (a client-facing server serves many names).
    - `sni_records`: the HTTPS/SVCB records of the answer the same client received
      for the SNI name before the flow (within its TTL); `()` for an answer without
      any (NODATA), None when no such answer is in the evidence.
    - `hrr_confirmed`: the server's HelloRetryRequest on this flow carried the ECH
      confirmation (`ServerHelloInfo.ech_confirmation`).

    NONE without an ECH extension. REAL when the server confirmed ECH in a
    HelloRetryRequest, or when a config in the evidence has the SNI as its
    public_name and the extension's config_id. GREASE only when the client's answer
    for the SNI name is in the evidence and gave it no config with that config_id
    (no `ech` at all, or other config_ids, and no AliasMode record whose target
    could hold one), and no config in the evidence has the SNI as its public_name:
    then the client had no config it could have used with that SNI, so the
    extension cannot be hiding a name (RFC 9849 §6.1 sets the outer SNI to the
    config's public_name; §6.2 is GREASE). UNKNOWN otherwise, including an
    inner-type extension in the clear (only ever sent encrypted, §5) and an outer
    one without SNI.
    """
    ech = hello.ech
    if ech is None:
        return EchKind.NONE
    if ech.inner or hello.sni is None:
        return EchKind.UNKNOWN
    if hrr_confirmed:
        return EchKind.REAL
    sni = hello.sni
    naming_sni = [config for config in configs_seen if config.public_name == sni]
    if any(config.config_id == ech.config_id for config in naming_sni):
        return EchKind.REAL
    if naming_sni or sni_records is None:
        return EchKind.UNKNOWN
    for record in sni_records:
        if record.priority == 0:  # AliasMode: the configs live under its target
            return EchKind.UNKNOWN
        if any(config.config_id == ech.config_id for config in record.ech or ()):
            return EchKind.UNKNOWN
    return EchKind.GREASE


def _contents(data: bytes, pos: int, end: int) -> EchConfig:
    """ECHConfigContents (RFC 9849 §4) in data[pos:end], which it must fill."""

    def need(count: int, what: str) -> None:
        if pos + count > end:
            raise DecodeError(f"ECHConfig {what} runs past end", pos)

    need(3, "key_config")
    config_id = data[pos]
    kem_id = int.from_bytes(data[pos + 1 : pos + 3], "big")
    pos += 3
    need(2, "public_key length")
    key_length = int.from_bytes(data[pos : pos + 2], "big")
    if key_length == 0:
        raise DecodeError("ECHConfig public_key is empty", pos)
    pos += 2
    need(key_length, "public_key")
    pos += key_length
    need(2, "cipher_suites length")
    suites_length = int.from_bytes(data[pos : pos + 2], "big")
    if suites_length < _SUITE_LENGTH or suites_length % _SUITE_LENGTH:
        raise DecodeError(f"ECHConfig cipher_suites length {suites_length}", pos)
    pos += 2
    need(suites_length, "cipher_suites")
    suites = tuple(
        (
            int.from_bytes(data[at : at + 2], "big"),
            int.from_bytes(data[at + 2 : at + 4], "big"),
        )
        for at in range(pos, pos + suites_length, _SUITE_LENGTH)
    )
    pos += suites_length
    need(2, "maximum_name_length and public_name length")
    maximum_name_length = data[pos]
    name_length = data[pos + 1]
    if name_length == 0:
        raise DecodeError("ECHConfig public_name is empty", pos + 1)
    pos += 2
    need(name_length, "public_name")
    public_name = data[pos : pos + name_length].decode("ascii", "backslashreplace")
    pos += name_length
    need(2, "extensions length")
    extensions_length = int.from_bytes(data[pos : pos + 2], "big")
    pos += 2
    if pos + extensions_length != end:
        raise DecodeError(
            f"ECHConfig extensions of {extensions_length} bytes do not end the config", pos - 2
        )
    return EchConfig(
        config_id, kem_id, suites, maximum_name_length, public_name.rstrip(".").lower()
    )
