"""Where an observation's memory goes: `python benchmarks/memory_census.py CAPTURE`.

Observes CAPTURE in this process, as `run` does but without pytest, the judges and the
report, and prints at each stage (start, the walk's end, the flows numbered, the flows
built, the end):
- the resident set (VmRSS) and the high-water mark (VmHWM) of the work since the previous
  stage (reset at each stage where Linux allows it), so each stage's own peak shows, not
  only the first one's;
- CPython's small-object allocator: arenas (1 MiB each), bytes in live blocks, empty pools
  (16 KiB each) and free blocks in partly used pools, the memory an arena keeps because
  one block in it is still alive;
and at the end what each field of the `Observations` holds (deep sizes, an object shared by
several records counted once). With `--types`, also the live objects by type at the walk's
end: counting them takes memory of its own, so the next stage's high-water mark (or, where
it cannot be reset, every later one's) is then the census's, not the observation's.

Issue #17's memory target (<= 100 MiB at 2M packets) is about this figure; the benchmark
(run_benchmark.py) measures the whole run's peak. This script is the instrument for
changing it: run it before and after. It times nothing.
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from conformance.observe import builder, flows  # noqa: E402
from conformance.observe.records import Observations  # noqa: E402

MIB = 1 << 20
TYPES_SHOWN = 12


@dataclass(frozen=True)
class Allocator:
    """CPython's small-object allocator (pymalloc), from sys._debugmallocstats()."""

    arenas: int
    live: int  # bytes in allocated blocks
    empty_pools: int  # bytes in pools with no live block
    free_blocks: int  # bytes in the free blocks of partly used pools


def _status(field: str) -> int:
    """A VmRSS-like field of /proc/self/status, in bytes (0 where there is none)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _number(pattern: str, text: str) -> int:
    found = re.search(pattern, text)
    return int(found.group(1).replace(",", "")) if found else 0


def allocator() -> Allocator | None:
    """The allocator's figures now; None where CPython does not print them."""
    stats = getattr(sys, "_debugmallocstats", None)
    if stats is None:
        return None
    # It prints to the C stderr: catch it in a file for the length of the call.
    with tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(caught.fileno(), 2)
            stats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        caught.seek(0)
        text = caught.read().decode("utf-8", "replace")
    pool_bytes = _number(r"unused pools \* (\d+) bytes", text)
    return Allocator(
        arenas=_number(r"# arenas allocated current\s+=\s+([\d,]+)", text),
        live=_number(r"# bytes in allocated blocks\s+=\s+([\d,]+)", text),
        empty_pools=_number(r"([\d,]+) unused pools", text) * pool_bytes,
        free_blocks=_number(r"# bytes in available blocks\s+=\s+([\d,]+)", text),
    )


def _reset_high_mark() -> bool:
    """Start VmHWM again from the current RSS (Linux: "5" to /proc/self/clear_refs); False
    where that cannot be done (then the high mark is the process's since it started)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
    except OSError:
        return False
    return True


def stage_line(stage: str) -> str:
    """One stage's figures as a line of the report. The high mark is that of the work since
    the previous stage, where it can be reset (else since the start: it says "so far")."""
    high = _status("VmHWM")
    since = "since last" if _reset_high_mark() else "so far"
    line = f"{stage:<16} RSS {_status('VmRSS') / MIB:7.1f} MiB (high {since} {high / MIB:7.1f})"
    found = allocator()
    if found is None:
        return line + "  allocator: not reported by this Python"
    return (
        line
        + f"  arenas {found.arenas:5d}  live {found.live / MIB:6.1f} MiB"
        + f"  empty pools {found.empty_pools / MIB:6.1f} MiB"
        + f"  free blocks {found.free_blocks / MIB:6.1f} MiB"
    )


def census(exclude: Iterable[object] = ()) -> Counter[str]:
    """Bytes by type of every object the collector tracks and of what they refer to (ints,
    floats, bytes and str are untracked and found that way), each counted once."""
    skip = {id(x) for x in exclude}
    tracked = gc.get_objects()
    skip.add(id(tracked))
    seen: set[int] = set()
    skip.add(id(seen))
    sizes: Counter[str] = Counter()
    for obj in tracked:
        for item in (obj, *gc.get_referents(obj)):
            key = id(item)
            if key in seen or key in skip:
                continue
            seen.add(key)
            sizes[type(item).__name__] += sys.getsizeof(item)
    return sizes


def deep_size(root: object, seen: set[int]) -> int:
    """getsizeof of `root` and of everything it holds (tuples, lists, slotted records), each
    object once across calls sharing `seen`."""
    total = 0
    stack = [root]
    while stack:
        item = stack.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        if isinstance(item, tuple | list):
            stack.extend(item)
        elif not isinstance(item, str | bytes | int | float):
            for name in getattr(type(item), "__slots__", ()):
                stack.append(getattr(item, name, None))
    return total


def _watch_finish(say: Callable[[str], None], types: bool) -> Callable[[], None]:
    """Report the stages inside FlowTable.finish; returns the undo. (The observation has no
    hook for this: a measurement's wrapper stays out of the code it measures.)"""
    original = flows.FlowTable.finish

    def finish(
        self: flows.FlowTable, first_id: int, address: Any, numbered: Any = None, into: Any = None
    ) -> Any:
        say(stage_line("walk ended"))
        if types:
            sizes = census()
            total = sum(sizes.values())
            say(f"  live objects by type at the walk's end ({total / MIB:.1f} MiB found):")
            for name, size in sizes.most_common(TYPES_SHOWN):
                say(f"    {name:<24} {size / MIB:7.1f} MiB")

        def number(ids: flows.FlowIds) -> None:
            say(stage_line("numbering"))
            numbered(ids)

        result = original(self, first_id, address, number if numbered is not None else None, into)
        say(stage_line("flows built"))
        return result

    flows.FlowTable.finish = finish  # type: ignore[method-assign]

    def undo() -> None:
        flows.FlowTable.finish = original  # type: ignore[method-assign]

    return undo


def record_sizes(obs: Observations) -> list[tuple[str, int, int, bool]]:
    """(field, records, bytes, stored) of each sequence field of `obs` (shared objects
    once); of a record store (`stored`, records.record_store: the records in a scratch
    file), the memory it holds itself."""
    seen: set[int] = set()
    rows = []
    for f in fields(obs):
        value = getattr(obs, f.name)
        resident = getattr(value, "resident_bytes", None)
        if resident is not None:
            rows.append((f.name, len(value), resident(), True))
        elif isinstance(value, tuple):
            seen.add(id(value))  # the tuple itself is counted below with its records
            rows.append(
                (
                    f.name,
                    len(value),
                    sys.getsizeof(value) + sum(deep_size(item, seen) for item in value),
                    False,
                )
            )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture", type=Path, help="a pcap or pcapng file")
    parser.add_argument(
        "--types",
        action="store_true",
        help="count the live objects by type when the walk ends (raises the later high marks)",
    )
    args = parser.parse_args(argv)
    if not args.capture.is_file():
        print(f"memory_census: {args.capture}: no such file", file=sys.stderr)
        return 2

    def say(line: str) -> None:
        print(line, flush=True)

    say(stage_line("start"))
    undo = _watch_finish(say, args.types)
    try:
        obs = builder.observe_captures([args.capture])
    finally:
        undo()
    say(stage_line("observed"))
    say("  what the record holds:")
    for name, count, size, stored in record_sizes(obs):
        if count:
            where = " (in a scratch file; its buffers)" if stored else ""
            say(f"    {name:<24} {count:9,d} records {size / MIB:7.1f} MiB{where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
