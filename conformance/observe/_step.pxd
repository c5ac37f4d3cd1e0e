# The compiled flow-table entry (observe/_step.pyx `Entry`): its layout, for the flow builder
# (observe/_flows.pyx) that reads it at the capture's end.

from libc.stdint cimport int16_t, uint8_t, uint16_t, uint32_t
from libc.string cimport memcpy

cdef enum:
    ENTRY_SAMPLES = 8  # records.SAMPLE_PACKETS_PER_FLOW (checked when _step is imported)
    ENTRY_HAS_ISN = 1  # Entry.bits: isn_value holds the SYN's ISN
    ENTRY_WIDE = 2  # Entry.bits: the samples are in rare.wide
    ENTRY_WIDE_N = 8  # Entry.bits: the numbers (nums) are in rare.nums, in 64 bits

# Entry.nums: packet numbers and a count, 32 bits each until one is past that (ENTRY_WIDE_N)
cdef enum:
    NUM_FIRST = 0  # the direction's first packet
    NUM_LAST = 1  # its last packet
    NUM_PAYLOAD = 2  # the packet of its first payload
    NUM_RSTS = 3  # RSTs it sent
    ENTRY_NUMS = 4

# flows.py's entry slots, as C constants (checked against flows.py when _step is imported)
cdef enum:
    E_PKTS = 0
    E_BYTES = 1
    E_T_FIRST = 2
    E_T_LAST = 3
    E_N_FIRST = 4
    E_N_LAST = 5
    E_TCP_FLAGS = 6
    E_SAMPLES = 7
    E_WANT = 8
    E_TCP_OPEN = 9
    E_RSTS = 10
    E_DIRS = 11
    E_ICMP_CODE = 12
    E_KIND = 13
    E_PAYLOAD_N = 14
    E_HEAD = 15
    E_ERRORS = 16
    E_STREAM = 17
    E_ISN = 18
    E_CARRIED = 19
    E_SLOTS = 20


cdef class Rare:
    cdef object errors
    cdef object carried
    cdef object isn  # an ISN that is not 4 bytes (only Python code could set one)
    cdef object stream  # the direction's reassembly state, while it has one
    cdef long long nums[ENTRY_NUMS]  # ENTRY_WIDE_N: the entry's nums, once one is past 32 bits
    cdef long long wide[ENTRY_SAMPLES]  # the samples, once one is past 32 bits


cdef class Entry:
    cdef long long pkts
    cdef long long nbytes
    cdef double t_first
    cdef double t_last
    cdef uint32_t nums[ENTRY_NUMS]  # in `rare.nums` once one is past 32 bits: read `e_num`
    cdef uint32_t samples[ENTRY_SAMPLES]  # in `rare.wide` instead once one is past 32 bits
    cdef uint32_t isn_value
    cdef uint16_t want
    cdef uint16_t tcp_flags
    cdef int16_t icmp_code
    cdef uint8_t n_samples
    cdef uint8_t tcp_open
    cdef uint8_t dirs
    cdef uint8_t bits  # ENTRY_HAS_ISN, ENTRY_WIDE, ENTRY_WIDE_N
    cdef uint8_t kind  # the first payload's PayloadKind, as its place in _step.KINDS
    cdef object head
    cdef Rare rare  # None for almost every direction


cdef inline void key_reversed_into(uint8_t* raw, const uint8_t* k, Py_ssize_t size) noexcept:
    """flows.reverse_key of a 12- or 36-byte direction key, into `raw` (the flow builder's
    and the spill's)."""
    cdef Py_ssize_t half = (size - 4) // 2
    memcpy(raw, k + half, half)
    memcpy(raw + half, k, half)
    memcpy(raw + 2 * half, k + 2 * half + 2, 2)
    memcpy(raw + 2 * half + 2, k + 2 * half, 2)


cdef inline long long e_num(Entry e, int which) noexcept:
    return e.rare.nums[which] if e.bits & ENTRY_WIDE_N else e.nums[which]


cdef inline object e_stream(Entry e):
    return e.rare.stream if e.rare is not None else None


# Module functions, not methods: a cdef method gives every entry a vtable pointer (8 bytes,
# and a web capture's directions sit one size class up for it).
cdef object entry_item(Entry e, Py_ssize_t slot)
cdef int entry_add(Entry e, long long packet) except -1
cdef Py_ssize_t entry_samples(Entry e, long long* into, Py_ssize_t room) noexcept
cdef Rare entry_rare(Entry e)
cdef bint entry_same_isn(Entry e, const uint8_t* isn) noexcept
cdef void entry_set_isn(Entry e, const uint8_t* isn) noexcept
cdef int e_set_num(Entry e, int which, long long n) except -1
cdef int e_set_stream(Entry e, object stream) except -1
