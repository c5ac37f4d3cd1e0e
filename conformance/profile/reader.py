"""Read a profile file into plain Python values: one YAML document, safely, within bounds.

The node tree is checked before any object is built: duplicate keys, alias bombs and deep
nesting are refused with the key path and line, so nothing is expanded that should not be.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import yaml

from conformance.errors import ProfileError
from conformance.profile.values import At, join

MAX_PROFILE_BYTES: Final = 1 << 20  # a profile is a page of YAML; 1 MiB is a mistake or an attack
MAX_NODES: Final = 100_000  # YAML nodes after alias expansion; stops "billion laughs" bombs
MAX_DEPTH: Final = 32  # nesting; real profiles use 4 levels, and this keeps recursion shallow


class _TreeError(Exception):
    """A problem found in the YAML node tree, before any object is built."""

    def __init__(self, key: str, mark: yaml.Mark, problem: str) -> None:
        super().__init__(problem)
        self.key = key
        self.problem = f"line {mark.line + 1}: {problem}"


class _ProfileLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys, alias bombs and deep nesting.

    The node tree is checked before any object is built, so an error can name the key path
    and line, and an alias bomb is counted, never expanded.
    """

    def load_checked(self) -> object:
        """Compose the single document, check its node tree, then construct it."""
        node = self.get_single_node()
        if node is None:
            return None
        self._size(node, "", 0, {}, set())
        return self.construct_document(node)

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
        if isinstance(node, yaml.MappingNode):
            first_seen: dict[tuple[str, str], int] = {}
            for key_node, value_node in node.value:
                child = key
                if isinstance(key_node, yaml.ScalarNode):
                    child = join(key, str(key_node.value))
                    ident = (key_node.tag, str(key_node.value))
                    # "<<" merge keys are YAML's way to reuse a mapping, not a duplicate.
                    if key_node.tag != "tag:yaml.org,2002:merge":
                        if ident in first_seen:
                            problem = f"duplicate key (first at line {first_seen[ident]})"
                            raise _TreeError(child, key_node.start_mark, problem)
                        first_seen[ident] = key_node.start_mark.line + 1
                total += self._size(key_node, child, depth + 1, sizes, open_)
                total += self._size(value_node, child, depth + 1, sizes, open_)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                total += self._size(item, f"{key}[{index}]", depth + 1, sizes, open_)
        open_.discard(id(node))
        if total > MAX_NODES:
            problem = f"expands to more than {MAX_NODES} values (anchors and aliases)"
            raise _TreeError(key, node.start_mark, problem)
        sizes[id(node)] = total
        return total


def read_yaml(source: Path, at: At) -> object:
    """The file's single YAML document as plain Python values."""
    try:
        with source.open("rb") as handle:
            data = handle.read(MAX_PROFILE_BYTES + 1)
    except FileNotFoundError:
        at.fail("no such file")
    except IsADirectoryError:
        at.fail("is a directory, not a profile file")
    except OSError as exc:
        at.fail(f"cannot read: {exc.strerror or exc}")
    if len(data) > MAX_PROFILE_BYTES:
        at.fail("larger than 1 MiB; a profile is a page of YAML")
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
