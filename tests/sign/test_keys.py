"""Signing keys: 0600 from creation, no overwrite, unsafe modes refused, openssl-compatible."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from conformance.errors import SigningKeyError
from conformance.sign.key_file import default_key_path
from conformance.sign.keys import (
    check_key_outside,
    ensure_key,
    fingerprint,
    generate_key,
    load_private_key,
    load_public_key,
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_is_written_0600_and_public_key_beside_it(tmp_path: Path) -> None:
    old = os.umask(0)  # even a permissive umask must not widen the private key
    try:
        key = generate_key(tmp_path / "k" / "signer.pem")
    finally:
        os.umask(old)
    assert mode_of(key) == 0o600
    pub = Path(f"{key}.pub")
    assert b"BEGIN PRIVATE KEY" in key.read_bytes()  # PKCS#8
    assert b"BEGIN PUBLIC KEY" in pub.read_bytes()  # SubjectPublicKeyInfo
    assert fingerprint(load_private_key(key).public_key()) == fingerprint(load_public_key(pub))


@pytest.mark.parametrize("existing", ["signer.pem", "signer.pem.pub"])
def test_keygen_refuses_to_overwrite(tmp_path: Path, existing: str) -> None:
    (tmp_path / existing).write_text("precious")
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_key(tmp_path / "signer.pem")
    assert (tmp_path / existing).read_text() == "precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]


def test_keygen_refuses_a_symlink_in_place_of_the_key(tmp_path: Path) -> None:
    (tmp_path / "signer.pem").symlink_to(tmp_path / "elsewhere.pem")
    with pytest.raises(SigningKeyError, match="already exists"):
        generate_key(tmp_path / "signer.pem")
    assert not (tmp_path / "elsewhere.pem").exists()


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620, 0o602, 0o660])
def test_private_key_open_to_group_or_others_is_refused(tmp_path: Path, mode: int) -> None:
    key = generate_key(tmp_path / "signer.pem")
    key.chmod(mode)
    with pytest.raises(SigningKeyError) as caught:
        load_private_key(key)
    message = str(caught.value)
    assert str(key) in message and f"{mode:04o}" in message and "chmod 600" in message


def test_owner_only_modes_are_accepted(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "signer.pem")
    key.chmod(0o400)
    load_private_key(key)


def test_non_ed25519_key_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    with pytest.raises(SigningKeyError, match="not an Ed25519 key"):
        load_private_key(path)


def test_garbage_and_missing_keys_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    with pytest.raises(SigningKeyError, match="not a PEM private key"):
        load_private_key(path)
    with pytest.raises(SigningKeyError, match="no such key file"):
        load_private_key(tmp_path / "absent.pem")
    with pytest.raises(SigningKeyError, match="not a PEM public key"):
        load_public_key(path)


def test_default_key_path_follows_env_then_xdg(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "explicit.pem"))
    assert default_key_path() == tmp_path / "explicit.pem"
    monkeypatch.delenv("UCX_CONFORMANCE_KEY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert default_key_path() == tmp_path / "xdg" / "ucx-conformance" / "signing-key.pem"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/ignored")  # the XDG spec says: ignore
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".local" / "share" / "ucx-conformance" / "signing-key.pem"
    assert default_key_path() == expected


def test_ensure_key_creates_once_then_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UCX_CONFORMANCE_KEY", str(tmp_path / "data" / "signing-key.pem"))
    first, path, created = ensure_key()
    assert created and path == tmp_path / "data" / "signing-key.pem" and mode_of(path) == 0o600
    second, again, created_again = ensure_key()
    assert again == path and not created_again
    assert fingerprint(first.public_key()) == fingerprint(second.public_key())


def test_key_inside_the_report_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="inside the report directory"):
        check_key_outside(tmp_path / "report" / "k.pem", tmp_path / "report")
    check_key_outside(tmp_path / "k.pem", tmp_path / "report")


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is not installed")
def test_fingerprint_is_reproducible_with_openssl(tmp_path: Path) -> None:
    key = generate_key(tmp_path / "signer.pem")
    der = subprocess.run(
        ["openssl", "pkey", "-pubin", "-in", f"{key}.pub", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    expected = "sha256:" + hashlib.sha256(der).hexdigest()
    assert fingerprint(load_public_key(Path(f"{key}.pub"))) == expected
    # openssl also reads the private key (PKCS#8) and derives the same public key.
    derived = subprocess.run(
        ["openssl", "pkey", "-in", str(key), "-pubout", "-outform", "DER"],
        check=True,
        capture_output=True,
    ).stdout
    assert derived == der


def test_ensure_key_never_creates_a_given_path(tmp_path: Path) -> None:
    with pytest.raises(SigningKeyError, match="keygen"):
        ensure_key(tmp_path / "typo.pem")
    assert not (tmp_path / "typo.pem").exists()
    key = generate_key(tmp_path / "given.pem")
    assert ensure_key(key)[1:] == (key, False)


# --- what a key path may be, and what a key file may hold ---------------------------------


@pytest.mark.parametrize("kind", ["directory", "fifo", "socket", "char-device"])
def test_a_key_path_that_is_not_a_regular_file_is_refused_at_once(
    tmp_path: Path, kind: str
) -> None:
    import socket

    path = tmp_path / "signer.pub"
    held: socket.socket | None = None
    if kind == "directory":
        path.mkdir()
        expected = "is a directory, not a key file"
    elif kind == "fifo":
        os.mkfifo(path)  # opening it for reading must not wait for a writer
        expected = "is a named pipe, not a key file"
    elif kind == "socket":
        held = socket.socket(socket.AF_UNIX)
        held.bind(str(path))
        expected = "is a socket, not a key file"
    else:
        path = Path("/dev/null")
        expected = "is a character device, not a key file"
    try:
        with pytest.raises(SigningKeyError, match=expected):
            load_public_key(path)
        with pytest.raises(SigningKeyError, match=expected):
            load_private_key(path)
    finally:
        if held is not None:
            held.close()


def _second_block(tmp_path: Path) -> tuple[Path, Path]:
    first = generate_key(tmp_path / "a" / "signer.pem")
    second = generate_key(tmp_path / "b" / "other.pem")
    return first, second


@pytest.mark.parametrize("private", [False, True])
def test_a_key_file_with_a_second_pem_block_is_refused(tmp_path: Path, private: bool) -> None:
    first, second = _second_block(tmp_path)
    suffix = "" if private else ".pub"
    combined = tmp_path / f"combined.pem{suffix}"
    fd = os.open(combined, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(Path(f"{first}{suffix}").read_bytes())
        handle.write(Path(f"{second}{suffix}").read_bytes())
    loader = load_private_key if private else load_public_key
    with pytest.raises(SigningKeyError, match="holds 2 PEM blocks; a key file holds exactly one"):
        loader(combined)


@pytest.mark.parametrize(
    ("before", "after", "problem"),
    [
        (b"", b"\n\n", None),  # whitespace around the block is fine
        (b"\r\n", b"  \r\n", None),
        (b"", b"trailing words\n", "holds text outside its PEM block"),
        (b"comment\n", b"", "holds text outside its PEM block"),
        (b"", b"-----END PUBLIC KEY-----\n", "holds 2 PEM blocks"),
    ],
)
def test_a_public_key_file_is_one_pem_block_and_nothing_else(
    tmp_path: Path, before: bytes, after: bytes, problem: str | None
) -> None:
    key = generate_key(tmp_path / "k" / "signer.pem")
    path = tmp_path / "edited.pub"
    path.write_bytes(before + Path(f"{key}.pub").read_bytes() + after)
    if problem is None:
        assert fingerprint(load_public_key(path)) == fingerprint(
            load_public_key(Path(f"{key}.pub"))
        )
    else:
        with pytest.raises(SigningKeyError, match=problem):
            load_public_key(path)
