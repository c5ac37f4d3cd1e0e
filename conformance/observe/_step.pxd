# The compiled flow-table entry (observe/_step.pyx `Entry`): its layout, for the flow builder
# (observe/_flows.pyx) that reads it at the capture's end.

cdef enum:
    ENTRY_SAMPLES = 8  # records.SAMPLE_PACKETS_PER_FLOW (checked when _step is imported)


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
