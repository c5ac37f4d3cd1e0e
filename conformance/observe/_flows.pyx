# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled twin of observe/flows.py `FlowTable.finish`: the directions merged into
oriented `Flow`s at the end of a capture, numbered in packet order.

The same steps on the same entries. The common flow (IPv4 or IPv6 TCP or UDP with no ICMP
error filed under either direction, oriented by its SYN or its first packet) is built here;
every other flow (ICMP, other protocols, ICMP errors, TCP without SYN, UDP whose first
packet may be a response) is oriented and built by flows.py's own `_orient` and `_build`.
A web capture's 65k flows spent about a second in the Python loop (tuples of slices and
packed keys, the samples' sorted copies, an attribute lookup per field). The observe tests
build every capture they observe with this and with the Python code and compare.
"""

from cpython.array cimport array
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_SetItem
from cpython.list cimport PyList_GET_ITEM
from cpython.long cimport PyLong_AsLongLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc
from cpython.ref cimport PyObject
from libc.stdint cimport int32_t, uint32_t, uint64_t
from libc.stdlib cimport qsort
from libc.string cimport memcmp, memcpy

from conformance.observe._step cimport (
    E_N_FIRST,
    E_N_LAST,
    E_PAYLOAD_N,
    E_PKTS,
    E_RSTS,
    Entry,
    NUM_FIRST,
    NUM_LAST,
    NUM_PAYLOAD,
    NUM_RSTS,
    e_num,
    entry_item,
    entry_samples,
    key_reversed_into,
)

from conformance.decode.ip import IPPROTO_TCP, IPPROTO_UDP
from conformance.observe import flows
from conformance.observe.records import (
    SAMPLE_PACKETS_PER_FLOW,
    InitiatorBasis,
    PacketNumbers,
    PayloadKind,
)

# Entry slots and flags, read once from their one definition (observe/flows.py).
cdef Py_ssize_t PKTS = flows.PKTS
cdef Py_ssize_t BYTES = flows.BYTES
cdef Py_ssize_t T_FIRST = flows.T_FIRST
cdef Py_ssize_t T_LAST = flows.T_LAST
cdef Py_ssize_t N_FIRST = flows.N_FIRST
cdef Py_ssize_t N_LAST = flows.N_LAST
cdef Py_ssize_t TCP_FLAGS = flows.TCP_FLAGS
cdef Py_ssize_t SAMPLES = flows.SAMPLES
cdef Py_ssize_t TCP_OPEN = flows.TCP_OPEN
cdef Py_ssize_t RSTS = flows.RSTS
cdef Py_ssize_t KIND = flows.KIND
cdef Py_ssize_t PAYLOAD_N = flows.PAYLOAD_N
cdef Py_ssize_t HEAD = flows.HEAD
cdef Py_ssize_t ERRORS = flows.ERRORS
cdef Py_ssize_t CARRIED = flows.CARRIED
cdef long SYN_SEEN = flows.SYN_SEEN
cdef long SYNACK_SEEN = flows.SYNACK_SEEN
cdef long TCP_ACK = flows.TCP_ACK
cdef int PROTO_TCP = IPPROTO_TCP
cdef int PROTO_UDP = IPPROTO_UDP
cdef Py_ssize_t SAMPLE_MAX = SAMPLE_PACKETS_PER_FLOW

_SYN = InitiatorBasis.SYN
_FIRST_PACKET = InitiatorBasis.FIRST_PACKET
_NO_PAYLOAD = PayloadKind.NONE
_FLOW = flows._FLOW
_REUSED = flows._REUSED
_BYTES_NEW = bytes.__new__
_orient = flows._orient
_build = flows._build
_Addresses = flows.Addresses
_TCP = "tcp"
_UDP = "udp"

cdef enum:
    _MAX_KEY = 36  # IPv6: src(16) dst(16) sport(2) dport(2)


# An entry is the compiled step's `Entry` (observe/_step.pyx) or flows.py's list (the Python
# step's; the tests build both).
cdef inline object _entry_item(object e, Py_ssize_t slot):
    if type(e) is Entry:
        return entry_item(<Entry>e, slot)
    return <object>PyList_GET_ITEM(<list>e, slot)


cdef inline long long _number(object e, Py_ssize_t slot) except? -1:
    cdef Entry x
    if type(e) is Entry:
        x = <Entry>e
        if slot == E_N_FIRST:
            return e_num(x, NUM_FIRST)
        elif slot == E_N_LAST:
            return e_num(x, NUM_LAST)
        elif slot == E_PKTS:
            return x.pkts
        elif slot == E_PAYLOAD_N:
            return e_num(x, NUM_PAYLOAD)
        elif slot == E_RSTS:
            return e_num(x, NUM_RSTS)
        return PyLong_AsLongLong(entry_item(x, slot))
    return PyLong_AsLongLong(<object>PyList_GET_ITEM(<list>e, slot))


cdef inline Py_ssize_t _sample_count(object e):
    if type(e) is Entry:
        return (<Entry>e).n_samples
    return len(<array>PyList_GET_ITEM(<list>e, SAMPLES))


cdef bytes _reverse(bytes key):
    """flows.reverse_key."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(key)
    cdef unsigned char raw[_MAX_KEY]
    if size != 12 and size != 36:
        return flows.reverse_key(key)
    key_reversed_into(raw, <const unsigned char*>PyBytes_AS_STRING(key), size)
    return PyBytes_FromStringAndSize(<const char*>raw, size)


cdef bint _simple(int proto, object e, object other, bytes key):
    """Whether the compiled `_build` takes this flow (see the module's docstring)."""
    cdef Py_ssize_t size = PyBytes_GET_SIZE(key)
    if proto != PROTO_TCP and proto != PROTO_UDP or (size != 12 and size != 36):
        return False
    if _entry_item(e, ERRORS) is not None:
        return False
    return other is None or _entry_item(other, ERRORS) is None


cdef object _orient_c(int proto, bytes key, object e, object other):
    """flows._orient for the flows `_simple` takes whose answer needs no port or payload: a
    TCP flow with a SYN, a UDP flow whose leading direction's first packet carries no
    payload; None for the rest (flows._orient decides them)."""
    cdef bint first = other is None or _number(e, N_FIRST) <= _number(other, N_FIRST)
    cdef long a_open, b_open
    if proto == PROTO_TCP:
        a_open = PyLong_AsLongLong(_entry_item(e, TCP_OPEN))
        b_open = PyLong_AsLongLong(_entry_item(other, TCP_OPEN)) if other is not None else 0
        if (a_open | b_open) & SYN_SEEN:
            if not b_open & SYN_SEEN:
                return (True, _SYN)
            if not a_open & SYN_SEEN:
                return (False, _SYN)
            return (first, _SYN)
        return None
    lead = e if first or other is None else other
    if _number(lead, PAYLOAD_N) == _number(lead, N_FIRST):  # flows._response_first may say yes
        return None
    return (first, _FIRST_PACKET)


cdef void _sort(long long* values, Py_ssize_t n) noexcept:
    """Insertion sort: at most 2 * SAMPLE_PACKETS_PER_FLOW values."""
    cdef Py_ssize_t i, j
    cdef long long v
    for i in range(1, n):
        v = values[i]
        j = i - 1
        while j >= 0 and values[j] > v:
            values[j + 1] = values[j]
            j -= 1
        values[j + 1] = v


cdef object _packed_numbers(long long* values, Py_ssize_t n):
    """records.PacketNumbers of `values` (packed as it packs them: native 64-bit integers)."""
    return _BYTES_NEW(PacketNumbers, PyBytes_FromStringAndSize(<char*>values, n * sizeof(long long)))


cdef Py_ssize_t _copy_samples(object e, long long* into, Py_ssize_t room) except -1:
    cdef array kept
    cdef Py_ssize_t n = _sample_count(e)
    cdef Py_ssize_t i
    if n > room:
        n = room
    if type(e) is Entry:
        return entry_samples(<Entry>e, into, n)
    kept = <array>_entry_item(e, SAMPLES)
    for i in range(n):
        into[i] = kept.data.as_longlongs[i]
    return n


cdef object _samples(object out, object back):
    """flows._build's samples: the initiator's as kept when it alone sent, else the lowest
    SAMPLE_PACKETS_PER_FLOW packet numbers of both directions, each once."""
    cdef long long values[64]
    cdef Py_ssize_t n = 0
    cdef Py_ssize_t i, kept
    if back is None:
        if type(out) is Entry:
            return _packed_numbers(values, entry_samples(<Entry>out, values, 64))
        return PacketNumbers(<array>_entry_item(out, SAMPLES))
    if _sample_count(back) > 32 or (
        out is not None and _sample_count(out) > 32
    ):  # more than any direction keeps: the Python code's answer
        return None
    if out is not None:
        n = _copy_samples(out, values, 32)
    n += _copy_samples(back, values + n, 32)
    _sort(values, n)
    kept = 0
    for i in range(n):
        if kept and values[kept - 1] == values[i]:
            continue
        values[kept] = values[i]
        kept += 1
        if kept == SAMPLE_MAX:
            break
    return _packed_numbers(values, kept)


# The port numbers' int objects, made once each: a server's port repeats on every flow to it,
# and a client's ephemeral ports come round again (#17: 2 x 1.7 MiB on the 2M web capture).
cdef list _PORTS = [None] * 65536


cdef object _port(int value):
    cdef object made = <object>PyList_GET_ITEM(_PORTS, value)
    if made is None:
        made = value
        _PORTS[value] = made
    return made


cdef object _one_of(object number, object other):
    """`number`, or `other` when they are equal ints: one object where a flow's first packet
    is also its last (a flow of one packet: a port scan's million), or either is its first
    payload."""
    if other is not None and type(number) is int and type(other) is int and number == other:
        return other
    return number


cdef object _same_time(object first_time, object last_time):
    """`last_time`, or the equal float object `first_time` (a flow of one packet, or of
    packets in one clock tick: a port scan's million flows, 32 MiB)."""
    if type(first_time) is float and type(last_time) is float:
        if <double>first_time == <double>last_time and <double>first_time != 0.0:
            return first_time  # (never -0.0 for 0.0: a capture's times are not negative)
    return last_time


cdef object _address(object address, dict known, bytes raw):
    """address(raw), from flows.Addresses' own table when it has it."""
    cdef PyObject* found
    if known is not None:
        found = PyDict_GetItem(known, raw)
        if found != NULL:
            return <object>found
    return address(raw)


cdef object _build_c(
    int capture,
    long long flow_id,
    int proto,
    bytes key,
    object out,
    object back,
    object basis,
    object address,
    dict known,
):
    """flows._build for a flow `_simple` takes; `key` and `out` are the initiator's."""
    cdef const unsigned char* k = <const unsigned char*>PyBytes_AS_STRING(key)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(key)
    cdef Py_ssize_t half = (size - 4) // 2
    cdef int sport = (k[2 * half] << 8) | k[2 * half + 1]
    cdef int dport = (k[2 * half + 2] << 8) | k[2 * half + 3]
    cdef bint answered = False
    cdef bint accepted
    cdef bint rejected = False
    src = PyBytes_FromStringAndSize(<const char*>k, half)
    dst = PyBytes_FromStringAndSize(<const char*>k + half, half)
    packets_out = bytes_out = packets_in = bytes_in = flags_out = flags_in = 0
    if out is not None:
        packets_out = _entry_item(out, PKTS)
        bytes_out = _entry_item(out, BYTES)
        flags_out = _entry_item(out, TCP_FLAGS)
    if back is not None:
        packets_in = _entry_item(back, PKTS)
        bytes_in = _entry_item(back, BYTES)
        flags_in = _entry_item(back, TCP_FLAGS)
        answered = _number(back, PKTS) > 0
    first = back if out is None or (
        back is not None and _number(back, N_FIRST) < _number(out, N_FIRST)
    ) else out
    last = back if out is None or (
        back is not None and _number(back, N_LAST) > _number(out, N_LAST)
    ) else out
    samples = _samples(out, back)
    if samples is None:
        return None
    first_time = _entry_item(first, T_FIRST)
    if proto == PROTO_TCP:
        accepted = back is not None and (
            PyLong_AsLongLong(_entry_item(back, TCP_OPEN)) & SYNACK_SEEN
            or _number(back, PAYLOAD_N) > 0
            or (
                _number(back, PKTS) > _number(back, RSTS)
                and PyLong_AsLongLong(_entry_item(back, TCP_FLAGS)) & TCP_ACK
            )
        )
        rejected = back is not None and _number(back, RSTS) > 0 and not accepted
        transport = _TCP
    else:
        accepted = answered
        transport = _UDP
    carried = (_entry_item(out, CARRIED) if out is not None else None) or (
        _entry_item(back, CARRIED) if back is not None else None
    )
    payload_n = _entry_item(out, PAYLOAD_N) if out is not None else None
    first_n = _entry_item(first, N_FIRST)
    last_n = _one_of(_entry_item(last, N_LAST), first_n)
    return _FLOW(
        flow_id,
        capture,
        transport,
        4 if half == 4 else 6,
        _address(address, known, src),
        _port(sport),
        _address(address, known, dst),
        _port(dport),
        basis,
        basis is _SYN,
        answered,
        accepted,
        rejected,
        packets_out,
        packets_in,
        bytes_out,
        bytes_in,
        first_time,
        _same_time(first_time, _entry_item(last, T_LAST)),
        first_n,
        last_n,
        samples,
        flags_out,
        flags_in,
        _entry_item(out, KIND) if out is not None else _NO_PAYLOAD,
        _entry_item(back, KIND) if back is not None else _NO_PAYLOAD,
        _one_of(_one_of(payload_n, first_n), last_n) if out is not None and payload_n else None,
        _entry_item(out, HEAD) if out is not None else b"",
        carried[0] if carried else "",
        carried[1] if carried else 1,
        (),
    )


# One flow to build, in the order flows are numbered: (first packet, protocol, direction key,
# retired index or -1), as flows.py's `order` tuples sort. The key and its entries are held
# by `finish`'s list (`held`, three slots per flow), or for a connection in the spill its key
# by the spill's listing and its entries by the spill (at `offset`); this keeps 48 bytes a
# flow where a tuple of eight and the first packet's int object took 160 (#17: 10 MiB of the
# web mix's peak, 150 MiB of a 1M-port scan's), and 40 where it took 56 (the places and the
# key's size in 32 bits: `finish` refuses more flows than `_MAX_ITEMS`; 8 MiB of the scan's).
cdef struct _Item:
    long long first
    long long offset  # in the spill; -1: the flow's key and entries are in `held`
    const char* key
    int32_t index  # the retired connection's place, -1 for the table's own
    int32_t held  # the flow's first slot in `held`, or its key's place in the listing
    int32_t proto
    uint32_t key_size


# `held` has three slots a flow: every place must fit an _Item's 32 bits.
cdef Py_ssize_t _MAX_ITEMS = 0x7FFFFFFF // 3


cdef int _compare_items(const void* a, const void* b) noexcept nogil:
    cdef const _Item* x = <const _Item*>a
    cdef const _Item* y = <const _Item*>b
    cdef uint32_t common
    cdef int order
    if x.first != y.first:
        return -1 if x.first < y.first else 1
    if x.proto != y.proto:
        return -1 if x.proto < y.proto else 1
    common = x.key_size if x.key_size < y.key_size else y.key_size
    order = memcmp(x.key, y.key, common)  # bytes order: the bytes, then the length
    if order != 0:
        return order
    if x.key_size != y.key_size:
        return -1 if x.key_size < y.key_size else 1
    if x.index != y.index:
        return -1 if x.index < y.index else 1
    return 0


cdef inline void _item(
    _Item* item, long long first, int proto, const char* key, Py_ssize_t key_size,
    long long index, Py_ssize_t held, long long offset=-1,
) noexcept:
    item.first = first
    item.offset = offset
    item.proto = proto
    item.key = key
    item.key_size = <uint32_t>key_size  # a direction key: at most _MAX_KEY
    item.index = <int32_t>index  # both under 3 * _MAX_ITEMS (`finish` checks the count)
    item.held = <int32_t>held


cdef inline uint64_t _ref_hash(int proto, const unsigned char* k, Py_ssize_t size) noexcept:
    """FNV-1a of a flow reference: its protocol, then its key's bytes."""
    cdef uint64_t h = 14695981039346656037ULL
    cdef Py_ssize_t i
    h = (h ^ <uint64_t><uint32_t>proto) * 1099511628211ULL
    for i in range(size):
        h = (h ^ k[i]) * 1099511628211ULL
    return h


cdef class FlowIdTable:
    """flows.FlowIds for the compiled `finish`: the ids of the flows it numbered, by
    reference, answered from C arrays over its flow list (a flow's id is `first_id` plus its
    place) and the direction keys it holds, with no Python object per flow. The dict of
    (protocol, key) tuples, reversed keys and ids FlowIds keeps cost a 1M-port scan's
    numbering 77 MiB, the web mix's 9 (#17). `get` answers as FlowIds.get does, a reused
    5-tuple's generations told apart by packet; `release` lets go of everything."""

    # What keeps each flow's listed key alive until `release`: the table's own keys, and the
    # spill's listing once (its keys are packed: no object a closed connection, #17).
    cdef list owners
    cdef const unsigned char** kptrs  # the direction key each flow was listed under
    cdef uint32_t* ksizes  # and its size
    cdef long long* firsts  # each flow's first packet
    cdef uint64_t* hashes  # each flow's reference, hashed
    cdef int32_t* chain  # the next flow with the same slot, in flow order; -1 ends it
    cdef int32_t* slots  # the first flow of each slot; -1: none
    cdef int* protos  # above 255 for the table's own portless kinds (flows.PORTLESS)
    cdef unsigned char* swapped  # the reference's key is the listed key reversed
    cdef Py_ssize_t count
    cdef Py_ssize_t mask
    cdef readonly long long first_id

    def __cinit__(self):
        self.owners = []  # (the C fields start zeroed: NULL arrays, no flows)

    def __dealloc__(self):
        self._free()

    cdef void _free(self) noexcept:
        PyMem_Free(self.firsts)
        PyMem_Free(self.hashes)
        PyMem_Free(self.chain)
        PyMem_Free(self.slots)
        PyMem_Free(self.protos)
        PyMem_Free(self.swapped)
        PyMem_Free(self.kptrs)
        PyMem_Free(self.ksizes)
        self.kptrs = NULL
        self.ksizes = NULL
        self.firsts = NULL
        self.hashes = NULL
        self.chain = NULL
        self.slots = NULL
        self.protos = NULL
        self.swapped = NULL
        self.count = 0

    cdef int _fill(
        self, _Item* items, Py_ssize_t count, list held, object spilled, long long first_id
    ) except -1:
        """Number `items` (sorted; their keys in `held`, or packed in `spilled`: the spill's
        listing, which the items point into) from `first_id`."""
        cdef Py_ssize_t index, size, slot, width = 1
        cdef int32_t* tail
        cdef const unsigned char* k
        cdef const unsigned char* listed
        cdef unsigned char raw[_MAX_KEY]
        cdef bint swap
        if count > 0x7FFFFFFF:
            raise OverflowError(f"{count} flows: more than a flow-id table numbers")
        while width < 2 * count:
            width <<= 1
        self.first_id = first_id
        self.firsts = <long long*>PyMem_Malloc(max(count, 1) * sizeof(long long))
        self.hashes = <uint64_t*>PyMem_Malloc(max(count, 1) * sizeof(uint64_t))
        self.chain = <int32_t*>PyMem_Malloc(max(count, 1) * sizeof(int32_t))
        self.protos = <int*>PyMem_Malloc(max(count, 1) * sizeof(int))
        self.swapped = <unsigned char*>PyMem_Malloc(max(count, 1))
        self.kptrs = <const unsigned char**>PyMem_Malloc(max(count, 1) * sizeof(char*))
        self.ksizes = <uint32_t*>PyMem_Malloc(max(count, 1) * sizeof(uint32_t))
        self.slots = <int32_t*>PyMem_Malloc(width * sizeof(int32_t))
        tail = <int32_t*>PyMem_Malloc(width * sizeof(int32_t))
        try:
            if (
                self.firsts == NULL or self.hashes == NULL or self.chain == NULL
                or self.protos == NULL or self.swapped == NULL or self.slots == NULL
                or self.kptrs == NULL or self.ksizes == NULL or tail == NULL
            ):
                raise MemoryError()
            if spilled is not None:
                self.owners.append(spilled)
            self.mask = width - 1
            for slot in range(width):
                self.slots[slot] = -1
            for index in range(count):
                if items[index].offset < 0:
                    key = <bytes>PyList_GET_ITEM(held, items[index].held)
                    listed = <const unsigned char*>PyBytes_AS_STRING(key)
                else:  # packed in the spill's listing (kept in `owners`)
                    key = None
                    listed = <const unsigned char*>items[index].key
                size = items[index].key_size
                swap = False
                if size == 12 or size == 36:  # flow_ref: the smaller of the key and its reverse
                    k = listed
                    key_reversed_into(raw, k, size)
                    if memcmp(raw, k, size) < 0:
                        swap = True
                        k = raw
                else:  # no key the step makes: the reference itself is kept
                    if key is None:
                        key = PyBytes_FromStringAndSize(<const char*>listed, size)
                    key = flows.flow_ref(items[index].proto, key)[1]
                    listed = k = <const unsigned char*>PyBytes_AS_STRING(key)
                    size = PyBytes_GET_SIZE(key)
                if key is not None:
                    self.owners.append(key)
                self.kptrs[index] = listed
                self.ksizes[index] = <uint32_t>size
                self.firsts[index] = items[index].first
                self.protos[index] = items[index].proto
                self.swapped[index] = swap
                self.hashes[index] = _ref_hash(items[index].proto, k, size)
                self.chain[index] = -1
                slot = <Py_ssize_t>(self.hashes[index] & <uint64_t>self.mask)
                if self.slots[slot] < 0:
                    self.slots[slot] = <int32_t>index
                else:
                    self.chain[tail[slot]] = <int32_t>index
                tail[slot] = <int32_t>index
            self.count = count
        finally:
            PyMem_Free(tail)
        return 0

    cdef bint _names(self, Py_ssize_t index, int proto, const unsigned char* k, Py_ssize_t size):
        """Whether flow `index`'s reference is (proto, the `size` bytes at k)."""
        cdef unsigned char raw[_MAX_KEY]
        cdef const unsigned char* own = self.kptrs[index]
        if self.protos[index] != proto or self.ksizes[index] != size:
            return False
        if self.swapped[index]:
            key_reversed_into(raw, own, size)
            own = raw
        return memcmp(own, k, size) == 0

    cpdef long long lookup(self, object ref, long long packet) except? -1:
        """FlowIds.get: the id of the flow `ref` names at `packet` (0 if none)."""
        cdef int proto
        cdef Py_ssize_t size
        cdef const unsigned char* k
        if self.count == 0 or type(ref) is not tuple or len(<tuple>ref) != 2:
            return 0
        proto_object, key = <tuple>ref
        if type(key) is not bytes or type(proto_object) is not int:
            return 0
        if not -0x80000000 <= proto_object <= 0x7FFFFFFF:
            return 0
        proto = proto_object
        k = <const unsigned char*>PyBytes_AS_STRING(key)
        size = PyBytes_GET_SIZE(key)
        if size > _MAX_KEY:
            return 0
        return self._lookup(proto, k, size, packet)

    cdef long long _lookup(
        self, int proto, const unsigned char* k, Py_ssize_t size, long long packet
    ) noexcept:
        """`lookup` of the reference (proto, the `size` bytes at k)."""
        cdef Py_ssize_t index
        cdef long long found = 0
        cdef bint seen = False
        cdef uint64_t h
        if self.count == 0:
            return 0
        h = _ref_hash(proto, k, size)
        index = self.slots[h & <uint64_t>self.mask]
        while index >= 0:  # this reference's flows, in flow (packet) order
            if self.hashes[index] == h and self._names(index, proto, k, size):
                if not seen:  # its first connection answers for any packet before the next
                    found = self.first_id + index
                    seen = True
                elif self.firsts[index] > packet:
                    break
                else:
                    found = self.first_id + index
            index = self.chain[index]
        return found

    def get(self, ref, packet):
        return self.lookup(ref, packet)

    def release(self):
        """Forget every id (as FlowIds.release): the keys and the arrays go."""
        self._free()
        self.owners = []

    def __len__(self):
        return self.count


cdef int _list_spilled(
    _Item* items, Py_ssize_t* count, Py_ssize_t* index, bytearray keys,
    const long long[:] key_at, const long long[:] firsts, const long long[:] offsets,
    const unsigned char[:] finals,
) except -1:
    """The spill's records (Spill.listing: their keys packed in `keys`, record i's from
    key_at[i] to key_at[i + 1]) as items pointing into `keys`."""
    cdef Py_ssize_t i
    cdef const char* packed = PyByteArray_AS_STRING(keys)
    if key_at.shape[0] != firsts.shape[0] + 1 or key_at[firsts.shape[0]] != len(keys):
        raise ValueError("the spill's listing: key offsets that do not cover its keys")
    for i in range(firsts.shape[0]):
        if not 0 <= key_at[i] <= key_at[i + 1] <= key_at[i] + _MAX_KEY:
            raise ValueError(f"the spill's listing: record {i}'s key offsets")
        _item(
            &items[count[0]], firsts[i], PROTO_TCP, packed + key_at[i], key_at[i + 1] - key_at[i],
            index[0] if finals[i] else -1, i, offsets[i],
        )
        count[0] += 1
        index[0] += finals[i]  # a retired connection's place, after the table's retired
    return 0


def finish(table, Py_ssize_t first_id, address, numbered=None, into=None):
    """FlowTable.finish(first_id, address, numbered, into), compiled: (flows, FlowIds)."""
    cdef list held = []
    cdef bytearray spilled = None  # the spill listing's keys, packed
    cdef Py_ssize_t count = len(table._retired)
    cdef int proto
    cdef Py_ssize_t index, at
    cdef long long first
    cdef dict known = address._known if type(address) is _Addresses else None
    cdef PyObject* found
    cdef _Item* items
    for entries in table.tables.values():
        count += len(<dict>entries)
    spill, table.spill = table.spill, None  # connections that ended during the walk
    if spill is not None:
        count += spill.count + spill.finals
    if count > _MAX_ITEMS:
        raise OverflowError(f"{count} flows: more than one capture's build numbers")
    items = <_Item*>PyMem_Malloc(max(count, 1) * sizeof(_Item))
    if items == NULL:
        raise MemoryError()
    try:
        count = 0
        for proto_object, entries in table.tables.items():
            proto = proto_object
            for key, e in (<dict>entries).items():
                rkey = _reverse(key)
                if rkey != key:
                    found = PyDict_GetItem(<dict>entries, rkey)
                    other = <object>found if found != NULL else None
                else:
                    other = None
                if other is None:
                    first = _number(e, N_FIRST)
                elif key < rkey:  # the pair is listed once, under its smaller key
                    first = min(_number(e, N_FIRST), _number(other, N_FIRST))
                else:
                    continue
                _item(&items[count], first, proto, key, len(key), -1, len(held))
                held.extend((key, e, other))
                count += 1
            (<dict>entries).clear()  # the entries now live in `held`
        index = 0
        for key, e, other in table._retired:
            first = _number(e, N_FIRST)
            if other is not None:
                first = min(first, _number(other, N_FIRST))
            _item(&items[count], first, PROTO_TCP, key, len(key), index, len(held))
            held.extend((key, e, other))
            count += 1
            index += 1
        table._retired.clear()  # in place: the compiled step holds this list too (flows.py)
        if spill is not None:  # read back one at a time as they are built (observe/_spill.pyx)
            spilled, key_at, firsts, offsets, finals = spill.listing()
            _list_spilled(items, &count, &index, spilled, key_at, firsts, offsets, finals)
            del key_at, firsts, offsets, finals
        qsort(items, count, sizeof(_Item), _compare_items)
        ids = FlowIdTable()
        ids._fill(items, count, held, spilled, first_id)
        if numbered is not None:
            numbered(ids)
        # Made whole at once: a list grown by appends is copied as it grows, twice its size
        # for a moment (4 MiB of a 503k-flow scan's build, #17). A store (`into`) takes each
        # flow as it is built.
        built = [None] * count if into is None else into
        add = None if into is None else into.append
        capture = table.capture
        flow_id = first_id
        for index in range(count):
            at = items[index].held
            if items[index].offset >= 0:  # its key packed in the listing, made as it is built
                key = PyBytes_FromStringAndSize(items[index].key, items[index].key_size)
                e, other = spill.load(items[index].offset)
            else:
                key = <object>PyList_GET_ITEM(held, at)
                e = <object>PyList_GET_ITEM(held, at + 1)
                other = <object>PyList_GET_ITEM(held, at + 2)
                held[at] = held[at + 1] = held[at + 2] = None  # each flow's entries go once built
            proto = items[index].proto
            rkey = _reverse(key)
            flow = _built(capture, flow_id, proto, key, rkey, e, other, address, known)
            if add is None:
                built[index] = flow
            else:
                add(flow)
            del flow  # a store's flow goes as it is packed
            flow_id += 1
        return built, ids
    finally:
        PyMem_Free(items)
        if spill is not None:
            spill.close()


cdef object _built(
    int capture, long long flow_id, int proto, bytes key, bytes rkey, object e, object other,
    object address, dict known,
):
    """The flow of one direction pair: the compiled `_build` where it takes it, else
    flows.py's own steps."""
    flow = None
    if _simple(proto, e, other, key):
        oriented = _orient_c(proto, key, e, other)
        if oriented is None:
            oriented = _orient(proto, key, e, other)
        forward, basis = oriented
        if forward:
            flow = _build_c(capture, flow_id, proto, key, e, other, basis, address, known)
        else:
            flow = _build_c(capture, flow_id, proto, rkey, other, e, basis, address, known)
    else:
        forward, basis = _orient(proto, key, e, other)
    if flow is None:
        if forward:
            flow = _build(capture, flow_id, proto, key, e, other, basis, address)
        else:
            flow = _build(capture, flow_id, proto, rkey, other, e, basis, address)
    return flow


def in_flows(renumbered, refs, order, hellos, ids, into=None):
    """observe/builder.py `_in_flows`, compiled: each record of `hellos` (in the order of
    the indices `order`, None: as recorded) numbered with the id of the flow its reference
    in `refs` (flows.FlowRefs, read in place) names at the record's packet (FlowIds.get;
    the compiled finish's table answers it in C, with no object per reference), appended
    to `into` (None: a new list), which is returned."""
    numbered = [] if into is None else into
    add = numbered.append
    cdef FlowIdTable table = ids if type(ids) is FlowIdTable else None
    cdef bytearray packed = refs.whole()  # those written to its file during the walk too
    cdef const unsigned char* p = <const unsigned char*>PyByteArray_AS_STRING(packed)
    cdef Py_ssize_t size = PyByteArray_GET_SIZE(packed), at = 0, count = 0, index, key_size
    cdef Py_ssize_t* starts
    cdef Py_ssize_t taken = 0
    cdef const unsigned char* k
    cdef unsigned char back[_MAX_KEY]
    cdef int proto
    while at < size:
        count += 1
        at += 3 + p[at + 2]
    if at != size:
        raise ValueError("flow references: the buffer ends inside one")
    starts = <Py_ssize_t*>PyMem_Malloc(max(count, 1) * sizeof(Py_ssize_t))
    if starts == NULL:
        raise MemoryError()
    try:
        at = index = 0
        while at < size:
            starts[index] = at
            index += 1
            at += 3 + p[at + 2]
        get = ids.get
        for record in hellos:
            if taken >= count:
                raise ValueError("more records than flow references")
            index = taken if order is None else order[taken]
            if not 0 <= index < count:
                raise IndexError(f"flow reference {index} of {count}")
            taken += 1
            at = starts[index]
            proto = p[at] | (p[at + 1] << 8)
            key_size = p[at + 2]
            k = p + at + 3
            if key_size != 12 and key_size != 36:  # a direction key: IPv4 or IPv6
                raise ValueError(f"flow reference of {key_size} bytes")
            key_reversed_into(back, k, key_size)
            if memcmp(back, k, key_size) < 0:  # the reference names a flow by its smaller key
                k = back
            if table is not None:
                add(renumbered(record, table._lookup(proto, k, key_size, record.packet)))
            else:
                ref = (proto, PyBytes_FromStringAndSize(<const char*>k, key_size))
                add(renumbered(record, get(ref, record.packet)))
        if taken != count:
            raise ValueError(f"{count} flow references for {taken} records")
    finally:
        PyMem_Free(starts)
    refs.clear()
    return numbered
