# cython: language_level=3, boundscheck=False, wraparound=False
"""The observers' records, compiled: the record maker of observe/records.py `maker` (a
frozen, slotted dataclass's record from all its field values, without its generated
`__init__`), and the compact Flow, TlsClientHello and TlsServerHello records.py binds its
names to (below).

A frozen dataclass's `__init__` sets each field through `object.__setattr__` (its own
`__setattr__` refuses), some 130 ns a field: a web capture's 65k flows of 31 fields and twice
as many hellos (each made twice: read, then renumbered) spent most of a second there. A slot
is a member descriptor; `PyMember_SetOne` is what that descriptor's `__set__` does, so the
record made here is the one `__init__` makes: same type, same slots, same values, still
frozen (tests/observe/test_record_maker.py compares them). Only classes whose `__init__`
does nothing else are taken: every field in `__init__`, positional, no `__post_init__`.
"""

cimport cython
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdint cimport uint32_t
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

import dataclasses
from types import MemberDescriptorType

from conformance.decode.classify import PayloadKind
from conformance.decode.community_id import of_flow as _community_id_of_flow
from conformance.decode.ech import EchKind
from conformance.decode.ldap import LDAP_PORT as _LDAP_PORT_VALUE, is_starttls_request


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        pass
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member


cdef extern from "structmember.h":
    int PyMember_SetOne(char* addr, PyMemberDef* member, PyObject* value) except -1
    PyObject* PyMember_GetOne(const char* addr, PyMemberDef* member)


cdef class Maker:
    """Makes records of one dataclass from all its field values, in field order."""

    cdef readonly object cls
    cdef Py_ssize_t size
    cdef Py_ssize_t flow_id_at  # the `flow_id` field's index, -1 if it has none
    cdef PyMemberDef** members
    cdef list descriptors  # keeps the descriptors (and so their PyMemberDefs) alive

    def __cinit__(self):
        self.members = NULL

    def __init__(self, cls):
        params = cls.__dataclass_params__
        fields = dataclasses.fields(cls)
        if not params.frozen or not params.init or hasattr(cls, "__post_init__"):
            raise TypeError(f"{cls.__name__}: not a frozen dataclass with a plain __init__")
        if "__slots__" not in cls.__dict__ or any(not f.init or f.kw_only for f in fields):
            raise TypeError(f"{cls.__name__}: not slotted, or a field is not positional")
        self.cls = cls
        self.size = len(fields)
        names = [f.name for f in fields]
        self.flow_id_at = names.index("flow_id") if "flow_id" in names else -1
        self.descriptors = [cls.__dict__[f.name] for f in fields]
        if any(type(d) is not MemberDescriptorType for d in self.descriptors):
            raise TypeError(f"{cls.__name__}: a field is not a slot")
        self.members = <PyMemberDef**>malloc(self.size * sizeof(PyMemberDef*))
        if self.members == NULL:
            raise MemoryError()
        for i, descriptor in enumerate(self.descriptors):
            self.members[i] = (<PyMemberDescrObject*>descriptor).d_member

    def __dealloc__(self):
        free(self.members)

    def __call__(self, *values):
        cdef Py_ssize_t i
        if PyTuple_GET_SIZE(values) != self.size:
            raise TypeError(
                f"{self.cls.__name__}: {self.size} values wanted, {PyTuple_GET_SIZE(values)} given"
            )
        record = object.__new__(self.cls)
        for i in range(self.size):
            PyMember_SetOne(<char*><PyObject*>record, self.members[i], PyTuple_GET_ITEM(values, i))
        return record

    def numbered(self, record, flow_id):
        """`record` itself with its flow_id slot set: for a record nothing else holds yet (a
        part's hellos, numbered once their flows' ids are known), where a copy would only
        be made for the original to be dropped."""
        if type(record) is not self.cls or self.flow_id_at < 0:
            raise TypeError(f"{self.cls.__name__}: not a record of it with a flow_id")
        PyMember_SetOne(<char*><PyObject*>record, self.members[self.flow_id_at], <PyObject*>flow_id)
        return record

    def renumbered(self, record, flow_id):
        """A copy of `record` with another flow_id: what records.renumbering's Python copy
        (and dataclasses.replace) makes, each other slot's value taken by identity."""
        cdef Py_ssize_t i
        cdef PyObject* value
        if type(record) is not self.cls or self.flow_id_at < 0:
            raise TypeError(f"{self.cls.__name__}: not a record of it with a flow_id")
        copy = object.__new__(self.cls)
        for i in range(self.size):
            if i == self.flow_id_at:
                PyMember_SetOne(<char*><PyObject*>copy, self.members[i], <PyObject*>flow_id)
                continue
            value = PyMember_GetOne(<char*><PyObject*>record, self.members[i])
            if value == NULL:  # an unset slot: the record was not made whole
                raise AttributeError(f"{self.cls.__name__}: a field has no value")
            try:
                PyMember_SetOne(<char*><PyObject*>copy, self.members[i], value)
            finally:
                Py_DECREF(<object>value)
        return copy


# --- Compact records ----------------------------------------------------------------------
#
# Flow, TlsClientHello and TlsServerHello with their numbers unboxed: records.py binds its
# names to these classes where this module is built (`bind`), and the dataclasses there stay
# the definition (field names, order, defaults: `__dataclass_fields__` is theirs, so
# dataclasses.fields, replace and asdict work) and the pure-Python records. A dataclass
# record keeps an object for every number (an int above 256 is 32 bytes, a float 24) and a
# slot for each: a web capture's flow was about 720 bytes with its sample packet numbers,
# here it is 192 (its small values coded: below); a hello about 200 and 140, here 80 and 64
# (#17). The tests compare both classes of each record field by field
# (tests/observe/test_compact_records.py).
#
# No reference cycle can run through them (they hold numbers, strings, addresses, enum
# members and tuples of those), so the collector does not track them: a web capture's
# 200k records were 200k objects for every full collection to visit.

cdef enum:
    _INLINE_SAMPLES = 8  # records.SAMPLE_PACKETS_PER_FLOW: more are kept as the object itself
    # Flow._flags
    _HANDSHAKE_SEEN = 1
    _ANSWERED = 2
    _ACCEPTED = 4
    _REJECTED = 8
    _HAS_PAYLOAD_PACKET = 16
    # the hellos' _flags
    _HAS_QUIC_VERSION = 1

cdef object _NO_PAYLOAD = PayloadKind.NONE
cdef object _NO_ECH = EchKind.NONE
cdef long _LDAP_PORT = _LDAP_PORT_VALUE
cdef object _DEFAULT = object()  # "not given": a default the dataclass computes at import
cdef object _packet_numbers = None  # records.PacketNumbers, from `bind`

# The dataclasses' fields and annotations (typing.get_type_hints reads them: watch/spill.py),
# filled by `bind` (a type's attributes cannot be set afterwards, a dict's items can).
FLOW_FIELDS = {}
CLIENT_HELLO_FIELDS = {}
SERVER_HELLO_FIELDS = {}
FLOW_ANNOTATIONS = {}
CLIENT_HELLO_ANNOTATIONS = {}
SERVER_HELLO_ANNOTATIONS = {}


def bind(packet_numbers, flow, client_hello, server_hello):
    """The compact classes, for records.py's dataclasses `flow`, `client_hello` and
    `server_hello` (whose fields these classes must have, in order) and its PacketNumbers."""
    global _packet_numbers
    pairs = (
        (flow, Flow, FLOW_FIELDS, FLOW_ANNOTATIONS),
        (client_hello, TlsClientHello, CLIENT_HELLO_FIELDS, CLIENT_HELLO_ANNOTATIONS),
        (server_hello, TlsServerHello, SERVER_HELLO_FIELDS, SERVER_HELLO_ANNOTATIONS),
    )
    for python, compact, fields, annotations in pairs:
        names = tuple(python.__dataclass_fields__)
        if names != compact._field_names:
            raise ImportError(
                f"records.{python.__name__}'s fields differ from the compiled record's: "
                f"{names} != {compact._field_names}"
            )
        fields.clear()
        fields.update(python.__dataclass_fields__)
        annotations.clear()
        annotations.update(python.__annotations__)
    if int(packet_numbers.__basicsize__) != int(bytes.__basicsize__):
        raise ImportError("records.PacketNumbers is not a plain bytes subclass")
    _packet_numbers = packet_numbers
    return Flow, TlsClientHello, TlsServerHello


cdef inline object _optional(bint present, long long value):
    return value if present else None


cdef str _fields_repr(object record, tuple names):
    return f"{type(record).__qualname__}(" + ", ".join(
        [f"{name}={getattr(record, name)!r}" for name in names]
    ) + ")"


@cython.no_gc
cdef class _Compact:
    """What the compact records share: equality, hash, repr and pickling as their
    dataclasses have them, all from the field values in order (`_values`, a Python method:
    a cdef one gives every record a vtable pointer, and the hellos a size class more)."""

    def _values(self):
        raise NotImplementedError

    def __eq__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() == (<_Compact>other)._values()

    def __ne__(self, other):
        if type(other) is not type(self):
            return NotImplemented
        return self._values() != (<_Compact>other)._values()

    def __hash__(self):
        return hash(self._values())

    def __repr__(self):
        return _fields_repr(self, type(self)._field_names)

    def __reduce__(self):
        return (type(self), self._values())


# Values a flow holds as a code, not as a pointer (a pointer is 8 bytes, a code 1 or 4):
# - its transport and encapsulation, as an index into `_texts`: the few distinct strings a
#   capture has ("tcp", "ipv4>gre"), kept once for the process;
# - its initiator basis and payload kinds, as an index into `_members`: enum members, at most
#   255 distinct values (more is refused: only members are given).
cdef list _texts = []
cdef dict _text_codes = {}
cdef list _members = []
cdef dict _member_codes = {}
cdef enum:
    _BY_IDENTITY = 16  # the first values coded are found by identity, without hashing


cdef Py_ssize_t _code(list values, dict codes, object value, Py_ssize_t limit) except -1:
    """`value`'s index in `values`, appended when new. Keyed by type and value: "syn" and
    InitiatorBasis.SYN are equal, and each must come back as itself."""
    cdef Py_ssize_t i, count = len(values)
    for i in range(count if count < _BY_IDENTITY else _BY_IDENTITY):
        if values[i] is value:
            return i
    key = (type(value), value)
    code = codes.get(key)
    if code is None:
        if count >= limit:
            raise OverflowError(f"more than {limit} distinct values for a coded flow field")
        code = count
        values.append(value)
        codes[key] = code
    return code


cdef inline uint32_t _text_code(object value) except? 0xFFFFFFFF:
    return <uint32_t>_code(_texts, _text_codes, value, 0xFFFFFFFE)


cdef inline unsigned char _member_code(object value) except? 0xFF:
    return <unsigned char>_code(_members, _member_codes, value, 0xFF)


@cython.no_gc
@cython.final
cdef class Flow(_Compact):
    """records.Flow, compact (see above): 192 bytes, one allocator size class below the
    272 of every field in its own word (#17: 38 MiB of a 500k-flow port scan)."""

    _field_names = (
        "flow_id", "capture", "transport", "ip_version", "initiator", "initiator_port",
        "responder", "responder_port", "initiator_basis", "handshake_seen", "answered",
        "accepted", "rejected", "packets_out", "packets_in", "bytes_out", "bytes_in",
        "first_time", "last_time", "first_packet", "last_packet", "sample_packets",
        "tcp_flags_out", "tcp_flags_in", "payload_out", "payload_in", "first_payload_packet",
        "payload_head_out", "encapsulation", "ip_layer", "continued",
    )
    __dataclass_fields__ = FLOW_FIELDS
    __annotations__ = FLOW_ANNOTATIONS

    cdef readonly long long flow_id
    cdef readonly long long packets_out
    cdef readonly long long packets_in
    cdef readonly long long bytes_out
    cdef readonly long long bytes_in
    cdef readonly long long first_packet
    cdef readonly long long last_packet
    cdef long long _first_payload_packet
    cdef readonly double first_time
    cdef readonly double last_time
    cdef uint32_t _samples[_INLINE_SAMPLES]
    cdef readonly object initiator
    cdef readonly object responder
    cdef readonly object payload_head_out
    # None, or (the PacketNumbers when they do not fit `_samples`, else None; `continued`
    # when it is not empty): what few flows have, in one slot
    cdef object _rare
    cdef readonly int capture
    cdef uint32_t _transport  # codes into _texts
    cdef uint32_t _encapsulation
    cdef readonly unsigned short initiator_port
    cdef readonly unsigned short responder_port
    cdef readonly unsigned short tcp_flags_out
    cdef readonly unsigned short tcp_flags_in
    cdef readonly unsigned char ip_version
    cdef readonly unsigned char ip_layer
    cdef unsigned char _n_samples
    cdef unsigned char _flags  # _HANDSHAKE_SEEN | _ANSWERED | ... | _HAS_PAYLOAD_PACKET
    cdef unsigned char _initiator_basis  # codes into _members
    cdef unsigned char _payload_out
    cdef unsigned char _payload_in

    def __init__(
        self, flow_id, capture, transport, ip_version, initiator, initiator_port, responder,
        responder_port, initiator_basis, handshake_seen, answered, accepted, rejected,
        packets_out, packets_in, bytes_out, bytes_in, first_time, last_time, first_packet,
        last_packet, sample_packets, tcp_flags_out=0, tcp_flags_in=0, payload_out=_DEFAULT,
        payload_in=_DEFAULT, first_payload_packet=None, payload_head_out=b"",
        encapsulation="", ip_layer=1, continued=(),
    ):
        self.flow_id = flow_id
        self.capture = capture
        self._transport = _text_code(transport)
        self.ip_version = ip_version
        self.initiator = initiator
        self.initiator_port = initiator_port
        self.responder = responder
        self.responder_port = responder_port
        self._initiator_basis = _member_code(initiator_basis)
        self._flags = (
            (_HANDSHAKE_SEEN if handshake_seen else 0)
            | (_ANSWERED if answered else 0)
            | (_ACCEPTED if accepted else 0)
            | (_REJECTED if rejected else 0)
        )
        self.packets_out = packets_out
        self.packets_in = packets_in
        self.bytes_out = bytes_out
        self.bytes_in = bytes_in
        self.first_time = first_time
        self.last_time = last_time
        self.first_packet = first_packet
        self.last_packet = last_packet
        more = _set_samples(self, sample_packets)
        self.tcp_flags_out = tcp_flags_out
        self.tcp_flags_in = tcp_flags_in
        self._payload_out = _member_code(_NO_PAYLOAD if payload_out is _DEFAULT else payload_out)
        self._payload_in = _member_code(_NO_PAYLOAD if payload_in is _DEFAULT else payload_in)
        if first_payload_packet is not None:
            self._first_payload_packet = first_payload_packet
            self._flags |= _HAS_PAYLOAD_PACKET
        self.payload_head_out = payload_head_out
        self._encapsulation = _text_code(encapsulation)
        self.ip_layer = ip_layer
        if type(continued) is not tuple:
            continued = tuple(continued)  # the dataclass keeps what it is given: a tuple
        self._rare = (more, continued) if more is not None or continued else None

    @property
    def transport(self):
        return _texts[self._transport]

    @property
    def encapsulation(self):
        return _texts[self._encapsulation]

    @property
    def initiator_basis(self):
        return _members[self._initiator_basis]

    @property
    def payload_out(self):
        return _members[self._payload_out]

    @property
    def payload_in(self):
        return _members[self._payload_in]

    @property
    def continued(self):
        return () if self._rare is None else self._rare[1]

    @property
    def handshake_seen(self):
        return bool(self._flags & _HANDSHAKE_SEEN)

    @property
    def answered(self):
        return bool(self._flags & _ANSWERED)

    @property
    def accepted(self):
        return bool(self._flags & _ACCEPTED)

    @property
    def rejected(self):
        return bool(self._flags & _REJECTED)

    @property
    def first_payload_packet(self):
        return _optional(self._flags & _HAS_PAYLOAD_PACKET, self._first_payload_packet)

    @property
    def sample_packets(self):
        cdef long long wide[_INLINE_SAMPLES]
        cdef Py_ssize_t i
        if self._rare is not None and self._rare[0] is not None:
            return self._rare[0]
        for i in range(self._n_samples):
            wide[i] = self._samples[i]
        packed = PyBytes_FromStringAndSize(<const char*>wide, self._n_samples * 8)
        return bytes.__new__(_packet_numbers, packed)  # from_packed, less its size check

    @property
    def community_id(self):
        """records.Flow.community_id."""
        return _community_id_of_flow(
            self.transport, self.initiator, self.responder, self.initiator_port,
            self.responder_port,
        )

    def opens_with_starttls(self):
        """records.Flow.opens_with_starttls."""
        return self.responder_port == _LDAP_PORT and is_starttls_request(self.payload_head_out)

    def _values(self):
        return (
            self.flow_id, self.capture, self.transport, self.ip_version, self.initiator,
            self.initiator_port, self.responder, self.responder_port, self.initiator_basis,
            self.handshake_seen, self.answered, self.accepted, self.rejected,
            self.packets_out, self.packets_in, self.bytes_out, self.bytes_in,
            self.first_time, self.last_time, self.first_packet, self.last_packet,
            self.sample_packets, self.tcp_flags_out, self.tcp_flags_in, self.payload_out,
            self.payload_in, self.first_payload_packet, self.payload_head_out,
            self.encapsulation, self.ip_layer, self.continued,
        )



cdef object _set_samples(Flow flow, object samples):
    """Flow's sample packet numbers inline where they fit (at most 8, each below 2**32), or
    None; else the PacketNumbers itself, for `_rare` (a function, not a method: a cdef
    method gives every flow a vtable pointer)."""
    cdef Py_ssize_t size, i, count
    cdef const long long* numbers
    if type(samples) is not _packet_numbers:  # a tuple of numbers, as the dataclass takes
        samples = _packet_numbers(samples)
    size = PyBytes_GET_SIZE(samples)
    count = size >> 3
    flow._n_samples = 0
    if count > _INLINE_SAMPLES:
        return samples
    numbers = <const long long*>PyBytes_AS_STRING(samples)
    for i in range(count):
        if numbers[i] < 0 or numbers[i] > 0xFFFFFFFF:
            return samples
    for i in range(count):
        flow._samples[i] = <uint32_t>numbers[i]
    flow._n_samples = <unsigned char>count
    return None


@cython.no_gc
@cython.final
cdef class TlsClientHello(_Compact):
    """records.TlsClientHello, compact (see above)."""

    _field_names = (
        "capture", "packet", "time", "flow_id", "sni", "versions", "cipher_suites", "alpn",
        "segments", "quic_version", "ech",
    )
    __dataclass_fields__ = CLIENT_HELLO_FIELDS
    __annotations__ = CLIENT_HELLO_ANNOTATIONS

    cdef readonly long long packet
    cdef readonly double time
    cdef readonly object sni
    cdef readonly object versions
    cdef readonly object cipher_suites
    cdef readonly object alpn
    cdef uint32_t _quic_version  # 32 bits on the wire (RFC 9000 §17.2)
    cdef readonly uint32_t flow_id  # a flow's row: 2**32 flows would not fit in memory
    cdef readonly int capture
    cdef readonly unsigned short segments  # payloads.MAX_HELLO_SEGMENTS: a few
    cdef unsigned char _flags
    cdef unsigned char _ech  # a code into _members

    def __init__(
        self, capture, packet, time, flow_id, sni, versions, cipher_suites, alpn, segments=1,
        quic_version=None, ech=_DEFAULT,
    ):
        self.capture = capture
        self.packet = packet
        self.time = time
        self.flow_id = flow_id
        self.sni = sni
        self.versions = versions
        self.cipher_suites = cipher_suites
        self.alpn = alpn
        self.segments = segments
        self._flags = 0
        if quic_version is not None:
            self._quic_version = quic_version
            self._flags = _HAS_QUIC_VERSION
        self._ech = _member_code(_NO_ECH if ech is _DEFAULT else ech)

    @property
    def quic_version(self):
        return _optional(self._flags & _HAS_QUIC_VERSION, self._quic_version)

    @property
    def ech(self):
        return _members[self._ech]

    def _values(self):
        return (
            self.capture, self.packet, self.time, self.flow_id, self.sni, self.versions,
            self.cipher_suites, self.alpn, self.segments, self.quic_version, self.ech,
        )



@cython.no_gc
@cython.final
cdef class TlsServerHello(_Compact):
    """records.TlsServerHello, compact (see above)."""

    _field_names = (
        "capture", "packet", "time", "flow_id", "version", "cipher_suite", "quic_version",
    )
    __dataclass_fields__ = SERVER_HELLO_FIELDS
    __annotations__ = SERVER_HELLO_ANNOTATIONS

    # 48 bytes, a size class under 64 (#17): the flow id is a flow's row (as a client
    # hello's), the version and suite are 16 bits on the wire (RFC 8446 §4.1.3), and a QUIC
    # version of 0 stands for none: 0 is Version Negotiation (RFC 9000 §17.2.1), which
    # carries no hello, so a record given it is refused rather than read back as TCP.
    cdef readonly long long packet
    cdef readonly double time
    cdef readonly uint32_t flow_id
    cdef uint32_t _quic_version  # 32 bits on the wire (RFC 9000 §17.2); 0: none (TCP)
    cdef readonly int capture
    cdef readonly unsigned short version
    cdef readonly unsigned short cipher_suite

    def __init__(self, capture, packet, time, flow_id, version, cipher_suite, quic_version=None):
        self.capture = capture
        self.packet = packet
        self.time = time
        self.flow_id = flow_id
        self.version = version
        self.cipher_suite = cipher_suite
        if quic_version is None:
            self._quic_version = 0
        elif quic_version == 0:
            raise ValueError("QUIC version 0 is Version Negotiation, which carries no hello")
        else:
            self._quic_version = quic_version

    @property
    def quic_version(self):
        return _optional(self._quic_version != 0, self._quic_version)

    def _values(self):
        return (
            self.capture, self.packet, self.time, self.flow_id, self.version,
            self.cipher_suite, self.quic_version,
        )



cdef class CompactMaker:
    """records.maker for a compact class: the class itself makes the record; `numbered` sets
    the id of a record nothing else holds yet, `renumbered` copies one with another id."""

    cdef readonly object cls
    cdef int which  # 0 Flow, 1 TlsClientHello, 2 TlsServerHello
    cdef Py_ssize_t flow_id_at

    def __init__(self, cls):
        if cls is Flow:
            self.which = 0
        elif cls is TlsClientHello:
            self.which = 1
        elif cls is TlsServerHello:
            self.which = 2
        else:
            raise TypeError(f"{cls.__name__}: not a compact record class")
        self.cls = cls
        self.flow_id_at = cls._field_names.index("flow_id")

    def __call__(self, *values):
        return self.cls(*values)

    cdef int _check(self, object record) except -1:
        if type(record) is not self.cls:
            raise TypeError(f"{self.cls.__name__}: not a record of it")
        return 0

    def numbered(self, record, long long flow_id):
        self._check(record)
        if self.which == 0:
            (<Flow>record).flow_id = flow_id
            return record
        if not 0 <= flow_id <= 0xFFFFFFFF:
            raise OverflowError(f"flow id {flow_id}: a hello keeps 32 bits")
        if self.which == 1:
            (<TlsClientHello>record).flow_id = <uint32_t>flow_id
        else:
            (<TlsServerHello>record).flow_id = <uint32_t>flow_id
        return record

    def renumbered(self, record, long long flow_id):
        self._check(record)
        values = list((<_Compact>record)._values())
        values[self.flow_id_at] = flow_id
        return self.cls(*values)


# --- The records out of memory (#17, docs/scaling.md steps 3-4) ---------------------------
#
# A web capture has a flow and a client and a server hello for nearly every connection:
# 194k records, 21 MiB of objects on the 2M web mix from the walk to the report. A
# `RecordStore` keeps one kind packed at a fixed size (164, 52 and 32 bytes) in an unlinked
# scratch file, with the last records in a buffer until a block is full, and makes each
# record when asked: its reader passes (the judges', the coverage's, the evidence tables')
# each make their objects again and drop them. A record's object fields (addresses, the
# payload head, the SNI, the lists of versions, suites and ALPN protocols, the enum
# members, a flow's rare slot) are codes into the store's table of the distinct values,
# each coming back as the very object given. Without a scratch file, or once the file takes
# no more, the records stay in memory, packed.

cdef extern from "<unistd.h>" nogil:
    ssize_t c_pread "pread"(int fd, void* buf, size_t count, long long offset)
    ssize_t c_pwrite "pwrite"(int fd, const void* buf, size_t count, long long offset)
    int c_close "close"(int fd)

from libc.errno cimport errno
from libc.stdint cimport int32_t, int64_t, uint8_t, uint16_t
from cpython.bytearray cimport PyByteArray_AS_STRING
from cpython.dict cimport PyDict_GetItem
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc

import enum as _enum
import os
import sys
import tempfile
from array import array as _array


cdef packed struct _FlowPacked:
    int64_t flow_id
    int64_t packets_out
    int64_t packets_in
    int64_t bytes_out
    int64_t bytes_in
    int64_t first_packet
    int64_t last_packet
    int64_t first_payload_packet
    double first_time
    double last_time
    uint32_t samples[_INLINE_SAMPLES]
    uint32_t initiator  # codes into RecordStore.values
    uint32_t responder
    uint32_t payload_head_out
    uint32_t rare
    uint32_t transport
    uint32_t encapsulation
    uint32_t initiator_basis
    uint32_t payload_out
    uint32_t payload_in
    int32_t capture
    uint16_t initiator_port
    uint16_t responder_port
    uint16_t tcp_flags_out
    uint16_t tcp_flags_in
    uint8_t ip_version
    uint8_t ip_layer
    uint8_t n_samples
    uint8_t flags


cdef packed struct _ClientPacked:
    int64_t packet
    double time
    uint32_t flow_id
    int32_t capture
    uint32_t quic_version
    uint32_t sni  # codes into RecordStore.values
    uint32_t versions
    uint32_t cipher_suites
    uint32_t alpn
    uint32_t ech
    uint16_t segments
    uint8_t flags
    uint8_t unused


cdef packed struct _ServerPacked:
    int64_t packet
    double time
    uint32_t flow_id
    uint32_t quic_version  # 0: none, as TlsServerHello keeps it
    int32_t capture
    uint16_t version
    uint16_t cipher_suite


cdef enum:
    _FLOW = 0
    _CLIENT = 1
    _SERVER = 2
    _TAIL_BYTES = 1 << 17  # records past the file's, before they are written to it
    _STORE_WINDOWS = 4  # windows of the file records are read through
    _STORE_WINDOW = 1 << 15  # ... of this many bytes each (a multiple of both record sizes)
    _RECORD_MAX = 176  # at least the largest packed record (checked below)

cdef Py_ssize_t _MAX_CODES = 0xFFFFFFFE  # codes are 32 bits

assert sizeof(_FlowPacked) == 164 and sizeof(_FlowPacked) <= _RECORD_MAX
assert sizeof(_ClientPacked) == 52 and sizeof(_ServerPacked) == 32


def _scratch_file():
    """A file descriptor of a new, unlinked file in the system's temporary directory
    (nothing is left behind, however the process ends); the store closes it."""
    with tempfile.TemporaryFile() as file:  # O_TMPFILE where it can: never a name at all
        return os.dup(file.fileno())


cdef class RecordStore:
    """A sequence of one kind of compact record (Flow, TlsClientHello or TlsServerHello),
    packed, the records past the last block in memory and the rest in an unlinked scratch
    file (see above). It is filled by `append`/`extend` (and `__setitem__` replaces a record in
    place) until `sealed`; then, as the tuple it stands in for in an Observations, it is
    equal to any sequence of the same records and hashes as their tuple."""

    cdef readonly int which  # _FLOW, _CLIENT or _SERVER
    cdef Py_ssize_t size  # of a packed record
    cdef Py_ssize_t n  # records
    cdef list values  # the distinct object field values; a record holds their codes
    cdef dict codes  # (type, value) -> code
    cdef dict ids  # id(value) -> code, for the values in `values` (alive, so ids are theirs)
    cdef int fd  # the scratch file's, -1 until the tail first fills (or if none was had)
    cdef Py_ssize_t flushed  # records in the file: indices below this are read from it
    cdef bint in_memory  # no file takes more: the tail keeps every record past `flushed`
    cdef uint8_t* tail
    cdef Py_ssize_t tail_capacity  # records
    cdef uint8_t* windows
    cdef Py_ssize_t window_records  # records a window holds
    cdef Py_ssize_t window_first[_STORE_WINDOWS]  # the window's first record, -1 if none
    cdef Py_ssize_t window_count[_STORE_WINDOWS]
    cdef unsigned long long window_used[_STORE_WINDOWS]
    cdef unsigned long long clock
    cdef readonly bint sealed

    def __cinit__(self):
        self.tail = NULL
        self.windows = NULL
        self.fd = -1

    def __init__(self, kind, records=()):
        if kind is Flow:
            self.which, self.size = _FLOW, sizeof(_FlowPacked)
        elif kind is TlsClientHello:
            self.which, self.size = _CLIENT, sizeof(_ClientPacked)
        elif kind is TlsServerHello:
            self.which, self.size = _SERVER, sizeof(_ServerPacked)
        else:
            raise TypeError(f"{getattr(kind, '__name__', kind)}: not a compact record class")
        self.values = []
        self.codes = {}
        self.ids = {}
        self.tail_capacity = _TAIL_BYTES // self.size
        self.window_records = _STORE_WINDOW // self.size
        self._forget_windows()
        self.extend(records)

    def __dealloc__(self):
        if self.fd >= 0:
            c_close(self.fd)
        PyMem_Free(self.tail)
        PyMem_Free(self.windows)

    @property
    def kind(self):
        return (Flow, TlsClientHello, TlsServerHello)[self.which]

    @property
    def on_file(self):
        """Records in the scratch file (the rest are in memory)."""
        return self.flushed

    cdef void _forget_windows(self) noexcept:
        cdef Py_ssize_t w
        for w in range(_STORE_WINDOWS):
            self.window_first[w] = -1
            self.window_count[w] = 0
            self.window_used[w] = 0

    def resident_bytes(self):
        """The memory the store holds itself: its buffers and its table of values (not the
        values, which its records share with the rest of the run)."""
        held = sys.getsizeof(self.values) + sys.getsizeof(self.codes) + sys.getsizeof(self.ids)
        if self.tail != NULL:
            held += self.tail_capacity * self.size
        if self.windows != NULL:
            held += _STORE_WINDOWS * self.window_records * self.size
        return held

    def seal(self):
        """No record added or replaced from now on; the store itself."""
        self.sealed = True
        return self

    def close(self):
        """Let go of every record, the file and the buffers."""
        if self.fd >= 0:
            c_close(self.fd)
        self.fd = -1
        PyMem_Free(self.tail)
        PyMem_Free(self.windows)
        self.tail = NULL
        self.windows = NULL
        self.n = self.flushed = 0
        self.in_memory = False
        self.values = []
        self.codes = {}
        self.ids = {}
        self._forget_windows()

    def clear(self):
        self._refuse_change()
        self.close()

    # -- writing ------------------------------------------------------------------------

    cdef int _refuse_change(self) except -1:
        if self.sealed:
            raise TypeError("a sealed RecordStore is not changed")
        return 0

    cdef uint32_t _code_of(self, object value) except? 0xFFFFFFFF:
        """`value`'s code, a new one when no equal value of its type has one."""
        cdef PyObject* found = PyDict_GetItem(self.ids, id(value))
        if found != NULL:
            return <uint32_t><object>found
        key = (type(value), value)
        code = self.codes.get(key)
        if code is not None:
            return code
        code = len(self.values)
        if code >= _MAX_CODES:
            raise OverflowError(f"more than {_MAX_CODES} distinct values in one record store")
        self.values.append(value)
        self.codes[key] = code
        self.ids[id(value)] = code
        return code

    cdef int _pack_flow(self, object record, uint8_t* out) except -1:
        cdef _FlowPacked f
        cdef Flow flow
        if type(record) is not Flow:
            raise TypeError(f"{type(record).__name__}: not a Flow")
        flow = <Flow>record
        f.flow_id = flow.flow_id
        f.packets_out = flow.packets_out
        f.packets_in = flow.packets_in
        f.bytes_out = flow.bytes_out
        f.bytes_in = flow.bytes_in
        f.first_packet = flow.first_packet
        f.last_packet = flow.last_packet
        f.first_payload_packet = flow._first_payload_packet
        f.first_time = flow.first_time
        f.last_time = flow.last_time
        memcpy(f.samples, flow._samples, sizeof(f.samples))
        f.initiator = self._code_of(flow.initiator)
        f.responder = self._code_of(flow.responder)
        f.payload_head_out = self._code_of(flow.payload_head_out)
        f.rare = self._code_of(flow._rare)
        f.transport = self._code_of(_texts[flow._transport])
        f.encapsulation = self._code_of(_texts[flow._encapsulation])
        f.initiator_basis = self._code_of(_members[flow._initiator_basis])
        f.payload_out = self._code_of(_members[flow._payload_out])
        f.payload_in = self._code_of(_members[flow._payload_in])
        f.capture = flow.capture
        f.initiator_port = flow.initiator_port
        f.responder_port = flow.responder_port
        f.tcp_flags_out = flow.tcp_flags_out
        f.tcp_flags_in = flow.tcp_flags_in
        f.ip_version = flow.ip_version
        f.ip_layer = flow.ip_layer
        f.n_samples = flow._n_samples
        f.flags = flow._flags
        memcpy(out, &f, sizeof(f))
        return 0

    cdef int _pack(self, object record, uint8_t* out) except -1:
        cdef _ClientPacked c
        cdef _ServerPacked s
        cdef TlsClientHello client
        cdef TlsServerHello server
        if self.which == _FLOW:
            return self._pack_flow(record, out)
        if self.which == _CLIENT:
            if type(record) is not TlsClientHello:
                raise TypeError(f"{type(record).__name__}: not a TlsClientHello")
            client = <TlsClientHello>record
            c.packet = client.packet
            c.time = client.time
            c.flow_id = client.flow_id
            c.capture = client.capture
            c.quic_version = client._quic_version
            c.sni = self._code_of(client.sni)
            c.versions = self._code_of(client.versions)
            c.cipher_suites = self._code_of(client.cipher_suites)
            c.alpn = self._code_of(client.alpn)
            c.ech = self._code_of(_members[client._ech])
            c.segments = client.segments
            c.flags = client._flags
            c.unused = 0
            memcpy(out, &c, sizeof(c))
        else:
            if type(record) is not TlsServerHello:
                raise TypeError(f"{type(record).__name__}: not a TlsServerHello")
            server = <TlsServerHello>record
            s.packet = server.packet
            s.time = server.time
            s.flow_id = server.flow_id
            s.quic_version = server._quic_version
            s.capture = server.capture
            s.version = server.version
            s.cipher_suite = server.cipher_suite
            memcpy(out, &s, sizeof(s))
        return 0

    cdef uint8_t* _next_slot(self) except NULL:
        """Where the next record goes in the tail (made, or emptied to the file, as needed);
        the caller fills it and counts it."""
        if self.tail == NULL:
            self.tail = <uint8_t*>PyMem_Malloc(self.tail_capacity * self.size)
            if self.tail == NULL:
                raise MemoryError()
        elif self.n - self.flushed == self.tail_capacity:
            self._make_room()
        return self.tail + (self.n - self.flushed) * self.size

    def append(self, record):
        self._refuse_change()
        self._pack(record, self._next_slot())
        self.n += 1

    def extend(self, records):
        if records is self:  # as list.extend: the records as they were, once more
            records = list(self)
        for record in records:
            self.append(record)

    cdef int _make_room(self) except -1:
        """The full tail to the file; or, where no file takes it, a tail twice as large."""
        cdef Py_ssize_t held = self.n - self.flushed
        cdef ssize_t wrote
        cdef uint8_t* grown
        if not self.in_memory and self.fd < 0:
            try:
                self.fd = _scratch_file()
            except OSError:
                self.in_memory = True
        if not self.in_memory:
            wrote = c_pwrite(self.fd, self.tail, held * self.size, self.flushed * self.size)
            if wrote == held * self.size:
                self.flushed = self.n
                return 0
            # A full disk: what is on file stays readable, the rest stays here.
            self.in_memory = True
        grown = <uint8_t*>PyMem_Realloc(self.tail, 2 * self.tail_capacity * self.size)
        if grown == NULL:
            raise MemoryError()
        self.tail = grown
        self.tail_capacity *= 2
        return 0

    def __setitem__(self, index, record):
        cdef Py_ssize_t i = self._index(index)
        cdef uint8_t packed[_RECORD_MAX]
        cdef Py_ssize_t w, first
        self._refuse_change()
        self._pack(record, packed)
        if i >= self.flushed:
            memcpy(self.tail + (i - self.flushed) * self.size, packed, self.size)
            return
        if c_pwrite(self.fd, packed, self.size, i * self.size) != self.size:
            raise OSError(errno, f"hello store: cannot write record {i} to its scratch file")
        for w in range(_STORE_WINDOWS):  # a window holding it holds the new one
            first = self.window_first[w]
            if first >= 0 and first <= i < first + self.window_count[w]:
                memcpy(self.windows + (w * self.window_records + i - first) * self.size,
                       packed, self.size)

    # -- reading ------------------------------------------------------------------------

    def __len__(self):
        return self.n

    cdef Py_ssize_t _index(self, object index) except -1:
        cdef Py_ssize_t i = index
        if i < 0:
            i += self.n
        if not 0 <= i < self.n:
            raise IndexError("RecordStore index out of range")
        return i

    cdef const uint8_t* _at(self, Py_ssize_t i) except NULL:
        """The packed record `i` (0 <= i < count): in the tail, or in a window of the file."""
        cdef Py_ssize_t w, oldest = 0, first, n
        cdef ssize_t got
        if i >= self.flushed:
            return self.tail + (i - self.flushed) * self.size
        self.clock += 1
        for w in range(_STORE_WINDOWS):
            first = self.window_first[w]
            if first >= 0 and first <= i < first + self.window_count[w]:
                self.window_used[w] = self.clock
                return self.windows + (w * self.window_records + i - first) * self.size
            if self.window_used[w] < self.window_used[oldest]:
                oldest = w
        if self.windows == NULL:
            self.windows = <uint8_t*>PyMem_Malloc(
                _STORE_WINDOWS * self.window_records * self.size
            )
            if self.windows == NULL:
                raise MemoryError()
        first = i - i % self.window_records
        n = min(self.window_records, self.flushed - first)
        got = c_pread(self.fd, self.windows + oldest * self.window_records * self.size,
                      n * self.size, first * self.size)
        if got != n * self.size:
            self.window_first[oldest] = -1
            raise OSError(errno, f"hello store: cannot read record {i} from its scratch file")
        self.window_first[oldest] = first
        self.window_count[oldest] = n
        self.window_used[oldest] = self.clock
        return self.windows + (oldest * self.window_records + i - first) * self.size

    cdef object _made_flow(self, const uint8_t* at):
        cdef _FlowPacked f
        cdef Flow flow
        cdef list values = self.values
        # Copied out before anything is allocated: an allocation may run the collector, and
        # so other threads, which may read this store through the same window.
        memcpy(&f, at, sizeof(f))
        flow = Flow.__new__(Flow)
        flow.flow_id = f.flow_id
        flow.packets_out = f.packets_out
        flow.packets_in = f.packets_in
        flow.bytes_out = f.bytes_out
        flow.bytes_in = f.bytes_in
        flow.first_packet = f.first_packet
        flow.last_packet = f.last_packet
        flow._first_payload_packet = f.first_payload_packet
        flow.first_time = f.first_time
        flow.last_time = f.last_time
        memcpy(flow._samples, f.samples, sizeof(f.samples))
        flow.initiator = values[f.initiator]
        flow.responder = values[f.responder]
        flow.payload_head_out = values[f.payload_head_out]
        flow._rare = values[f.rare]
        flow._transport = _text_code(values[f.transport])
        flow._encapsulation = _text_code(values[f.encapsulation])
        flow._initiator_basis = _member_code(values[f.initiator_basis])
        flow._payload_out = _member_code(values[f.payload_out])
        flow._payload_in = _member_code(values[f.payload_in])
        flow.capture = f.capture
        flow.initiator_port = f.initiator_port
        flow.responder_port = f.responder_port
        flow.tcp_flags_out = f.tcp_flags_out
        flow.tcp_flags_in = f.tcp_flags_in
        flow.ip_version = f.ip_version
        flow.ip_layer = f.ip_layer
        flow._n_samples = f.n_samples
        flow._flags = f.flags
        return flow

    cdef object _made(self, Py_ssize_t i):
        cdef const uint8_t* at = self._at(i)
        cdef _ClientPacked c
        cdef _ServerPacked s
        cdef TlsClientHello client
        cdef TlsServerHello server
        if self.which == _FLOW:
            return self._made_flow(at)
        if self.which == _CLIENT:
            memcpy(&c, at, sizeof(c))
            client = TlsClientHello.__new__(TlsClientHello)
            client.packet = c.packet
            client.time = c.time
            client.flow_id = c.flow_id
            client.capture = c.capture
            client._quic_version = c.quic_version
            client.sni = self.values[c.sni]
            client.versions = self.values[c.versions]
            client.cipher_suites = self.values[c.cipher_suites]
            client.alpn = self.values[c.alpn]
            client._ech = _member_code(self.values[c.ech])
            client.segments = c.segments
            client._flags = c.flags
            return client
        memcpy(&s, at, sizeof(s))
        server = TlsServerHello.__new__(TlsServerHello)
        server.packet = s.packet
        server.time = s.time
        server.flow_id = s.flow_id
        server._quic_version = s.quic_version
        server.capture = s.capture
        server.version = s.version
        server.cipher_suite = s.cipher_suite
        return server

    cdef int _check_codes(self, const uint8_t* at) except -1:
        """Refuse a record whose codes name no value (a damaged pickle), before it is read."""
        cdef _ClientPacked c
        cdef _FlowPacked f
        cdef uint32_t limit = len(self.values)
        if self.which == _FLOW:
            memcpy(&f, at, sizeof(f))
            if max(f.initiator, f.responder, f.payload_head_out, f.rare, f.transport,
                   f.encapsulation, f.initiator_basis, f.payload_out, f.payload_in) >= limit:
                raise ValueError("a pickled RecordStore's record names a value it does not hold")
            if f.n_samples > _INLINE_SAMPLES:
                raise ValueError("a pickled RecordStore's flow has more samples than it holds")
            for code in (f.initiator_basis, f.payload_out, f.payload_in):
                if not isinstance(self.values[code], _enum.Enum):
                    raise ValueError("a pickled RecordStore's flow has no member for a kind")
            for code in (f.transport, f.encapsulation):
                if type(self.values[code]) is not str:
                    raise ValueError("a pickled RecordStore's flow has no text for a kind")
            rare = self.values[f.rare]
            if rare is not None and not (type(rare) is tuple and len(rare) == 2):
                raise ValueError("a pickled RecordStore's flow has a damaged rare slot")
            return 0
        if self.which != _CLIENT:
            return 0
        memcpy(&c, at, sizeof(c))
        if max(c.sni, c.versions, c.cipher_suites, c.alpn, c.ech) >= limit:
            raise ValueError("a pickled RecordStore's record names a value it does not hold")
        if type(self.values[c.ech]) is not EchKind:
            raise ValueError("a pickled RecordStore's record has no ECH kind")
        return 0

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple([self._made(i) for i in range(*index.indices(self.n))])
        return self._made(self._index(index))

    def __iter__(self):
        return _StoreIterator(self)

    def __reversed__(self):
        return (self._made(i) for i in range(self.n - 1, -1, -1))

    cdef inline long long _packet_of(self, Py_ssize_t i) except? -1:
        """A hello's packet, a flow's first packet."""
        cdef int64_t packet
        cdef const uint8_t* at = self._at(i)
        if self.which == _FLOW:
            at += <Py_ssize_t>&(<_FlowPacked*>NULL).first_packet
        memcpy(&packet, at, sizeof(packet))  # the first field of both hellos
        return packet

    def packets(self):
        """Every record's packet number, in order (array 'q')."""
        cdef Py_ssize_t i
        out = _array("q", bytes(8 * self.n))
        cdef long long[:] view = out
        for i in range(self.n):
            view[i] = self._packet_of(i)
        return out

    def packets_ascend(self):
        """Whether the records are in packet order (equal packets allowed)."""
        cdef Py_ssize_t i
        cdef long long previous = -0x7FFFFFFFFFFFFFFF, packet
        for i in range(self.n):
            packet = self._packet_of(i)
            if packet < previous:
                return False
            previous = packet
        return True

    def taken(self, order):
        """A new store of these records in the order of the indices `order` (each once);
        this one is closed."""
        out = RecordStore(self.kind)
        for i in order:
            out.append(self._made(self._index(i)))
        self.close()
        return out

    # -- as the tuple it stands in for --------------------------------------------------

    def __eq__(self, other):
        cdef Py_ssize_t i
        if other is self:
            return True
        if not isinstance(other, (tuple, list, RecordStore)):
            return NotImplemented
        if len(other) != self.n:
            return False
        for i, record in enumerate(other):
            if self._made(i) != record:
                return False
        return True

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self):
        if not self.sealed:
            raise TypeError("unhashable: a RecordStore still being filled")
        return hash(tuple(self))

    def __repr__(self):
        return f"RecordStore({self.kind.__name__}, {self.n} records)"

    def __reduce__(self):
        cdef Py_ssize_t i
        packed = bytearray(self.n * self.size)
        cdef uint8_t* out = <uint8_t*>PyByteArray_AS_STRING(packed) if self.n else NULL
        for i in range(self.n):
            memcpy(out + i * self.size, self._at(i), self.size)
        return (_restored_store, (self.kind, bytes(packed), self.values, self.sealed))


def _restored_store(kind, bytes packed, list values, bint sealed):
    """A pickled RecordStore made again (here in memory, then on file as it is filled)."""
    cdef RecordStore store = RecordStore(kind)
    cdef Py_ssize_t i, count = len(packed) // store.size
    cdef const uint8_t* data = <const uint8_t*>PyBytes_AS_STRING(packed)
    cdef uint8_t* slot
    if len(packed) % store.size:
        raise ValueError("a pickled RecordStore's records end inside one")
    store.values = list(values)
    for i, value in enumerate(store.values):
        store.codes[(type(value), value)] = i
        store.ids[id(value)] = i
    for i in range(count):
        slot = store._next_slot()
        memcpy(slot, data + i * store.size, store.size)
        store._check_codes(slot)
        store.n += 1
    store.sealed = sealed
    return store


@cython.final
cdef class _StoreIterator:
    cdef RecordStore store
    cdef Py_ssize_t next_index

    def __cinit__(self, RecordStore store):
        self.store = store
        self.next_index = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.next_index >= self.store.n:
            raise StopIteration
        self.next_index += 1
        return self.store._made(self.next_index - 1)

    def __length_hint__(self):
        return max(self.store.n - self.next_index, 0)


from collections.abc import Sequence as _Sequence
_Sequence.register(RecordStore)
