"""Imports follow the layers (docs/architecture.md): an arrow against the order, or a cycle
between modules, fails here, whether the import is at module level or inside a function.

    base → profile → decode → evidence → observe → judge → report → sign → after → front

A module may import only from its own layer or the layers before it. Imports under
`if TYPE_CHECKING:` count for the order (a type still couples the layers) but not for cycles
(they never run).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "conformance"

# Each layer by the module prefixes it holds (the longest matching prefix decides).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "conformance.verdict",
            "conformance.errors",
            "conformance.names",
            "conformance.tls_registry",
            "conformance.progress",
            "conformance.options",
            "conformance.resources",
            "conformance.digest",
            "conformance.scratch",
        ),
    ),
    (
        "profile",
        (
            "conformance",  # the package's small public API: version, verdict, profile loader
            "conformance.profile",
            "conformance.profile_model",
            "conformance.catalog",
            "conformance.telemetry_fields",
        ),
    ),
    ("decode", ("conformance.decode",)),
    (
        "evidence",
        ("conformance.evidence", "conformance.lab", "conformance.host", "conformance.container"),
    ),
    ("observe", ("conformance.observe", "conformance.content")),
    ("judge", ("conformance.judge",)),
    ("report", ("conformance.report", "conformance.waivers")),
    ("sign", ("conformance.sign",)),
    ("after", ("conformance.compare", "conformance.export", "conformance.draft")),
    (
        "front",
        (
            "conformance.run",
            "conformance.plugin",
            "conformance.cli",
            "conformance.__main__",
            "conformance.watch",  # continuous judgement: runs a Run per period
        ),
    ),
)


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    type_only: bool


def layer(module: str) -> int:
    """The layer index of `module` (AssertionError for a module no layer holds)."""
    best: tuple[int, int] | None = None
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            matches = module == prefix or module.startswith(prefix + ".")
            if matches and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    assert best is not None, f"{module} belongs to no layer: add it to LAYERS"
    return best[0]


def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes under `if TYPE_CHECKING:`."""
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                for inner in ast.walk(child):
                    guarded.add(id(inner))
    return guarded


def edges() -> Iterator[Edge]:
    known = modules()
    for name, path in known.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        guarded = _type_checking_nodes(tree)
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                targets = [base, *(f"{base}.{alias.name}" for alias in node.names)]
            for target in targets:
                if target in known and target != name:
                    yield Edge(name, target, node.lineno, id(node) in guarded)


def test_every_module_has_a_layer() -> None:
    for name in modules():
        layer(name)


def test_imports_follow_the_layers() -> None:
    against = [
        f"{e.source} ({LAYERS[layer(e.source)][0]}) line {e.line} imports {e.target}"
        f" ({LAYERS[layer(e.target)][0]})"
        for e in edges()
        if layer(e.target) > layer(e.source)
    ]
    assert against == [], "\n".join(against)


# What a judge may read besides the profile and the base: the observation records (and the
# content records and scanners they carry). Never a source, a decoder, or a log parser.
JUDGE_READS = (
    "conformance.judge",
    "conformance.observe.records",
    "conformance.observe.coverage",
    "conformance.host.facts",  # the host's records (no collection code)
    "conformance.content.messages",
    "conformance.content.personal",
    "conformance.content.decryption_coverage",
    "conformance.catalog",
    "conformance.telemetry_fields",
    "conformance.profile_model",
)


def test_judges_read_only_observations_and_the_profile() -> None:
    def allowed(target: str) -> bool:
        if layer(target) == 0:
            return True
        return any(target == p or target.startswith(p + ".") for p in JUDGE_READS)

    outside = [
        f"{e.source} line {e.line} imports {e.target}"
        for e in edges()
        if e.source.startswith("conformance.judge") and not allowed(e.target)
    ]
    assert outside == [], "\n".join(outside)


def test_no_import_cycles() -> None:
    graph: dict[str, set[str]] = {}
    known = modules()
    for edge in edges():
        # A package's __init__ importing its own modules is how a package exposes them.
        if not edge.type_only and known[edge.target].name != "__init__.py":
            graph.setdefault(edge.source, set()).add(edge.target)
    cycles = _strongly_connected(graph)
    assert cycles == [], "\n".join(" -> ".join(sorted(c)) for c in cycles)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(component)
    return found
