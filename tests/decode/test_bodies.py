"""Message bodies decoded without a schema: JSON, gRPC frames, protobuf wire format, gzip."""

from __future__ import annotations

import gzip
import json

from conformance.decode.bodies import body_value, decode_body, protobuf_fields


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field(number: int, wire: int, payload: bytes) -> bytes:
    return _varint(number << 3 | wire) + payload


def _len(number: int, data: bytes) -> bytes:
    return _field(number, 2, _varint(len(data)) + data)


def _grpc(message: bytes, compressed: bool = False) -> bytes:
    return bytes([compressed]) + len(message).to_bytes(4, "big") + message


NESTED = _len(1, b"UCX Suite") + _field(2, 0, _varint(300)) + _len(3, _len(1, b"alice@example.com"))


def test_protobuf_walk_finds_nested_messages_and_text() -> None:
    fields = protobuf_fields(NESTED)
    assert fields[0] == {"field": 1, "wire": "len", "value": "UCX Suite"}
    assert fields[1] == {"field": 2, "wire": "varint", "value": 300}
    nested = fields[2]["value"]["message"]
    assert nested == [{"field": 1, "wire": "len", "value": "alice@example.com"}]


def test_grpc_body_is_split_into_messages() -> None:
    body = _grpc(NESTED) + _grpc(json.dumps({"beat": 1}).encode())
    decoded = decode_body(body, "application/grpc+proto")
    assert decoded["encoding"] == "grpc"
    first, second = decoded["messages"]
    assert first["length"] == len(NESTED) and "protobuf" in first["value"]
    assert second["value"] == {"beat": 1}
    assert body_value(decoded)[1] == {"beat": 1}


def test_gzip_json_and_binary_bodies() -> None:
    assert decode_body(gzip.compress(b'{"a": 1}'), "application/json", "gzip") == {
        "encoding": "json",
        "value": {"a": 1},
        "gzip": True,
    }
    assert decode_body(b"") == {"encoding": "empty"}
    assert decode_body(b"plain words")["encoding"] == "text"
    binary = decode_body(b"\xff\xfe\x00\x01")
    assert binary["encoding"] == "binary" and binary["size"] == 4


def test_a_truncated_protobuf_is_not_taken_for_one() -> None:
    assert decode_body(NESTED[:-3] + b"\xff")["encoding"] == "binary"
