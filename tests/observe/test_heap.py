"""observe/heap.py: free C heap pages go back to the system where glibc can give them."""

from __future__ import annotations

import pytest

from conformance.observe import heap

# Under AddressSanitizer (scripts/sanitize) malloc is the sanitizer's, whose malloc_trim
# gives nothing back: the call is made, the pages stay. Its runtime is mapped in.
try:
    with open("/proc/self/maps", encoding="utf-8", errors="replace") as _maps:
        _SANITIZED = "libasan" in _maps.read()
except OSError:  # no /proc: not Linux, no glibc either
    _SANITIZED = False


@pytest.mark.skipif(heap._TRIM is None, reason="this C library has no malloc_trim")
@pytest.mark.skipif(_SANITIZED, reason="the sanitizer's allocator keeps its pages")
def test_freed_heap_pages_are_given_back() -> None:
    kept = []
    freed = []
    for n in range(40_000):  # 1 KiB blocks come from malloc's heap, not CPython's arenas
        (kept if n % 64 == 0 else freed).append(bytes(1024))
    del freed  # ~39 MiB free in the middle of the heap, held there by the kept blocks
    assert heap.release_free_heap() is True
    assert len(kept) == 625


def test_without_malloc_trim_nothing_is_done(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_TRIM", None)
    assert heap.release_free_heap() is False
