"""`ucx-conformance watch` for real: a writer rotates a capture every second while the watch
runs as its own process; a late file, a gap, a restart in the middle and SIGTERM; the chain
verifies, the leak's period fails, and every file written is judged exactly once."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.watch.feed import clean, leak, make_feed, verify_chain, write_slowly

PERIOD = 3.0
ROTATION = 1.0
# Start-up of the harness in a fresh interpreter and one period's report, with room to spare.
STARTUP_S = 20.0


def start_watch(feed_root: Path, directory: Path, root: Path, profile: Path, key: Path) -> Any:
    argv = [sys.executable, "-m", "conformance.cli", "watch", "--profile", str(profile)]
    argv += ["--capture-dir", str(directory), "--report-root", str(root)]
    argv += ["--period", f"{PERIOD:g}s", "--sign-key", str(key), "--poll", "0.2s"]
    argv += ["--settle", "0.3s", "--grace", "1s", "--gap-tolerance", "1.5s"]
    argv += ["--executor", "serial"]
    log = feed_root / f"watch-{time.monotonic_ns()}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + STARTUP_S
    while not (root / ".watch" / "state.json").exists():
        assert proc.poll() is None, f"watch ended early: {log.read_text()}"
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return proc


def stop(proc: Any) -> int:
    proc.send_signal(signal.SIGTERM)
    return int(proc.wait(timeout=60))


def reports(root: Path) -> list[Path]:
    return sorted(p for p in root.iterdir() if not p.name.startswith("."))


def capture_digests(report: Path) -> list[str]:
    document: dict[str, Any] = json.loads((report / "report.json").read_text())
    return [e["sha256"] for e in document["evidence"] if "/capture-" in e["path"]]


def test_a_watch_fed_by_a_rotating_writer_yields_the_right_chain(tmp_path: Path) -> None:
    feed = make_feed(tmp_path)
    root = tmp_path / "chain"
    lab = feed.lab
    written: list[Path] = []

    def rotate(builder: Any, name: str) -> None:
        path = feed.directory / name
        write_slowly(path, builder(), ROTATION)
        written.append(path)

    watch = start_watch(tmp_path, feed.directory, root, lab.profile, lab.key)
    try:
        rotate(clean, "ring_00001.pcap")
        rotate(clean, "ring_00002.pcap")
        # A file copied in late: its packets are from before the two above.
        late = feed.put(clean, time.time() - 2 * PERIOD, name="copied_00001.pcap")
        written.append(late)
        rotate(clean, "ring_00003.pcap")
        assert stop(watch) == 0  # a restart in the middle
        rotate(leak, "ring_00004.pcap")  # written while no watch runs
        watch = start_watch(tmp_path, feed.directory, root, lab.profile, lab.key)
        rotate(clean, "ring_00005.pcap")
        time.sleep(2 * ROTATION)  # the capture stopped: a gap
        rotate(clean, "ring_00006.pcap")
        last_end = time.time()
        deadline = time.monotonic() + 3 * PERIOD + STARTUP_S
        # Every period up to the last file's is written once its grace has passed.
        while time.monotonic() < deadline:
            state = json.loads((root / ".watch" / "state.json").read_text())
            head = state["head"]
            if head is not None and head["end"] >= last_end and not state["periods"]:
                break
            time.sleep(0.2)
    finally:
        code = stop(watch)
    assert code == 0
    assert verify_chain(root, lab.key) == 0
    periods = reports(root)
    documents = [json.loads((p / "report.json").read_text()) for p in periods]
    # Contiguous, numbered, each naming the one before.
    assert [d["period"]["index"] for d in documents] == list(range(len(periods)))
    # Every file written is in exactly one report.
    judged = sorted(h for p in periods for h in capture_digests(p))
    assert judged == sorted(hashlib.sha256(p.read_bytes()).hexdigest() for p in written)
    leak_digest = hashlib.sha256(written[4].read_bytes()).hexdigest()
    (leaky,) = [
        d for p, d in zip(periods, documents, strict=True) if leak_digest in capture_digests(p)
    ]
    assert leaky["verdict"] == "fail"
    assert any(d["verdict"] == "pass" for d in documents[documents.index(leaky) + 1 :]) or (
        documents.index(leaky) == len(documents) - 1
    )
    assert any(d["period"]["gaps"] for d in documents)
    late_digest = hashlib.sha256(late.read_bytes()).hexdigest()
    (late_period,) = [p for p in periods if late_digest in capture_digests(p)]
    assert os.path.isdir(late_period)
