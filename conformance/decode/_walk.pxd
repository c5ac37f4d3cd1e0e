# The C-level interface of a per-packet step (see _walk.pyx): a compiled step
# (conformance/observe/_step.pyx) subclasses CStep so the compiled record walks call it
# without a Python call per packet. A step may hold counts back between packets; the walks
# call `flush` before they return, so nothing outside a walk sees a count held back.

cdef class CStep:
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
    ) except -1
    cdef int flush(self) except -1
