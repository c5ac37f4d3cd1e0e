"""The lab CA and server certificates, made fresh at every lab start (never committed).

EC P-256 keys: generated in microseconds (RSA would cost most of the start-up budget) and
usable from TLS 1.0 to 1.3, so the tls10 fault still completes a handshake. Besides the
trusted chain, an impostor set exists for HY-CERT-style checks: a certificate from an
unknown CA, an expired one and one for the wrong name.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from conformance.profile_model import CLOUD_CERT_KINDS

VALIDITY: Final = datetime.timedelta(days=2)  # a lab lives for seconds; short is honest
CLOCK_SKEW: Final = datetime.timedelta(minutes=5)

CERT_KINDS: Final = CLOUD_CERT_KINDS  # the words of `lab.cloud_cert`
IMPOSTOR_CERTS: Final = ("self-signed", "untrusted-ca", "wrong-name", "expired", "weak-key")
"""What the HY-CERT impostors present, in turn."""
"""What the cloud stand-ins may present (`lab: {cloud_cert: ...}` in a profile)."""


@dataclass(frozen=True, slots=True)
class CertPair:
    """PEM files of one server certificate (leaf first, then CA) and its key."""

    chain: Path
    key: Path


def _name(common: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ucx-conformance lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def _key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _ca(common: str, now: datetime.datetime) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common))
        .issuer_name(_name(common))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def _leaf(
    names: tuple[str, ...],
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    not_before: datetime.datetime,
    not_after: datetime.datetime,
    rsa_bits: int | None = None,
) -> tuple[x509.Certificate, PrivateKey]:
    key: PrivateKey = (
        rsa.generate_private_key(65537, rsa_bits)
        if rsa_bits is not None
        else ec.generate_private_key(ec.SECP256R1())
    )
    alt: list[x509.GeneralName] = []
    for name in names:
        try:
            alt.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            alt.append(x509.DNSName(name))
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _self_signed(
    names: tuple[str, ...], now: datetime.datetime
) -> tuple[x509.Certificate, PrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(names[0])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


class LabCA:
    """Issues the lab's certificates into `directory` (which holds private keys: mode 0700)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.now = datetime.datetime.now(datetime.UTC)
        self._ca, self._ca_key = _ca("ucx-conformance lab CA", self.now)
        self._rogue, self._rogue_key = _ca("unknown CA (impostor)", self.now)
        self.ca_file = directory / "lab-ca.pem"
        self.ca_file.write_bytes(self._ca.public_bytes(serialization.Encoding.PEM))

    def issue(self, label: str, names: tuple[str, ...], kind: str = "valid") -> CertPair:
        """A server certificate for `names` of the given kind (one of CERT_KINDS)."""
        ca, ca_key = self._ca, self._ca_key
        not_before, not_after = self.now - CLOCK_SKEW, self.now + VALIDITY
        if kind == "untrusted":
            ca, ca_key = self._rogue, self._rogue_key
        elif kind == "expired":
            not_before, not_after = self.now - 10 * VALIDITY, self.now - VALIDITY
        elif kind == "wrong-name":
            names = ("impostor.example.net",)
        elif kind != "valid":
            raise ValueError(f"unknown certificate kind {kind!r}; one of {', '.join(CERT_KINDS)}")
        cert, key = _leaf(names, ca, ca_key, not_before, not_after)
        chain = self.directory / f"{label}.pem"
        key_file = self.directory / f"{label}.key"
        chain.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + ca.public_bytes(serialization.Encoding.PEM)
        )
        key_file.touch(mode=0o600)
        key_file.write_bytes(_key_pem(key))
        return CertPair(chain, key_file)

    def impostor(self, kind: str, names: tuple[str, ...]) -> CertPair:
        """A certificate the target must refuse (HY-CERT), one of IMPOSTOR_CERTS."""
        now = self.now
        label = f"impostor-{kind}"
        if kind == "self-signed":
            cert, key = _self_signed(names, now)
            return self._write(label, cert, key, None)
        if kind == "untrusted-ca":
            cert, key = _leaf(names, self._rogue, self._rogue_key, now - CLOCK_SKEW, now + VALIDITY)
            return self._write(label, cert, key, self._rogue)
        if kind == "wrong-name":
            cert, key = _leaf(
                ("impostor.example.net",), self._ca, self._ca_key, now - CLOCK_SKEW, now + VALIDITY
            )
            return self._write(label, cert, key, self._ca)
        if kind == "expired":
            cert, key = _leaf(names, self._ca, self._ca_key, now - 10 * VALIDITY, now - VALIDITY)
            return self._write(label, cert, key, self._ca)
        if kind == "weak-key":
            cert, key = _leaf(
                names, self._ca, self._ca_key, now - CLOCK_SKEW, now + VALIDITY, rsa_bits=1024
            )
            return self._write(label, cert, key, self._ca)
        raise ValueError(f"unknown impostor {kind!r}; one of {', '.join(IMPOSTOR_CERTS)}")

    def _write(
        self,
        label: str,
        cert: x509.Certificate,
        key: PrivateKey,
        ca: x509.Certificate | None,
    ) -> CertPair:
        chain = self.directory / f"{label}.pem"
        key_file = self.directory / f"{label}.key"
        chain.write_bytes(
            cert.public_bytes(serialization.Encoding.PEM)
            + (ca.public_bytes(serialization.Encoding.PEM) if ca is not None else b"")
        )
        key_file.touch(mode=0o600)
        key_file.write_bytes(_key_pem(key))
        return CertPair(chain, key_file)

    def export_for_interceptor(self, path: Path) -> Path:
        """The CA's key and certificate in one PEM file (key first: mitmproxy's
        `mitmproxy-ca.pem` layout), mode 0600, so the lab's interceptor issues certificates
        the target already trusts."""
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_bytes(_key_pem(self._ca_key) + self._ca.public_bytes(serialization.Encoding.PEM))
        return path
