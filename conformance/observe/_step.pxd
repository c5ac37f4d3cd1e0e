# The compiled flow-table entry (observe/_step.pyx `Entry`): its layout, for the flow builder
# (observe/_flows.pyx) that reads it at the capture's end.

from libc.stdint cimport int16_t, uint8_t, uint16_t, uint32_t

cdef enum:
    ENTRY_SAMPLES = 8  # records.SAMPLE_PACKETS_PER_FLOW (checked when _step is imported)
    ENTRY_HAS_ISN = 1  # Entry.bits: isn_value holds the SYN's ISN
    ENTRY_WIDE = 2  # Entry.bits: the samples are in rare.wide
    ENTRY_NUMBERED = 4  # Entry.bits: isn_value holds the id of the entry's flow (finish)
    ENTRY_WIDE_N = 8  # Entry.bits: n_first, n_last, payload_n and rsts are in rare (64 bits)

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
    # ENTRY_WIDE_N: the entry's packet numbers and RST count, once one is past 32 bits
    cdef long long n_first
    cdef long long n_last
    cdef long long payload_n
    cdef long long rsts
    cdef long long wide[ENTRY_SAMPLES]  # the samples, once one is past 32 bits


cdef class Entry:
    cdef long long pkts
    cdef long long nbytes
    cdef double t_first
    cdef double t_last
    # Packet numbers and the RST count in 32 bits; in `rare` once one is past that
    # (ENTRY_WIDE_N): read them with the e_* functions below.
    cdef uint32_t n_first
    cdef uint32_t n_last
    cdef uint32_t payload_n
    cdef uint32_t rsts
    cdef uint32_t samples[ENTRY_SAMPLES]  # in `rare.wide` instead once one is past 32 bits
    cdef uint32_t isn_value
    cdef uint16_t want
    cdef uint16_t tcp_flags
    cdef int16_t icmp_code
    cdef uint8_t n_samples
    cdef uint8_t tcp_open
    cdef uint8_t dirs
    cdef uint8_t bits  # ENTRY_HAS_ISN, ENTRY_WIDE, ENTRY_NUMBERED, ENTRY_WIDE_N
    cdef uint8_t kind  # the first payload's PayloadKind, as its place in _step.KINDS
    cdef object head
    cdef Rare rare  # None for almost every direction


cdef inline long long e_n_first(Entry e) noexcept:
    return e.rare.n_first if e.bits & ENTRY_WIDE_N else e.n_first


cdef inline long long e_n_last(Entry e) noexcept:
    return e.rare.n_last if e.bits & ENTRY_WIDE_N else e.n_last


cdef inline long long e_payload_n(Entry e) noexcept:
    return e.rare.payload_n if e.bits & ENTRY_WIDE_N else e.payload_n


cdef inline long long e_rsts(Entry e) noexcept:
    return e.rare.rsts if e.bits & ENTRY_WIDE_N else e.rsts


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
cdef int entry_number(Entry e, long long flow_id) except -1
cdef int e_set_n_first(Entry e, long long n) except -1
cdef int e_set_n_last(Entry e, long long n) except -1
cdef int e_set_payload_n(Entry e, long long n) except -1
cdef int e_set_rsts(Entry e, long long n) except -1
cdef int e_set_stream(Entry e, object stream) except -1
