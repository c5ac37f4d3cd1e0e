"""JSON parsing for signed and verified documents: no duplicate keys, no NaN, objects only.

Two parsers that disagree about `{"a": 1, "a": 2}` let one document say two things; the
in-toto and DSSE specs leave duplicates undefined, so a verifier refuses them outright.
"""

from __future__ import annotations

import json
from typing import Any


class StrictJsonError(ValueError):
    """The bytes are not a JSON document this project accepts."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise StrictJsonError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise StrictJsonError(f"non-standard JSON constant {name}")


def loads_object(data: bytes) -> dict[str, Any]:
    """Parse UTF-8 JSON bytes whose top level must be an object."""
    try:
        text = data.decode("utf-8")
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
    except StrictJsonError:
        raise
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise StrictJsonError(str(exc)) from exc
    if not isinstance(value, dict):
        raise StrictJsonError("top level is not a JSON object")
    return value
