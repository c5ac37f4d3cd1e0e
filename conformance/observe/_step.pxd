# The compiled flow-table entry (observe/_step.pyx `Entry`): its layout, for the flow builder
# (observe/_flows.pyx) that reads it at the capture's end.

cdef enum:
    ENTRY_SAMPLES = 8  # records.SAMPLE_PACKETS_PER_FLOW (checked when _step is imported)

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


cdef class Entry:
    cdef long long pkts
    cdef long long nbytes
    cdef double t_first
    cdef double t_last
    cdef long long n_first
    cdef long long n_last
    cdef long long payload_n
    cdef long long rsts
    cdef long long samples[ENTRY_SAMPLES]
    cdef int n_samples
    cdef int tcp_flags
    cdef int want
    cdef int tcp_open
    cdef int dirs
    cdef int icmp_code
    cdef object kind
    cdef object head
    cdef object errors
    cdef object stream
    cdef object isn
    cdef object carried

    cdef object item(self, Py_ssize_t slot)
    cdef int add(self, long long packet) except -1
