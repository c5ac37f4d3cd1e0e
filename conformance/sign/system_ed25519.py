"""Ed25519 signatures from the system's libcrypto, the one `hashlib` already loaded.

A run signs its report once, at its end. `cryptography` (which `verify`, `keygen` and the
exports use) carries its own OpenSSL: loading it costs a run 11 MiB, a tenth of what a
2M-packet web capture's observation needs (#17). OpenSSL (1.1.1 and later) signs Ed25519
itself (RFC 8032: deterministic, so the signature is byte for byte the one `cryptography`
makes; tests/sign/test_system_ed25519.py holds the two and RFC 8032's vectors to it), and
`hashlib` has it loaded already. Where it cannot (no OpenSSL under hashlib, or one without
Ed25519), `system_key` says None and the caller loads the key with `cryptography`.
"""

from __future__ import annotations

import ctypes
from typing import Final

_NID_ED25519: Final = 1087  # OpenSSL's EVP_PKEY_ED25519
_SIGNATURE_BYTES: Final = 64
_KEY_BYTES: Final = 32


class _LibCrypto:
    """The few EVP functions of the libcrypto `_hashlib` links, typed."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        pointer, size = ctypes.c_void_p, ctypes.c_size_t
        self.new_key = lib.EVP_PKEY_new_raw_private_key
        self.new_key.argtypes = [ctypes.c_int, pointer, ctypes.c_char_p, size]
        self.new_key.restype = pointer
        self.free_key = lib.EVP_PKEY_free
        self.free_key.argtypes = [pointer]
        self.free_key.restype = None
        self.public = lib.EVP_PKEY_get_raw_public_key
        self.public.argtypes = [pointer, ctypes.c_char_p, ctypes.POINTER(size)]
        self.public.restype = ctypes.c_int
        self.new_context = lib.EVP_MD_CTX_new
        self.new_context.argtypes = []
        self.new_context.restype = pointer
        self.free_context = lib.EVP_MD_CTX_free
        self.free_context.argtypes = [pointer]
        self.free_context.restype = None
        self.sign_init = lib.EVP_DigestSignInit
        self.sign_init.argtypes = [pointer, pointer, pointer, pointer, pointer]
        self.sign_init.restype = ctypes.c_int
        self.sign = lib.EVP_DigestSign
        self.sign.argtypes = [pointer, ctypes.c_char_p, ctypes.POINTER(size), ctypes.c_char_p, size]
        self.sign.restype = ctypes.c_int


def _libcrypto() -> _LibCrypto | None:
    try:
        import _hashlib

        return _LibCrypto(ctypes.CDLL(_hashlib.__file__))
    except (ImportError, OSError, AttributeError):  # no OpenSSL, or one without these
        return None


class SystemEd25519Key:
    """An Ed25519 private key held by libcrypto: `sign` and `public_key` as
    cryptography's Ed25519PrivateKey has them, for what signs a report (sign/seal.py)."""

    def __init__(self, lib: _LibCrypto, private: bytes) -> None:
        self._lib = lib
        self._key: int | None = None  # the EVP_PKEY, while held (`close` frees it)
        if len(private) != _KEY_BYTES:
            raise ValueError(f"an Ed25519 private key is {_KEY_BYTES} bytes, not {len(private)}")
        self._key = lib.new_key(_NID_ED25519, None, private, _KEY_BYTES)
        if not self._key:
            raise ValueError("libcrypto refused the Ed25519 private key")
        public = ctypes.create_string_buffer(_KEY_BYTES)
        length = ctypes.c_size_t(_KEY_BYTES)
        if lib.public(self._key, public, ctypes.byref(length)) != 1 or length.value != _KEY_BYTES:
            self.close()
            raise ValueError("libcrypto gave no Ed25519 public key")
        self._public = _PublicKey(public.raw)

    def public_key(self) -> _PublicKey:
        return self._public

    def sign(self, data: bytes) -> bytes:
        """The Ed25519 signature of `data` (RFC 8032, pure Ed25519)."""
        if not self._key:
            raise ValueError("the key was closed")
        lib = self._lib
        context = lib.new_context()
        if not context:
            raise MemoryError("libcrypto: no signing context")
        try:
            signature = ctypes.create_string_buffer(_SIGNATURE_BYTES)
            length = ctypes.c_size_t(_SIGNATURE_BYTES)
            if (
                lib.sign_init(context, None, None, None, self._key) != 1
                or lib.sign(context, signature, ctypes.byref(length), data, len(data)) != 1
                or length.value != _SIGNATURE_BYTES
            ):
                raise ValueError("libcrypto could not make the Ed25519 signature")
            return signature.raw
        finally:
            lib.free_context(context)

    def close(self) -> None:
        if self._key:
            self._lib.free_key(self._key)
            self._key = None

    def __del__(self) -> None:
        self.close()


class _PublicKey:
    """The public half, as cryptography's Ed25519PublicKey gives its raw bytes."""

    def __init__(self, raw: bytes) -> None:
        self._raw = raw

    def public_bytes_raw(self) -> bytes:
        return self._raw


def system_key(private: bytes) -> SystemEd25519Key | None:
    """The Ed25519 key with these 32 private bytes held by the system's libcrypto, or None
    where it cannot hold one (the caller then uses `cryptography`)."""
    lib = _libcrypto()
    if lib is None:
        return None
    try:
        return SystemEd25519Key(lib, private)
    except ValueError:
        return None
