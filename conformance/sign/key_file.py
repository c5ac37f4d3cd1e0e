"""A key file read and checked without `cryptography`: permissions, size, one PEM block,
and whether it is the usual Ed25519 private key (PKCS#8 v1, RFC 8410 §7).

A run checks its signing key this way when it starts, so a bad key is said at once, and
loads it (conformance.sign.keys, with `cryptography`) only to sign, at its end: 11 MiB of
a run's memory that the capture's walk no longer carries (#17).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import re
import stat
from pathlib import Path

from conformance.errors import SigningKeyError

KEY_ENV = "UCX_CONFORMANCE_KEY"
FINGERPRINT_PREFIX = "sha256:"

# A PEM key is a few hundred bytes; anything far larger is not a key file.
MAX_KEY_FILE_BYTES = 64 * 1024
# Group and others may neither read nor write a private key (as ssh insists).
UNSAFE_MODE_BITS = 0o077
# RFC 7468 boundaries; a key file is one block and nothing else.
_PEM_BEGIN = re.compile(rb"-----BEGIN [^-\r\n]*-----")
_PEM_END = re.compile(rb"-----END [^-\r\n]*-----")
_PEM_BLOCK = re.compile(rb"\s*-----BEGIN ([^-\r\n]*)-----(?:(?!-----).)*-----END \1-----\s*", re.S)
# An Ed25519 private key as PKCS#8 v1 (RFC 8410 §7: what `openssl genpkey -algorithm
# ed25519` and `keygen` write): this DER prefix, then the 32-byte private key.
_ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
# An Ed25519 public key as SubjectPublicKeyInfo (RFC 8410 §4): this DER prefix, then the key.
_ED25519_SPKI_PREFIX = bytes.fromhex("302a300506032b6570032100")
_PRIVATE_KEY_BLOCK = re.compile(
    rb"\s*-----BEGIN PRIVATE KEY-----(.*)-----END PRIVATE KEY-----\s*", re.S
)


def _kind(mode: int) -> str:
    """What a non-regular file is, for "is a directory, not a key file"."""
    for test, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a named pipe"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def read_key_file(path: Path, *, private: bool) -> bytes:
    """Read a key file; for a private key, refuse group/other permissions first."""
    # O_NONBLOCK: opening a named pipe must not wait for a writer (it is refused below);
    # it changes nothing for the regular file a key is.
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        # A socket cannot be opened at all: say what it is rather than "no such device".
        if not stat.S_ISREG(mode := os.stat(path).st_mode):
            raise SigningKeyError(path, f"is {_kind(mode)}, not a key file")
        fd = os.open(path, flags)
    except FileNotFoundError as exc:
        raise SigningKeyError(path, "no such key file") from exc
    except OSError as exc:
        raise SigningKeyError(path, f"cannot open key file: {exc.strerror}") from exc
    # fstat on the open descriptor: the checked file is the file read.
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise SigningKeyError(path, f"is {_kind(info.st_mode)}, not a key file")
    with os.fdopen(fd, "rb") as handle:
        if private and info.st_mode & UNSAFE_MODE_BITS:
            mode = stat.S_IMODE(info.st_mode)
            raise SigningKeyError(
                path,
                f"private key has mode {mode:04o}, readable or writable by group or others; "
                f"run: chmod 600 {path}",
            )
        data = handle.read(MAX_KEY_FILE_BYTES + 1)
    if len(data) > MAX_KEY_FILE_BYTES:
        raise SigningKeyError(path, "too large to be a key file")
    return data


def one_pem_block(data: bytes, source: Path | str) -> None:
    """Refuse anything but exactly one PEM block (whitespace around it is fine).

    cryptography reads the first block and ignores the rest, so a file with a second key
    after the first would be trusted for a key nobody looked at.
    """
    begins = len(_PEM_BEGIN.findall(data))
    ends = len(_PEM_END.findall(data))
    if begins == 0 and ends == 0:
        return  # not PEM at all: the parser says so
    if begins != 1 or ends != 1:
        raise SigningKeyError(
            source, f"holds {max(begins, ends)} PEM blocks; a key file holds exactly one key"
        )
    if _PEM_BLOCK.fullmatch(data) is None:
        raise SigningKeyError(source, "holds text outside its PEM block; keep only the key")


def is_plain_ed25519(data: bytes) -> bool:
    """Whether `data` (one PEM block, as `one_pem_block` leaves it) is an unencrypted Ed25519
    private key in PKCS#8 v1: then `cryptography` would load it (sign/keys.py
    `load_private_key`); any other file is for it to judge."""
    return ed25519_private_bytes(data) is not None


def ed25519_private_bytes(data: bytes) -> bytes | None:
    """The 32-byte private key (RFC 8032's seed) of a plain Ed25519 key file, else None."""
    match = _PRIVATE_KEY_BLOCK.fullmatch(data)
    if match is None:
        return None
    try:
        der = base64.b64decode(b"".join(match.group(1).split()), validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(der) != len(_ED25519_PKCS8_PREFIX) + 32 or not der.startswith(_ED25519_PKCS8_PREFIX):
        return None
    return der[len(_ED25519_PKCS8_PREFIX) :]


def raw_public_key_pem(public: bytes) -> str:
    """The SubjectPublicKeyInfo PEM text of a 32-byte Ed25519 public key (what
    `openssl pkey -pubout` writes, and sign/keys.py `public_key_pem`)."""
    body = base64.b64encode(_ED25519_SPKI_PREFIX + public).decode("ascii")
    return f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----\n"


def raw_fingerprint(public: bytes) -> str:
    """`sha256:<hex>` of the DER SubjectPublicKeyInfo of a 32-byte Ed25519 public key."""
    return FINGERPRINT_PREFIX + hashlib.sha256(_ED25519_SPKI_PREFIX + public).hexdigest()


def default_key_path() -> Path:
    """The signing key `run` uses without `--sign-key`.

    `$UCX_CONFORMANCE_KEY` if set, else `$XDG_DATA_HOME/ucx-conformance/signing-key.pem`
    (`~/.local/share/...` when XDG_DATA_HOME is unset or relative, as the XDG spec says).
    """
    explicit = os.environ.get(KEY_ENV)
    if explicit:
        return Path(explicit).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME", "")
    base = Path(data_home) if os.path.isabs(data_home) else Path.home() / ".local" / "share"
    return base / "ucx-conformance" / "signing-key.pem"


def signing_key_path(path: Path | None) -> Path:
    """Where the signing key for `run` is: `path` if given (it must exist: a mistyped
    `--sign-key` must not silently sign with a key nobody knows), else the default key's
    path (`default_key_path`), which the caller creates on first use."""
    if path is None:
        return default_key_path()
    if not path.exists():
        raise SigningKeyError(path, f"no such key file; create one with: keygen {path}")
    return path
