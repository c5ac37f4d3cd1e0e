"""Captures and key logs for the evidence sources' tests, each named after what it carries.

A Decryption Secrets Block holds the target's TLS keys (pcapng spec 4.7): a capture with one
must never reach a report unless the user keeps secrets. Frames are never parsed here, so a
few filler bytes stand in for them.
"""

from __future__ import annotations

import struct
from pathlib import Path

from conformance.decode.keylog import DSB_TYPE, TLS_KEY_LOG_SECRETS
from tests.capture_files import Epb, RawBlock, pcapng_section, write_bytes

CLIENT_RANDOM = "ab" * 32
MASTER_SECRET = "ef" * 48
KEY_LINE = f"CLIENT_RANDOM {CLIENT_RANDOM} {MASTER_SECRET}\n"
_FRAMES = (Epb(b"\x02" * 60, time=1.0), Epb(b"\x03" * 61, time=2.0))  # fixed: same bytes


def _keys_block() -> RawBlock:
    secret = KEY_LINE.encode()
    padded = secret + b"\0" * (-len(secret) % 4)
    return RawBlock(DSB_TYPE, struct.pack("<II", TLS_KEY_LOG_SECRETS, len(secret)) + padded)


def key_log(path: Path) -> Path:
    """An NSS key log with one TLS 1.2 master secret."""
    path.write_text(f"# SSL/TLS secrets log file\n{KEY_LINE}")
    return path


def broken_key_log(path: Path) -> Path:
    """A key log whose second line is not hex (KeyLogError names file:line)."""
    path.write_text(f"{KEY_LINE}CLIENT_RANDOM nothex {MASTER_SECRET}\n")
    return path


def capture_without_keys(path: Path) -> Path:
    """A pcapng with two frames and no secrets."""
    return write_bytes(path, pcapng_section(list(_FRAMES)))


def capture_with_keys(path: Path, *, after_first_packet: bool = False) -> Path:
    """The same pcapng carrying the key log in a DSB: before the frames, where editcap and
    Wireshark write it, or after the first one (mergecap can put it there)."""
    records = [_keys_block(), *_FRAMES]
    if after_first_packet:
        records = [_FRAMES[0], _keys_block(), _FRAMES[1]]
    return write_bytes(path, pcapng_section(records))
