"""Run the pure-Python readers, step, hello reader and flow builder where the compiled ones
(Cython) are loaded.

conformance.decode.compiled loads the compiled record walks, per-packet step, first
payload's hello reader and flow builder when they were built; the tests compare both on the
same files (decode: every reader test file, and every hello the TLS tests build; observe:
every observe test's capture) so that neither can drift from the other.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from conformance.decode import chunk_pool, compiled, pcap_reader, pcapng_reader, tls
from conformance.observe import capture_parts, ingest, payloads
from conformance.report import tables

# The compiled walks, step, hello reader and flow builder are loaded (built in place or
# installed, and not switched off).
COMPILED_WALK = compiled.walk is not None
COMPILED_STEP = ingest._COMPILED is not None
COMPILED_HELLO = tls._COMPILED is not None
COMPILED_FLOWS = ingest._COMPILED_FLOWS is not None
COMPILED_TABLES = tables._COMPILED is not None
COMPILED_CHUNKS = chunk_pool._COMPILED is not None


@contextmanager
def pure_python() -> Iterator[None]:
    """The pure-Python record walks, per-packet step, hello reader and flow builder, even where
    compiled ones are loaded."""
    saved = (ingest._COMPILED, ingest._COMPILED_FLOWS, pcap_reader._run, pcapng_reader._epbs)
    saved_tables, saved_chunks = tables._COMPILED, chunk_pool._COMPILED
    # payloads took `quick_hello` by name at import: its name is switched too.
    users = (vars(tls), vars(payloads))
    hellos = [names["quick_hello"] for names in users]
    ingest._COMPILED = ingest._COMPILED_FLOWS = tables._COMPILED = chunk_pool._COMPILED = None
    pcap_reader._run = pcap_reader._python_run
    pcapng_reader._epbs = pcapng_reader._python_epbs
    for names in users:
        names["quick_hello"] = tls._python_quick_hello
    try:
        yield
    finally:
        ingest._COMPILED, ingest._COMPILED_FLOWS, pcap_reader._run, pcapng_reader._epbs = saved
        tables._COMPILED, chunk_pool._COMPILED = saved_tables, saved_chunks
        for names, hello in zip(users, hellos, strict=True):
            names["quick_hello"] = hello


@contextmanager
def parts_in_process() -> Iterator[None]:
    """Every part of a capture observed in parts read in this process (no fork), in order."""
    saved = capture_parts.FORK_PARTS
    capture_parts.FORK_PARTS = False
    try:
        yield
    finally:
        capture_parts.FORK_PARTS = saved
