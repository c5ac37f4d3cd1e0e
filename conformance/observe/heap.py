"""Give the C heap's free pages back to the system between an observation's phases (#17).

Memory that large objects (a dictionary's table, a list's array, the flow table's arrays at
the walk's end) leave free in glibc's heap stays resident: the heap is handed back only
from its top, and what the next phase allocates through CPython's allocator comes from
arenas of its own. On the 2M-packet web mix the flows were built on top of some 19 MiB of
such free heap (the observation's peak, 86 MiB); `malloc_trim` between the phases returns
those pages first, and the peak is the walk's (76 MiB). Where the C library has no
`malloc_trim` (musl), nothing is done: the same results, a higher peak.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable


def _malloc_trim() -> Callable[[int], int] | None:
    try:
        own = ctypes.CDLL(None)  # the symbols the process has: its C library's among them
    except OSError:
        return None
    trim = getattr(own, "malloc_trim", None)
    if trim is None:
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    found: Callable[[int], int] = trim
    return found


_TRIM = _malloc_trim()


def release_free_heap() -> bool:
    """Return the C heap's free pages to the system; whether any were (False: none, or no
    `malloc_trim` here). Some milliseconds: called between phases, never per packet."""
    return _TRIM is not None and _TRIM(0) == 1
