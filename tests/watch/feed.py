"""A capture directory fed as a rotating capture feeds it, for the watch tests.

Each file holds one of tests.defects' captures (clean on-prem traffic, or a leak), its packets
restamped to start at a given moment, written under a hidden name and renamed into place (as
a copy into the directory would land), or written in place slowly (as tcpdump writes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from scapy.packet import Packet

from conformance.cli import main
from conformance.watch.watcher import Watch, WatchLog, WatchOptions
from tests import defects
from tests.after_run import Lab, make_lab

# Packets of one file are this far apart: a file of the clean capture covers 0.2 s.
PACKET_STEP = 0.01
# An epoch moment on a period boundary of every length the tests use (1, 2, 3, 4, 5, 10 s).
BASE = 1_800_000_000.0


def clean() -> list[Packet]:
    return defects.clean_onprem_traffic()


def leak() -> list[Packet]:
    """Clean traffic and an answered TCP connection to an outside host (AG-EGRESS fails)."""
    return defects.tcp_leak()


@dataclass
class Feed:
    """The capture directory and the scratch lab (profile, signing key) around it."""

    lab: Lab
    directory: Path
    count: int = 0

    def put(self, builder: Callable[[], list[Packet]], start: float, name: str = "") -> Path:
        """A closed capture file whose packets start at `start` (epoch seconds)."""
        packets = builder()
        for i, packet in enumerate(packets):
            packet.time = start + i * PACKET_STEP
        self.count += 1
        name = name or f"ring_{self.count:05d}_{int(start)}.pcap"
        hidden = self.directory / f".{name}.part"
        defects.write_pcap(hidden, packets)
        os.replace(hidden, self.directory / name)
        # A fixed modification time: the watch's order must not depend on the writer's clock.
        os.utime(self.directory / name, (start + 1, start + 1))
        return self.directory / name


def make_feed(root: Path) -> Feed:
    lab = make_lab(root / "lab")
    directory = root / "captures"
    directory.mkdir()
    return Feed(lab, directory)


def watch_options(feed: Feed, report_root: Path, period: float = 10.0) -> WatchOptions:
    """Options for an in-process watch driven by a given clock (no waiting anywhere)."""
    return WatchOptions(
        profile=feed.lab.profile,
        capture_dir=feed.directory,
        report_root=report_root,
        period=period,
        sign_key=feed.lab.key,
        executor="serial",
        settle=0.0,
        quiet=0.0,
        grace=1.0,
        gap_tolerance=2.0,
        in_child=False,
    )


def started(options: WatchOptions, lines: list[str] | None = None) -> Watch:
    out = lines if lines is not None else []
    watch = Watch(options, WatchLog(out.append))
    watch.start()
    return watch


@contextmanager
def watching(options: WatchOptions, lines: list[str] | None = None) -> Iterator[Watch]:
    """A started watch, closed when the block ends (however it ends)."""
    watch = started(options, lines)
    try:
        yield watch
    finally:
        watch.close()


def verify_chain(root: Path, key: Path, *extra: str) -> int:
    return main(["verify-chain", str(root), "--key", f"{key}.pub", *extra])


def write_slowly(path: Path, packets: list[Packet], seconds: float) -> None:
    """Write a pcap as tcpdump does: header first, then each packet as it happens (stamped
    with the wall clock), the file open for writing throughout."""
    import struct
    import time

    step = seconds / max(len(packets), 1)
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        out.flush()
        for packet in packets:
            data = bytes(packet)
            micros = round(time.time() * 1_000_000)
            out.write(
                struct.pack("<IIII", micros // 1_000_000, micros % 1_000_000, len(data), len(data))
            )
            out.write(data)
            out.flush()
            time.sleep(step)
