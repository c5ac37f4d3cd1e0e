"""Ed25519 signing keys: generate, load with permission checks, fingerprint, default location.

Files are the formats `openssl` reads (interface.md, keygen): the private key as PKCS#8 PEM,
mode 0600; the public key beside it as `<key>.pub`, SubjectPublicKeyInfo PEM.

Fingerprint: `sha256:` + the lower-case hex SHA-256 of the DER SubjectPublicKeyInfo, so an
auditor can reproduce it with nothing but openssl:

    openssl pkey -pubin -in signer.pub -outform DER | sha256sum
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from conformance.errors import SigningKeyError
from conformance.sign import key_file
from conformance.sign.key_file import (
    one_pem_block,
    raw_fingerprint,
    raw_public_key_pem,
    read_key_file,
    signing_key_path,
)

PUBLIC_SUFFIX = ".pub"
# Where scripts (scripts/main-job) and users have always found them.
KEY_ENV = key_file.KEY_ENV
default_key_path = key_file.default_key_path


def public_key_path(private_key_path: Path) -> Path:
    """Where the public key of `private_key_path` lives: the same name plus `.pub`."""
    return private_key_path.with_name(private_key_path.name + PUBLIC_SUFFIX)


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The SubjectPublicKeyInfo PEM text of a public key."""
    return raw_public_key_pem(public_key.public_bytes_raw())


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """`sha256:<hex>` of the DER SubjectPublicKeyInfo (see the module docstring for openssl)."""
    return raw_fingerprint(public_key.public_bytes_raw())


def _create_exclusive(path: Path, data: bytes, mode: int) -> None:
    """Create `path` with `mode` from the first byte on: no window where it is wider."""
    # O_EXCL refuses an existing file (and a dangling symlink); O_NOFOLLOW refuses a symlink.
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def generate_key(path: Path) -> Path:
    """Write a new Ed25519 private key to `path` (0600) and its public key to `path.pub`.

    Refuses to overwrite either file. Returns `path`.
    """
    pub_path = public_key_path(path)
    try:
        for existing in (path, pub_path):
            if existing.exists() or existing.is_symlink():
                raise SigningKeyError(existing, "already exists; refusing to overwrite a key")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as exc:  # a parent that is a file, a name too long, no permission
        raise SigningKeyError(path, f"cannot create key file: {exc.strerror or exc}") from exc
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        _create_exclusive(path, private_pem, 0o600)
    except FileExistsError as exc:
        raise SigningKeyError(path, "already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise SigningKeyError(path, f"cannot create key file: {exc.strerror}") from exc
    try:
        _create_exclusive(pub_path, public_key_pem(key.public_key()).encode("ascii"), 0o644)
    except BaseException as exc:
        # Never leave a private key without the public half the user was promised (an
        # interrupt included).
        path.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise SigningKeyError(pub_path, f"cannot create public key file: {exc}") from exc
        raise
    return path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an unencrypted Ed25519 PKCS#8 PEM private key that only its owner can access."""
    data = read_key_file(path, private=True)
    one_pem_block(data, path)
    return private_key_from(data, path)


def private_key_from(data: bytes, path: Path) -> Ed25519PrivateKey:
    """The key in `data`, read from `path` (conformance.sign.key_file checked it)."""
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:  # cryptography: the key is encrypted and no password was given
        raise SigningKeyError(path, "encrypted private keys are not supported") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(path, "not a PEM private key") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SigningKeyError(path, f"not an Ed25519 key ({type(key).__name__})")
    return key


def parse_public_key(pem: bytes, source: Path | str) -> Ed25519PublicKey:
    """Parse a SubjectPublicKeyInfo PEM Ed25519 public key; `source` names it in errors."""
    one_pem_block(pem, source)
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(source, "not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(source, f"not an Ed25519 key ({type(key).__name__})")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 SubjectPublicKeyInfo PEM public key."""
    return parse_public_key(read_key_file(path, private=False), path)


def ensure_key(path: Path | None = None) -> tuple[Ed25519PrivateKey, Path, bool]:
    """The signing key for `run`: `path` if given (it must exist), else the default key.

    The default key (`default_key_path()`) is created on first use and reused afterwards,
    so an auditor can pin it. A given path is never created: a mistyped `--sign-key` must
    not silently sign with a key nobody knows. Returns (key, path, created).
    """
    key_path = signing_key_path(path)
    created = False
    if not key_path.exists():  # the default key, on first use
        generate_key(key_path)
        created = True
    return load_private_key(key_path), key_path, created


def check_key_outside(key_path: Path, report_dir: Path) -> None:
    """Refuse a signing key inside the report directory: it would be replaced or shipped."""
    key = key_path.resolve()
    report = report_dir.resolve()
    if key == report or report in key.parents:
        raise SigningKeyError(
            key_path, f"signing key must not be inside the report directory {report_dir}"
        )
