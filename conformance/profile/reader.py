"""Read a profile file into plain Python values: one YAML document, safely, within bounds.

Only a regular file is read (a FIFO or a device could block or never end), once, at most
1 MiB. The node tree is checked before any object is built: duplicate keys (a `<<` merge
included), alias bombs, deep nesting and numbers too long to be a profile value are refused
with the key path and line, so nothing is expanded that should not be; a value a constructor
cannot build (`2024-13-45`, `!!int abc`) is a one-line error with its line, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

import yaml

from conformance.errors import ProfileError
from conformance.profile.values import At, join
from conformance.user_files import read_user_file

MAX_PROFILE_BYTES: Final = 1 << 20  # a profile is a page of YAML; 1 MiB is a mistake or an attack
MAX_NODES: Final = 100_000  # YAML nodes after alias expansion; stops "billion laughs" bombs
MAX_DEPTH: Final = 32  # nesting; real profiles use 4 levels, and this keeps recursion shallow
# An integer's characters: 2**64 has 20 digits; a longer one is no port, count or duration, and
# Python refuses to convert one of 4,300 digits (ValueError), or to float one of 309 (overflow).
MAX_NUMBER_CHARS: Final = 24
_MERGE: Final = "tag:yaml.org,2002:merge"
_INT: Final = "tag:yaml.org,2002:int"
_FLOAT: Final = "tag:yaml.org,2002:float"
# What a constructor raises on a scalar it cannot build: `2024-13-45` (ValueError), `!!bool x`
# (KeyError), `!!timestamp x` (AttributeError), `!!float x` (ValueError).
_CONSTRUCTOR_FAILURES: Final = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


class _TreeError(Exception):
    """A problem found in the YAML node tree, before any object is built."""

    def __init__(self, key: str, mark: yaml.Mark, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = f"line {mark.line + 1}: {problem}"


class _ProfileLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, alias bombs, deep nesting and huge numbers.

    The node tree is checked before any object is built, so an error can name the key path
    and line, and an alias bomb is counted, never expanded.
    """

    def load_checked(self) -> object:
        """Compose the single document, check its node tree, then construct it."""
        node = self.get_single_node()
        if node is None:
            return None
        self._keys: dict[int, dict[str, str]] = {}
        self._size(node, "", 0, {}, set())
        return self.construct_document(node)

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        """The object of `node`; a constructor's own exception becomes a YAML error at its line."""
        try:
            return super().construct_object(node, deep=deep)
        except _CONSTRUCTOR_FAILURES as exc:
            what = node.tag.rpartition(":")[2] or node.tag
            value = node.value if isinstance(node, yaml.ScalarNode) else ""
            problem = f"{json.dumps(value[:40], ensure_ascii=False)} is not a valid {what}"
            if isinstance(exc, ValueError):  # says what is wrong: "month must be in 1..12"
                problem += f" ({' '.join(str(exc).split())[:80]})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None

    def _size(
        self, node: yaml.Node, key: str, depth: int, sizes: dict[int, int], open_: set[int]
    ) -> int:
        """Nodes under `node` with aliases expanded; each distinct node is walked once."""
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_:
            raise _TreeError(key, node.start_mark, "an alias refers to its own anchor")
        if depth > MAX_DEPTH:
            raise _TreeError(key, node.start_mark, f"nested deeper than {MAX_DEPTH} levels")
        open_.add(id(node))
        total = 1
        if isinstance(node, yaml.ScalarNode) and node.tag in (_INT, _FLOAT):
            if len(node.value) > MAX_NUMBER_CHARS:
                problem = f"a number of {len(node.value)} characters is no profile value"
                raise _TreeError(key, node.start_mark, problem)
            if ":" in node.value and node.style is None:
                raise _TreeError(key, node.start_mark, _base_60(node))
        elif isinstance(node, yaml.MappingNode):
            first_seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                child = key
                if isinstance(key_node, yaml.ScalarNode):
                    child = join(key, str(key_node.value))
                    ident = (key_node.tag, str(key_node.value))
                    # Two "<<" in one mapping are duplicates too: YAML keeps one of them.
                    if ident in first_seen:
                        problem = f"duplicate key (first at line {first_seen[ident]})"
                        raise _TreeError(child, key_node.start_mark, problem)
                    first_seen[ident] = key_node.start_mark.line + 1
                total += self._size(key_node, child, depth + 1, sizes, open_)
                total += self._size(value_node, child, depth + 1, sizes, open_)
            self._keys[id(node)] = self._merged_keys(node, key)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                total += self._size(item, f"{key}[{index}]", depth + 1, sizes, open_)
        open_.discard(id(node))
        if total > MAX_NODES:
            problem = f"expands to more than {MAX_NODES} values (anchors and aliases)"
            raise _TreeError(key, node.start_mark, problem)
        sizes[id(node)] = total
        return total

    def _merged_keys(self, node: yaml.MappingNode, key: str) -> dict[str, str]:
        """The keys `node` ends up with, each with its line, merges (`<<`) included.

        A key two merged mappings both bring is refused: YAML keeps one of them by a rule few
        people know (and PyYAML and other parsers disagree on), so the profile would say two
        things. A key written in `node` itself overrides a merged one, as YAML says; that is
        in plain sight.
        """
        own = {
            str(k.value): _place(k.start_mark)
            for k, _ in node.value
            if isinstance(k, yaml.ScalarNode) and k.tag != _MERGE
        }
        merged: dict[str, str] = {}
        for key_node, value_node in node.value:
            if key_node.tag != _MERGE:
                continue
            many = isinstance(value_node, yaml.SequenceNode)
            for source in value_node.value if many else [value_node]:
                for name, place in self._keys.get(id(source), {}).items():
                    if name in merged and name not in own:
                        problem = (
                            f"merged (<<) from two mappings ({merged[name]} and {place});"
                            " YAML keeps only one of them: write the key once"
                        )
                        raise _TreeError(join(key, name), key_node.start_mark, problem)
                    merged.setdefault(name, place)
        return merged | own


def _base_60(node: yaml.ScalarNode) -> str:
    """Why an unquoted `1:30` is refused: YAML 1.1 reads it as a base-60 number (90), which
    is never what a profile means (a time of day, a duration, an IPv6 address)."""
    shown = json.dumps(node.value[:40], ensure_ascii=False)
    return (
        f"{shown} is read by YAML 1.1 as a base-60 number; quote it if it is text (an IPv6"
        " address), or write the number in one unit (90s, not 1:30)"
    )


def _place(mark: yaml.Mark) -> str:
    return f"line {mark.line + 1}, column {mark.column + 1}"


def read_bytes(source: Path, at: At) -> bytes:
    """The bytes of the regular file `source`, read once, at most MAX_PROFILE_BYTES
    (conformance/user_files.py: never a FIFO, a device or a pipe)."""
    data = read_user_file(source, MAX_PROFILE_BYTES, "a profile file", at.fail)
    if len(data) > MAX_PROFILE_BYTES:
        at.fail("larger than 1 MiB; a profile is a page of YAML")
    return data


def parse_yaml(data: bytes, at: At) -> object:
    """The single YAML document of `data` as plain Python values; errors name `at.file`."""
    loader: _ProfileLoader | None = None
    try:
        loader = _ProfileLoader(data)  # reads the first characters already
        return loader.load_checked()
    except _TreeError as exc:
        raise ProfileError(at.file, exc.key, exc.problem) from None
    except yaml.reader.ReaderError as exc:
        code = exc.character if isinstance(exc.character, int) else ord(exc.character)
        if exc.encoding == "unicode":  # decoded fine, but YAML forbids the character
            at.fail(f"character #x{code:04x} at offset {exc.position} is not allowed in YAML")
        at.fail(f"not {exc.encoding.upper()} text: byte 0x{code:02x} at offset {exc.position}")
    except yaml.MarkedYAMLError as exc:
        raise _yaml_error(at, exc) from None
    except yaml.YAMLError as exc:
        at.fail(f"not valid YAML: {' '.join(str(exc).split())}")
    except RecursionError:
        at.fail("not valid YAML: nested too deeply")
    finally:
        if loader is not None:
            loader.dispose()


def _yaml_error(at: At, exc: yaml.MarkedYAMLError) -> ProfileError:
    """One-line ProfileError for a YAML syntax error: where, what, and in which context."""
    mark = exc.problem_mark or exc.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    problem = f"not valid YAML: {exc.problem or 'syntax error'}"
    if exc.context:
        context_line = f" at line {exc.context_mark.line + 1}" if exc.context_mark else ""
        problem += f" ({exc.context}{context_line})"
    return ProfileError(at.file, where, " ".join(problem.split()))
