"""Open a capture file: check its header and return the reader of its format.

The formats are decode/pcap_reader.py and decode/pcapng_reader.py, over the part every
reader shares (decode/capture_reader.py).
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path

from conformance.decode import read_ahead
from conformance.decode.capture_reader import (
    HEAD_MIN_BYTES,
    PCAP_MAGICS,
    PCAPNG_MAGIC,
    CaptureReader,
)
from conformance.decode.pcap_reader import PcapReader
from conformance.decode.pcapng_reader import PcapngReader
from conformance.decode.read_ahead import OnBytes
from conformance.errors import CaptureError


def open_capture(
    path: Path | str,
    on_chunk: Callable[[], None] | None = None,
    on_bytes: OnBytes | None = None,
    *,
    digest: bool = True,
) -> CaptureReader:
    """Open `path` and check its header; the reader of its format.

    `on_chunk` is called after each chunk the decoder takes (progress). `on_bytes`, if
    given, is shown every byte of the file, in order, as it is read and hashed (the
    report's copy); the reader's `complete` says whether it saw the whole file.
    Without `digest` the reader computes no SHA-256 (`sha256` is empty).
    Raises CaptureError for a file that cannot be read as a capture at all.
    """
    where = Path(path)
    try:
        file = where.open("rb", buffering=0)
    except FileNotFoundError:
        raise CaptureError(where, "no such file") from None
    except IsADirectoryError:
        raise CaptureError(where, "is a directory, not a capture file") from None
    except OSError as err:
        raise CaptureError(where, f"cannot be read: {err.strerror or err}") from None
    try:
        try:
            size = where.stat().st_size
            head = file.read(max(read_ahead.CHUNK_BYTES, HEAD_MIN_BYTES))
        except OSError as err:
            raise CaptureError(where, f"cannot be read: {err.strerror or err}") from None
        if not head:
            raise CaptureError(where, "empty file")
        if len(head) < 4:
            raise CaptureError(where, "not a pcap or pcapng file (shorter than any header)")
        le_magic, be_magic = struct.unpack_from("<I", head)[0], struct.unpack_from(">I", head)[0]
        reader: CaptureReader
        if le_magic == PCAPNG_MAGIC:
            reader = PcapngReader(where, file, head, on_chunk, on_bytes)
        elif le_magic in PCAP_MAGICS:
            reader = PcapReader(where, file, head, le_magic, "<", on_chunk, on_bytes)
        elif be_magic in PCAP_MAGICS:
            reader = PcapReader(where, file, head, be_magic, ">", on_chunk, on_bytes)
        else:
            raise CaptureError(where, f"not a pcap or pcapng file (starts with 0x{head[:4].hex()})")
    except BaseException:
        file.close()
        raise
    reader.file_size = size
    if not digest:
        reader.without_digest()
    return reader
