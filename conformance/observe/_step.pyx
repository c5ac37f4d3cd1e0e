# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled twin of the per-packet step (observe/ingest.py `CaptureIngest._make_step`
and `CaptureIngest._ipv6`), and of the general path's quick settling of the commonest
frames it does not take (observe/layers.py `LayerWalker._quick`: link-layer control such as
ARP, ICMP and ICMPv6 that is not an error; a tenth of the frames of a web capture).

The same decisions in the same order, on the same flow-table entries, calling the same
Python code for everything but the hot path (the general path, and the payloads below).
The commonest payloads are read here too, with the inspector's steps for them (a change to
one is made to the other): the usual first payload of a TLS direction (a whole ClientHello
or ServerHello in one record, `_usual_hello`); a ClientHello one record holds, sent in
several segments (`_hello_begins`, `_hello_more`); a first payload whose kind and request
head the inspector already remembers, such as a proxy's CONNECT and its answer on every
connection (`_known_first`, `_request`); and a SYN on a used 5-tuple (`_syn`). Anything
else goes to the inspector, which also remembers what the next `_known_first` needs. Two
differences in how, not what: the flow table's entries are `Entry` records in C
(every direction, whether made here or by flows.py: the compiled step sets the table's
`new_entry`), which Python code reads and writes by slot as it does flows.py's lists, so a
packet is counted without boxing a number; and the IPv4 UDP/TCP hot path finds a direction's
entry in a small C cache keyed by the frame's own bytes, without making a key
(tests/observe/test_step_cache.py).

Every read of the frame stays inside `off + cap`, where the Python step relies on slices
and `unpack_from` to stay inside the buffer. Where this module is built, the observe tests
observe every capture they build with it and with the Python step and compare
(tests/observe/conftest.py, tests/compiled_paths.py).
"""

cimport cython
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_GET_SIZE, PyByteArray_Resize
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem, PyDict_Size
from cpython.set cimport PySet_Add, PySet_GET_SIZE
from cpython.list cimport PyList_GET_ITEM, PyList_GET_SIZE
from cpython.ref cimport Py_DECREF, Py_INCREF, PyObject
from libc.stdint cimport int16_t, uint8_t, uint16_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free
from libc.string cimport memcmp, memcpy

from conformance.decode._walk cimport CStep

from conformance.decode.icmp import (
    ICMP_COUNTERPART,
    ICMP_ERRORS,
    ICMPV6_COUNTERPART,
    ICMPV6_ERRORS,
)
from conformance.decode.ip import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP
from conformance.decode.link import (
    ETHERTYPE_IPV4,
    ETHERTYPE_IPV6,
    LINKTYPE_ETHERNET,
    LINKTYPE_IPV4,
    LINKTYPE_IPV6,
    LINKTYPE_LINUX_SLL,
    LINKTYPE_LINUX_SLL2,
    LINKTYPE_LOOP,
    LINKTYPE_NULL,
    LINKTYPE_RAW,
    LINKTYPE_RAW_DLT12,
    LINKTYPE_RAW_DLT14,
    LINK_CONTROL_ETHERTYPES,
    MAX_VLAN_TAGS,
)
from conformance.decode.classify import MAX_TLS_RECORD
from conformance.decode.tls import MAX_PLAINTEXT_RECORD, ClientHelloInfo, ServerHelloInfo
from conformance.decode.tunnel import TUNNEL_UDP_PORTS
from conformance.observe import flows, layers, payloads
from conformance.observe.accounting import MAX_SENDERS
from conformance.observe.records import SAMPLE_PACKETS_PER_FLOW, SILENCE_SECONDS, PayloadKind

# Entry slots and flags, read once from their one definition (observe/flows.py).
cdef Py_ssize_t PKTS = flows.PKTS
cdef Py_ssize_t BYTES = flows.BYTES
cdef Py_ssize_t T_LAST = flows.T_LAST
cdef Py_ssize_t N_LAST = flows.N_LAST
cdef Py_ssize_t TCP_FLAGS = flows.TCP_FLAGS
cdef Py_ssize_t SAMPLES = flows.SAMPLES
cdef Py_ssize_t WANT = flows.WANT
cdef Py_ssize_t TCP_OPEN = flows.TCP_OPEN
cdef Py_ssize_t RSTS = flows.RSTS
cdef Py_ssize_t DIRS = flows.DIRS
cdef Py_ssize_t T_FIRST = flows.T_FIRST
cdef Py_ssize_t N_FIRST = flows.N_FIRST
cdef Py_ssize_t ICMP_CODE = flows.ICMP_CODE
cdef Py_ssize_t ISN = flows.ISN
cdef Py_ssize_t CARRIED = flows.CARRIED
cdef Py_ssize_t KIND = flows.KIND
cdef Py_ssize_t PAYLOAD_N = flows.PAYLOAD_N
cdef Py_ssize_t HEAD = flows.HEAD
cdef Py_ssize_t STREAM = flows.STREAM
cdef Py_ssize_t HEAD_BYTES = flows.PAYLOAD_HEAD_BYTES
cdef Py_ssize_t TLS_HEAD_BYTES = flows.TLS_HEAD_BYTES
cdef long SYN_SEEN = flows.SYN_SEEN
cdef long SYNACK_SEEN = flows.SYNACK_SEEN
cdef long TCP_CLOSING = flows.TCP_FIN | flows.TCP_RST
cdef long TCP_FIN_BIT = flows.TCP_FIN
cdef long TCP_RST_BIT = flows.TCP_RST
cdef double REUSE_IDLE_S = flows.TCP_REUSE_IDLE_S
cdef int PROTO_UDP = IPPROTO_UDP
cdef int PROTO_TCP = IPPROTO_TCP
cdef int PROTO_ICMP = IPPROTO_ICMP
cdef int PROTO_ICMPV6 = IPPROTO_ICMPV6
cdef Py_ssize_t SENDERS_MAX = MAX_SENDERS
cdef Py_ssize_t ERRORS = flows.ERRORS
_LAYOUT = {
    "PKTS": E_PKTS, "BYTES": E_BYTES, "T_FIRST": E_T_FIRST, "T_LAST": E_T_LAST,
    "N_FIRST": E_N_FIRST, "N_LAST": E_N_LAST, "TCP_FLAGS": E_TCP_FLAGS, "SAMPLES": E_SAMPLES,
    "WANT": E_WANT, "TCP_OPEN": E_TCP_OPEN, "RSTS": E_RSTS, "DIRS": E_DIRS,
    "ICMP_CODE": E_ICMP_CODE, "KIND": E_KIND, "PAYLOAD_N": E_PAYLOAD_N, "HEAD": E_HEAD,
    "ERRORS": E_ERRORS, "STREAM": E_STREAM, "ISN": E_ISN, "CARRIED": E_CARRIED,
}
if any(getattr(flows, name) != slot for name, slot in _LAYOUT.items()) or len(
    flows.new_entry(0.0, 0, 0)
) != E_SLOTS:
    raise ImportError("observe/flows.py's entry slots differ from _step.pxd's")
if SAMPLE_PACKETS_PER_FLOW != ENTRY_SAMPLES:
    raise ImportError("records.SAMPLE_PACKETS_PER_FLOW differs from _step.pxd's ENTRY_SAMPLES")
_NO_KIND = flows.new_entry(0.0, 0, 0)[KIND]
# An entry keeps its first payload's kind as a place in KINDS (one byte, not a pointer).
KINDS = tuple(PayloadKind)
_KIND_CODES = {kind: code for code, kind in enumerate(KINDS)}
if len(KINDS) > 255 or _NO_KIND not in _KIND_CODES:
    raise ImportError("an entry keeps a PayloadKind in one byte")
cdef uint8_t NO_KIND_CODE = _KIND_CODES[_NO_KIND]


cdef uint8_t _kind_code(object kind) except? 255:
    """KINDS.index(kind), for a PayloadKind; ValueError for anything else."""
    code = _KIND_CODES.get(kind) if type(kind) is PayloadKind else None
    if code is None:  # (a str equal to a member's value would be found: not kept as given)
        raise ValueError(f"an entry's KIND is a PayloadKind, not {kind!r}")
    return <uint8_t>code
_EMPTY = b""


cdef class Rare:
    """What few directions hold (Entry.rare): ICMP errors filed under them, the tunnel that
    carried them, an ISN that is not 4 bytes, a reassembly Stream while one is open, packet
    numbers past 32 bits. A slot for each in every entry cost a web capture's 130k
    directions 2 MiB; a Rare that holds nothing more (its stream closed) is let go."""


# No cycle can run through an entry (it holds numbers, its head's bytes and its Rare part,
# whose ICMP errors, tunnel and reassembly Stream hold numbers, bytes and bytearrays): the
# collector need not visit the web mix's 130k entries, nor keep 16 bytes of each for it.
@cython.no_gc
cdef class Entry:
    """One direction of the flow table, in C: the slots of observe/flows.py `new_entry`, its
    numbers unboxed, its packet numbers and RST count in 32 bits (all in `rare`, in 64,
    once one is past that), its first payload's kind a byte, its SYN's ISN a number, and
    what few directions hold in `rare`, a reassembly stream among them (a list of boxed
    numbers and an array cost a web capture's 100k directions some 550 bytes each; this
    is 128, and 48 fewer for the ISN's bytes of each SYN).

    Python code reads and writes it by slot as it does the list (`e[PKTS] += 1`); SAMPLES
    reads as a tuple, ISN as the 4 bytes (or None), and a packet number is kept with
    `add_sample` (flows.add_sample), never by appending to what SAMPLES gave.
    """

    def __cinit__(self):
        self.kind = NO_KIND_CODE
        self.head = _EMPTY

    def __len__(self):
        return E_SLOTS

    def __getitem__(self, Py_ssize_t slot):
        return entry_item(self, slot)

    def __setitem__(self, Py_ssize_t slot, value):
        cdef Py_ssize_t i
        if slot == E_PKTS:
            self.pkts = value
        elif slot == E_BYTES:
            self.nbytes = value
        elif slot == E_T_FIRST:
            self.t_first = value
        elif slot == E_T_LAST:
            self.t_last = value
        elif slot == E_N_FIRST:
            e_set_num(self, NUM_FIRST, value)
        elif slot == E_N_LAST:
            e_set_num(self, NUM_LAST, value)
        elif slot == E_TCP_FLAGS:
            self.tcp_flags = value
        elif slot == E_SAMPLES:
            kept = tuple(value)
            if len(kept) > ENTRY_SAMPLES:
                raise ValueError(f"an entry keeps at most {ENTRY_SAMPLES} packet numbers")
            self.n_samples = 0
            self.bits &= ~ENTRY_WIDE
            for i in range(len(kept)):
                entry_add(self, kept[i])
        elif slot == E_WANT:
            self.want = value
        elif slot == E_TCP_OPEN:
            self.tcp_open = value
        elif slot == E_RSTS:
            e_set_num(self, NUM_RSTS, value)
        elif slot == E_DIRS:
            self.dirs = value
        elif slot == E_ICMP_CODE:
            self.icmp_code = value
        elif slot == E_KIND:
            self.kind = _kind_code(value)
        elif slot == E_PAYLOAD_N:
            e_set_num(self, NUM_PAYLOAD, value)
        elif slot == E_HEAD:
            self.head = value
        elif slot == E_ERRORS:
            if value is not None or self.rare is not None:
                entry_rare(self).errors = value
        elif slot == E_STREAM:
            e_set_stream(self, value)
        elif slot == E_ISN:
            self.bits &= ~ENTRY_HAS_ISN
            if type(value) is bytes and PyBytes_GET_SIZE(value) == 4:
                entry_set_isn(self, <const uint8_t*>PyBytes_AS_STRING(value))
            elif value is not None or self.rare is not None:
                entry_rare(self).isn = value
        elif slot == E_CARRIED:
            if value is not None or self.rare is not None:
                entry_rare(self).carried = value
        else:
            raise IndexError(f"entry slot {slot} out of range")

    def add_sample(self, long long packet):
        entry_add(self, packet)

    def __repr__(self):
        return f"Entry({[entry_item(self, i) for i in range(E_SLOTS)]!r})"


cdef Rare entry_rare(Entry e):
    """The entry's Rare part, made if it has none."""
    if e.rare is None:
        e.rare = Rare.__new__(Rare)
    return e.rare


cdef int e_set_num(Entry e, int which, long long n) except -1:
    """Entry.nums[which] = n; the first number past 32 bits moves them all to `rare`."""
    cdef Rare rare
    cdef int i
    if not e.bits & ENTRY_WIDE_N:
        if 0 <= n <= 0xFFFFFFFF:
            e.nums[which] = <uint32_t>n
            return 0
        rare = entry_rare(e)
        for i in range(ENTRY_NUMS):
            rare.nums[i] = e.nums[i]
        e.bits |= ENTRY_WIDE_N
    e.rare.nums[which] = n
    return 0


cdef int e_set_stream(Entry e, object stream) except -1:
    """The direction's reassembly state; None closes it (and lets an empty Rare go)."""
    cdef Rare rare = e.rare
    if stream is not None:
        entry_rare(e).stream = stream
    elif rare is not None:
        rare.stream = None
        if (
            rare.errors is None and rare.carried is None and rare.isn is None
            and not e.bits & (ENTRY_WIDE | ENTRY_WIDE_N)
        ):
            e.rare = None
    return 0


cdef bint entry_same_isn(Entry e, const uint8_t* isn) noexcept:
    """Whether the ISN kept is these 4 bytes (`e[ISN] == isn`)."""
    return e.bits & ENTRY_HAS_ISN and e.isn_value == _isn(isn)


cdef void entry_set_isn(Entry e, const uint8_t* isn) noexcept:
    e.isn_value = _isn(isn)
    e.bits |= ENTRY_HAS_ISN
    if e.rare is not None:
        e.rare.isn = None


cdef Py_ssize_t entry_samples(Entry e, long long* into, Py_ssize_t room) noexcept:
    """The first `room` samples into `into`, as 64-bit numbers; how many."""
    cdef Py_ssize_t i, n = e.n_samples
    if n > room:
        n = room
    if e.bits & ENTRY_WIDE:
        memcpy(into, e.rare.wide, n * sizeof(long long))
    else:
        for i in range(n):
            into[i] = e.samples[i]
    return n


cdef object entry_item(Entry e, Py_ssize_t slot):
    """The entry's `slot`, as flows.py's list holds it."""
    cdef long long kept[ENTRY_SAMPLES]
    cdef Py_ssize_t i, n
    if slot == E_PKTS:
        return e.pkts
    elif slot == E_BYTES:
        return e.nbytes
    elif slot == E_T_FIRST:
        return e.t_first
    elif slot == E_T_LAST:
        return e.t_last
    elif slot == E_N_FIRST:
        return e_num(e, NUM_FIRST)
    elif slot == E_N_LAST:
        return e_num(e, NUM_LAST)
    elif slot == E_TCP_FLAGS:
        return e.tcp_flags
    elif slot == E_SAMPLES:
        n = entry_samples(e, kept, ENTRY_SAMPLES)
        return tuple([kept[i] for i in range(n)])
    elif slot == E_WANT:
        return e.want
    elif slot == E_TCP_OPEN:
        return e.tcp_open
    elif slot == E_RSTS:
        return e_num(e, NUM_RSTS)
    elif slot == E_DIRS:
        return e.dirs
    elif slot == E_ICMP_CODE:
        return e.icmp_code
    elif slot == E_KIND:
        return KINDS[e.kind]
    elif slot == E_PAYLOAD_N:
        return e_num(e, NUM_PAYLOAD)
    elif slot == E_HEAD:
        return e.head
    elif slot == E_ERRORS:
        return e.rare.errors if e.rare is not None else None
    elif slot == E_STREAM:
        return e_stream(e)
    elif slot == E_ISN:
        if e.bits & ENTRY_HAS_ISN:
            return _isn_bytes(e.isn_value)
        return e.rare.isn if e.rare is not None else None
    elif slot == E_CARRIED:
        return e.rare.carried if e.rare is not None else None
    raise IndexError(f"entry slot {slot} out of range")


cdef int entry_add(Entry e, long long packet) except -1:
    """Keep `packet` among the first ENTRY_SAMPLES packet numbers (flows.add_sample)."""
    cdef Py_ssize_t i
    cdef Rare rare
    if e.n_samples >= ENTRY_SAMPLES:
        return 0
    if not e.bits & ENTRY_WIDE and 0 <= packet <= 0xFFFFFFFF:
        e.samples[e.n_samples] = <uint32_t>packet
    else:
        rare = entry_rare(e)
        if not e.bits & ENTRY_WIDE:
            for i in range(e.n_samples):
                rare.wide[i] = e.samples[i]
            e.bits |= ENTRY_WIDE
        rare.wide[e.n_samples] = packet
    e.n_samples += 1
    return 0


cdef inline uint32_t _isn(const uint8_t* isn) noexcept:
    return (<uint32_t>isn[0] << 24) | (<uint32_t>isn[1] << 16) | (<uint32_t>isn[2] << 8) | isn[3]


cdef bytes _isn_bytes(uint32_t value):
    cdef uint8_t raw[4]
    raw[0] = value >> 24
    raw[1] = (value >> 16) & 0xFF
    raw[2] = (value >> 8) & 0xFF
    raw[3] = value & 0xFF
    return PyBytes_FromStringAndSize(<const char*>raw, 4)


cdef bytes _reverse_key(bytes key):
    """flows.reverse_key."""
    cdef const uint8_t* k = <const uint8_t*>PyBytes_AS_STRING(key)
    cdef Py_ssize_t size = PyBytes_GET_SIZE(key)
    cdef Py_ssize_t half = (size - 4) // 2
    cdef uint8_t raw[36]
    if size != 12 and size != 36:
        return flows.reverse_key(key)
    memcpy(raw, k + half, half)
    memcpy(raw + half, k, half)
    memcpy(raw + 2 * half, k + 2 * half + 2, 2)
    memcpy(raw + 2 * half + 2, k + 2 * half, 2)
    return PyBytes_FromStringAndSize(<const char*>raw, size)


cdef inline Entry _new_entry(double time, long long packet, int want):
    """flows.new_entry, compiled."""
    cdef Entry e = Entry.__new__(Entry)
    e.t_first = e.t_last = time
    e_set_num(e, NUM_FIRST, packet)
    e_set_num(e, NUM_LAST, packet)
    e.want = want
    return e


def new_entry(double time, long long packet, int want):
    """flows.new_entry's compiled entry (FlowTable.new_entry where the compiled step runs)."""
    return _new_entry(time, packet, want)

# payloads.initial_want, compiled: what each port asks of a new direction's payloads.
cdef enum:
    _PORT_DNS = 1
    _PORT_TUNNEL = 2
    _PORT_NBNS = 4
    _PORT_SSDP = 8
cdef uint8_t _PORT_FLAGS[65536]
for _port in payloads.DNS_PORTS:
    _PORT_FLAGS[_port] |= _PORT_DNS
for _port in TUNNEL_UDP_PORTS:
    _PORT_FLAGS[_port] |= _PORT_TUNNEL
_PORT_FLAGS[payloads.NBNS_PORT] |= _PORT_NBNS
_PORT_FLAGS[payloads.SSDP_PORT] |= _PORT_SSDP
cdef long W_FIRST = payloads.W_FIRST
cdef long W_DNS = payloads.W_DNS
cdef long W_NBNS = payloads.W_NBNS
cdef long W_SSDP = payloads.W_SSDP
cdef long W_TUNNEL = payloads.W_TUNNEL
cdef long W_HTTP = payloads.W_HTTP
cdef long W_SEARCH = payloads.W_SEARCH
_STREAM = payloads.Stream


cdef Py_ssize_t _one_record_need(const uint8_t* p, Py_ssize_t size) noexcept:
    """tls.client_hello_length of a payload starting with one handshake record that holds the
    whole ClientHello (tls._one_record_length's usual case), else -1."""
    cdef long version, length, need
    if size < 9 or p[0] != 22:
        return -1
    version = (p[1] << 8) | p[2]
    length = (p[3] << 8) | p[4]
    if not (0x0300 <= version <= 0x0304 and 4 <= length <= PLAINTEXT_RECORD_MAX) or p[5] != 1:
        return -1
    need = 4 + ((p[6] << 16) | (p[7] << 8) | p[8])
    return 5 + need if need <= length else -1


cdef inline bint _first_wanted(long want) noexcept:
    """WANT as `_known_first` takes it: the first payload, maybe with a hello search."""
    return want == W_FIRST or want == (W_FIRST | W_SEARCH)


cdef inline bint _hello_wanted(long want) noexcept:
    """Whether `_usual_hello` may read a TCP payload of a direction wanting `want`: its first
    payload, or the next ones of a tunnel (after CONNECT) looking for its hello."""
    return want == W_FIRST or want == W_SEARCH or want == (W_HTTP | W_SEARCH)
cdef long TLS_RECORD_MAX = MAX_TLS_RECORD
cdef Py_ssize_t FIRST_MEMO_BYTES = payloads.FIRST_PAYLOAD_MEMO_BYTES
cdef Py_ssize_t FIRST_CACHE = payloads.FIRST_PAYLOAD_CACHE


cdef object _shared_head(dict values, bytes head):
    """payloads.shared_head."""
    cdef PyObject* found = PyDict_GetItem(values, head)
    if found != NULL:
        return <object>found
    if PyDict_Size(values) >= FIRST_CACHE:
        values.clear()
    values[head] = head
    return head
_KIND_TLS = payloads._KIND_TLS
cdef uint8_t KIND_TLS_CODE = _KIND_CODES[_KIND_TLS]
_KIND_HTTP = payloads._KIND_HTTP
_KIND_OTHER = payloads._KIND_OTHER
_COUNTED_AGAIN = payloads.counted_again
_HTTP_REQUEST = payloads._HTTP_REQUEST
_CONNECT = "CONNECT"
cdef long SEARCH_SEGMENTS = payloads.MAX_SEARCH_SEGMENTS
cdef long HELLO_BYTES_MAX = payloads.MAX_HELLO_BYTES
cdef long HELLO_SEGMENTS_MAX = payloads.MAX_HELLO_SEGMENTS
cdef long PLAINTEXT_RECORD_MAX = MAX_PLAINTEXT_RECORD
cdef long W_HELLO = payloads.W_HELLO
_HELLO_CLIENT = payloads._CLIENT
_ECH_NONE = payloads._ECH_NONE


cdef long _initial_want(int proto, const uint8_t* ports):
    """payloads.initial_want for a TCP or UDP direction whose ports are at `ports`."""
    cdef uint8_t source = _PORT_FLAGS[(ports[0] << 8) | ports[1]]
    cdef uint8_t dest = _PORT_FLAGS[(ports[2] << 8) | ports[3]]
    cdef long want = W_FIRST
    if proto == PROTO_UDP and dest & _PORT_TUNNEL:
        return want | W_TUNNEL
    if (source | dest) & _PORT_DNS:
        want |= W_DNS
    if proto == PROTO_UDP:
        if (source | dest) & _PORT_NBNS:
            want |= W_NBNS
        if (source | dest) & _PORT_SSDP:
            want |= W_SSDP
    return want
cdef int ETHERNET = LINKTYPE_ETHERNET
cdef int IPV4 = ETHERTYPE_IPV4
cdef int IPV6 = ETHERTYPE_IPV6

cdef enum:
    _ETH = 14
    _IPV4_FAST_L4 = 34  # Ethernet + IPv4 without options
    _IPV6_FAST_L4 = 54  # Ethernet + IPv6 without extension headers
    _UDP_HEADER = 8
    _TCP_FLAGS_END = 14
    _FRAG_MASK = 0x3FFF
    _PLAIN = 52  # 20 + ingest._PLAIN_TCP_HEADER


def initial_want(int proto, bytes key):
    """`_initial_want` of a TCP or UDP direction key, callable from Python (tests compare it
    with payloads.initial_want)."""
    if proto != PROTO_TCP and proto != PROTO_UDP or len(key) < 4:
        raise ValueError("a TCP or UDP direction key")
    return _initial_want(proto, <const uint8_t*>PyBytes_AS_STRING(key) + len(key) - 4)


cdef int LINK_NULL = LINKTYPE_NULL
cdef int LINK_LOOP = LINKTYPE_LOOP
cdef int LINK_SLL = LINKTYPE_LINUX_SLL
cdef int LINK_SLL2 = LINKTYPE_LINUX_SLL2
cdef int LINK_IPV4 = LINKTYPE_IPV4
cdef int LINK_IPV6 = LINKTYPE_IPV6
cdef int LINK_RAW = LINKTYPE_RAW
cdef int LINK_RAW12 = LINKTYPE_RAW_DLT12
cdef int LINK_RAW14 = LINKTYPE_RAW_DLT14
cdef int VLAN_TAGS = MAX_VLAN_TAGS


cdef inline bint _vlan(long ethertype):
    return ethertype == 0x8100 or ethertype == 0x88A8 or ethertype == 0x9100 or ethertype == 0x9200


cdef inline uint32_t _fold(const uint8_t* p, int words):
    cdef uint32_t folded = 0
    cdef int i
    for i in range(words):
        folded ^= (
            (<uint32_t>p[4 * i] << 24) | (<uint32_t>p[4 * i + 1] << 16)
            | (<uint32_t>p[4 * i + 2] << 8) | p[4 * i + 3]
        )
    return folded


cdef int _first_ip(const uint8_t* f, Py_ssize_t cap, int lt):
    """frame_owner._first_ip: offset from f, or -1."""
    cdef Py_ssize_t at
    cdef long ethertype
    cdef int tags = 0
    if lt == ETHERNET:
        at = 14
        if at > cap:
            return -1
        ethertype = (f[12] << 8) | f[13]
        while _vlan(ethertype) and tags < VLAN_TAGS and at + 4 <= cap:
            ethertype = (f[at + 2] << 8) | f[at + 3]
            at += 4
            tags += 1
        if ethertype != IPV4 and ethertype != IPV6:
            return -1
    elif lt == LINK_RAW or lt == LINK_RAW12 or lt == LINK_RAW14 or lt == LINK_IPV4 or lt == LINK_IPV6:
        at = 0
    elif lt == LINK_NULL or lt == LINK_LOOP:
        at = 4
    elif lt == LINK_SLL:
        at = 16
    elif lt == LINK_SLL2:
        at = 20
    else:
        return -1
    return at if at < cap else -1


cdef inline uint32_t _ports(const uint8_t* p):
    return (((<uint32_t>p[0] << 8) | p[1]) ^ ((<uint32_t>p[2] << 8) | p[3])) << 16


cdef uint32_t _key(const uint8_t* f, Py_ssize_t at, Py_ssize_t cap):
    """frame_owner._key."""
    cdef uint32_t folded
    cdef Py_ssize_t tcp
    if f[at] >> 4 == 4:
        folded = _fold(f + at + 12, 1) ^ _fold(f + at + 16, 1)
        tcp = at + (f[at] & 0x0F) * 4
        if f[at + 9] == 6 and not (((f[at + 6] << 8) | f[at + 7]) & 0x3FFF) and tcp + 4 <= cap:
            folded ^= _ports(f + tcp)
        return folded
    folded = _fold(f + at + 8, 4) ^ _fold(f + at + 24, 4)
    tcp = at + 40
    if f[at + 6] == 6 and tcp + 4 <= cap:
        folded ^= _ports(f + tcp)
    return folded


cdef int frame_owner_c(const uint8_t* f, Py_ssize_t cap, int lt, int parts):
    """observe/frame_owner.py `frame_owner`, on the frame at f."""
    cdef Py_ssize_t at, icmp, quoted
    cdef int version, slot
    cdef uint32_t key
    if parts <= 1:
        return 0
    at = _first_ip(f, cap, lt)
    if at < 0:
        return 0
    version = f[at] >> 4
    if version == 4:
        if at + 20 > cap:
            return 0
        if f[at + 9] == 1 and not (((f[at + 6] << 8) | f[at + 7]) & 0x1FFF):
            icmp = at + (f[at] & 0x0F) * 4
            quoted = icmp + 8
            if quoted + 20 <= cap and (
                f[icmp] == 3 or f[icmp] == 4 or f[icmp] == 5 or f[icmp] == 11 or f[icmp] == 12
            ) and f[quoted] >> 4 == 4:
                at = quoted
    elif version == 6:
        if at + 40 > cap:
            return 0
        icmp = at + 40
        quoted = icmp + 8
        if f[at + 6] == 58 and quoted + 40 <= cap and f[icmp] < 128 and f[quoted] >> 4 == 6:
            at = quoted
    else:
        return 0
    key = _key(f, at, cap)
    slot = <int>((((<unsigned long long>key * 2654435761ULL) & 0xFFFFFFFFULL) >> 16) % (2 * parts - 1))
    return (slot + 1) // 2


def frame_owner(bytes buf, Py_ssize_t off, Py_ssize_t cap, int lt, int parts):
    """The compiled frame_owner, callable from Python (tests compare it with the Python one)."""
    if off < 0 or cap < 0 or off + cap > len(buf):
        raise ValueError("frame outside the buffer")
    return frame_owner_c(<const uint8_t*>PyBytes_AS_STRING(buf) + off, cap, lt, parts)


cdef inline void _tcp_control(Entry e, long flags):
    """flows.tcp_control, inline."""
    if flags & 2:
        e.tcp_open |= SYNACK_SEEN if flags & 16 else SYN_SEEN
    if flags & 4:
        e_set_num(e, NUM_RSTS, e_num(e, NUM_RSTS) + 1)


cdef Py_ssize_t _options_end(const uint8_t* f, Py_ssize_t pos, Py_ssize_t end) noexcept:
    """decode/tcp.py `tcp_options_end` on f[pos:end]."""
    cdef Py_ssize_t at
    while pos < end:
        if f[pos] == 0:  # end of list: the rest must be zero padding
            for at in range(pos + 1, end):
                if f[at]:
                    return pos
            return end
        if f[pos] == 1:
            pos += 1
            continue
        if pos + 1 >= end or f[pos + 1] < 2 or pos + f[pos + 1] > end:
            return pos
        pos += f[pos + 1]
    return end


cdef inline bint _nothing_to_read(const uint8_t* f, Py_ssize_t l4, Py_ssize_t stop) noexcept:
    """Whether PayloadInspector.inspect would read nothing of the TCP segment at f[l4:stop]:
    its data offset is sound (at least the fixed header, options that parse up to it, as
    inspect tests it) and ends where the bytes do. A SYN's options sent every new connection
    to Python for nothing."""
    cdef Py_ssize_t start = l4 + (f[l4 + 12] >> 4) * 4
    if start != stop or start < l4 + 20:
        return False
    return start == l4 + 20 or _options_end(f, l4 + 20, start) == start


cdef enum:
    _SLOTS = 32768  # cached directions (a power of two): ~2 MiB, whatever the capture holds
    _SLOT_MASK = _SLOTS - 1


cdef struct Slot:
    PyObject* e  # the direction's Entry (a strong reference); NULL: the slot is empty
    uint8_t proto
    uint8_t key[12]


cdef inline uint32_t _slot_of(const uint8_t* k, int proto):
    cdef uint32_t a = (<uint32_t>k[0] << 24) | (<uint32_t>k[1] << 16) | (<uint32_t>k[2] << 8) | k[3]
    cdef uint32_t b = (<uint32_t>k[4] << 24) | (<uint32_t>k[5] << 16) | (<uint32_t>k[6] << 8) | k[7]
    cdef uint32_t c = (<uint32_t>k[8] << 24) | (<uint32_t>k[9] << 16) | (<uint32_t>k[10] << 8) | k[11]
    cdef uint32_t h = a * 0x9E3779B1u ^ b * 0x85EBCA77u ^ c * 0xC2B2AE3Du ^ <uint32_t>proto
    return (h ^ (h >> 15)) & _SLOT_MASK


cdef enum:
    _SPILLED_BITS = 1 << 22  # FastStep.spilled: a bit per hash of a spilled connection


cdef uint32_t _pair_bit(const uint8_t* k, Py_ssize_t size) noexcept:
    """A bit for the connection of direction key `k` (12 or 36 bytes), the same from either
    direction: FNV-1a of the addresses and ports, each pair combined in an order-free way."""
    cdef Py_ssize_t half = (size - 4) // 2, i
    cdef uint64_t a = 0xCBF29CE484222325ULL, b = 0xCBF29CE484222325ULL
    for i in range(half):
        a = (a ^ k[i]) * 0x100000001B3ULL
        b = (b ^ k[half + i]) * 0x100000001B3ULL
    a = (a ^ k[2 * half]) * 0x100000001B3ULL
    a = (a ^ k[2 * half + 1]) * 0x100000001B3ULL
    b = (b ^ k[2 * half + 2]) * 0x100000001B3ULL
    b = (b ^ k[2 * half + 3]) * 0x100000001B3ULL
    a = (a ^ b) + (a & b) * 0x9E3779B97F4A7C15ULL  # symmetric in the two ends
    return <uint32_t>((a ^ (a >> 31)) & (_SPILLED_BITS - 1))


cdef int _add_ref(
    bytearray packed, int proto, bytes key, object refs, Py_ssize_t flush_at
) except -1:
    """flows.FlowRefs.add, in place: protocol (2 bytes, little end), key size, key; past
    `flush_at` bytes (flows.REFS_FLUSH_BYTES), `refs` (the FlowRefs whose `packed` it is)
    writes them to its file."""
    cdef Py_ssize_t at = PyByteArray_GET_SIZE(packed), size = PyBytes_GET_SIZE(key)
    cdef char* out
    PyByteArray_Resize(packed, at + 3 + size)
    out = PyByteArray_AS_STRING(packed) + at
    out[0] = <char>(proto & 0xFF)
    out[1] = <char>((proto >> 8) & 0xFF)
    out[2] = <char>size
    memcpy(out + 3, PyBytes_AS_STRING(key), size)
    if at + 3 + size >= flush_at:
        refs.flush()
    return 0


cdef class FastStep(CStep):
    """The per-packet step of one `CaptureIngest`, compiled."""

    cdef dict udp
    cdef dict tcp
    cdef dict tables
    cdef object flow_table  # the FlowTable
    cdef object want  # FlowTable._want: a new direction's payload inspection
    cdef bint want_compiled  # it is payloads.initial_want: `_initial_want` answers for it
    cdef object syn
    cdef bint syn_compiled  # FlowTable.syn is flows.py's own: `_syn` takes its steps
    cdef dict generations  # FlowTable._generations: a TCP 5-tuple's retired connections
    cdef object inspect
    cdef object slow
    # The usual first payload of a TLS direction (`_usual_hello`): what the inspector's
    # steps for it use, read once.
    cdef object quick_hello  # payloads.quick_hello (the compiled one where it is built)
    cdef object capture
    cdef object client_hello  # payloads._CLIENT_HELLO, _SERVER_HELLO: the record makers
    cdef object server_hello
    cdef object client_hellos  # PayloadInspector.client_hellos (a RecordStore), client_refs, ...
    cdef bytearray client_refs  # flows.FlowRefs.packed of the client, server hellos (_add_ref)
    cdef object client_ref_owner  # ... and the FlowRefs themselves (their `flush`)
    cdef object server_ref_owner
    cdef Py_ssize_t refs_flush  # flows.REFS_FLUSH_BYTES, read once
    cdef object server_hellos
    cdef bytearray server_refs
    cdef dict hello_ints  # PayloadInspector._ints, _strs: one object per distinct list
    cdef dict hello_strs
    cdef dict kinds  # PayloadInspector._kinds, _heads: first payloads' kinds and heads known
    cdef dict heads
    cdef dict head_values  # PayloadInspector._head_values: one object per head kept
    cdef dict http  # PayloadInspector._http: the requests seen, by connection and head
    cdef object time_step
    cdef double low
    cdef double high
    cdef double silence
    cdef int part
    cdef int parts
    cdef public long long skipped
    cdef Slot* slots
    cdef list retired  # FlowTable._retired: it grows when a SYN retires a direction pair
    cdef Py_ssize_t retired_seen
    # Closed connections leave the table for the spill (observe/_spill.pyx), looked for
    # every `sweep_every` packets among those silent for `sweep_quiet`; None: they stay.
    cdef object spill
    cdef object spill_module  # observe/_spill.pyx, when connections may be spilled at all
    cdef Py_ssize_t sweep_from  # TCP directions in the table before the first sweep
    cdef uint8_t* spilled  # a bit set per connection spilled (never cleared): when its bit
    # is clear, a direction not in the table is not in the spill either (no call to ask)
    cdef long long next_sweep
    cdef long long sweep_every
    cdef long long sweep_quiet
    # The general path's quick settling (layers.LayerWalker._quick), compiled:
    cdef object acc  # the capture's Accounting
    cdef object link_control  # acc.link_control
    cdef set senders  # acc.senders (FlowTable.senders is the same set)
    cdef object table_entry  # FlowTable.entry
    cdef dict link_kinds  # decode.link.LINK_CONTROL_ETHERTYPES
    # ICMP (index type) and ICMPv6 (256 + type): the counterpart type, or -1 for none,
    # and whether the message is an error quoting another packet (decode/icmp.py).
    cdef short counterpart[512]
    cdef uint8_t icmp_error[512]

    def __cinit__(self, ingest):
        self.slots = <Slot*>calloc(_SLOTS, sizeof(Slot))
        if self.slots == NULL:
            raise MemoryError()
        self.spilled = NULL

    def __dealloc__(self):
        if self.slots != NULL:
            self._drop_all()
            free(self.slots)
        free(self.spilled)

    def __init__(self, ingest):
        cdef int t
        table = ingest.table
        self.tables = table.tables
        self.udp = table.tables[IPPROTO_UDP]
        self.tcp = table.tables[IPPROTO_TCP]
        self.flow_table = table
        self.want = table._want
        self.want_compiled = self.want is payloads.initial_want
        table.new_entry = new_entry  # every direction, made here or by flows.py, is an Entry
        self.syn = table.syn
        self.syn_compiled = getattr(self.syn, "__func__", None) is flows.FlowTable.syn
        self.generations = table._generations
        inspector = ingest.inspector
        self.inspect = inspector.inspect
        self.quick_hello = payloads.quick_hello
        self.capture = inspector.capture
        self.client_hello = payloads._CLIENT_HELLO
        self.server_hello = payloads._SERVER_HELLO
        self.client_hellos = inspector.client_hellos
        self.client_refs = inspector.client_refs.packed
        self.client_ref_owner = inspector.client_refs
        self.server_ref_owner = inspector.server_refs
        self.refs_flush = flows.REFS_FLUSH_BYTES
        self.server_hellos = inspector.server_hellos
        self.server_refs = inspector.server_refs.packed
        self.hello_ints = inspector._ints
        self.hello_strs = inspector._strs
        self.kinds = inspector._kinds
        self.heads = inspector._heads
        self.head_values = inspector._head_values
        self.http = inspector._http
        self.slow = ingest.walker.frame
        timeline = ingest.timeline
        self.time_step = timeline.step
        self.low = timeline.low
        self.high = timeline.high
        self.silence = SILENCE_SECONDS
        self.part = ingest.part
        self.parts = ingest.parts
        self.skipped = 0
        self.retired = table._retired
        self.retired_seen = len(self.retired)
        self.spill = None  # made at the first sweep that finds the table large enough
        self.spill_module = None
        self.sweep_every = flows.SPILL_SWEEP_PACKETS
        self.sweep_quiet = flows.SPILL_QUIET_PACKETS
        self.sweep_from = flows.SPILL_FROM_DIRECTIONS
        self.next_sweep = self.sweep_every
        if self.sweep_every > 0 and self.syn_compiled:
            from conformance.observe.ingest import COMPILED_SPILL

            self.spill_module = COMPILED_SPILL
        if self.spill_module is None:
            self.next_sweep = 0x7FFFFFFFFFFFFFFF  # never
        self.acc = ingest.accounting
        self.link_control = self.acc.link_control
        self.senders = self.acc.senders
        self.table_entry = table.entry
        self.link_kinds = LINK_CONTROL_ETHERTYPES
        for t in range(256):
            self.counterpart[t] = ICMP_COUNTERPART.get(t, -1)
            self.counterpart[256 + t] = ICMPV6_COUNTERPART.get(t, -1)
            self.icmp_error[t] = t in ICMP_ERRORS
            self.icmp_error[256 + t] = t in ICMPV6_ERRORS

    def close(self):
        """Let go of every cached entry (the walk is over: the flow table releases its
        entries as it builds flows)."""
        self._drop_all()

    cdef void _drop_all(self) noexcept:
        cdef Py_ssize_t i
        for i in range(_SLOTS):
            if self.slots[i].e != NULL:
                Py_DECREF(<object>self.slots[i].e)
                self.slots[i].e = NULL

    cdef int _after_python(self) except -1:
        """Python code may have retired directions: the cache lets go of their entries."""
        cdef Py_ssize_t size = PyList_GET_SIZE(self.retired)
        cdef Py_ssize_t i
        cdef const uint8_t* k
        cdef uint8_t back[12]
        if size == self.retired_seen:
            return 0
        if size < self.retired_seen:  # not a list that only grows: trust no cached entry
            self._drop_all()
        else:
            # A retired pair's keys now name fresh entries (or none): let go of the old ones.
            for i in range(self.retired_seen, size):
                key = (<tuple>PyList_GET_ITEM(self.retired, i))[0]
                if len(<bytes>key) != 12:  # IPv6: never cached
                    continue
                k = <const uint8_t*>PyBytes_AS_STRING(key)
                memcpy(back, k + 4, 4)
                memcpy(back + 4, k, 4)
                memcpy(back + 8, k + 10, 2)
                memcpy(back + 10, k + 8, 2)
                self._forget(k)
                self._forget(back)
        self.retired_seen = size
        return 0

    cdef int _forget(self, const uint8_t* k) except -1:
        """Drop the cached TCP entry of direction key `k`, if cached."""
        cdef Slot* s = &self.slots[_slot_of(k, PROTO_TCP)]
        if s.e != NULL and s.proto == PROTO_TCP and memcmp(s.key, k, 12) == 0:
            Py_DECREF(<object>s.e)
            s.e = NULL
        return 0

    cdef Entry _entry(
        self, dict table, int proto, bytes key, const uint8_t* f, double ts, long long n
    ):
        """The entry of direction `key` (src, dst, ports as in the frame `f`), created if new."""
        cdef PyObject* found = PyDict_GetItem(table, key)
        if found != NULL:
            return <Entry?>found
        if self.spill is not None and proto == PROTO_TCP and self._maybe_spilled(key):
            if self.spill.reload(table, key):  # its connection is back from the spill
                found = PyDict_GetItem(table, key)
                if found != NULL:
                    return <Entry?>found
        return self._new_direction(table, proto, key, f, ts, n)

    cdef bint _maybe_spilled(self, bytes key) noexcept:
        cdef uint32_t bit = _pair_bit(<const uint8_t*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
        return (self.spilled[bit >> 3] >> (bit & 7)) & 1

    cdef void _mark_spilled(self, bytes key) noexcept:
        cdef uint32_t bit = _pair_bit(<const uint8_t*>PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key))
        self.spilled[bit >> 3] |= <uint8_t>(1 << (bit & 7))

    cdef int _sweep(self, long long n) except -1:
        """Move the TCP connections that ended (FIN both ways, or a RST) and were silent
        for `sweep_quiet` packets from the table to the spill (observe/_spill.pyx)."""
        cdef long long quiet = n - self.sweep_quiet
        cdef Entry e, other
        cdef PyObject* found
        cdef long both, ended
        cdef Py_ssize_t at
        cdef bytes key, rkey
        self.next_sweep = n + self.sweep_every
        if self.spill is None:
            if PyDict_Size(self.tcp) < self.sweep_from:
                return 0
            try:
                spill = self.spill_module.Spill()
            except OSError:  # no scratch file to be had: every connection stays here
                self.next_sweep = 0x7FFFFFFFFFFFFFFF
                return 0
            self.spilled = <uint8_t*>calloc(_SPILLED_BITS // 8, 1)
            if self.spilled == NULL:
                raise MemoryError()
            self.spill = self.flow_table.spill = spill
        # Four items a connection: its key, the reverse, their entries (the other may be None).
        victims = []
        ended = TCP_FIN_BIT | TCP_RST_BIT
        for key, value in self.tcp.items():
            e = <Entry>value
            # A connection ends with a FIN or a RST in one of its directions: one without
            # either is left to its other direction to look at (no reverse key made here).
            # (no `rare`: its numbers are its own, 32 bits: `e_num` is not needed)
            if e.rare is not None or not (e.tcp_flags & ended) or e.nums[NUM_LAST] > quiet:
                continue
            rkey = _reverse_key(key)
            found = PyDict_GetItem(self.tcp, rkey) if rkey != key else NULL
            if found == NULL:  # one direction only: ended by a RST it sent
                if e.tcp_flags & TCP_RST_BIT:
                    victims.extend((key, rkey, e, None))
                continue
            other = <Entry>found
            if key > rkey and other.tcp_flags & ended:
                continue  # the other direction looks at the pair: it has the smaller key
            if other.rare is not None or other.nums[NUM_LAST] > quiet:
                continue
            both = e.tcp_flags & other.tcp_flags
            if (e.tcp_flags | other.tcp_flags) & TCP_RST_BIT or both & TCP_FIN_BIT:
                victims.extend((key, rkey, e, other))
        for at in range(0, PyList_GET_SIZE(victims), 4):
            key = <bytes>PyList_GET_ITEM(victims, at)
            rkey = <bytes>PyList_GET_ITEM(victims, at + 1)
            e_object = <object>PyList_GET_ITEM(victims, at + 2)
            other_object = <object>PyList_GET_ITEM(victims, at + 3)
            if key < rkey:
                self.spill.put(key, e_object, other_object)
            else:
                self.spill.put(rkey, other_object, e_object)
            self._mark_spilled(key)
            del self.tcp[key]
            if other_object is not None:
                del self.tcp[rkey]
        if PyList_GET_SIZE(victims):
            # The cache holds some of them: it lets go of everything (one pass over its
            # slots, where forgetting each victim's two was a cache miss each).
            self._drop_all()
        if PyList_GET_SIZE(self.retired):
            self._spill_retired()
        return 0

    cdef int _spill_retired(self) except -1:
        """Connections a SYN retired (FlowTable._retired: their 5-tuple names another now)
        go to the spill too, for good: no packet can come back to them."""
        self._after_python()  # the cache lets go of what it held of them first
        kept = []
        for item in self.retired:
            key, e, other = item
            if (<Entry>e).rare is None and (other is None or (<Entry>other).rare is None):
                self.spill.put(key, e, other, True)
            else:
                kept.append(item)
        self.retired[:] = kept  # in place: FlowTable holds this list
        self.retired_seen = len(kept)
        return 0

    cdef Entry _syn(
        self, dict table, bytes key, Entry e, double ts, long long n, const uint8_t* isn,
        const uint8_t* f,
    ):
        """FlowTable.syn for a direction that has packets, compiled: the same steps (a change
        to one is made to the other). `f`: the Ethernet frame of the SYN."""
        cdef Entry other = None
        cdef PyObject* found
        cdef double last
        cdef bint answered, idle, same
        if not self.syn_compiled:  # another syn (a subclass, a test's): it decides
            try:
                return <Entry?>self.syn(
                    key, e, ts, n, PyBytes_FromStringAndSize(<const char*>isn, 4)
                )
            finally:
                self._after_python()
        rkey = _reverse_key(key)
        if rkey != key:
            found = PyDict_GetItem(table, rkey)
            if found != NULL:
                other = <Entry?>found
        answered = other is not None and (other.tcp_open & SYNACK_SEEN) != 0
        last = e.t_last
        if other is not None and other.t_last > last:  # max(e[T_LAST], other[T_LAST])
            last = other.t_last
        idle = ts - last > REUSE_IDLE_S
        same = entry_same_isn(e, isn)
        if same and not answered and not idle:
            return e
        if not (
            (e.tcp_flags | (other.tcp_flags if other is not None else 0)) & TCP_CLOSING
            or idle
            or (answered and not same)
        ):
            entry_set_isn(e, isn)  # e.g. another SYN before any answer: still the same attempt
            return e
        del table[key]
        if other is not None:
            del table[rkey]
        self.retired.append((key, e, other))
        ref_key = key if key <= rkey else rkey  # flows.flow_ref's key: the dict's key
        generations = self.generations
        generations[ref_key] = generations.get(ref_key, 0) + 1
        fresh = self._new_direction(table, PROTO_TCP, key, f, ts, n, False)
        entry_set_isn(fresh, isn)
        self._after_python()  # the cache lets go of the retired pair's entries
        return fresh

    cdef Entry _new_direction(
        self,
        dict table,
        int proto,
        bytes key,
        const uint8_t* f,
        double ts,
        long long n,
        bint learn=True,
    ):
        """FlowTable.new_direction for a direction of an Ethernet frame `f`, compiled; with
        `learn` false its source MAC is not learned (as FlowTable.syn makes a fresh entry)."""
        cdef const uint8_t* k = <const uint8_t*>PyBytes_AS_STRING(key)
        cdef Py_ssize_t half = (len(key) - 4) // 2
        cdef uint8_t raw[42]
        cdef Entry e
        memcpy(raw, k + half, half)  # the reverse direction's key
        memcpy(raw + half, k, half)
        memcpy(raw + 2 * half, k + 2 * half + 2, 2)
        memcpy(raw + 2 * half + 2, k + 2 * half, 2)
        ft = self.flow_table
        if PyDict_GetItem(table, PyBytes_FromStringAndSize(<const char*>raw, 2 * half + 4)) == NULL:
            ft.flows += 1
        if self.want_compiled:
            e = _new_entry(ts, n, _initial_want(proto, k + 2 * half))
        else:
            e = _new_entry(ts, n, self.want(proto, key))
        table[key] = e
        carried = ft.carried
        if carried is not None:
            entry_rare(e).carried = carried
        senders = ft.senders
        if learn and len(senders) < ft.max_senders:
            memcpy(raw, f + 6, 6)  # the source MAC, then the source address
            memcpy(raw + 6, k, half)
            senders.add(PyBytes_FromStringAndSize(<const char*>raw, 6 + half))
        return e

    cdef Slot* _slot(
        self, dict table, int proto, const uint8_t* f, double ts, long long n
    ) except NULL:
        """The cached entry of the IPv4 direction keyed by f[26:38], created if new."""
        cdef const uint8_t* k = f + 26
        cdef Slot* s = &self.slots[_slot_of(k, proto)]
        if s.e != NULL and s.proto == proto and memcmp(s.key, k, 12) == 0:
            return s
        if s.e != NULL:
            Py_DECREF(<object>s.e)
            s.e = NULL
        e = self._entry(table, proto, PyBytes_FromStringAndSize(<const char*>k, 12), f, ts, n)
        Py_INCREF(e)
        s.e = <PyObject*>e
        s.proto = proto
        memcpy(s.key, k, 12)
        return s

    cdef int _slow(
        self, double ts, bytes buf, Py_ssize_t off, Py_ssize_t cap, int lt, int dirf, long long n
    ) except -1:
        try:
            self.slow(ts, buf, off, cap, lt, dirf, n)
        finally:
            self._after_python()
        return 0

    cdef int _general(
        self, double ts, bytes buf, Py_ssize_t off, Py_ssize_t cap, int dirf, long long n
    ) except -1:
        """An Ethernet frame the hot path does not take: settled here when `_quick` can,
        else by the general path (which tries layers.LayerWalker._quick itself first)."""
        if self._quick(ts, buf, off, cap, dirf, n):
            return 0
        return self._slow(ts, buf, off, cap, ETHERNET, dirf, n)

    cdef int _quick(
        self, double ts, bytes buf, Py_ssize_t off, Py_ssize_t cap, int dirf, long long n
    ) except -1:
        """layers.LayerWalker._quick, compiled: 1 when the frame is settled, 0 when it takes
        the general path. The same checks in the same order (a frame it declines goes on to
        the Python one), the same effects on the accounting and the ICMP entries.

        Only a new ICMP direction runs Python code (FlowTable.entry), and it is wrapped.
        """
        cdef const uint8_t* f = <const uint8_t*>PyBytes_AS_STRING(buf) + off
        cdef Py_ssize_t l3 = _ETH
        cdef Py_ssize_t l4, at
        cdef long ethertype, length
        cdef int proto, half, v6, icmp_type, code, dport
        cdef PyObject* found
        cdef uint8_t raw[36]
        cdef Entry e
        if cap < _ETH or not layers.QUICK_FRAMES:
            return 0
        ethertype = (f[12] << 8) | f[13]
        if ethertype == IPV4:
            if cap - l3 < 24 or f[l3] != 0x45 or f[l3 + 9] != PROTO_ICMP:
                return 0
            if ((f[l3 + 6] << 8) | f[l3 + 7]) & _FRAG_MASK:
                return 0
            length = (f[l3 + 2] << 8) | f[l3 + 3]
            if length < 24:  # 0 (offload) and lengths that lie take the walk
                return 0
            proto, l4, half, v6 = PROTO_ICMP, l3 + 20, 4, 0
        elif ethertype == IPV6:
            if cap - l3 < 44 or f[l3] >> 4 != 6 or f[l3 + 6] != PROTO_ICMPV6:
                return 0
            length = 40 + ((f[l3 + 4] << 8) | f[l3 + 5])  # a jumbogram's 0 fails below
            proto, l4, half, v6 = PROTO_ICMPV6, l3 + 40, 16, 1
        else:
            found = PyDict_GetItem(self.link_kinds, ethertype)
            if found == NULL:
                return 0
            self.acc.entered += 1
            self.link_control(<object>found, 1)
            return 1
        if l3 + length < l4 + 4:  # the ICMP header reaches past the datagram
            return 0
        icmp_type = f[l4]
        code = f[l4 + 1]
        if self.icmp_error[256 * v6 + icmp_type]:
            return 0
        acc = self.acc
        acc.entered += 1
        at = l3 + (8 if v6 else 12)
        if PySet_GET_SIZE(self.senders) < SENDERS_MAX:  # Accounting.learn
            memcpy(raw, f + 6, 6)
            memcpy(raw + 6, f + at, half)
            PySet_Add(self.senders, PyBytes_FromStringAndSize(<const char*>raw, 6 + half))
        dport = self.counterpart[256 * v6 + icmp_type]
        if dport < 0:  # one way: the code stands in for the destination port
            dport = code
        memcpy(raw, f + at, 2 * half)
        raw[2 * half] = 0
        raw[2 * half + 1] = <uint8_t>icmp_type
        raw[2 * half + 2] = 0
        raw[2 * half + 3] = <uint8_t>dport
        key = PyBytes_FromStringAndSize(<const char*>raw, 2 * half + 4)
        table = self.tables.get(proto)
        found = NULL if table is None else PyDict_GetItem(<dict>table, key)
        if found == NULL:
            try:
                e = self.table_entry(proto, key, ts, n)
            finally:
                self._after_python()
            e.icmp_code = code
        else:
            e = <Entry?>found
        # FlowTable.account's steps for a packet without TCP flags
        e.pkts += 1
        e.nbytes += length
        if n >= e_num(e, NUM_LAST):
            e.t_last = ts
            e_set_num(e, NUM_LAST, n)
        if n < e_num(e, NUM_FIRST):
            e_set_num(e, NUM_FIRST, n)
            e.t_first = ts
        entry_add(e, n)
        e.dirs |= dirf
        acc.decoded += 1
        return 1

    cdef bint _known_first(
        self, Entry e, bytes key, bytes buf, Py_ssize_t l4, Py_ssize_t end, double ts, long long n
    ) except -1:
        """PayloadInspector.inspect's steps for a TCP direction's first payload whose kind and
        request head the inspector already found (`_kind` and `_request_head` remember them:
        a proxy's CONNECT requests and its answers repeat on every connection), where the
        kind is HTTP or other text and no hello can start (its first byte is a letter: no TLS
        record nor SSL 2.0 hello), with a sound data offset:

        - WANT W_FIRST with a request head: `_first`, then `_http_head` (`_request`);
        - WANT W_FIRST, or W_FIRST|W_SEARCH after a CONNECT, with none: `_first`, then
          `_search`, which finds no hello.

        0, having changed nothing, for any other payload (inspect takes it, and remembers)."""
        cdef const uint8_t* f = <const uint8_t*>PyBytes_AS_STRING(buf)
        cdef Py_ssize_t start = l4 + (f[l4 + 12] >> 4) * 4
        cdef long want = e.want
        cdef PyObject* found
        stream = e_stream(e)
        if want & W_SEARCH and type(stream) is not _STREAM:  # `_search` would make one
            return 0
        if start < l4 + 20 or start >= end or end - start > FIRST_MEMO_BYTES:
            return 0
        if start > l4 + 20 and _options_end(f, l4 + 20, start) != start:
            return 0
        if not (65 <= f[start] <= 90 or 97 <= f[start] <= 122):  # a letter
            return 0
        payload = PyBytes_FromStringAndSize(<const char*>f + start, end - start)
        found = PyDict_GetItem(self.kinds, payload)
        if found == NULL:
            return 0
        kind = <object>found
        if kind is not _KIND_HTTP and kind is not _KIND_OTHER:
            return 0
        found = PyDict_GetItem(self.heads, (payload, True))
        if found == NULL:
            return 0
        head = <object>found
        if head is not None:
            if want != W_FIRST:  # a request inside a tunnel: inspect reads it
                return 0
            if stream is not None and type(stream) is not _STREAM:
                return 0
            if head.method == _CONNECT:  # `_http_head` gives the peer a Stream too
                found = PyDict_GetItem(self.tcp, _reverse_key(key))
                if found != NULL and e_stream(<Entry?>found) is not None and type(
                    e_stream(<Entry?>found)
                ) is not _STREAM:
                    return 0
        e.kind = _kind_code(kind)  # PayloadInspector._first
        e_set_num(e, NUM_PAYLOAD, n)
        if e.tcp_open != SYNACK_SEEN:
            e.head = _shared_head(
                self.head_values, payload[:TLS_HEAD_BYTES if kind is _KIND_TLS else HEAD_BYTES]
            )
        e.want &= ~W_FIRST
        if head is not None:  # a request head: W_HTTP, then PayloadInspector._http_head
            e.want |= W_HTTP
            self._request(e, key, payload, head, ts, n)
        elif want & W_SEARCH:  # PayloadInspector._search: no hello starts here
            stream.search -= 1
            if stream.search <= 0:
                e.want &= ~W_SEARCH
        if not e.want:
            e_set_stream(e, None)
        return 1

    cdef int _request(
        self, Entry e, bytes key, bytes payload, object head, double ts, long long n
    ) except -1:
        """PayloadInspector._http_head for the head `_first` found in a TCP direction's first
        payload: one record per connection and head (repeats counted), and after CONNECT
        the search for a hello on both sides."""
        cdef PyObject* found
        rkey = _reverse_key(key)
        ref_key = key if key <= rkey else rkey
        ref = (PROTO_TCP, ref_key)  # flows.flow_ref
        found = PyDict_GetItem(self.generations, ref_key)  # FlowTable.generation
        generation = <object>found if found != NULL else 0
        method = head.method
        identity = (ref, generation, method, head.target, head.version, head.host)
        found = PyDict_GetItem(self.http, identity)
        if found == NULL:
            record = _HTTP_REQUEST(
                self.capture, n, ts, 0, method, head.target, head.version, head.host, 1
            )
            self.http[identity] = record
        else:
            self.http[identity] = _COUNTED_AGAIN(<object>found)
        if method == _CONNECT:
            e.want |= W_SEARCH
            stream = e_stream(e)
            if stream is None:
                stream = _STREAM()
                e_set_stream(e, stream)
            stream.search = SEARCH_SEGMENTS
            stream.tunnel = True
            found = PyDict_GetItem(self.tcp, rkey)
            if found != NULL:
                peer = <Entry?>found
                peer.want |= W_SEARCH
                stream = e_stream(peer)
                if stream is None:
                    stream = _STREAM()
                    e_set_stream(peer, stream)
                stream.search = SEARCH_SEGMENTS
        return 0

    cdef int _client_record(
        self, bytes key, object info, double ts, long long n, long segments
    ) except -1:
        """PayloadInspector._record_client_hello for a ClientHello without ECH."""
        ints = self.hello_ints
        versions = info.versions
        suites = info.cipher_suites
        alpn = info.alpn
        record = self.client_hello(
            self.capture,
            n,
            ts,
            0,
            info.sni,
            ints.setdefault(versions, versions),
            ints.setdefault(suites, suites),
            self.hello_strs.setdefault(alpn, alpn),
            segments,
            None,
            _ECH_NONE,
        )
        self.client_hellos.append(record)
        _add_ref(self.client_refs, PROTO_TCP, key, self.client_ref_owner, self.refs_flush)
        return 0

    cdef bint _hello_begins(self, Entry e, bytes payload, double ts, long long n) except -1:
        """PayloadInspector._first and `_start_hello` for a direction's first payload that
        begins a ClientHello one handshake record holds whole and the payload does not
        (it goes on in the next segments): the hello is collected from here, in a Stream.
        0, having changed nothing, for any other payload."""
        cdef const uint8_t* p = <const uint8_t*>PyBytes_AS_STRING(payload)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(payload)
        cdef Py_ssize_t need = _one_record_need(p, size)
        stream = e_stream(e)
        if need < 0 or need <= size or (stream is not None and type(stream) is not _STREAM):
            return 0
        e.kind = KIND_TLS_CODE  # PayloadInspector._first
        e_set_num(e, NUM_PAYLOAD, n)
        if e.tcp_open != SYNACK_SEEN:
            e.head = _shared_head(self.head_values, payload[:TLS_HEAD_BYTES])
        e.want &= ~W_FIRST
        if stream is None:  # PayloadInspector._start_hello
            stream = _STREAM()
            e_set_stream(e, stream)
        stream.hello_kind = _HELLO_CLIENT
        stream.hello_segments = 1
        stream.lenient = False
        stream.hello_packet = n
        stream.hello_time = ts
        stream.hello = bytearray(payload)
        e.want |= W_HELLO
        return 1

    cdef bint _hello_more(
        self, Entry e, bytes key, bytes buf, Py_ssize_t l4, Py_ssize_t end, double ts, long long n
    ) except -1:
        """PayloadInspector.inspect's steps for the next segment of a ClientHello collected
        from a direction's first payload (WANT is W_HELLO alone; `_continue_hello`,
        `_try_hello`): the segment is added; a hello one record holds whole and now
        complete, without ECH, that quick_hello reads is recorded. 0, having changed
        nothing, for any other segment or hello (inspect takes it)."""
        cdef const uint8_t* f = <const uint8_t*>PyBytes_AS_STRING(buf)
        cdef Py_ssize_t start = l4 + (f[l4 + 12] >> 4) * 4
        cdef Py_ssize_t need, size
        stream = e_stream(e)
        if type(stream) is not _STREAM:
            return 0
        held = stream.hello
        if type(held) is not bytearray or stream.hello_kind != _HELLO_CLIENT or stream.lenient:
            return 0
        if start < l4 + 20 or start >= end:
            return 0
        if start > l4 + 20 and _options_end(f, l4 + 20, start) != start:
            return 0
        payload = PyBytes_FromStringAndSize(<const char*>f + start, end - start)
        data = bytes(held) + payload
        size = PyBytes_GET_SIZE(data)
        need = _one_record_need(<const uint8_t*>PyBytes_AS_STRING(data), size)
        if need < 0:
            return 0
        segments = stream.hello_segments + 1
        if need > size:  # still short: kept, unless `_try_hello` would give up
            if size > HELLO_BYTES_MAX or segments >= HELLO_SEGMENTS_MAX:
                return 0
            held += payload
            stream.hello_segments = segments
            stream.hello_packet = n
            stream.hello_time = ts
            return 1
        try:
            info = self.quick_hello(data[:need])
        except Exception:  # inspect reads it again, and counts what broke (decision 10)
            return 0
        if type(info) is not ClientHelloInfo or info.ech is not None:
            return 0
        stream.hello_segments = segments
        stream.hello_packet = n
        stream.hello_time = ts
        stream.hello = None  # PayloadInspector._end_hello
        e.want &= ~W_HELLO
        self._client_record(key, info, ts, n, segments)
        if not e.want:
            e_set_stream(e, None)
        return 1

    cdef bint _usual_hello(
        self, Entry e, bytes key, bytes buf, Py_ssize_t l4, Py_ssize_t end, double ts, long long n
    ) except -1:
        """The inspection of a TCP payload that is the usual hello, where the direction wants
        its first payload (WANT is W_FIRST alone) or looks for a hello after CONNECT (W_SEARCH,
        with W_HTTP on the client's side): a sound data offset, then one TLS handshake record
        holding a whole ClientHello without ECH or a ServerHello that is not a
        HelloRetryRequest, as `quick_hello` reads it. PayloadInspector.inspect's steps for it
        (`_first` or `_search`, `_start_hello`, `_record_client_hello` / `_server_hello`, and
        `_http_head`, which finds no request in a TLS record), in the same order, with the
        same records; 0, having changed nothing, for any other payload (inspect takes it)."""
        cdef const uint8_t* f = <const uint8_t*>PyBytes_AS_STRING(buf)
        cdef Py_ssize_t start = l4 + (f[l4 + 12] >> 4) * 4
        cdef const uint8_t* p
        cdef long want = e.want
        stream = e_stream(e)
        if want != W_FIRST and type(stream) is not _STREAM:  # `_search` would make one
            return 0
        if start < l4 + 20 or start >= end:
            return 0
        if start > l4 + 20 and _options_end(f, l4 + 20, start) != start:
            return 0
        p = f + start
        if end - start < 5 or p[0] != 22 or p[1] != 3 or p[2] > 4:  # classify.py `_is_tls`
            return 0
        if ((p[3] << 8) | p[4]) > TLS_RECORD_MAX:
            return 0
        payload = PyBytes_FromStringAndSize(<const char*>p, end - start)
        try:
            info = self.quick_hello(payload)
        except Exception:  # inspect reads it again, and counts what broke (decision 10)
            return 0
        if info is None and want == W_FIRST:
            return self._hello_begins(e, payload, ts, n)
        if type(info) is ClientHelloInfo:
            if info.ech is not None:
                return 0
        elif type(info) is not ServerHelloInfo or info.hello_retry:
            return 0
        if want == W_FIRST:  # PayloadInspector._first
            e.kind = KIND_TLS_CODE
            e_set_num(e, NUM_PAYLOAD, n)
            if e.tcp_open != SYNACK_SEEN:
                e.head = _shared_head(self.head_values, payload[:TLS_HEAD_BYTES])
            e.want &= ~W_FIRST
        else:  # PayloadInspector._search: the hello is found, the search is over
            stream.search = 0
            e.want &= ~W_SEARCH
        if type(info) is ClientHelloInfo:  # PayloadInspector._record_client_hello
            self._client_record(key, info, ts, n, 1)
        else:  # PayloadInspector._server_hello
            record = self.server_hello(
                self.capture, n, ts, 0, info.version, info.cipher_suite, None
            )
            self.server_hellos.append(record)
            _add_ref(
                self.server_refs, PROTO_TCP, key, self.server_ref_owner, self.refs_flush
            )
        if want & W_HTTP and stream.tunnel:  # _http_head: no request, the tunnel carries TLS
            e.want &= ~W_HTTP
        if not e.want:
            e_set_stream(e, None)
        return 1

    cdef int _inspect(
        self, Entry e, int proto, key, bytes buf, Py_ssize_t start, Py_ssize_t stop, double ts,
        long long n,
    ) except -1:
        try:
            self.inspect(e, proto, key, buf, start, stop, ts, n)
        finally:
            self._after_python()
        return 0

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
        cdef const uint8_t* f = <const uint8_t*>PyBytes_AS_STRING(buf) + off
        cdef long et, vihl, tot, frag, proto, flags
        cdef Entry e
        cdef Slot* s
        cdef Py_ssize_t stop
        if n >= self.next_sweep:
            self._sweep(n)
        if not self.low <= ts <= self.high:  # timeline.py: a silence or a step back
            self.time_step(self.low, ts, n)
        self.low = ts
        self.high = ts + self.silence
        if self.parts > 1 and frame_owner_c(f, cap, lt, self.parts) != self.part:
            self.skipped += 1
            return 0
        if lt != ETHERNET:
            return self._slow(ts, buf, off, cap, lt, dirf, n)
        if cap < _IPV4_FAST_L4 + _UDP_HEADER:
            return self._general(ts, buf, off, cap, dirf, n)
        et = (f[12] << 8) | f[13]
        vihl = f[14]
        tot = (f[16] << 8) | f[17]
        frag = (f[20] << 8) | f[21]
        proto = f[23]
        if et != IPV4 or vihl != 0x45 or frag & _FRAG_MASK:
            if et == IPV6:
                return self._ipv6(ts, buf, off, cap, lt, dirf, n)
            return self._general(ts, buf, off, cap, dirf, n)
        if proto == PROTO_UDP and tot >= 28:  # IPv4 + UDP headers
            s = self._slot(self.udp, PROTO_UDP, f, ts, n)
            e = <Entry>s.e
            e.pkts += 1
            e.nbytes += tot
            e.t_last = ts
            e_set_num(e, NUM_LAST, n)
            e.dirs |= dirf
            entry_add(e, n)
            if e.want:
                stop = off + _ETH + tot
                if stop > off + cap:
                    stop = off + cap
                key = PyBytes_FromStringAndSize(<const char*>f + 26, 12)
                self._inspect(e, PROTO_UDP, key, buf, off + _IPV4_FAST_L4, stop, ts, n)
        elif proto == PROTO_TCP and tot >= 40 and cap >= _IPV4_FAST_L4 + _TCP_FLAGS_END:
            flags = f[47]
            s = self._slot(self.tcp, PROTO_TCP, f, ts, n)
            e = <Entry>s.e
            key = None
            if flags & 2 and not flags & 16 and e.pkts == 0:
                # FlowTable.syn's first step: the direction's first packet opens it
                entry_set_isn(e, f + 38)
            elif flags & 2 and not flags & 16:  # SYN: maybe a new connection
                key = PyBytes_FromStringAndSize(<const char*>f + 26, 12)
                fresh = self._syn(self.tcp, key, e, ts, n, f + 38, f)
                if fresh is not e:  # retired: the cache let go of this key's entry
                    s = self._slot(self.tcp, PROTO_TCP, f, ts, n)
                    e = <Entry>s.e
            e.pkts += 1
            e.nbytes += tot
            e.t_last = ts
            e_set_num(e, NUM_LAST, n)
            e.tcp_flags |= flags
            e.dirs |= dirf
            entry_add(e, n)
            if flags & 6:  # SYN or RST
                _tcp_control(e, flags)
            # WANT, and data (or a data offset that may lie) behind the header
            if e.want and (tot != 20 + ((f[46] >> 4) << 2) or tot > _PLAIN):
                stop = off + _ETH + tot
                if stop > off + cap:
                    stop = off + cap
                if _nothing_to_read(<const uint8_t*>PyBytes_AS_STRING(buf), off + _IPV4_FAST_L4, stop):
                    return 0
                if key is None:
                    key = PyBytes_FromStringAndSize(<const char*>f + 26, 12)
                if _hello_wanted(e.want) and self._usual_hello(
                    e, key, buf, off + _IPV4_FAST_L4, stop, ts, n
                ):
                    return 0
                if _first_wanted(e.want) and self._known_first(
                    e, key, buf, off + _IPV4_FAST_L4, stop, ts, n
                ):
                    return 0
                if e.want == W_HELLO and self._hello_more(
                    e, key, buf, off + _IPV4_FAST_L4, stop, ts, n
                ):
                    return 0
                self._inspect(e, PROTO_TCP, key, buf, off + _IPV4_FAST_L4, stop, ts, n)
        else:
            return self._general(ts, buf, off, cap, dirf, n)
        return 0

    cdef int _ipv6(
        self,
        double ts,
        bytes buf,
        Py_ssize_t off,
        Py_ssize_t cap,
        int lt,
        int dirf,
        long long n,
    ) except -1:
        """CaptureIngest._ipv6: Ethernet + IPv6 straight to UDP/TCP."""
        cdef const uint8_t* f = <const uint8_t*>PyBytes_AS_STRING(buf) + off
        cdef long proto = f[20]
        cdef Py_ssize_t l4 = _IPV6_FAST_L4  # from f
        cdef long span = (f[18] << 8) | f[19]
        cdef long flags = 0
        cdef Entry e
        cdef Py_ssize_t stop
        if f[14] >> 4 != 6 or not (
            (proto == PROTO_UDP and span >= _UDP_HEADER and l4 + _UDP_HEADER <= cap)
            or (proto == PROTO_TCP and span >= 20 and l4 + _TCP_FLAGS_END <= cap)
        ):
            return self._general(ts, buf, off, cap, dirf, n)
        key = PyBytes_FromStringAndSize(<const char*>f + 22, 36)  # src, dst, ports
        e = self._entry(self.tables[proto], proto, key, f, ts, n)
        if proto == PROTO_TCP and (f[l4 + 13] & 0x12) == 0x02 and not e.pkts:
            entry_set_isn(e, f + l4 + 4)  # FlowTable.syn
        elif proto == PROTO_TCP and (f[l4 + 13] & 0x12) == 0x02:  # SYN: maybe a new connection
            e = self._syn(self.tables[proto], key, e, ts, n, f + l4 + 4, f)
        # FlowTable.account's steps, inline (packets arrive in order here)
        e.pkts += 1
        e.nbytes += span + 40
        e.t_last = ts
        e_set_num(e, NUM_LAST, n)
        entry_add(e, n)
        if proto == PROTO_TCP:
            flags = f[l4 + 13]
            e.tcp_flags |= flags
            if flags & 6:  # SYN or RST
                _tcp_control(e, flags)
        e.dirs |= dirf
        if e.want:
            stop = l4 + span
            if stop > cap:
                stop = cap
            if proto == PROTO_TCP and _nothing_to_read(f, l4, stop):
                return 0
            if proto == PROTO_TCP and _hello_wanted(e.want) and self._usual_hello(
                e, key, buf, off + l4, off + stop, ts, n
            ):
                return 0
            if proto == PROTO_TCP and _first_wanted(e.want) and self._known_first(
                e, key, buf, off + l4, off + stop, ts, n
            ):
                return 0
            if proto == PROTO_TCP and e.want == W_HELLO and self._hello_more(
                e, key, buf, off + l4, off + stop, ts, n
            ):
                return 0
            self._inspect(e, proto, key, buf, off + l4, off + stop, ts, n)
        return 0
