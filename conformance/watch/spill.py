"""A capture file's observations on disk: what `watch` keeps of each judged file until its period
ends, so the watcher holds nothing of it in memory meanwhile and a restart reads nothing twice.

JSON (gzip), written through a temporary file and renamed, decoded by the model's own field
types: a spill can at worst describe wrong observations, never run code (unlike pickle). The
header names the harness version and the model's shape; a spill written by another one is not
read (the capture it came from is read again instead).
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import gzip
import hashlib
import ipaddress
import json
import os
import types
import typing
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Final

from conformance import __version__
from conformance.observe import records as model
from conformance.observe.records import Observations

FORMAT: Final = "ucx-conformance observations spill 1"
# Fields of Observations a spill holds: the captures' part (a watch has no other evidence).
_CAPTURE_FIELDS: Final = (*model.CAPTURE_PARTS, "source")
# Fast compression: a spill is written once and read once, within a period.
_GZIP_LEVEL: Final = 1


class SpillError(Exception):
    """A spill that cannot be read (damaged, or written by another version): read the capture."""


def dump(obs: Observations, path: Path) -> None:
    """Write `obs` (captures only) to `path`, atomically (a crash leaves the old file or none)."""
    for name in ("probes", "proxy_log", "content", "impostors", "endpoint_scan", "host"):
        if getattr(obs, name) is not None:
            raise ValueError(f"spill: observations with {name} are not a capture's")
    document = {
        "format": FORMAT,
        "harness": __version__,
        "shape": _shape(),
        "observations": {name: _encode(getattr(obs, name)) for name in _CAPTURE_FIELDS},
    }
    data = gzip.compress(
        json.dumps(document, separators=(",", ":"), allow_nan=False).encode(), _GZIP_LEVEL
    )
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with temporary.open("xb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def load(path: Path) -> Observations:
    """The observations in `path` (SpillError if it is damaged or another version's)."""
    try:
        document = json.loads(gzip.decompress(path.read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise SpillError(f"{path}: unreadable spill: {exc}") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SpillError(f"{path}: not a spill")
    if document.get("harness") != __version__ or document.get("shape") != _shape():
        raise SpillError(f"{path}: written by another harness version")
    fields = document.get("observations")
    if not isinstance(fields, dict):
        raise SpillError(f"{path}: no observations")
    hints = _hints(Observations)
    try:
        values = {name: _decode(hints[name], fields[name]) for name in _CAPTURE_FIELDS}
    except (KeyError, TypeError, ValueError, OverflowError) as exc:  # Overflow: not 64-bit
        raise SpillError(f"{path}: damaged spill: {exc}") from exc
    return Observations(**values)


# -- the codec ----------------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    """JSON-ready form: dataclasses as lists of their fields in order, bytes as base64."""
    if value is None or isinstance(value, bool | int | float | str):
        return value.value if isinstance(value, enum.Enum) else value
    if isinstance(value, model.PacketNumbers):  # bytes that read as numbers
        return list(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return str(value)
    if isinstance(value, Sequence):  # a tuple, a list, an observation's RecordStore
        return [_encode(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [_encode(getattr(value, f.name)) for f in dataclasses.fields(value)]
    raise TypeError(f"spill: cannot encode {type(value).__name__}")


def _decode(kind: Any, value: Any) -> Any:
    """`value` (as `_encode` wrote it) as an instance of type `kind`."""
    return _decoder(kind)(value)


@cache
def _decoder(kind: Any) -> Callable[[Any], Any]:
    origin = typing.get_origin(kind)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(kind)
        if set(options) == {ipaddress.IPv4Address, ipaddress.IPv6Address}:
            return _address
        inner = [o for o in options if o is not type(None)]
        if len(inner) != 1:
            raise TypeError(f"spill: cannot decode {kind}")
        decode_inner = _decoder(inner[0])
        return lambda v: None if v is None else decode_inner(v)
    if origin is Sequence:  # the hellos (records.record_store): read back as a tuple
        item = _decoder(typing.get_args(kind)[0])
        return lambda v: tuple(item(x) for x in _list(v))
    if origin is tuple:
        args = typing.get_args(kind)
        if len(args) == 2 and args[1] is Ellipsis:
            item = _decoder(args[0])
            return lambda v: tuple(item(x) for x in _list(v))
        items = [_decoder(a) for a in args]
        return lambda v: tuple(d(x) for d, x in zip(items, _list(v), strict=True))
    if kind is bytes:
        return lambda v: base64.b64decode(_text(v), validate=True)
    if kind is model.PacketNumbers:
        return lambda v: model.PacketNumbers(_exact(int, x) for x in _list(v))
    if isinstance(kind, type) and issubclass(kind, enum.Enum):
        return kind
    if kind is float:
        return lambda v: float(_number(v))
    if kind in (int, str, bool):
        return lambda v: _exact(kind, v)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = _hints(kind)
        names = [f.name for f in dataclasses.fields(kind)]
        decoders = [_decoder(hints[n]) for n in names]
        cls = kind
        return lambda v: cls(*(d(x) for d, x in zip(decoders, _list(v), strict=True)))
    raise TypeError(f"spill: cannot decode {kind}")


def _address(value: Any) -> Any:
    return ipaddress.ip_address(_text(value))


def _list(value: Any) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"expected a list, got {type(value).__name__}")
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return value


def _number(value: Any) -> int | float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return value


def _exact(kind: type, value: Any) -> Any:
    if type(value) is not kind:
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(model))


@cache
def _shape() -> str:
    """A digest of the model's fields and types: spills of another shape are not read."""
    seen: list[str] = []

    def walk(kind: Any) -> None:
        for arg in typing.get_args(kind):
            walk(arg)
        if dataclasses.is_dataclass(kind) and isinstance(kind, type):
            if kind.__name__ in seen:
                return
            seen.append(kind.__name__)
            for name, hint in _hints(kind).items():
                seen.append(f"{name}:{hint}")
                walk(hint)

    for name in _CAPTURE_FIELDS:
        walk(_hints(Observations)[name])
    return hashlib.sha256("\n".join(seen).encode()).hexdigest()[:16]
