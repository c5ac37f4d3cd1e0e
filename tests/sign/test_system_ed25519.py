"""Signing a report without `cryptography` (sign/system_ed25519.py, sign/key_file.py): the
system libcrypto's Ed25519 signatures are RFC 8032's and byte for byte cryptography's, a key
file is read and its public half named as cryptography reads and names them, and a run of
captures signs its report without ever loading `cryptography` (#17: 11 MiB; tests/cli/
test_hazards.py runs one)."""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from conformance.sign import system_ed25519
from conformance.sign.key_file import (
    ed25519_private_bytes,
    is_plain_ed25519,
    raw_fingerprint,
    raw_public_key_pem,
)
from conformance.sign.keys import fingerprint, generate_key, public_key_pem
from conformance.sign.signing_key import signing_key_file
from conformance.sign.system_ed25519 import system_key

# RFC 8032 §7.1, TESTS 1-3: (secret key, public key, message, signature)
RFC_8032 = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
]  # fmt: skip
needs_libcrypto = pytest.mark.skipif(
    system_key(bytes(32)) is None, reason="no libcrypto with Ed25519 under hashlib"
)


@needs_libcrypto
@pytest.mark.parametrize(("secret", "public", "message", "signature"), RFC_8032)
def test_rfc_8032_vectors(secret: str, public: str, message: str, signature: str) -> None:
    key = system_key(bytes.fromhex(secret))
    assert key is not None
    assert key.public_key().public_bytes_raw().hex() == public
    assert key.sign(bytes.fromhex(message)).hex() == signature


@needs_libcrypto
@pytest.mark.parametrize("seed", range(20))
def test_signatures_are_cryptographys(seed: int) -> None:
    rng = random.Random(seed)
    private = rng.randbytes(32)
    message = rng.randbytes(rng.randrange(0, 5000))
    ours = system_key(private)
    theirs = Ed25519PrivateKey.from_private_bytes(private)
    assert ours is not None
    assert ours.sign(message) == theirs.sign(message)
    raw = theirs.public_key().public_bytes_raw()
    assert ours.public_key().public_bytes_raw() == raw
    pem = theirs.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert raw_public_key_pem(raw) == public_key_pem(theirs.public_key()) == pem.decode("ascii")
    der = theirs.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert raw_fingerprint(raw) == fingerprint(theirs.public_key())
    assert raw_fingerprint(raw).endswith(hashlib.sha256(der).hexdigest())


def test_a_key_file_gives_its_private_bytes_as_cryptography_reads_them(tmp_path: Path) -> None:
    path = generate_key(tmp_path / "k.pem")
    data, key_path, created = signing_key_file(path)
    assert (key_path, created) == (path, False) and is_plain_ed25519(data)
    loaded = serialization.load_pem_private_key(data, password=None)
    assert isinstance(loaded, Ed25519PrivateKey)
    assert ed25519_private_bytes(data) == loaded.private_bytes_raw()
    # Whitespace inside the base64 is PEM's; anything else is not the usual key.
    assert ed25519_private_bytes(data.replace(b"\n", b"\r\n")) == loaded.private_bytes_raw()
    assert ed25519_private_bytes(data.replace(b"PRIVATE KEY", b"PUBLIC KEY")) is None
    assert ed25519_private_bytes(data.replace(b"MC4CAQAw", b"MC4CAQEw")) is None
    assert (
        ed25519_private_bytes(b"-----BEGIN PRIVATE KEY-----\n!!\n-----END PRIVATE KEY-----\n")
        is None
    )


def test_without_libcrypto_the_key_is_cryptographys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where hashlib has no OpenSSL with Ed25519, `system_key` says None; the run then loads
    the key with `cryptography` (run.py `_signing_key`)."""
    monkeypatch.setattr(system_ed25519, "_libcrypto", lambda: None)
    assert system_key(bytes(32)) is None
    with pytest.raises(ValueError, match="32 bytes"):
        system_ed25519.SystemEd25519Key(object(), b"short")  # type: ignore[arg-type]
