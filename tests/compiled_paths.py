"""Run the pure-Python readers and step where the compiled ones (Cython) are loaded.

conformance.decode.compiled loads the compiled record walks and per-packet step when they
were built; the tests compare both on the same files (decode: every reader test file; observe:
every observe test's capture) so that neither can drift from the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from conformance.decode import compiled, pcap_reader, pcapng_reader
from conformance.observe import capture_parts, ingest

# The compiled walks and step are loaded (built in place or installed, and not switched off).
COMPILED_WALK = compiled.walk is not None
COMPILED_STEP = ingest._COMPILED is not None


@contextmanager
def pure_python() -> Iterator[None]:
    """The pure-Python record walks and per-packet step, even where compiled ones are loaded."""
    saved = (ingest._COMPILED, pcap_reader._run, pcapng_reader._epbs)
    ingest._COMPILED = None
    pcap_reader._run = pcap_reader._python_run
    pcapng_reader._epbs = pcapng_reader._python_epbs
    try:
        yield
    finally:
        ingest._COMPILED, pcap_reader._run, pcapng_reader._epbs = saved


@contextmanager
def parts_in_process() -> Iterator[None]:
    """Every part of a capture observed in parts read in this process (no fork), in order."""
    saved = capture_parts.FORK_PARTS
    capture_parts.FORK_PARTS = False
    try:
        yield
    finally:
        capture_parts.FORK_PARTS = saved
