"""Properties of the observe layer as a whole: no scapy on the read path, no side effects."""

from __future__ import annotations

import gc
import subprocess
import sys
from pathlib import Path

from conformance.observe.builder import observe_captures
from tests.capture_files import write_pcap
from tests.observe.frames import udp


def test_reading_captures_never_imports_scapy() -> None:
    code = (
        "import sys\n"
        "import conformance.observe.builder, conformance.decode.capture_file\n"
        "loaded = sorted(m for m in sys.modules if m.split('.')[0] == 'scapy')\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_garbage_collector_state_is_restored(tmp_path: Path) -> None:
    path = write_pcap(tmp_path / "a.pcap", [udp()])
    assert gc.isenabled()
    observe_captures([path])
    assert gc.isenabled()
    gc.disable()
    try:
        observe_captures([path])
        assert not gc.isenabled()
    finally:
        gc.enable()


SAMPLE = Path(__file__).resolve().parents[2] / "fixtures" / "captures" / "sample-air-gapped.pcapng"


def test_reading_leaves_nothing_only_the_cyclic_collector_could_free(tmp_path: Path) -> None:
    """What the ingest held is freed when the capture is read: no cycle keeps it (the
    collector is paused while reading; resumed, it would scan all of it)."""
    tiny = write_pcap(tmp_path / "a.pcap", [udp()])
    gc.collect()
    gc.disable()
    try:
        for path in (tiny, SAMPLE):
            observations = observe_captures([path])
            assert observations.flows
            assert gc.collect() == 0, path.name
    finally:
        gc.enable()
