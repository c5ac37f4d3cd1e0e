"""Parallel judging and a long watch: speed-up, peak memory per worker, memory over 1,000 periods.

Part 1 (`--files 20 --packets 100000`): rotated files from gen_capture.py, consecutive in
time, read and merged (observe.parallel.observe_files) by
  - one local worker process (`local:1`),
  - two local worker processes (`local:2`),
  - a Dask LocalCluster of two worker processes (`dask://`, if dask.distributed is installed),
each run printing wall time, speed-up over one worker, the peak RSS of each worker (VmHWM)
and of this process (which merges). The merged observations of every executor are compared
with those of one worker: they must be identical.

Part 2 (`--periods 1000`): a watch driven in-process with a simulated clock, one small file
per period, each period's report written in this very process (the harsher case: the CLI
writes each in a child). Prints this process's RSS every `--every` periods: it must stay flat.

    python benchmarks/watch_benchmark.py --workdir /tmp/ucx-watch-bench
    python benchmarks/watch_benchmark.py --files 4 --packets 20000 --periods 50   # quick

Exit status 0; 1 if an executor's merged observations differ from one worker's, or the RSS
of the long watch grows by more than GROWTH_LIMIT from its first to its last quarter.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import struct
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import gen_capture as gen
from run_benchmark import profile_yaml, write_signing_key

from conformance.observe.parallel import (
    CaptureExecutor,
    LocalExecutor,
    executor_for,
    observe_files,
)
from conformance.observe.records import Observations

DEFAULT_WORKDIR = Path("/tmp/ucx-watch-bench")
# The long watch's RSS may grow this much from its first quarter to its last (allocator noise).
GROWTH_LIMIT = 1.15
SMALL_PACKETS = 2000  # packets per file of the long watch
PERIOD_S = 60.0  # the simulated period (each period: one file, written at its start)


def status_kib(pid: int, field: str) -> int:
    """A /proc/PID/status field in KiB (VmHWM: peak RSS, VmRSS: current)."""
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


# -- part 1 -----------------------------------------------------------------------------------


def rotated_files(directory: Path, files: int, packets: int) -> list[Path]:
    """`files` captures of `packets` packets, each starting where the previous one ended."""
    directory.mkdir(parents=True, exist_ok=True)
    out = []
    start_us = gen.T0_US
    for i in range(files):
        path = directory / f"ring_{i:05d}.pcapng"
        marker = path.with_suffix(".gen")
        expected = f"{files} {packets} {i} {start_us}"
        if not (path.exists() and marker.exists() and marker.read_text().split("|")[0] == expected):
            gen.T0_US = start_us
            summary = gen.generate(packets, path, "pcapng", seed=i + 1)
            marker.write_text(f"{expected}|{round(summary.last_time * 1_000_000) + 1000}")
        start_us = int(marker.read_text().split("|")[1])
        out.append(path)
    return out


def _local_workers(executor: CaptureExecutor) -> list[int]:
    pool = getattr(executor, "_pool", None)
    processes = getattr(pool, "_processes", None) or {}
    return sorted(processes)


def _peak_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def judge_with(
    label: str,
    make: Callable[[], tuple[CaptureExecutor, Callable[[], list[int]]]],
    paths: list[Path],
) -> tuple[float, list[int], Observations]:
    executor, worker_peaks = make()
    try:
        started = time.perf_counter()
        merged, _ = observe_files(paths, executor)
        wall = time.perf_counter() - started
        peaks = worker_peaks()
    finally:
        executor.close()
    return wall, peaks, merged


def local(
    workers: int, warm: Path
) -> Callable[[], tuple[CaptureExecutor, Callable[[], list[int]]]]:
    def make() -> tuple[CaptureExecutor, Callable[[], list[int]]]:
        executor = LocalExecutor(workers)
        # Started and warm before the clock runs, as the Dask cluster's workers are: every
        # worker has read a small file (imports done), so only judging is timed.
        for pending in [executor.submit(warm) for _ in range(workers * 2)]:
            pending.result()
        return executor, lambda: [status_kib(p, "VmHWM") for p in _local_workers(executor)]

    return make


def part_one(workdir: Path, files: int, packets: int, out: Callable[[str], None]) -> bool:
    paths = rotated_files(workdir / "ring", files, packets)
    warm = workdir / "warm.pcapng"
    gen.generate(200, warm, "pcapng", seed=99)
    total = files * packets
    out(f"## Parallel judging: {files} files x {packets:,} packets ({total:,} packets)")
    out("")
    out(f"cores: {os.cpu_count()}; each run reads and merges every file (observe_files)")
    out("")
    out("| executor | wall s | packets/s | speed-up | peak RSS/worker MiB | merging process MiB |")
    out("|---|---|---|---|---|---|")
    runs: list[tuple[str, Callable[[], tuple[CaptureExecutor, Callable[[], list[int]]]]]] = [
        ("local:1", local(1, warm)),
        ("local:2", local(2, warm)),
    ]
    cluster = None
    try:
        import distributed

        cluster = distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        )

        def dask() -> tuple[CaptureExecutor, Callable[[], list[int]]]:
            executor = executor_for(f"dask://{cluster.scheduler_address}", files)
            client = getattr(executor, "_client")  # noqa: B009

            for pending in [executor.submit(warm) for _ in range(4)]:
                pending.result()

            def peaks() -> list[int]:
                found = client.run(lambda: status_kib(os.getpid(), "VmHWM"))
                return [int(v) for v in found.values()]

            return executor, peaks

        runs.append(("dask LocalCluster (2 workers)", dask))
    except ImportError:
        out("(dask.distributed not installed: pip install 'dask[distributed]' for the Dask row)")
    reference: Observations | None = None
    base = None
    same = True
    try:
        for label, make in runs:
            wall, peaks, merged = judge_with(label, make, paths)
            if reference is None:
                reference, base = merged, wall
            elif merged != reference:
                same = False
                out(f"**{label}: merged observations differ from local:1**")
            speedup = (base or wall) / wall
            per_worker = ", ".join(f"{p / 1024:.0f}" for p in peaks) or "?"
            out(
                f"| {label} | {wall:.1f} | {total / wall:,.0f} | {speedup:.2f}x | {per_worker}"
                f" | {_peak_kib() / 1024:.0f} |"
            )
            del merged
    finally:
        if cluster is not None:
            cluster.close()
    out("")
    out(f"merged observations identical across executors: {'yes' if same else 'NO'}")
    return same


# -- part 2 -----------------------------------------------------------------------------------


def restamped(source: bytes, offset_us: int) -> bytes:
    """A classic little-endian microsecond pcap with every timestamp moved by `offset_us`."""
    out = bytearray(source[:24])
    pos = 24
    while pos + 16 <= len(source):
        sec, usec, incl, orig = struct.unpack_from("<IIII", source, pos)
        moved = sec * 1_000_000 + usec + offset_us
        out += struct.pack("<IIII", moved // 1_000_000, moved % 1_000_000, incl, orig)
        out += source[pos + 16 : pos + 16 + incl]
        pos += 16 + incl
    return bytes(out)


def part_two(workdir: Path, periods: int, every: int, out: Callable[[str], None]) -> bool:
    from conformance.watch.watcher import Watch, WatchLog, WatchOptions

    base = workdir / "long"
    shutil.rmtree(base, ignore_errors=True)
    captures = base / "captures"
    captures.mkdir(parents=True)
    profile = base / "profile.yaml"
    profile.write_text(profile_yaml(cloud=False))
    key = base / "key.pem"
    write_signing_key(key)
    template = base / "template.pcap"
    gen.T0_US = 1_800_000_000 * 1_000_000
    summary = gen.generate(SMALL_PACKETS, template, "pcap", seed=3)
    source = template.read_bytes()
    template.unlink()
    start = 1_800_000_000.0 - (1_800_000_000.0 % PERIOD_S)
    options = WatchOptions(
        profile=profile,
        capture_dir=captures,
        report_root=base / "chain",
        period=PERIOD_S,
        sign_key=key,
        executor="serial",
        settle=0.0,
        quiet=0.0,
        grace=1.0,
        gap_tolerance=PERIOD_S,
        in_child=False,
    )
    watch = Watch(options, WatchLog(lambda line: None))
    watch.start()
    out(f"## A long watch: {periods} periods of {PERIOD_S:g} s (simulated clock)")
    out("")
    traffic = summary.last_time - summary.first_time
    out(f"one {SMALL_PACKETS}-packet file per period ({traffic:.1f} s of traffic);")
    out("each report written in the watcher's own process")
    out("")
    out("| periods written | RSS MiB | wall s |")
    out("|---|---|---|")
    samples: list[int] = []
    started = time.perf_counter()
    try:
        for i in range(periods):
            at = start + i * PERIOD_S
            offset = round((at + 0.5) * 1_000_000) - round(summary.first_time * 1_000_000)
            path = captures / f"ring_{i:06d}.pcap"
            path.write_bytes(restamped(source, offset))
            os.utime(path, (at + 30, at + 30))
            watch.poll(at + PERIOD_S + 5)  # judges the file, writes the period before it
            if i >= 1:
                path_before = captures / f"ring_{i - 1:06d}.pcap"
                path_before.unlink()  # the ring removes old files
            if (i + 1) % every == 0 or i == periods - 1:
                rss = status_kib(os.getpid(), "VmRSS")
                samples.append(rss)
                out(f"| {i + 1} | {rss / 1024:.0f} | {time.perf_counter() - started:.0f} |")
    finally:
        watch.close()
    quarter = max(1, len(samples) // 4)
    first = sum(samples[:quarter]) / quarter
    last = sum(samples[-quarter:]) / quarter
    flat = last <= first * GROWTH_LIMIT
    out("")
    out(
        f"RSS first quarter {first / 1024:.0f} MiB, last quarter {last / 1024:.0f} MiB:"
        f" {'flat' if flat else 'GROWING'} (limit x{GROWTH_LIMIT})"
    )
    return flat


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--packets", type=int, default=100_000)
    parser.add_argument("--periods", type=int, default=1000)
    parser.add_argument("--every", type=int, default=100, help="RSS sample every N periods")
    parser.add_argument("--skip-parallel", action="store_true")
    parser.add_argument("--skip-watch", action="store_true")
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    ok = True
    if not args.skip_parallel:
        ok &= part_one(args.workdir, args.files, args.packets, print)
        print()
    if not args.skip_watch:
        ok &= part_two(args.workdir, args.periods, args.every, print)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
