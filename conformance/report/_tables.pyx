# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled twin of report/tables.py's two largest tables: flows.csv's lines and tls.csv's
(a web capture of 2M packets has 65k flows and 129k hellos; their rows cost half a second
in Python, a tenth of the run).

Each line is built in a byte buffer from the record's fields as tables.py formats them
(`_flow_row` and `_lines`, `_tls_lines`), and a batch of lines becomes one string. Whatever
this module does not format itself is asked of tables.py for that one line or cell, so the
bytes are always tables.py's: a field of another type than the usual (a time that is not a
float, a number that is not an int), a time whose second is not the one before (the
calendar text is tables.py's `_second_texts`, kept there), a time datetime cannot show, and
a line that needs quoting (tables.py leaves it to csv.writer). tests/report/test_tables_compiled.py
compares the two on random records of every kind.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.dict cimport PyDict_GetItem
from cpython.float cimport PyFloat_AS_DOUBLE
from cpython.long cimport PyLong_AsLongLongAndOverflow
from cpython.ref cimport PyObject
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.math cimport isfinite, modf, nearbyint
from libc.stdlib cimport free, realloc
from libc.stdint cimport uint32_t
from libc.string cimport memcmp, memcpy, memset



from conformance.observe.records import PacketNumbers

cdef extern from "Python.h":
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL

_PACKED = PacketNumbers


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t room


cdef int _grow(Buffer* b, Py_ssize_t more) except -1:
    cdef Py_ssize_t room = b.room
    cdef char* data
    if b.size + more <= room:
        return 0
    while b.size + more > room:
        room = room * 2 if room else 1 << 16
    data = <char*>realloc(b.data, room)
    if data == NULL:
        raise MemoryError()
    b.data = data
    b.room = room
    return 0


cdef inline int _put(Buffer* b, const char* text, Py_ssize_t size) except -1:
    _grow(b, size)
    memcpy(b.data + b.size, text, size)
    b.size += size
    return 0


cdef inline int _char(Buffer* b, char c) except -1:
    _grow(b, 1)
    b.data[b.size] = c
    b.size += 1
    return 0


class _NotMine(Exception):
    """A cell UTF-8 cannot hold (a lone surrogate): tables.py writes the whole line."""


cdef int _text(Buffer* b, object text) except -1:
    """A str (or a StrEnum member: its value) as UTF-8."""
    cdef Py_ssize_t size
    cdef const char* data
    try:
        data = PyUnicode_AsUTF8AndSize(text, &size)
    except UnicodeEncodeError:
        raise _NotMine() from None
    return _put(b, data, size)


cdef int _decimal(Buffer* b, long long value) except -1:
    cdef char digits[24]
    cdef int n = 0
    cdef unsigned long long magnitude
    if value < 0:
        _char(b, b'-')
        magnitude = <unsigned long long>(-(value + 1)) + 1
    else:
        magnitude = <unsigned long long>value
    while True:
        digits[n] = <char>(c'0' + magnitude % 10)
        n += 1
        magnitude //= 10
        if magnitude == 0:
            break
    _grow(b, n)
    while n:
        n -= 1
        b.data[b.size] = digits[n]
        b.size += 1
    return 0


cdef int _number(Buffer* b, object value) except -1:
    """str(value) of an int: in C for an exact int that fits 64 bits, else str()."""
    cdef int overflow = 0
    cdef long long n
    if type(value) is int:
        n = PyLong_AsLongLongAndOverflow(value, &overflow)
        if not overflow:
            return _decimal(b, n)
    return _text(b, str(value))


cdef class _Times:
    """tables.py's iso_epoch, in C for a float whose whole second is the one before (or one
    tables.py's `_second_texts` already holds); else iso_epoch itself."""

    cdef object iso_epoch
    cdef object seconds  # text._second_texts (a dict: PyDict_GetItem never runs __missing__)
    cdef double whole
    cdef bytes prefix  # the text of `whole`, b"" when none yet

    def __init__(self, iso_epoch, seconds):
        if not isinstance(seconds, dict):
            raise TypeError("the second texts are a dict")
        self.iso_epoch = iso_epoch
        self.seconds = seconds
        self.prefix = b""

    cdef int put(self, Buffer* b, object value) except -1:
        cdef double seconds, fraction, whole, micros
        cdef PyObject* found
        cdef long long digits
        cdef int i
        if type(value) is not float:
            return _text(b, self.iso_epoch(value))
        seconds = PyFloat_AS_DOUBLE(value)
        if not isfinite(seconds):
            return _text(b, self.iso_epoch(value))
        fraction = modf(seconds, &whole)
        micros = nearbyint(fraction * 1e6)  # round(): half to even, as CPython's split
        if micros >= 1e6:
            whole += 1
            micros -= 1e6
        elif micros < 0:
            whole -= 1
            micros += 1e6
        if not self.prefix or whole != self.whole:
            found = PyDict_GetItem(<dict>self.seconds, whole)
            if found == NULL:  # not formatted yet, or not in the calendar: iso_epoch decides
                return _text(b, self.iso_epoch(value))
            self.prefix = (<str>found).encode()
            self.whole = whole
        _put(b, PyBytes_AS_STRING(self.prefix), len(self.prefix))
        digits = <long long>micros
        _grow(b, 7)
        for i in range(5, -1, -1):
            b.data[b.size + i] = <char>(c'0' + digits % 10)
            digits //= 10
        b.data[b.size + 6] = b'Z'
        b.size += 7
        return 0


cdef int _flag(Buffer* b, object value, object flags) except -1:
    if value is True:
        return _put(b, b"true", 4)
    if value is False:
        return _put(b, b"false", 5)
    return _text(b, flags[value])


cdef int _samples(Buffer* b, object values, object numbers) except -1:
    cdef Py_ssize_t i, n
    cdef long long value
    if type(values) is _PACKED:  # the observers' samples: native 64-bit numbers, packed
        n = PyBytes_GET_SIZE(values) // sizeof(long long)
        for i in range(n):
            if i:
                _char(b, b' ')
            memcpy(&value, PyBytes_AS_STRING(values) + i * sizeof(long long), sizeof(long long))
            _decimal(b, value)
        return 0
    if type(values) is not tuple:
        return _text(b, numbers(values))
    n = PyTuple_GET_SIZE(values)
    for i in range(n):
        if type(<object>PyTuple_GET_ITEM(values, i)) is not int:
            return _text(b, numbers(values))
    for i in range(n):
        if i:
            _char(b, b' ')
        _number(b, <object>PyTuple_GET_ITEM(values, i))
    return 0


cdef bint _plain(const char* line, Py_ssize_t size, Py_ssize_t width):
    """tables.py `_lines`' test: no cell holds a delimiter, a quote or a line break."""
    cdef Py_ssize_t i
    cdef Py_ssize_t commas = 0
    cdef char c
    for i in range(size):
        c = line[i]
        if c == b',':
            commas += 1
        elif c == b'"' or c == b'\n' or c == b'\r':
            return False
    return commas == width - 1


# decode/community_id.py `community_id` for a TCP or UDP flow, seed 0, compiled: SHA-1 of one
# block (the hashed bytes are at most 40) and its base64. The 65k flows of a web capture
# spent 0.07 s in the Python function (a struct, a hashlib object, base64 per flow). The
# record does not keep it (records.Flow.community_id computes it): flows.csv is its reader.
cdef const char* _BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


cdef inline uint32_t _rol(uint32_t x, int n) noexcept:
    return (x << n) | (x >> (32 - n))


cdef void _sha1_one_block(const unsigned char* message, Py_ssize_t size, unsigned char* out) noexcept:
    """SHA-1 (FIPS 180-4) of `size` <= 55 bytes: one padded block."""
    cdef unsigned char block[64]
    cdef uint32_t w[80]
    cdef uint32_t h[5]
    cdef uint32_t a, b, c, d, e, f, k, t
    cdef int i
    memset(block, 0, 64)
    memcpy(block, message, size)
    block[size] = 0x80
    block[62] = <unsigned char>((size * 8) >> 8)
    block[63] = <unsigned char>((size * 8) & 0xFF)
    h[0], h[1], h[2], h[3], h[4] = 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0
    for i in range(16):
        w[i] = (
            (<uint32_t>block[4 * i] << 24) | (<uint32_t>block[4 * i + 1] << 16)
            | (<uint32_t>block[4 * i + 2] << 8) | block[4 * i + 3]
        )
    for i in range(16, 80):
        w[i] = _rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1)
    a, b, c, d, e = h[0], h[1], h[2], h[3], h[4]
    for i in range(80):
        if i < 20:
            f = (b & c) | (~b & d)
            k = 0x5A827999
        elif i < 40:
            f = b ^ c ^ d
            k = 0x6ED9EBA1
        elif i < 60:
            f = (b & c) | (b & d) | (c & d)
            k = 0x8F1BBCDC
        else:
            f = b ^ c ^ d
            k = 0xCA62C1D6
        t = _rol(a, 5) + f + e + k + w[i]
        e = d
        d = c
        c = _rol(b, 30)
        b = a
        a = t
    h[0] += a
    h[1] += b
    h[2] += c
    h[3] += d
    h[4] += e
    for i in range(5):
        out[4 * i] = <unsigned char>(h[i] >> 24)
        out[4 * i + 1] = <unsigned char>(h[i] >> 16)
        out[4 * i + 2] = <unsigned char>(h[i] >> 8)
        out[4 * i + 3] = <unsigned char>h[i]


cdef void _community_id(
    int proto, const unsigned char* src, const unsigned char* dst, Py_ssize_t half,
    int sport, int dport, char* text,
) noexcept:
    """community_id(proto, src, dst, sport, dport) of a TCP or UDP flow (addresses of
    `half` bytes): the endpoints ordered so both directions hash alike."""
    cdef unsigned char data[40]
    cdef unsigned char digest[20]
    cdef const unsigned char* swap
    cdef int order = memcmp(dst, src, half)
    cdef int port
    cdef Py_ssize_t n, i
    cdef uint32_t triple
    if order < 0 or (order == 0 and dport < sport):
        swap = src
        src = dst
        dst = swap
        port = sport
        sport = dport
        dport = port
    data[0] = 0  # the seed
    data[1] = 0
    memcpy(data + 2, src, half)
    memcpy(data + 2 + half, dst, half)
    n = 2 + 2 * half
    data[n] = <unsigned char>proto
    data[n + 1] = 0
    data[n + 2] = <unsigned char>(sport >> 8)
    data[n + 3] = <unsigned char>sport
    data[n + 4] = <unsigned char>(dport >> 8)
    data[n + 5] = <unsigned char>dport
    _sha1_one_block(data, n + 6, digest)
    text[0] = b'1'
    text[1] = b':'
    for i in range(6):  # 18 bytes: 24 characters
        triple = (<uint32_t>digest[3 * i] << 16) | (<uint32_t>digest[3 * i + 1] << 8) | digest[3 * i + 2]
        text[2 + 4 * i] = _BASE64[(triple >> 18) & 63]
        text[3 + 4 * i] = _BASE64[(triple >> 12) & 63]
        text[4 + 4 * i] = _BASE64[(triple >> 6) & 63]
        text[5 + 4 * i] = _BASE64[triple & 63]
    triple = (<uint32_t>digest[18] << 16) | (<uint32_t>digest[19] << 8)  # the last 2 bytes
    text[26] = _BASE64[(triple >> 18) & 63]
    text[27] = _BASE64[(triple >> 12) & 63]
    text[28] = _BASE64[(triple >> 6) & 63]
    text[29] = b'='


cdef inline void _hashed(
    int proto, bytes src, bytes dst, int sport, int dport, char* text
) noexcept:
    """`_community_id` of two packed addresses of one family (checked by the caller)."""
    _community_id(
        proto,
        <const unsigned char*>PyBytes_AS_STRING(src),
        <const unsigned char*>PyBytes_AS_STRING(dst),
        PyBytes_GET_SIZE(src),
        sport,
        dport,
        text,
    )


def community_id_c(int proto, bytes src, bytes dst, int sport, int dport):
    """The compiled community id, callable from Python (tests compare it with
    decode/community_id.py)."""
    if proto != 6 and proto != 17 or len(src) != len(dst) or len(src) not in (4, 16):
        raise ValueError("a TCP or UDP flow between two IPv4 or two IPv6 addresses")
    if not (0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF):
        raise ValueError("ports are 16 bits")
    cdef char text[30]
    _hashed(proto, src, dst, sport, dport, text)
    return (<bytes>text[:30]).decode("ascii")


# id(address) -> (address, its packed bytes): the observers intern addresses, so a table's
# rows share a few hundred, and `packed` is Python code in ipaddress (0.6 us an address).
# An entry holds its address, so no other object can take that id while it lives.
cdef dict _packed_addresses = {}
cdef enum:
    _PACKED_KEPT = 4096


cdef object _packed(object address):
    """`address.packed`, or None where it has none."""
    cdef object key = <Py_ssize_t><void*>address
    kept = _packed_addresses.get(key)
    if kept is not None:
        return (<tuple>kept)[1]
    if len(_packed_addresses) >= _PACKED_KEPT:
        _packed_addresses.clear()
    packed = getattr(address, "packed", None)
    _packed_addresses[key] = (address, packed)
    return packed


cdef int _community(Buffer* b, object flow) except -1:
    """records.Flow.community_id: in C for a TCP or UDP flow between two addresses of one
    family with 16-bit ports, else the record's own (which raises what it raises)."""
    cdef char text[30]
    cdef int proto
    cdef object transport = flow.transport
    if type(transport) is str and transport == "tcp":
        proto = 6
    elif type(transport) is str and transport == "udp":
        proto = 17
    else:
        return _text(b, flow.community_id)
    sport, dport = flow.initiator_port, flow.responder_port
    src = _packed(flow.initiator)
    dst = _packed(flow.responder)
    if (
        type(src) is not bytes or type(dst) is not bytes or len(src) != len(dst)
        or len(src) not in (4, 16) or type(sport) is not int or type(dport) is not int
        or not (0 <= sport <= 0xFFFF and 0 <= dport <= 0xFFFF)
    ):
        return _text(b, flow.community_id)
    _hashed(proto, src, dst, sport, dport, text)
    return _put(b, text, 30)


cdef int _flow(
    Buffer* b, object flow, object captures, _Times times, object address, object flags,
    object numbers,
) except -1:
    """tables.py `_flow_row`'s cells, joined with commas (FLOW_COLUMNS)."""
    _number(b, flow.flow_id)
    _char(b, b',')
    _text(b, captures[flow.capture])
    _char(b, b',')
    _community(b, flow)
    _char(b, b',')
    _text(b, flow.transport)
    _char(b, b',')
    _text(b, address(flow.initiator))
    _char(b, b',')
    _number(b, flow.initiator_port)
    _char(b, b',')
    _text(b, address(flow.responder))
    _char(b, b',')
    _number(b, flow.responder_port)
    _char(b, b',')
    _text(b, flow.initiator_basis)
    _char(b, b',')
    _flag(b, flow.handshake_seen, flags)
    _char(b, b',')
    _flag(b, flow.answered, flags)
    _char(b, b',')
    _flag(b, flow.accepted, flags)
    _char(b, b',')
    _flag(b, flow.rejected, flags)
    _char(b, b',')
    _number(b, flow.packets_out)
    _char(b, b',')
    _number(b, flow.packets_in)
    _char(b, b',')
    _number(b, flow.bytes_out)
    _char(b, b',')
    _number(b, flow.bytes_in)
    _char(b, b',')
    times.put(b, flow.first_time)
    _char(b, b',')
    times.put(b, flow.last_time)
    _char(b, b',')
    _number(b, flow.first_packet)
    _char(b, b',')
    _number(b, flow.last_packet)
    _char(b, b',')
    _samples(b, flow.sample_packets, numbers)
    _char(b, b',')
    _text(b, flow.payload_out)
    _char(b, b',')
    _text(b, flow.payload_in)
    _char(b, b',')
    _text(b, flow.encapsulation)
    _char(b, b',')
    _number(b, flow.ip_layer)
    return 0


cdef str _taken(Buffer* b):
    """The buffer's lines as one string; the buffer is emptied."""
    text = PyUnicode_DecodeUTF8(b.data, b.size, NULL)
    b.size = 0
    return text


cdef class _Chunks:
    """Lines built in a byte buffer, and the few that tables.py wrote, as strings of up to
    `per_chunk` lines each."""

    cdef Buffer b
    cdef list pieces
    cdef Py_ssize_t lines
    cdef Py_ssize_t per_chunk

    def __cinit__(self, Py_ssize_t per_chunk):
        self.b.data = NULL
        self.b.size = self.b.room = 0
        self.pieces = []
        self.per_chunk = per_chunk

    def __dealloc__(self):
        free(self.b.data)

    cdef int python_line(self, Py_ssize_t start, str line) except -1:
        """Drop the line begun at `start`; take tables.py's `line` instead."""
        self.b.size = start
        if self.b.size:
            self.pieces.append(_taken(&self.b))
        self.pieces.append(line)
        return 0

    cdef bint ended(self) except -1:
        """End the current line; whether a chunk is full."""
        _char(&self.b, b'\n')
        self.lines += 1
        return self.lines == self.per_chunk

    cdef str chunk(self):
        if self.b.size:
            self.pieces.append(_taken(&self.b))
        text = "".join(self.pieces)
        self.pieces = []
        self.lines = 0
        return text


def flow_chunks(
    flows, captures, Py_ssize_t width, Py_ssize_t per_chunk, iso_epoch, seconds, address,
    flags, numbers, line_of,
):
    """tables.py `_flow_rows` and `_lines`, compiled: flows.csv's lines after the header, in
    strings of up to `per_chunk` lines, each ended by a newline (with how many lines each
    holds). A flow whose line needs
    quoting (or holds text UTF-8 cannot) is written by `line_of(flow)`: tables.py's line."""
    cdef _Chunks out = _Chunks(per_chunk)
    cdef Py_ssize_t start, row_number = 0
    cdef _Times times = _Times(iso_epoch, seconds)
    for flow in flows:
        row_number += 1
        if flow.flow_id != row_number:
            # Links into this table are line numbers; a gap would make them point elsewhere.
            raise ValueError(f"flow ids not dense from 1: row {row_number} is flow {flow.flow_id}")
        start = out.b.size
        try:
            _flow(&out.b, flow, captures, times, address, flags, numbers)
            plain = _plain(out.b.data + start, out.b.size - start, width)
        except _NotMine:
            plain = False
        if not plain:
            out.python_line(start, line_of(flow))
        if out.ended():
            yield out.chunk(), per_chunk
    if out.lines:
        lines = out.lines
        yield out.chunk(), lines


def tls_chunks(hellos, captures, Py_ssize_t per_chunk, iso_epoch, seconds, end_of, line_of):
    """tables.py `_tls_lines`, compiled: tls.csv's lines in strings of up to `per_chunk`
    lines, each ended by a newline (with how many lines each holds). `captures` holds each
    capture's cell already quoted; the other cells before the hello's end (`end_of(hello)`)
    are numbers and a time, which never need quoting. A hello with text UTF-8 cannot hold
    is written by `line_of(hello)`: tables.py's line."""
    cdef _Chunks out = _Chunks(per_chunk)
    cdef Py_ssize_t start
    cdef _Times times = _Times(iso_epoch, seconds)
    for hello in hellos:
        end = end_of(hello)
        start = out.b.size
        try:
            _text(&out.b, captures[hello.capture])
            _char(&out.b, b',')
            _number(&out.b, hello.packet)
            _char(&out.b, b',')
            times.put(&out.b, hello.time)
            _char(&out.b, b',')
            _number(&out.b, hello.flow_id)
            _text(&out.b, end)
        except _NotMine:
            out.python_line(start, line_of(hello))
        if out.ended():
            yield out.chunk(), per_chunk
    if out.lines:
        lines = out.lines
        yield out.chunk(), lines


cdef inline int _hello_key(object hello, long long* key) except -1:
    key[0] = hello.capture
    key[1] = hello.packet
    key[2] = hello.flow_id
    return 0


cdef inline int _compare_keys(const long long* a, const long long* b) noexcept:
    cdef int k
    for k in range(3):
        if a[k] != b[k]:
            return -1 if a[k] < b[k] else 1
    return 0


def merged_hellos(clients, servers):
    """tables.py `_in_packet_order`'s merge, compiled: the client and server hellos in
    (capture, packet, flow_id) order, client hellos first among equals, each kind in its own
    order among its equals, as an iterator (no list of every hello: 1-2 MiB of the 2M web
    mix's report, #17); None when either kind is not in that order itself (checked first, so
    nothing is merged then)."""
    if not _in_order(clients) or not _in_order(servers):
        return None
    return _merging(clients, servers)


cdef bint _in_order(object hellos) except -1:
    cdef long long previous[3]
    cdef long long key[3]
    cdef Py_ssize_t i
    if not hellos:
        return True
    _hello_key(hellos[0], previous)
    for i in range(1, len(hellos)):
        _hello_key(hellos[i], key)
        if _compare_keys(key, previous) < 0:
            return False
        previous[0], previous[1], previous[2] = key[0], key[1], key[2]
    return True


cdef inline bint _before(
    long long x0, long long x1, long long x2, long long y0, long long y1, long long y2
) noexcept:
    """Whether key (x0, x1, x2) sorts before (y0, y1, y2): `_compare_keys` on numbers a
    generator can hold (it keeps no C arrays)."""
    if x0 != y0:
        return x0 < y0
    if x1 != y1:
        return x1 < y1
    return x2 < y2


def _merging(clients, servers):
    cdef Py_ssize_t i = 0, j = 0, n = len(clients), m = len(servers)
    cdef long long a0 = 0, a1 = 0, a2 = 0, b0 = 0, b1 = 0, b2 = 0
    if n:
        hello = clients[0]
        a0, a1, a2 = hello.capture, hello.packet, hello.flow_id
    if m:
        hello = servers[0]
        b0, b1, b2 = hello.capture, hello.packet, hello.flow_id
    while i < n or j < m:
        # A server hello goes first only when it is strictly before: a client leads its equals.
        if i == n or (j < m and _before(b0, b1, b2, a0, a1, a2)):
            yield servers[j]
            j += 1
            if j < m:
                hello = servers[j]
                b0, b1, b2 = hello.capture, hello.packet, hello.flow_id
        else:
            yield clients[i]
            i += 1
            if i < n:
                hello = clients[i]
                a0, a1, a2 = hello.capture, hello.packet, hello.flow_id
