# cython: language_level=3, boundscheck=False, wraparound=False
"""A file's chunks read into the same few bytes objects again and again (decode/chunk_pool.py).

A bytes object is immutable to whoever holds one; a chunk that only the pool still holds is
nobody's, so the pool refills it in place, as CPython itself fills a fresh bytes object it
has not handed out yet. Its cached hash is forgotten at each refill.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport PyObject
from libc.errno cimport EINTR, errno
from posix.types cimport off_t
from posix.unistd cimport pread

cdef extern from *:
    """
    /* A bytes object caches its hash; a refilled one must not keep its former content's.
       The field is deprecated since 3.11 but still read by bytes_hash; should a later
       Python drop it, it will have dropped the cache with it. */
    static inline void ucx_forget_hash(PyObject *b) {
    #if PY_VERSION_HEX < 0x030F0000
    #pragma GCC diagnostic push
    #pragma GCC diagnostic ignored "-Wdeprecated-declarations"
        ((PyBytesObject *)b)->ob_shash = -1;
    #pragma GCC diagnostic pop
    #endif
    }
    """
    void ucx_forget_hash(PyObject *b)

cdef extern from *:
    """
    /* Whether the pool's reference is the only one. Without the GIL (a free-threaded
       build) another thread could take one meanwhile: never, then, and every chunk is
       fresh. */
    static inline int ucx_only_ours(PyObject *o) {
    #ifdef Py_GIL_DISABLED
        return 0;
    #else
        return Py_REFCNT(o) == 1;
    #endif
    }
    """
    bint ucx_only_ours(PyObject *o)


cdef Py_ssize_t _fill(int fd, char* into, Py_ssize_t size, off_t offset) except -1:
    """Read up to `size` bytes of `fd` at `offset` into `into` (fewer only at the file's
    end); how many."""
    cdef Py_ssize_t got = 0
    cdef Py_ssize_t n
    while got < size:
        with nogil:
            n = pread(fd, into + got, size - got, offset + got)
        if n < 0:
            if errno == EINTR:
                PyErr_CheckSignals()
                continue
            PyErr_SetFromErrno(OSError)
            return -1
        if n == 0:
            break
        got += n
    return got


cdef class ChunkPool:
    """Chunks of `size` bytes read with pread(2) into at most `keep` bytes objects used again
    (more are made fresh while that many are held elsewhere)."""

    cdef readonly Py_ssize_t size
    cdef readonly int keep
    cdef list _chunks

    def __init__(self, Py_ssize_t size, int keep):
        self.size = size
        self.keep = keep
        self._chunks = []

    def pread(self, int fd, Py_ssize_t size, off_t offset):
        """`size` bytes of `fd` from `offset` (fewer at the file's end), as bytes."""
        cdef bytes chunk = (
            self._free() if size == self.size else PyBytes_FromStringAndSize(NULL, size)
        )
        cdef Py_ssize_t got = _fill(fd, PyBytes_AS_STRING(chunk), size, offset)
        # The file's last chunk is short: a copy of it, and a pool's chunk stays free.
        return chunk if got == size else PyBytes_FromStringAndSize(PyBytes_AS_STRING(chunk), got)

    def clear(self):
        """Let go of the chunks (one still held elsewhere lives on there)."""
        self._chunks = []

    @property
    def held(self):
        """How many chunks the pool keeps."""
        return len(self._chunks)

    cdef bytes _free(self):
        cdef list chunks = self._chunks
        cdef Py_ssize_t i
        cdef PyObject* item
        for i in range(PyList_GET_SIZE(chunks)):
            item = PyList_GET_ITEM(chunks, i)
            if ucx_only_ours(item):  # the list's reference alone: nobody else holds it
                ucx_forget_hash(item)
                return <bytes>item
        chunk = PyBytes_FromStringAndSize(NULL, self.size)
        if PyList_GET_SIZE(chunks) < self.keep:
            chunks.append(chunk)
        return chunk
