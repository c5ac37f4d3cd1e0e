"""The run's signing key: found and checked when the run starts, without `cryptography`,
and held to sign its report at its end by the system's libcrypto where it can be.

`cryptography` costs a run 11 MiB (a tenth of a 2M-packet web capture's observation, #17);
a run of captures without QUIC need not load it at all. A key file that is not the usual
Ed25519 one is loaded with it at once, so what is wrong with it is said at once.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from conformance.sign.key_file import (
    ed25519_private_bytes,
    is_plain_ed25519,
    one_pem_block,
    read_key_file,
    signing_key_path,
)
from conformance.sign.system_ed25519 import system_key

if TYPE_CHECKING:
    from conformance.sign.seal import SealingKey


def signing_key_file(path: Path | None) -> tuple[bytes, Path, bool]:
    """The signing key file for `run`, read and checked but not loaded: (its bytes, its path,
    whether it was created now), found as sign/keys.py `ensure_key` finds it (making the
    default key on first use loads `cryptography`, that once)."""
    key_path = signing_key_path(path)
    created = False
    if not key_path.exists():
        from conformance.sign.keys import generate_key

        generate_key(key_path)
        created = True
    data = read_key_file(key_path, private=True)
    one_pem_block(data, key_path)
    if not is_plain_ed25519(data):
        from conformance.sign.keys import private_key_from

        private_key_from(data, key_path)
    return data, key_path, created


def signing_key(key_pem: bytes, path: Path) -> SealingKey:
    """The key of `key_pem` (read from `path` by `signing_key_file`), held by the system's
    libcrypto where it can be (sign/system_ed25519.py), else loaded with `cryptography`."""
    private = ed25519_private_bytes(key_pem)
    key = system_key(private) if private is not None else None
    if key is not None:
        return key
    from conformance.sign.keys import private_key_from

    return private_key_from(key_pem, path)
