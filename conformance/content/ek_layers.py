"""One dict per protocol instance of a packet, from tshark's `-T ek` output, whichever way the
Wireshark version printed it.

Wireshark 4 prints a protocol that occurs several times in one packet (three HTTP/2 frames
in one TLS record) as a list with one object per occurrence. Wireshark 3.4 (RHEL 9, Debian
11) prints one object whose fields hold the values of every occurrence, one after the other:
`"http2_http2_type": ["4", "1", "0"]`, header names of every header block in one list, and
fields that only some frame types carry (END_STREAM, the padding length) without saying which
frame they belong to. Read as one frame, such an object gives the first frame's type and loses
the rest: a request in the same packet as a SETTINGS frame would go unseen.

An HTTP/2 object of that form is split back into frames from what is certain: the frame
headers in its raw bytes (length, type, flags, stream; they must be the ones tshark printed,
frame for frame), the DATA payloads cut from those bytes, and the decoded header lists cut by
each header block's count. When they do not agree, or HTTP/1 requests are merged the same way
(their header lines cannot be told apart), `UnsplitError` says why, and the caller counts the
connection as not read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

H2_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_FRAME_HEADER: Final = 9
_DATA, _HEADERS, _PUSH_PROMISE, _CONTINUATION = 0, 1, 5, 9
_END_STREAM, _END_HEADERS, _PADDED = 0x1, 0x4, 0x8
_HEADER_BLOCK_TYPES: Final = (_HEADERS, _PUSH_PROMISE, _CONTINUATION)


class UnsplitError(Exception):
    """An object that holds several protocol instances which cannot be told apart."""


def values(layer: Mapping[str, Any], key: str) -> list[Any]:
    """A field's values in one object: none, one, or the list tshark printed."""
    value = layer.get(key)
    if value is None:
        return []
    return value if isinstance(value, list) else [value]


def _number(value: Any) -> int:
    try:
        return int(str(value), 0)
    except ValueError:
        raise UnsplitError(f"tshark printed {value!r} where a number belongs") from None


def merged(layer: Mapping[str, Any], key: str) -> bool:
    """Whether `key`, one value per protocol instance, holds several: instances merged."""
    return isinstance(layer.get(key), list) and len(layer[key]) > 1


def http2_frames(layer: Mapping[str, Any], raw: Any) -> list[Mapping[str, Any]]:
    """The HTTP/2 frames of one `http2` object, one dict each, with the fields a frame of
    Wireshark 4's output has (type, stream id, END_HEADERS, END_STREAM, header names and
    values, DATA bytes; raw values in hex). `raw` is the packet's `http2_raw`."""
    if not merged(layer, "http2_http2_type"):
        return [layer]
    printed = [
        tuple(_number(v) for v in fields)
        for fields in zip(
            values(layer, "http2_http2_length"),
            values(layer, "http2_http2_type"),
            values(layer, "http2_http2_flags"),
            values(layer, "http2_http2_streamid"),
            strict=False,
        )
    ]
    frames = _raw_frames(raw)
    headers = [header for header, _ in frames]
    if headers != printed:
        raise UnsplitError(
            f"tshark printed {len(values(layer, 'http2_http2_type'))} HTTP/2 frames as one"
            " and their raw bytes do not hold those frames"
        )
    blocks = _header_blocks(layer, headers)
    out: list[Mapping[str, Any]] = []
    for (_, kind, flags, stream), payload in frames:
        frame: dict[str, Any] = {"http2_http2_type": str(kind), "http2_http2_streamid": str(stream)}
        if kind in _HEADER_BLOCK_TYPES:
            frame["http2_http2_flags_eh"] = bool(flags & _END_HEADERS)
            if flags & _END_HEADERS:
                names, texts = blocks.pop(0)
                frame["http2_http2_header_name_raw"] = names
                frame["http2_http2_header_value_raw"] = texts
        if kind in (_DATA, _HEADERS):
            frame["http2_http2_flags_end_stream"] = bool(flags & _END_STREAM)
        if kind == _DATA:
            data = _unpadded(payload, flags)
            if data:
                frame["http2_http2_data_data_raw"] = data.hex()
        out.append(frame)
    return out


def _raw_frames(printed: Any) -> list[tuple[tuple[int, int, int, int], bytes]]:
    """(length, type, flags, stream id) and payload of each frame in the raw bytes (several
    pieces are joined in order: the frames they must hold are checked after)."""
    pieces = printed if isinstance(printed, list) else [printed]
    if not pieces or not all(isinstance(piece, str) for piece in pieces):
        raise UnsplitError("tshark printed HTTP/2 frames as one without their raw bytes")
    try:
        raw = bytes.fromhex("".join(pieces).replace(":", ""))
    except ValueError:
        raise UnsplitError("tshark's raw bytes of merged HTTP/2 frames are not hex") from None
    if raw.startswith(H2_PREFACE):
        raw = raw[len(H2_PREFACE) :]
    frames = []
    at = 0
    while at < len(raw):
        if len(raw) - at < _FRAME_HEADER:
            raise UnsplitError("merged HTTP/2 frames end inside a frame header")
        length = int.from_bytes(raw[at : at + 3], "big")
        kind, flags = raw[at + 3], raw[at + 4]
        stream = int.from_bytes(raw[at + 5 : at + 9], "big") & 0x7FFFFFFF
        payload = raw[at + _FRAME_HEADER : at + _FRAME_HEADER + length]
        if len(payload) < length:
            raise UnsplitError("merged HTTP/2 frames end inside a frame")
        frames.append(((length, kind, flags, stream), payload))
        at += _FRAME_HEADER + length
    return frames


def _header_blocks(
    layer: Mapping[str, Any], headers: list[tuple[int, int, int, int]]
) -> list[tuple[list[Any], list[Any]]]:
    """The decoded header list of each header block, in frame order (one for each frame that
    ends a block), cut from the merged names and values by the blocks' counts."""
    counts = [_number(c) for c in values(layer, "http2_http2_header_count")]
    names = values(layer, "http2_http2_header_name_raw")
    texts = values(layer, "http2_http2_header_value_raw")
    ends = sum(
        1 for _, kind, flags, _ in headers if kind in _HEADER_BLOCK_TYPES and flags & _END_HEADERS
    )
    if len(counts) != ends or sum(counts) != len(names) or len(names) != len(texts):
        raise UnsplitError(
            f"tshark printed {ends} HTTP/2 header blocks as one, with {len(counts)} counts"
            f" for {len(names)} names and {len(texts)} values"
        )
    blocks = []
    start = 0
    for count in counts:
        blocks.append((names[start : start + count], texts[start : start + count]))
        start += count
    return blocks


def _unpadded(payload: bytes, flags: int) -> bytes:
    if not flags & _PADDED:
        return payload
    if not payload or payload[0] >= len(payload):
        raise UnsplitError("a padded HTTP/2 DATA frame whose padding is longer than the frame")
    return payload[1 : len(payload) - payload[0]]


def merged_http_requests(layer: Mapping[str, Any]) -> bool:
    """Whether one `http` object holds several HTTP/1 requests (pipelined in one packet) the
    way Wireshark 3 prints them: their header lines and bodies cannot be told apart."""
    return merged(layer, "http_http_request_method") or merged(layer, "http_http_request_uri")
