"""Ed25519 signing keys: generate, load with permission checks, fingerprint, default location.

Files are the formats `openssl` reads (interface.md, keygen): the private key as PKCS#8 PEM,
mode 0600; the public key beside it as `<key>.pub`, SubjectPublicKeyInfo PEM.

Fingerprint: `sha256:` + the lower-case hex SHA-256 of the DER SubjectPublicKeyInfo, so an
auditor can reproduce it with nothing but openssl:

    openssl pkey -pubin -in signer.pub -outform DER | sha256sum
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from conformance.errors import SigningKeyError

KEY_ENV = "UCX_CONFORMANCE_KEY"
PUBLIC_SUFFIX = ".pub"
FINGERPRINT_PREFIX = "sha256:"
# A PEM key is a few hundred bytes; anything far larger is not a key file.
MAX_KEY_FILE_BYTES = 64 * 1024
# Group and others may neither read nor write a private key (as ssh insists).
UNSAFE_MODE_BITS = 0o077
# RFC 7468 boundaries; a key file is one block and nothing else.
_PEM_BEGIN = re.compile(rb"-----BEGIN [^-\r\n]*-----")
_PEM_END = re.compile(rb"-----END [^-\r\n]*-----")
_PEM_BLOCK = re.compile(rb"\s*-----BEGIN ([^-\r\n]*)-----(?:(?!-----).)*-----END \1-----\s*", re.S)


def public_key_path(private_key_path: Path) -> Path:
    """Where the public key of `private_key_path` lives: the same name plus `.pub`."""
    return private_key_path.with_name(private_key_path.name + PUBLIC_SUFFIX)


def public_key_pem(public_key: Ed25519PublicKey) -> str:
    """The SubjectPublicKeyInfo PEM text of a public key."""
    return public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def fingerprint(public_key: Ed25519PublicKey) -> str:
    """`sha256:<hex>` of the DER SubjectPublicKeyInfo (see the module docstring for openssl)."""
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return FINGERPRINT_PREFIX + hashlib.sha256(der).hexdigest()


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


def _read_key_file(path: Path, *, private: bool) -> bytes:
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


def _one_pem_block(data: bytes, source: Path | str) -> None:
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


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load an unencrypted Ed25519 PKCS#8 PEM private key that only its owner can access."""
    data = _read_key_file(path, private=True)
    _one_pem_block(data, path)
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
    _one_pem_block(pem, source)
    try:
        key = serialization.load_pem_public_key(pem)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise SigningKeyError(source, "not a PEM public key") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SigningKeyError(source, f"not an Ed25519 key ({type(key).__name__})")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """Load an Ed25519 SubjectPublicKeyInfo PEM public key."""
    return parse_public_key(_read_key_file(path, private=False), path)


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


def ensure_key(path: Path | None = None) -> tuple[Ed25519PrivateKey, Path, bool]:
    """The signing key for `run`: `path` if given (it must exist), else the default key.

    The default key (`default_key_path()`) is created on first use and reused afterwards,
    so an auditor can pin it. A given path is never created: a mistyped `--sign-key` must
    not silently sign with a key nobody knows. Returns (key, path, created).
    """
    if path is not None:
        if not path.exists():
            raise SigningKeyError(path, f"no such key file; create one with: keygen {path}")
        return load_private_key(path), path, False
    key_path = default_key_path()
    created = False
    if not key_path.exists():
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
