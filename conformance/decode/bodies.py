"""Message bodies as JSON-able trees, decoded as far as possible without a schema.

`decode_body` is what the intercepting proxy writes for every request and response body:

    {"encoding": "empty"}
    {"encoding": "json", "value": <the JSON value>}
    {"encoding": "grpc", "messages": [{"compressed": false, "length": 42, "value": <tree>}]}
    {"encoding": "protobuf", "value": [{"field": 1, "wire": "varint", "value": 5}, ...]}
    {"encoding": "text", "value": "..."}
    {"encoding": "binary", "size": 123, "base64": "..."}

gRPC messages (5-byte prefix: compressed flag, big-endian length) are decoded one by one, each
as JSON, protobuf (wire-format walk: a length-delimited field becomes a nested message when it
parses as one, else text, else base64), text or base64. gzip-compressed bodies and messages are
inflated first (`"gzip": true` is added).
"""

from __future__ import annotations

import base64
import gzip
import json
import zlib
from typing import Any, Final

MAX_BODY: Final = 1 << 20  # bytes decoded per body; the rest is counted, not decoded
MAX_DEPTH: Final = 8  # nested protobuf messages
GZIP_MAGIC: Final = b"\x1f\x8b"
_WIRE: Final = {0: "varint", 1: "i64", 2: "len", 5: "i32"}


def _text(data: bytes) -> str | None:
    """`data` as text when it is UTF-8 with no control characters but whitespace."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if any(ord(c) < 0x20 and c not in "\t\r\n" for c in text):
        return None
    return text


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def protobuf_fields(data: bytes, depth: int = 0) -> list[dict[str, Any]]:
    """Walk protobuf wire format; ValueError when `data` is not a whole, valid message."""
    fields: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if number == 0 or wire not in _WIRE:
            raise ValueError(f"bad field key {key}")
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(data):
                raise ValueError("truncated fixed field")
            value = int.from_bytes(data[pos : pos + size], "little")
            pos += size
        else:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated length-delimited field")
            value = _length_delimited(data[pos : pos + length], depth)
            pos += length
        fields.append({"field": number, "wire": _WIRE[wire], "value": value})
    return fields


def _length_delimited(chunk: bytes, depth: int) -> Any:
    """A nested message when it parses as one (and is not plain text), else text or base64."""
    text = _text(chunk)
    if text is not None and text.strip():
        return text
    if chunk and depth < MAX_DEPTH:
        try:
            return {"message": protobuf_fields(chunk, depth + 1)}
        except ValueError:
            pass
    return text if text is not None else {"base64": base64.b64encode(chunk).decode()}


def _inflate(data: bytes) -> bytes | None:
    try:
        return gzip.decompress(data)[:MAX_BODY] if data[:2] == GZIP_MAGIC else None
    except (OSError, EOFError, zlib.error):
        return None


def decode_value(data: bytes) -> Any:
    """One message: JSON, protobuf fields, text or base64 (after gzip, when gzip)."""
    inflated = _inflate(data)
    if inflated is not None:
        return {"gzip": True, "value": decode_value(inflated)}
    text = _text(data)
    if text is not None:
        try:
            return json.loads(text) if text.strip() else text
        except ValueError:
            return text
    try:
        fields = protobuf_fields(data)
    except ValueError:
        return {"base64": base64.b64encode(data).decode()}
    return {"protobuf": fields}


def grpc_messages(data: bytes) -> list[dict[str, Any]] | None:
    """The length-prefixed messages of a gRPC body, or None when it is not one."""
    messages: list[dict[str, Any]] = []
    pos = 0
    while pos < len(data):
        if pos + 5 > len(data) or data[pos] not in (0, 1):
            return None
        length = int.from_bytes(data[pos + 1 : pos + 5], "big")
        chunk = data[pos + 5 : pos + 5 + length]
        if len(chunk) != length:
            return None
        compressed = data[pos] == 1
        messages.append({"compressed": compressed, "length": length, "value": decode_value(chunk)})
        pos += 5 + length
    return messages


def decode_body(data: bytes, content_type: str = "", content_encoding: str = "") -> dict[str, Any]:
    """A body as a JSON-able tree (see the module docstring)."""
    if not data:
        return {"encoding": "empty"}
    size = len(data)
    data = data[:MAX_BODY]
    extra: dict[str, Any] = {"size": size} if size > MAX_BODY else {}
    if "gzip" in content_encoding.lower() or data[:2] == GZIP_MAGIC:
        inflated = _inflate(data)
        if inflated is not None:
            return {**decode_body(inflated, content_type), "gzip": True, **extra}
    kind = content_type.lower()
    if kind.startswith("application/grpc"):
        messages = grpc_messages(data)
        if messages is not None:
            return {"encoding": "grpc", "messages": messages, **extra}
    value = decode_value(data)
    if isinstance(value, dict) and set(value) == {"base64"}:
        return {"encoding": "binary", "size": size, "base64": value["base64"]}
    if isinstance(value, dict) and set(value) == {"protobuf"}:
        return {"encoding": "protobuf", "value": value["protobuf"], **extra}
    if isinstance(value, str):
        return {"encoding": "text", "value": value, **extra}
    return {"encoding": "json", "value": value, **extra}


def body_value(body: Any) -> Any:
    """The decoded value a `decode_body` tree carries (gRPC: the list of message values)."""
    if not isinstance(body, dict) or "encoding" not in body:
        return body  # the cloud stand-ins log JSON bodies as they are
    encoding = body["encoding"]
    if encoding == "grpc":
        return [_unwrap(m.get("value")) for m in body.get("messages", [])]
    if encoding == "protobuf":
        return {"protobuf": body.get("value")}  # field numbers, no names: schema-less
    if encoding in ("json", "text"):
        return _unwrap(body.get("value"))
    if encoding == "binary":
        return body.get("base64", "")
    return None


def _unwrap(value: Any) -> Any:
    while isinstance(value, dict) and value.get("gzip") is True and "value" in value:
        value = value["value"]
    return value
