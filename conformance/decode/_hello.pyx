# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
"""The compiled twin of decode/tls.py `quick_hello`: the ClientHello or ServerHello that one
sound handshake record at the start of a TLS direction's first payload holds whole.

`quick_hello(buf)` returns what tls.py `_python_quick_hello` returns, for every input. The
usual hello (one sound record; server_name, ALPN and supported_versions that read plainly;
GREASE removed) is read here, and so is every payload that is no such record (None, as
there). Anything else goes to the Python function, which then answers: an ECH extension, a
field the one-pass readers would refuse (that function says None), a duplicate extension or
more than MAX_EXTENSIONS of them, a buffer that is not `bytes`. So the two agree by
construction wherever this module defers, and tests/decode/test_hello_compiled.py compares
them on every hello the tests build and on many damaged copies of each.

Every read stays inside the bytes present: each length is checked against them before
anything it frames is read, and a field is read only once the whole block around it has
proved to fit.

Results are remembered, as tls.py remembers them (building the frozen dataclasses is most of
the Python reader's time), by the raw bytes they depend on: for a ClientHello its
legacy_version, cipher suites, and the server_name, ALPN and supported_versions extensions as
sent (and whether ech_outer_extensions is there); for a ServerHello the four values it holds.
Each table is direct-mapped, so it is bounded by construction: a new key takes its slot.

The wire constants below are RFC 8446's and RFC 9849's, as tls.py names them; the classes
and the fallback come from tls.py itself, looked up at the first call (tls.py loads this
module while it is being imported).
"""

from cpython.bytes cimport (
    PyBytes_AS_STRING,
    PyBytes_CheckExact,
    PyBytes_FromStringAndSize,
    PyBytes_GET_SIZE,
)
from cpython.list cimport PyList_GET_ITEM
from cpython.unicode cimport PyUnicode_DecodeASCII
from libc.stdint cimport uint8_t, uint64_t
from libc.string cimport memcmp, memcpy

cdef enum:
    RECORD_HEADER = 5
    HANDSHAKE_HEADER = 4
    BODY = 9  # RECORD_HEADER + HANDSHAKE_HEADER
    CONTENT_HANDSHAKE = 22
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    MAX_PLAINTEXT_RECORD = 16384
    RANDOM_LENGTH = 32
    MAX_SESSION_ID = 32
    EXT_SERVER_NAME = 0
    EXT_ALPN = 16
    EXT_SUPPORTED_VERSIONS = 43
    EXT_ECH = 0xFE0D
    EXT_ECH_OUTER_EXTENSIONS = 0xFD00
    ECH_HRR_CONFIRMATION = 8
    SNI_HOST_NAME = 0
    # A hello lists some twenty extensions; one with more goes to the Python reader (the
    # duplicate check here compares each type with those before it).
    MAX_EXTENSIONS = 64
    # tls.py HELLO_FIELD_CACHE and MAX_CACHED_FIELD: slots, and the raw bytes a remembered
    # ClientHello may depend on.
    CLIENT_SLOTS = 1024
    MAX_CACHED_FIELDS = 1024
    # legacy_version(2) presence flags(1), then a 2-byte length before each of 4 fields
    KEY_MAX = 3 + 4 * 2 + MAX_CACHED_FIELDS
    SERVER_SLOTS = 256
    # flags in a ClientHello key
    HAS_SNI = 1
    HAS_ALPN = 2
    HAS_VERSIONS = 4
    HAS_OUTER = 8


cdef struct Found:
    # offset of each extension's data in the payload (-1: absent), and its length
    Py_ssize_t sni, sni_len, alpn, alpn_len, versions, versions_len, ech, ech_len
    bint outer  # ech_outer_extensions


# Filled at the first call (`_bind`).
cdef object _tls = None
cdef object _ClientHelloInfo = None
cdef object _ServerHelloInfo = None
cdef bytes _hello_retry_random = None
# What a field reader returns where the Python reader would give up.
cdef object _UNUSUAL = object()

# ClientHellos: (key bytes, info) or None per slot. ServerHellos: key and info per slot.
cdef list _clients = [None] * CLIENT_SLOTS
cdef uint64_t _server_keys[SERVER_SLOTS]
cdef list _servers = [None] * SERVER_SLOTS


def forget():
    """Forget every remembered result (tests, benchmarks: a cold start)."""
    cdef Py_ssize_t i
    for i in range(CLIENT_SLOTS):
        _clients[i] = None
    for i in range(SERVER_SLOTS):
        _server_keys[i] = <uint64_t>-1  # no key: keys have 34 bits
        _servers[i] = None


forget()


def quick_hello(buf):
    """decode/tls.py `quick_hello`: the hello one sound record at the start of `buf` holds
    whole, or None (for the unusual hello too)."""
    cdef const uint8_t* d
    cdef Py_ssize_t size, end, version, length
    cdef int msg_type
    if _tls is None:
        _bind()
    if not PyBytes_CheckExact(buf):
        return _tls._python_quick_hello(buf)
    d = <const uint8_t*>PyBytes_AS_STRING(buf)
    size = PyBytes_GET_SIZE(buf)
    # tls.py `quick_hello` and `_one_record_end`, check for check.
    if size < BODY or d[0] != CONTENT_HANDSHAKE:
        return None
    msg_type = d[RECORD_HEADER]
    if msg_type != CLIENT_HELLO and msg_type != SERVER_HELLO:
        return None
    version = _u16(d + 1)
    length = _u16(d + 3)
    end = BODY + ((<Py_ssize_t>d[6] << 16) | (d[7] << 8) | d[8])
    if not (
        0x0300 <= version <= 0x0304
        and end - RECORD_HEADER <= length <= MAX_PLAINTEXT_RECORD
        and end <= size
    ):
        return None
    if msg_type == CLIENT_HELLO:
        info = _client_hello(d, end)
    else:
        info = _server_hello(d, end)
    if info is _UNUSUAL:
        return _tls._python_quick_hello(buf)
    return info


cdef int _bind() except -1:
    global _tls, _ClientHelloInfo, _ServerHelloInfo, _hello_retry_random
    from conformance.decode import tls

    _ClientHelloInfo = tls.ClientHelloInfo
    _ServerHelloInfo = tls.ServerHelloInfo
    _hello_retry_random = tls.HELLO_RETRY_RANDOM
    if len(_hello_retry_random) != RANDOM_LENGTH:
        raise ValueError("HELLO_RETRY_RANDOM is not a random")
    _tls = tls
    return 0


cdef inline Py_ssize_t _u16(const uint8_t* p) noexcept:
    return (p[0] << 8) | p[1]


cdef inline bint _grease(Py_ssize_t value) noexcept:
    """RFC 8701 §2: 0x0A0A, 0x1A1A, ... 0xFAFA."""
    return (value & 0x0F0F) == 0x0A0A and (value >> 8) == (value & 0xFF)


cdef object _client_hello(const uint8_t* d, Py_ssize_t end):
    """tls.py `_quick_client_hello` of the body at d[BODY:end]; _UNUSUAL where it raises or
    where this reader leaves the hello to it."""
    cdef Py_ssize_t p = BODY, n, legacy_version, suites, suites_len, fields, k, slot
    cdef Found f
    cdef uint8_t key[KEY_MAX]
    cdef int flags = 0
    if p + 2 + RANDOM_LENGTH + 1 > end:
        return _UNUSUAL
    legacy_version = _u16(d + p)
    p += 2 + RANDOM_LENGTH
    n = d[p]  # legacy_session_id <0..32>
    p += 1 + n
    if n > MAX_SESSION_ID or p + 2 > end:
        return _UNUSUAL
    n = _u16(d + p)  # cipher_suites <2..2^16-2>, whole suites
    suites = p + 2
    suites_len = n
    p += 2 + n
    if n < 2 or n & 1 or p >= end:
        return _UNUSUAL
    n = d[p]  # legacy_compression_methods <1..2^8-1>
    p += 1 + n
    if not n or p > end:
        return _UNUSUAL
    if not _extensions(d, p, end, &f) or f.ech >= 0:
        return _UNUSUAL  # ECH: its enc and payload differ hello by hello; tls.py reads it
    # The key: what the result depends on, as sent.
    fields = suites_len
    if f.sni >= 0:
        flags |= HAS_SNI
        fields += f.sni_len
    if f.alpn >= 0:
        flags |= HAS_ALPN
        fields += f.alpn_len
    if f.versions >= 0:
        flags |= HAS_VERSIONS
        fields += f.versions_len
    if f.outer:
        flags |= HAS_OUTER
    if fields > MAX_CACHED_FIELDS:
        return _client_info(d, legacy_version, suites, suites_len, &f)
    key[0] = <uint8_t>(legacy_version >> 8)
    key[1] = <uint8_t>legacy_version
    key[2] = <uint8_t>flags
    k = _put(key, 3, d + suites, suites_len)
    if f.sni >= 0:
        k = _put(key, k, d + f.sni, f.sni_len)
    if f.alpn >= 0:
        k = _put(key, k, d + f.alpn, f.alpn_len)
    if f.versions >= 0:
        k = _put(key, k, d + f.versions, f.versions_len)
    slot = <Py_ssize_t>(_hash(key, k) & (CLIENT_SLOTS - 1))
    entry = <object>PyList_GET_ITEM(_clients, slot)
    if entry is not None:
        known = <bytes>(<tuple>entry)[0]
        if PyBytes_GET_SIZE(known) == k and memcmp(PyBytes_AS_STRING(known), key, k) == 0:
            return (<tuple>entry)[1]
    info = _client_info(d, legacy_version, suites, suites_len, &f)
    if info is not _UNUSUAL:
        _clients[slot] = (PyBytes_FromStringAndSize(<char*>key, k), info)
    return info


cdef inline Py_ssize_t _put(uint8_t* key, Py_ssize_t k, const uint8_t* field, Py_ssize_t n):
    """Append a field with its 2-byte length to the key; where the key ends now."""
    key[k] = <uint8_t>(n >> 8)
    key[k + 1] = <uint8_t>n
    memcpy(key + k + 2, field, n)
    return k + 2 + n


cdef uint64_t _hash(const uint8_t* p, Py_ssize_t n) noexcept:
    """A quick 64-bit mix of the key (a collision costs only a decoding: keys are compared)."""
    cdef uint64_t h = 0x9E3779B97F4A7C15ULL ^ <uint64_t>n
    cdef uint64_t word = 0
    while n >= 8:
        memcpy(&word, p, 8)
        h = (h ^ word) * 0xFF51AFD7ED558CCDULL
        h ^= h >> 32
        p += 8
        n -= 8
    word = 0
    memcpy(&word, p, n)
    h = (h ^ word) * 0xC4CEB9FE1A85EC53ULL
    return h ^ (h >> 29)


cdef bint _extensions(const uint8_t* d, Py_ssize_t p, Py_ssize_t end, Found* f) noexcept:
    """tls.py `_quick_extensions` of the block filling d[p:end] (or absent) into `f`; False
    where it raises, and where there are more than MAX_EXTENSIONS."""
    cdef Py_ssize_t length, at, count = 0, i
    cdef int ext_type
    cdef int types[MAX_EXTENSIONS]
    f.sni = f.alpn = f.versions = f.ech = -1
    f.sni_len = f.alpn_len = f.versions_len = f.ech_len = 0
    f.outer = False
    if p == end:
        return True
    if p + 2 > end or p + 2 + _u16(d + p) != end:
        return False
    p += 2
    while p < end:
        if p + 4 > end or count == MAX_EXTENSIONS:
            return False
        ext_type = <int>_u16(d + p)
        length = _u16(d + p + 2)
        for i in range(count):  # RFC 8446 §4.2: at most one of each type
            if types[i] == ext_type:
                return False
        types[count] = ext_type
        count += 1
        at = p + 4
        p = at + length
        if ext_type == EXT_SERVER_NAME:
            f.sni, f.sni_len = at, length
        elif ext_type == EXT_ALPN:
            f.alpn, f.alpn_len = at, length
        elif ext_type == EXT_SUPPORTED_VERSIONS:
            f.versions, f.versions_len = at, length
        elif ext_type == EXT_ECH:
            f.ech, f.ech_len = at, length
        elif ext_type == EXT_ECH_OUTER_EXTENSIONS:
            f.outer = True
    return p == end  # else the last extension overran the block


cdef object _client_info(
    const uint8_t* d, Py_ssize_t legacy_version, Py_ssize_t suites, Py_ssize_t suites_len, Found* f
):
    """tls.py `_quick_client_hello_fields` (without ECH); _UNUSUAL where it raises."""
    cdef Py_ssize_t at, size, n
    sni = None
    alpn = ()
    if f.sni >= 0:
        sni = _server_name(d + f.sni, f.sni_len)
        if sni is _UNUSUAL:
            return _UNUSUAL
    if f.alpn >= 0:
        alpn = _alpn(d + f.alpn, f.alpn_len)
        if alpn is _UNUSUAL:
            return _UNUSUAL
    if f.versions >= 0:
        at = f.versions
        size = f.versions_len
        n = d[at] if size else 0  # versions <2..254>, filling the extension, whole versions
        if size != 1 + n or n < 2 or n > 254 or n & 1:
            return _UNUSUAL
        versions = _without_grease(d + at + 1, n)
    else:
        versions = (legacy_version,)
    return _ClientHelloInfo(
        sni, versions, _without_grease(d + suites, suites_len), alpn, None, f.outer
    )


cdef object _server_name(const uint8_t* ext, Py_ssize_t size):
    """tls.py `_quick_server_name`; _UNUSUAL where it raises."""
    cdef Py_ssize_t p = 2, n, start
    cdef int name_type
    if size < 2 or 2 + _u16(ext) != size:
        return _UNUSUAL
    host = None
    while p < size:
        if p + 3 > size:
            return _UNUSUAL
        name_type = ext[p]
        n = _u16(ext + p + 1)  # host_name <1..2^16-1>
        start = p + 3
        p = start + n
        if not n or p > size:
            return _UNUSUAL
        if name_type == SNI_HOST_NAME:
            if host is not None:
                return _UNUSUAL
            # the same codec call as bytes.decode("ascii", "backslashreplace")
            host = PyUnicode_DecodeASCII(<const char*>ext + start, n, "backslashreplace")
            host = host.rstrip(".").lower()
    return host


cdef object _alpn(const uint8_t* ext, Py_ssize_t size):
    """tls.py `_quick_alpn`; _UNUSUAL where it raises."""
    cdef Py_ssize_t p = 2, n, start
    if size < 2 or 2 + _u16(ext) != size:
        return _UNUSUAL
    out = []
    while p < size:
        n = ext[p]  # ProtocolName <1..2^8-1>
        start = p + 1
        p = start + n
        if not n or p > size:
            return _UNUSUAL
        if not (n == 2 and _grease(_u16(ext + start))):  # RFC 8701 §2
            out.append(PyUnicode_DecodeASCII(<const char*>ext + start, n, "backslashreplace"))
    return tuple(out)


cdef tuple _without_grease(const uint8_t* p, Py_ssize_t n):
    """Big-endian uint16 values (n bytes, n even), GREASE removed."""
    cdef Py_ssize_t i, value
    out = []
    for i in range(0, n, 2):
        value = _u16(p + i)
        if not _grease(value):
            out.append(value)
    return tuple(out)


cdef object _server_hello(const uint8_t* d, Py_ssize_t end):
    """tls.py `_quick_server_hello` of the body at d[BODY:end]; _UNUSUAL where it raises."""
    cdef Py_ssize_t p = BODY, n, version, suite, slot
    cdef bint hello_retry, ech_confirmation = False
    cdef uint64_t key
    cdef Found f
    if p + 2 + RANDOM_LENGTH + 1 > end:
        return _UNUSUAL
    version = _u16(d + p)
    hello_retry = memcmp(d + p + 2, PyBytes_AS_STRING(_hello_retry_random), RANDOM_LENGTH) == 0
    p += 2 + RANDOM_LENGTH
    n = d[p]  # legacy_session_id <0..32>
    p += 1 + n
    if n > MAX_SESSION_ID or p + 3 > end:  # cipher_suite(2) legacy_compression_method(1)
        return _UNUSUAL
    suite = _u16(d + p)
    if not _extensions(d, p + 3, end, &f):
        return _UNUSUAL
    if f.versions >= 0:
        if f.versions_len != 2:  # selected_version, nothing else
            return _UNUSUAL
        version = _u16(d + f.versions)
    if hello_retry and f.ech >= 0:
        if f.ech_len != ECH_HRR_CONFIRMATION:
            return _UNUSUAL
        ech_confirmation = True
    key = (<uint64_t>version << 18) | (<uint64_t>suite << 2) | (hello_retry << 1) | ech_confirmation
    slot = <Py_ssize_t>((key * 0x9E3779B97F4A7C15ULL) >> 56)  # SERVER_SLOTS = 2^8
    if _server_keys[slot] == key:
        return <object>PyList_GET_ITEM(_servers, slot)
    info = _ServerHelloInfo(version, suite, hello_retry, ech_confirmation)
    _servers[slot] = info
    _server_keys[slot] = key
    return info
