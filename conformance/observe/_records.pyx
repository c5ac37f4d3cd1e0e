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
