# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""Closed TCP connections out of the walk's flow table (#17, docs/scaling.md step 2).

The compiled step (observe/_step.pyx `FastStep._sweep`) moves a connection that ended (FIN
both ways, or a RST) and has been silent for a while from the table to here: its two
directions' `Entry` records, packed, in an unlinked scratch file. A later packet of either
direction (the last ACK, a retransmitted FIN, a SYN on the same 5-tuple) brings both back
(`reload`) before it is counted, so every fact is what it would be had they stayed: the
spill changes where a connection waits, never what is counted. `FlowTable.finish` builds the
flows still here from the file (observe/_flows.pyx), one at a time.

An entry that holds anything besides numbers and its payload head (`Entry.rare`: a
reassembly stream, ICMP errors, an encapsulation, numbers past 32 bits) is not spilled: its
connection stays in the table, as every connection did before.

A record: its size (4 bytes), whether it is live (1: a reload marks it dead), the key size,
which directions it holds (1: the reference key's, 2: the other), the reference key (the
smaller of the two direction keys, flows.flow_ref), then each direction's `_Packed` and its
payload head. The index finds a record by the reference key's hash (open addressing, 16
bytes a slot, at most 70% taken); the key in the record settles a collision.
"""

cimport cython
from libc.errno cimport errno
from cpython cimport array
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.stdint cimport int16_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.string cimport memcmp, memcpy, memset


cdef extern from "<unistd.h>" nogil:
    ssize_t c_pread "pread"(int fd, void* buf, size_t count, long long offset)
    ssize_t c_pwrite "pwrite"(int fd, const void* buf, size_t count, long long offset)
    ssize_t c_write "write"(int fd, const void* buf, size_t count)
    int c_ftruncate "ftruncate"(int fd, long long length)

from conformance.observe._step cimport (
    ENTRY_NUMS,
    ENTRY_SAMPLES,
    NUM_FIRST,
    Entry,
    e_num,
    key_reversed_into,
)

import array
import tempfile


cdef enum:
    _HEADER = 7  # size (4), live (1), key size (1), directions (1)
    _LIVE = 1  # a record's second field: found by `reload` until it is reloaded (then 0)
    _FINAL = 2  # ... a retired connection's, never reloaded
    _HAS_REF = 1  # the reference key's direction is in the record
    _HAS_OTHER = 2  # the other direction is
    _FLUSH_AT = 1 << 20  # the write buffer goes to the file at this size
    _NO_HEAD = 255  # Entry.head was None
    _PACKED = 96  # sizeof(_Packed), checked below
    _RECORD_MAX = _HEADER + 36 + 2 * (_PACKED + 254)  # key, two entries with their heads
    _HEADS_KEPT = 4096  # distinct payload heads shared as they are read back
    _WINDOWS = 4  # Spill.window: windows of the file the build reads records through
    _WINDOW = 1 << 16  # ... of this many bytes each

# Records spilled and brought back by every spill closed so far in this process (the tests
# check that forcing the spill reaches both).
TOTALS = {"spilled": 0, "reloaded": 0}

cdef int64_t _EMPTY_SLOT = -1
cdef int64_t _DEAD_SLOT = -2


cdef packed struct _Packed:
    long long pkts
    long long nbytes
    double t_first
    double t_last
    uint32_t nums[ENTRY_NUMS]
    uint32_t samples[ENTRY_SAMPLES]
    uint32_t isn_value
    uint16_t want
    uint16_t tcp_flags
    int16_t icmp_code
    uint8_t n_samples
    uint8_t tcp_open
    uint8_t dirs
    uint8_t bits
    uint8_t kind
    uint8_t head_size


cdef inline uint64_t _hash(const uint8_t* k, Py_ssize_t size) noexcept:
    """FNV-1a, 64 bits, mixed at the end (the low bits pick the slot)."""
    cdef uint64_t h = 0xCBF29CE484222325ULL
    cdef Py_ssize_t i
    for i in range(size):
        h = (h ^ k[i]) * 0x100000001B3ULL
    h ^= h >> 29
    return h if h > 1 else h + 2  # 0 and 1 are never a key's hash: nothing to confuse


cdef bytes _reverse(const uint8_t* k, Py_ssize_t size):
    """The opposite direction's key (flows.reverse_key)."""
    cdef uint8_t raw[36]
    key_reversed_into(raw, k, size)
    return PyBytes_FromStringAndSize(<const char*>raw, size)


if sizeof(_Packed) != _PACKED:
    raise ImportError(f"observe._spill: a packed entry is {sizeof(_Packed)} bytes, not {_PACKED}")


cdef inline uint32_t _record_size(const uint8_t* h) noexcept:
    return h[0] | (h[1] << 8) | (h[2] << 16) | (<uint32_t>h[3] << 24)


cdef inline long long _first(const uint8_t* packed) noexcept:
    """A packed entry's first packet (its nums are 32 bits: a spilled entry has no `rare`)."""
    cdef _Packed p
    memcpy(&p, packed, sizeof(_Packed))
    return p.nums[NUM_FIRST]


cdef inline Py_ssize_t _packed_size(const uint8_t* packed) noexcept:
    cdef _Packed p
    memcpy(&p, packed, sizeof(_Packed))
    return sizeof(_Packed) + (0 if p.head_size == _NO_HEAD else p.head_size)


cdef bint spillable(Entry e) noexcept:
    """Whether `e` is only numbers and a head (nothing in `rare`)."""
    return e is None or e.rare is None


cdef Py_ssize_t _entry_size(Entry e):
    if e is None:
        return 0
    head = e.head
    return sizeof(_Packed) + (PyBytes_GET_SIZE(head) if head is not None else 0)


cdef Py_ssize_t _pack(Entry e, uint8_t* out) except -1:
    cdef _Packed p
    cdef Py_ssize_t size = 0
    memset(&p, 0, sizeof(_Packed))
    p.pkts = e.pkts
    p.nbytes = e.nbytes
    p.t_first = e.t_first
    p.t_last = e.t_last
    memcpy(p.nums, e.nums, sizeof(p.nums))
    memcpy(p.samples, e.samples, sizeof(p.samples))
    p.isn_value = e.isn_value
    p.want = e.want
    p.tcp_flags = e.tcp_flags
    p.icmp_code = e.icmp_code
    p.n_samples = e.n_samples
    p.tcp_open = e.tcp_open
    p.dirs = e.dirs
    p.bits = e.bits
    p.kind = e.kind
    head = e.head
    if head is None:
        p.head_size = _NO_HEAD
    else:
        size = PyBytes_GET_SIZE(head)
        if size >= _NO_HEAD:
            raise ValueError(f"payload head of {size} bytes: more than a spill record keeps")
        p.head_size = <uint8_t>size
    memcpy(out, &p, sizeof(_Packed))
    if size:
        memcpy(out + sizeof(_Packed), PyBytes_AS_STRING(head), size)
    return sizeof(_Packed) + size


cdef Entry _unpack(const uint8_t* data, Py_ssize_t* used):
    cdef _Packed p
    cdef Entry e = Entry.__new__(Entry)
    memcpy(&p, data, sizeof(_Packed))
    e.pkts = p.pkts
    e.nbytes = p.nbytes
    e.t_first = p.t_first
    e.t_last = p.t_last
    memcpy(e.nums, p.nums, sizeof(p.nums))
    memcpy(e.samples, p.samples, sizeof(p.samples))
    e.isn_value = p.isn_value
    e.want = p.want
    e.tcp_flags = p.tcp_flags
    e.icmp_code = p.icmp_code
    e.n_samples = p.n_samples
    e.tcp_open = p.tcp_open
    e.dirs = p.dirs
    e.bits = p.bits
    e.kind = p.kind
    if p.head_size == _NO_HEAD:
        e.head = None
        used[0] = sizeof(_Packed)
    else:
        e.head = PyBytes_FromStringAndSize(<const char*>data + sizeof(_Packed), p.head_size)
        used[0] = sizeof(_Packed) + p.head_size
    return e


@cython.final
cdef class Spill:
    """Closed connections' direction pairs, in a scratch file, found by reference key."""

    cdef object file
    cdef int fd
    cdef uint8_t* buffer  # records past `flushed`, not yet in the file (`used` bytes)
    cdef Py_ssize_t used
    cdef Py_ssize_t capacity  # of `buffer`: _FLUSH_AT + _RECORD_MAX, more once in memory
    cdef bint in_memory  # the file could not take more: the buffer keeps what follows
    cdef long long flushed
    cdef uint64_t* hashes
    cdef int64_t* offsets  # a record's offset; _EMPTY_SLOT, or _DEAD_SLOT (was one)
    cdef Py_ssize_t width  # slots, a power of two
    cdef Py_ssize_t taken  # slots live or dead
    cdef dict heads  # one object per distinct payload head read back (most are a few)
    # The build reads records back in packet order: file order within one sweep's records,
    # with the connections that outlived a sweep read from the next sweep's. A few windows
    # of the file (`window_size[w]` bytes from `window_at[w]`, the least recently used one
    # read again on a miss) save a read per record.
    cdef uint8_t* window
    cdef long long window_at[_WINDOWS]
    cdef Py_ssize_t window_size[_WINDOWS]
    cdef unsigned long long window_used[_WINDOWS]
    cdef unsigned long long window_clock
    cdef readonly Py_ssize_t count  # live records `reload` finds
    cdef readonly Py_ssize_t finals  # retired connections' records (`put(final=True)`)
    cdef readonly long long spilled  # records written
    cdef readonly long long reloaded  # records brought back

    def __cinit__(self):
        self.hashes = NULL
        self.offsets = NULL
        self.buffer = NULL
        self.window = NULL
        memset(self.window_size, 0, sizeof(self.window_size))
        memset(self.window_used, 0, sizeof(self.window_used))
        self.window_clock = 0

    def __init__(self, directory=None):
        self.file = tempfile.TemporaryFile(dir=directory)  # unlinked: nothing left behind
        self.fd = self.file.fileno()
        self.capacity = _FLUSH_AT + _RECORD_MAX
        self.buffer = <uint8_t*>PyMem_Malloc(self.capacity)
        if self.buffer == NULL:
            raise MemoryError()
        self.in_memory = False
        self.used = 0
        self.flushed = 0
        self.heads = {}
        self._grow(1024)

    def __dealloc__(self):
        PyMem_Free(self.hashes)
        PyMem_Free(self.offsets)
        PyMem_Free(self.buffer)
        PyMem_Free(self.window)

    def close(self):
        """Let go of the file, the buffer and the index."""
        cdef Py_ssize_t w
        TOTALS["spilled"] += self.spilled
        TOTALS["reloaded"] += self.reloaded
        self.spilled = self.reloaded = 0
        if self.file is not None:
            self.file.close()
            self.file = None
        PyMem_Free(self.hashes)
        PyMem_Free(self.offsets)
        PyMem_Free(self.buffer)
        PyMem_Free(self.window)
        self.hashes = NULL
        self.offsets = NULL
        self.buffer = NULL
        self.window = NULL
        for w in range(_WINDOWS):
            self.window_size[w] = 0
        self.width = self.taken = self.count = self.finals = self.used = 0

    cdef int _grow(self, Py_ssize_t width) except -1:
        cdef uint64_t* old_hashes = self.hashes
        cdef int64_t* old_offsets = self.offsets
        cdef Py_ssize_t old_width = self.width, i, slot
        self.hashes = <uint64_t*>PyMem_Malloc(width * sizeof(uint64_t))
        self.offsets = <int64_t*>PyMem_Malloc(width * sizeof(int64_t))
        if self.hashes == NULL or self.offsets == NULL:
            PyMem_Free(self.hashes)
            PyMem_Free(self.offsets)
            self.hashes, self.offsets = old_hashes, old_offsets
            raise MemoryError()
        for i in range(width):
            self.offsets[i] = _EMPTY_SLOT
        self.width = width
        self.taken = 0
        for i in range(old_width):
            if old_offsets[i] >= 0:
                slot = old_hashes[i] & (width - 1)
                while self.offsets[slot] != _EMPTY_SLOT:
                    slot = (slot + 1) & (width - 1)
                self.hashes[slot] = old_hashes[i]
                self.offsets[slot] = old_offsets[i]
                self.taken += 1
        PyMem_Free(old_hashes)
        PyMem_Free(old_offsets)
        return 0

    cdef const uint8_t* _at(self, long long offset, uint8_t* scratch) except NULL:
        """The record at `offset`: in the buffer, or read from the file into `scratch`
        (_RECORD_MAX bytes)."""
        cdef ssize_t got
        if offset >= self.flushed:
            return self.buffer + (offset - self.flushed)
        got = c_pread(self.fd, scratch, _RECORD_MAX, offset)
        if got < 0:
            raise OSError(errno, f"spill file: cannot read at offset {offset}")
        if got < 4 or got < <ssize_t>_record_size(scratch):
            raise OSError(f"spill file: ends inside the record at offset {offset}")
        return scratch

    cdef const uint8_t* _windowed(self, long long offset) except NULL:
        """The record at `offset`, read through the windows."""
        cdef ssize_t got
        cdef Py_ssize_t w, oldest = 0
        cdef uint8_t* window
        if offset >= self.flushed:
            return self.buffer + (offset - self.flushed)
        self.window_clock += 1
        for w in range(_WINDOWS):
            if self.window_at[w] <= offset and offset + 4 <= self.window_at[w] + self.window_size[w]:
                window = self.window + w * _WINDOW + (offset - self.window_at[w])
                if offset + _record_size(window) <= self.window_at[w] + self.window_size[w]:
                    self.window_used[w] = self.window_clock
                    return window
            if self.window_used[w] < self.window_used[oldest]:
                oldest = w
        if self.window == NULL:
            self.window = <uint8_t*>PyMem_Malloc(_WINDOWS * _WINDOW)
            if self.window == NULL:
                raise MemoryError()
        window = self.window + oldest * _WINDOW
        self.window_size[oldest] = 0
        got = c_pread(self.fd, window, _WINDOW, offset)
        if got < 0:
            raise OSError(errno, f"spill file: cannot read at offset {offset}")
        if got < 4 or got < <ssize_t>_record_size(window):
            raise OSError(f"spill file: ends inside the record at offset {offset}")
        self.window_at[oldest] = offset
        self.window_size[oldest] = got
        self.window_used[oldest] = self.window_clock
        return window

    def put(self, bytes ref, Entry a, Entry b, bint final=False):
        """Keep the pair of reference key `ref`: `a` its direction's entry, `b` the other's
        (either may be None, not both). `final`: a connection a SYN retired (its 5-tuple
        now names another), kept under its own key `ref` with `a` its entry, read back
        only by `live` and `load`, never found by `reload`."""
        cdef Py_ssize_t key_size = PyBytes_GET_SIZE(ref)
        cdef Py_ssize_t size = _HEADER + key_size + _entry_size(a) + _entry_size(b), at
        cdef uint8_t* out
        cdef uint64_t h = _hash(<const uint8_t*>PyBytes_AS_STRING(ref), key_size)
        cdef Py_ssize_t slot
        if not (spillable(a) and spillable(b)):
            raise ValueError("an entry with rare state (a stream, ICMP errors, an encapsulation, numbers past 32 bits) is not spilled")
        if size > _RECORD_MAX:
            raise ValueError(f"spill record of {size} bytes: more than {_RECORD_MAX}")
        while self.used + size > self.capacity - _RECORD_MAX:
            self._flush()
        # Linear probing stays short to 70% of the slots taken (live or dead); then twice as
        # many slots past 35% live, else the dead ones go (#17: at most a quarter live, as
        # before, was 4 MiB of index for the 2M web mix's 48k spilled connections).
        if not final and 10 * (self.taken + 1) > 7 * self.width:
            self._grow(self.width * 2 if 20 * (self.count + 1) > 7 * self.width else self.width)
        out = self.buffer + self.used
        out[0] = size & 0xFF
        out[1] = (size >> 8) & 0xFF
        out[2] = (size >> 16) & 0xFF
        out[3] = (size >> 24) & 0xFF
        out[4] = _FINAL if final else _LIVE
        out[5] = <uint8_t>key_size
        out[6] = (_HAS_REF if a is not None else 0) | (_HAS_OTHER if b is not None else 0)
        memcpy(out + _HEADER, PyBytes_AS_STRING(ref), key_size)
        at = _HEADER + key_size
        if a is not None:
            at += _pack(a, out + at)
        if b is not None:
            at += _pack(b, out + at)
        self.spilled += 1
        if final:
            self.used += size
            self.finals += 1
            return
        slot = h & (self.width - 1)
        while self.offsets[slot] >= 0:
            slot = (slot + 1) & (self.width - 1)
        if self.offsets[slot] == _EMPTY_SLOT:
            self.taken += 1
        self.hashes[slot] = h
        self.offsets[slot] = self.flushed + self.used
        self.used += size
        self.count += 1

    cdef int _flush(self) except -1:
        """The buffer to the file; where the file cannot take it (a full disk), the buffer
        grows instead and keeps every later record in memory: the walk goes on, the facts
        unchanged, only the memory the spill saves is lost."""
        cdef Py_ssize_t done = 0
        cdef ssize_t wrote
        cdef uint8_t* larger
        if self.in_memory:
            larger = <uint8_t*>PyMem_Realloc(self.buffer, 2 * self.capacity)
            if larger == NULL:
                raise MemoryError()
            self.buffer = larger
            self.capacity *= 2
            return 0
        while done < self.used:
            wrote = c_write(self.fd, self.buffer + done, self.used - done)
            if wrote <= 0:
                # The file ends at the last whole flush (a record is never split between
                # the file and the buffer); the buffer keeps this flush and what follows.
                c_ftruncate(self.fd, self.flushed)
                self.in_memory = True
                return self._flush()
            done += wrote
        self.flushed += self.used
        self.used = 0
        return 0

    cdef Py_ssize_t _find(self, const uint8_t* k, Py_ssize_t size, long long* offset) except -2:
        """The slot of the record of reference key `k` (its offset in `offset`), or -1."""
        cdef uint64_t h = _hash(k, size)
        cdef Py_ssize_t slot = h & (self.width - 1)
        cdef const uint8_t* r
        cdef uint8_t scratch[_RECORD_MAX]
        while self.offsets[slot] != _EMPTY_SLOT:
            if self.offsets[slot] >= 0 and self.hashes[slot] == h:
                r = self._at(self.offsets[slot], scratch)
                if r[5] == size and memcmp(r + _HEADER, k, size) == 0:
                    offset[0] = self.offsets[slot]
                    return slot
            slot = (slot + 1) & (self.width - 1)
        return -1

    cdef tuple _entries(self, const uint8_t* r, bint with_ref=True):
        """(reference key (None unless `with_ref`), its direction's entry, the other's) of
        the record at `r`."""
        cdef Py_ssize_t key_size = r[5], at = _HEADER + r[5], used = 0
        cdef Entry a = None, b = None
        ref = PyBytes_FromStringAndSize(<const char*>r + _HEADER, key_size) if with_ref else None
        if r[6] & _HAS_REF:
            a = _unpack(r + at, &used)
            a.head = self._shared(a.head)
            at += used
        if r[6] & _HAS_OTHER:
            b = _unpack(r + at, &used)
            b.head = self._shared(b.head)
        return ref, a, b

    cdef object _shared(self, object head):
        """The one object of this head's value (as the step shares them: payloads.shared_head)."""
        if head is None or not head:
            return head
        found = self.heads.get(head)
        if found is not None:
            return found
        if len(self.heads) >= _HEADS_KEPT:
            self.heads.clear()
        self.heads[head] = head
        return head

    def reload(self, dict table, bytes key):
        """Bring back into `table` the pair direction `key` belongs to, if it is here: True
        when it was (the record is then dead: the pair lives in the table again)."""
        cdef long long offset = 0
        cdef Py_ssize_t slot, size, w
        cdef const uint8_t* k
        cdef const uint8_t* ref
        cdef uint8_t back[36]
        cdef uint8_t scratch[_RECORD_MAX]
        cdef uint8_t dead = 0
        if not self.count:
            return False
        k = <const uint8_t*>PyBytes_AS_STRING(key)
        size = PyBytes_GET_SIZE(key)
        if size != 12 and size != 36:
            return False
        key_reversed_into(back, k, size)
        ref = k if memcmp(k, back, size) <= 0 else back
        slot = self._find(ref, size, &offset)
        if slot < 0:
            return False
        ref_key, a, b = self._entries(self._at(offset, scratch))
        self.offsets[slot] = _DEAD_SLOT
        self.count -= 1
        self.reloaded += 1
        if offset >= self.flushed:
            self.buffer[offset - self.flushed + 4] = 0
        else:
            if c_pwrite(self.fd, &dead, 1, offset + 4) != 1:
                raise OSError(errno, f"spill file: cannot mark the record at offset {offset}")
            for w in range(_WINDOWS):
                if self.window_at[w] <= offset + 4 < self.window_at[w] + self.window_size[w]:
                    self.window[w * _WINDOW + offset + 4 - self.window_at[w]] = 0
        if a is not None:
            table[ref_key] = a
        if b is not None:
            table[_reverse(<const uint8_t*>PyBytes_AS_STRING(ref_key), size)] = b
        return True

    def listing(self):
        """The records still here, in file order, as (keys, key offsets, first packets,
        offsets, finals): every key's bytes one after another in a bytearray, record i's
        being keys[key_at[i]:key_at[i + 1]]; then three arrays of 64-bit numbers and a byte
        each (1: final). No object a record: a scan's 500k closed connections listed as
        bytes took 27 MiB of its build's peak (#17). A pair is listed under its reference
        key, a lone direction under its own key (as FlowTable.finish lists the table's), a
        retired connection (final) under the key it was put with. The file is read in
        pieces, front to back, then the buffer."""
        cdef Py_ssize_t wanted = self.count + self.finals, n = 0, at, have
        cdef long long base = 0, end
        cdef ssize_t got
        cdef const uint8_t* r
        cdef uint8_t* chunk
        cdef bytearray keys = bytearray()
        cdef array.array key_at = array.clone(array.array("q"), wanted + 1, False)
        cdef array.array firsts = array.clone(array.array("q"), wanted, False)
        cdef array.array offsets = array.clone(array.array("q"), wanted, False)
        cdef bytearray finals = bytearray(wanted)
        if not self.in_memory:
            self._flush()
        end = self.flushed
        chunk = <uint8_t*>PyMem_Malloc(_FLUSH_AT + _RECORD_MAX)
        if chunk == NULL:
            raise MemoryError()
        try:
            at = have = 0
            while base + at < end:
                if have - at < 4 or have - at < <Py_ssize_t>_record_size(chunk + at):
                    base += at
                    got = c_pread(self.fd, chunk, _FLUSH_AT + _RECORD_MAX, base)
                    if got < 0:
                        raise OSError(errno, f"spill file: cannot read at offset {base}")
                    at, have = 0, got
                    if have < 4 or have < <Py_ssize_t>_record_size(chunk):
                        raise OSError(f"spill file: ends inside the record at offset {base}")
                r = chunk + at
                if r[4]:
                    n = self._list(r, base + at, keys, key_at, firsts, offsets, finals, n)
                at += _record_size(r)
        finally:
            PyMem_Free(chunk)
        at = 0
        while at < self.used:  # what the file could not take (or was not given yet)
            r = self.buffer + at
            if r[4]:
                n = self._list(r, self.flushed + at, keys, key_at, firsts, offsets, finals, n)
            at += _record_size(r)
        if n != wanted:
            raise OSError(f"spill file: {n} records found, {wanted} kept")
        key_at.data.as_longlongs[0] = 0
        return keys, key_at, firsts, offsets, bytes(finals)

    cdef Py_ssize_t _list(
        self, const uint8_t* r, long long offset, bytearray keys, array.array key_at,
        array.array firsts, array.array offsets, bytearray finals, Py_ssize_t n,
    ) except -1:
        cdef Py_ssize_t key_size = r[5], size = _HEADER + r[5], start
        cdef long long first = _first(r + size)
        cdef uint8_t* into
        if n >= len(finals):
            raise OSError(f"spill file: more live records than the {len(finals)} kept")
        if key_size > 36:
            raise OSError(f"spill file: a key of {key_size} bytes at offset {offset}")
        if r[6] & _HAS_REF and r[6] & _HAS_OTHER:
            first = min(first, _first(r + size + _packed_size(r + size)))
        start = PyByteArray_GET_SIZE(keys)
        PyByteArray_Resize(keys, start + key_size)  # grows ahead, as bytearray.extend does
        into = <uint8_t*>PyByteArray_AS_STRING(keys) + start
        if r[6] & _HAS_REF:  # listed under its reference key, else under its own
            memcpy(into, r + _HEADER, key_size)
        else:
            key_reversed_into(into, r + _HEADER, key_size)
        key_at.data.as_longlongs[n + 1] = start + key_size
        firsts.data.as_longlongs[n] = first
        offsets.data.as_longlongs[n] = offset
        finals[n] = 1 if r[4] == _FINAL else 0
        return n + 1

    def live(self):
        """(listing key, first packet, offset, final) of each record still here, in file
        order (`listing`, one tuple a record)."""
        keys, key_at, firsts, offsets, finals = self.listing()
        for i in range(len(firsts)):
            yield bytes(keys[key_at[i] : key_at[i + 1]]), firsts[i], offsets[i], bool(finals[i])

    def load(self, long long offset):
        """(listing key's entry, the other direction's or None) of the record at `offset`."""
        _, a, b = self._entries(self._windowed(offset), False)
        return (a, b) if a is not None else (b, None)
