"""Wireshark 3.4's one `http2` object for the frames of a packet, split back into frames."""

from __future__ import annotations

from typing import Any

import pytest

from conformance.content import ek_layers
from conformance.content.ek_layers import H2_PREFACE, UnsplitError, http2_frames


def _frame(kind: int, flags: int, stream: int, payload: bytes) -> bytes:
    return (
        len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload
    )


def _merged(
    frames: list[tuple[int, int, int, bytes]], blocks: list[list[tuple[str, str]]]
) -> tuple[dict[str, Any], str]:
    """One object as Wireshark 3.4 prints it, and the packet's raw bytes."""
    names = [n.encode().hex() for block in blocks for n, _ in block]
    values = [v.encode().hex() for block in blocks for _, v in block]
    layer = {
        "http2_http2_length": [str(len(p)) for *_, p in frames],
        "http2_http2_type": [str(k) for k, *_ in frames],
        "http2_http2_flags": [f"0x{f:08x}" for _, f, *_ in frames],
        "http2_http2_streamid": [str(s) for _, _, s, _ in frames],
        "http2_http2_header_count": [str(len(b)) for b in blocks],
        "http2_http2_header_name_raw": names,
        "http2_http2_header_value_raw": values,
        "http2_http2_magic": "PRI * HTTP/2.0",
        "http2_http2_data_data_raw": ["ignored: cut from the raw bytes"],
    }
    raw = H2_PREFACE + b"".join(_frame(*f) for f in frames)
    return layer, raw.hex()


FRAMES = [
    (4, 0, 0, b""),  # SETTINGS
    (1, 0x4, 1, b"hpack-1"),  # HEADERS, END_HEADERS
    (0, 0x8 | 0x1, 1, bytes([2]) + b'{"beat":1}' + b"\0\0"),  # DATA, padded, END_STREAM
    (1, 0x1, 3, b"hpack-2a"),  # HEADERS without END_HEADERS, END_STREAM
    (9, 0x4, 3, b"hpack-2b"),  # CONTINUATION, END_HEADERS
    (0, 0x1, 5, b""),  # an empty DATA frame: no data field in tshark's output
]
BLOCKS = [[(":method", "POST"), (":path", "/v1/telemetry/beat")], [(":method", "GET")]]


def test_merged_frames_are_split_with_their_own_headers_data_and_flags() -> None:
    layer, raw = _merged(FRAMES, BLOCKS)
    frames = http2_frames(layer, raw)
    assert [(f["http2_http2_type"], f["http2_http2_streamid"]) for f in frames] == [
        ("4", "0"), ("1", "1"), ("0", "1"), ("1", "3"), ("9", "3"), ("0", "5"),
    ]  # fmt: skip
    settings, headers, data, open_block, continuation, empty = frames
    assert set(settings) == {"http2_http2_type", "http2_http2_streamid"}
    assert bytes.fromhex(headers["http2_http2_header_name_raw"][1]) == b":path"
    assert headers["http2_http2_flags_eh"] is True
    assert headers["http2_http2_flags_end_stream"] is False
    assert bytes.fromhex(data["http2_http2_data_data_raw"]) == b'{"beat":1}'
    assert data["http2_http2_flags_end_stream"] is True
    assert open_block["http2_http2_flags_eh"] is False
    assert "http2_http2_header_name_raw" not in open_block
    assert [bytes.fromhex(v) for v in continuation["http2_http2_header_value_raw"]] == [b"GET"]
    assert "http2_http2_data_data_raw" not in empty


def test_raw_bytes_in_pieces_are_read_in_order() -> None:
    layer, raw = _merged(FRAMES, BLOCKS)
    cut = len(raw) // 3 * 2
    assert http2_frames(layer, [raw[:cut], raw[cut:]]) == http2_frames(layer, raw)
    with pytest.raises(UnsplitError):  # out of order: not the frames tshark printed
        http2_frames(layer, [raw[cut:], raw[:cut]])
    with pytest.raises(UnsplitError, match="without their raw bytes"):
        http2_frames(layer, [])


def test_an_object_of_one_frame_is_read_as_it_is() -> None:
    layer = {"http2_http2_type": "1", "http2_http2_streamid": "1"}
    assert http2_frames(layer, None) == [layer]
    assert http2_frames({"http2_http2_type": ["0"]}, None) == [{"http2_http2_type": ["0"]}]


def _cut(raw: str, chars: int) -> str:
    return raw[:-chars]


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda layer, raw: (layer, None), "without their raw bytes"),
        (lambda layer, raw: (layer, raw + "zz"), "not hex"),
        (lambda layer, raw: (layer, _cut(raw, 4)), "end inside a frame"),
        (lambda layer, raw: (layer, raw + "0000"), "end inside a frame header"),
        (
            lambda layer, raw: (
                {**layer, "http2_http2_streamid": ["0", "1", "1", "3", "3", "7"]},
                raw,
            ),
            "do not hold those frames",
        ),
        (lambda layer, raw: ({**layer, "http2_http2_type": ["4", "1"]}, raw), "do not hold"),
        (
            lambda layer, raw: ({**layer, "http2_http2_header_count": ["3"]}, raw),
            "2 HTTP/2 header blocks as one, with 1 counts for 3 names",
        ),
        (
            lambda layer, raw: ({**layer, "http2_http2_header_count": ["1", "2"]}, raw),
            None,
        ),  # counts that add up: the split is as good as tshark's own output
        (
            lambda layer, raw: ({**layer, "http2_http2_header_value_raw": ["00"]}, raw),
            "for 3 names and 1 values",
        ),
        (lambda layer, raw: ({**layer, "http2_http2_flags": ["x"] * 6}, raw), "where a number"),
    ],
)
def test_frames_that_do_not_agree_with_their_raw_bytes_are_not_split(
    change: Any, why: str | None
) -> None:
    layer, raw = change(*_merged(FRAMES, BLOCKS))
    if why is None:
        assert len(http2_frames(layer, raw)) == len(FRAMES)
        return
    with pytest.raises(UnsplitError, match=why.replace("(", r"\(")):
        http2_frames(layer, raw)


def test_padding_longer_than_its_frame_is_not_read() -> None:
    layer, raw = _merged([(4, 0, 0, b""), (0, 0x8, 1, bytes([9]) + b"abc")], [])
    with pytest.raises(UnsplitError, match="padding is longer"):
        http2_frames(layer, raw)


def test_merged_http1_requests_are_told_from_one_request() -> None:
    assert ek_layers.merged_http_requests({"http_http_request_method": ["GET", "POST"]})
    assert ek_layers.merged_http_requests({"http_http_request_uri": ["/a", "/b"]})
    assert not ek_layers.merged_http_requests({"http_http_request_method": "POST"})
    assert not ek_layers.merged_http_requests({"http_http_request_method": ["POST"]})
