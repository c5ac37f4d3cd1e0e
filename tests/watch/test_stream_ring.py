"""watch.stream_ring: a pcap stream (as a host's `tcpdump -w -` sends it) cut into rotated files
between records, every record kept once, each file a pcap of its own; a stream that is not a
pcap is refused with one line."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conformance.errors import ConformanceError
from conformance.observe.builder import observe_captures
from conformance.watch.stream_ring import StreamRing
from tests import defects
from tests.observe.test_parallel import rotated_files

GLOBAL = 24


def streamer(source: Path, seconds: float) -> list[str]:
    """A process writing `source` to stdout record by record over `seconds`, then idling."""
    script = (
        "import struct,sys,time;"
        f"d=open({str(source)!r},'rb').read();o=sys.stdout.buffer;o.write(d[:24]);o.flush();"
        "p=24;r=[]\n"
        "while p<len(d):\n n=struct.unpack_from('<I',d,p+8)[0];r.append(d[p:p+16+n]);p+=16+n\n"
        f"for x in r:\n o.write(x);o.flush();time.sleep({seconds}/len(r))\n"
        "time.sleep(30)"
    )
    return [sys.executable, "-c", script]


def test_a_stream_is_cut_into_files_between_records(tmp_path: Path) -> None:
    (source,) = rotated_files(tmp_path, 1)
    ring = StreamRing(streamer(source, 2.5), tmp_path / "root", 1.0)
    ring.start()
    import time

    time.sleep(3.5)
    ring.stop()
    files = sorted(ring.directory.glob("host_*.pcap"))
    assert len(files) >= 2
    data = source.read_bytes()
    assert all(f.read_bytes()[:GLOBAL] == data[:GLOBAL] for f in files)
    assert b"".join(f.read_bytes()[GLOBAL:] for f in files) == data[GLOBAL:]
    packets = sum(observe_captures([f]).captures[0].packets for f in files)
    assert packets == observe_captures([source]).captures[0].packets


def test_a_stream_that_is_not_a_pcap_is_refused(tmp_path: Path) -> None:
    ring = StreamRing([sys.executable, "-c", "print('x' * 40)"], tmp_path / "root", 1.0)
    with pytest.raises(ConformanceError, match="not a pcap"):
        ring.start()


def test_a_host_that_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    script = "import sys; sys.stderr.write('ssh: connect to host 192.0.2.1: timed out\\n')"
    ring = StreamRing([sys.executable, "-c", script], tmp_path / "root", 1.0)
    with pytest.raises(ConformanceError, match="did not start: ssh: connect to host"):
        ring.start()


def test_the_watch_judges_what_the_stream_wrote(tmp_path: Path) -> None:
    from tests.watch.feed import make_feed, watch_options, watching

    feed = make_feed(tmp_path)
    source = defects.write_pcap(tmp_path / "leak.pcap", defects.tcp_leak())
    ring = StreamRing(streamer(source, 0.5), tmp_path / "root", 10.0)
    ring.start()
    from dataclasses import replace

    options = replace(watch_options(feed, tmp_path / "root"), capture_dir=ring.directory)
    with watching(options) as watch:
        import time

        time.sleep(1.0)
        watch.poll(time.time())
        assert watch.state.files() == []  # the stream's file is still open: not judged
        ring.stop()
        watch.poll(time.time())
        assert len(watch.state.seen) == 1
    # Its packets are from 2023: its period's report, then one for everything since.
    reports = sorted(p for p in (tmp_path / "root").iterdir() if not p.name.startswith("."))
    assert len(reports) == 2
    assert json.loads((reports[0] / "report.json").read_text())["verdict"] == "fail"
