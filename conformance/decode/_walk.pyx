# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Compiled twins of the readers' record walks.

`pcap_run` is decode/pcap_reader.py `_python_run`, `epb_run` is decode/pcapng_reader.py
`_python_epbs`: the same contract, the same counters, the same floating-point steps (so
the same times to the bit). Everything else a reader does (the chunks, the general pcapng
blocks, the messages) stays in Python, once. Where this module is built, the reader tests
walk every test file with it and with the Python walks and compare (tests/compiled_paths.py).

A step that is a `CStep` (the compiled per-packet step) is called as a C method, and its
`flush` before the walk returns (it may hold counts back between packets); any other
callable as a Python function.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.stdint cimport uint8_t, uint32_t

cdef enum:
    _EPB = 6
    _EPB_HEADER = 28


cdef inline uint32_t _u32(const uint8_t* p, bint big) noexcept nogil:
    if big:
        return (<uint32_t>p[0] << 24) | (<uint32_t>p[1] << 16) | (<uint32_t>p[2] << 8) | p[3]
    return (<uint32_t>p[3] << 24) | (<uint32_t>p[2] << 16) | (<uint32_t>p[1] << 8) | p[0]


cdef class CStep:
    """A per-packet step compiled walks call without a Python call per packet."""

    cdef int packet(
        self,
        double ts,
        bytes buf,
        Py_ssize_t off,
        Py_ssize_t cap,
        Py_ssize_t orig,
        int lt,
        int dirf,
        long long n,
    ) except -1:
        raise NotImplementedError

    cdef int flush(self) except -1:
        """Write back whatever `packet` held back (nothing here)."""
        return 0

    def __call__(
        self,
        double ts,
        bytes buf,
        Py_ssize_t off,
        Py_ssize_t cap,
        Py_ssize_t orig,
        int lt,
        int dirf,
        long long n,
    ):
        self.packet(ts, buf, off, cap, orig, lt, dirf, n)
        self.flush()


def pcap_run(reader, bytes buf, Py_ssize_t pos, step):
    """pcap_reader._python_run, compiled."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(buf)
    cdef Py_ssize_t hsize = reader._hsize
    cdef bint big = reader._big
    cdef double scale = reader._scale
    cdef int linktype = reader.link_types[0]
    cdef long long n = reader.packets_read
    cdef long long snap = reader.snap_truncated
    cdef double ts = reader.last_time or 0.0
    cdef CStep cstep = step if isinstance(step, CStep) else None
    cdef uint32_t sec, frac, cap, orig
    cdef Py_ssize_t off, nxt
    try:
        while pos + hsize <= end:
            sec = _u32(p + pos, big)
            frac = _u32(p + pos + 4, big)
            cap = _u32(p + pos + 8, big)
            orig = _u32(p + pos + 12, big)
            off = pos + hsize
            nxt = off + cap
            if nxt > end:
                reader._need = nxt - pos
                return pos
            n += 1
            ts = <double>sec + <double>frac * scale
            if n == 1:
                reader.first_time = ts
            if cap < orig:
                snap += 1
            if cstep is not None:
                cstep.packet(ts, buf, off, cap, orig, linktype, 0, n)
            else:
                step(ts, buf, off, cap, orig, linktype, 0, n)
            pos = nxt
        reader._need = hsize
        return pos
    finally:
        if cstep is not None:
            cstep.flush()
        reader.packets_read = n
        reader.snap_truncated = snap
        if n:
            reader.last_time = ts


def epb_run(reader, bytes buf, Py_ssize_t pos, step):
    """pcapng_reader._python_epbs, compiled."""
    cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(buf)
    cdef Py_ssize_t end = PyBytes_GET_SIZE(buf)
    state = reader._section
    cdef bint big = state.structs.big
    cdef list by_if = state.by_if
    cdef long long n = reader.packets_read
    cdef long long snap = reader.snap_truncated
    cdef double ts = reader.last_time or 0.0
    current = reader._current
    cdef long long cur_if = current[0]
    cdef long long cur_hi = current[1]
    cdef double base_ts = current[2]
    cdef double scale_lo = current[3]
    cdef int linktype = current[4]
    cdef double scale_hi, toff
    cdef CStep cstep = step if isinstance(step, CStep) else None
    cdef uint32_t btype, blen, iface, hi, lo, cap, orig
    cdef Py_ssize_t nxt, off, rest
    cdef int direction
    try:
        while pos + _EPB_HEADER <= end:
            btype = _u32(p + pos, big)
            blen = _u32(p + pos + 4, big)
            iface = _u32(p + pos + 8, big)
            hi = _u32(p + pos + 12, big)
            lo = _u32(p + pos + 16, big)
            cap = _u32(p + pos + 20, big)
            orig = _u32(p + pos + 24, big)
            nxt = pos + blen
            off = pos + _EPB_HEADER
            rest = nxt - off - <Py_ssize_t>cap  # padding, options, trailing length
            if btype != _EPB or rest < 4 or nxt > end or blen & 3:
                break
            direction = 0
            if rest >= 8:  # more than padding and the trailer: options
                direction = state.epb_options(buf, off + cap + ((-cap) & 3), nxt - 4)
            if iface != cur_if or hi != cur_hi:
                if iface < <uint32_t>len(by_if):
                    linktype, scale_hi, scale_lo, toff = by_if[iface]
                else:
                    from conformance.decode.pcapng_reader import _UNDEFINED_INTERFACE

                    linktype, scale_hi, scale_lo, toff = _UNDEFINED_INTERFACE
                cur_if = iface
                cur_hi = hi
                base_ts = <double>hi * scale_hi + toff
                if not n:
                    reader.first_time = base_ts + <double>lo * scale_lo
            ts = base_ts + <double>lo * scale_lo
            n += 1
            if cap < orig:
                snap += 1
            if cstep is not None:
                cstep.packet(ts, buf, off, cap, orig, linktype, direction, n)
            else:
                step(ts, buf, off, cap, orig, linktype, direction, n)
            pos = nxt
        return pos
    finally:
        if cstep is not None:
            cstep.flush()
        reader.packets_read = n
        reader.snap_truncated = snap
        if n:
            reader.last_time = ts
        reader._current = (cur_if, cur_hi, base_ts, scale_lo, linktype)
