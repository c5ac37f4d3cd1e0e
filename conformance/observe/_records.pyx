# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled record maker of observe/records.py `maker`: a frozen, slotted dataclass's
record from all its field values, without its generated `__init__`.

A frozen dataclass's `__init__` sets each field through `object.__setattr__` (its own
`__setattr__` refuses), some 130 ns a field: a web capture's 65k flows of 31 fields and twice
as many hellos (each made twice: read, then renumbered) spent most of a second there. A slot
is a member descriptor; `PyMember_SetOne` is what that descriptor's `__set__` does, so the
record made here is the one `__init__` makes: same type, same slots, same values, still
frozen (tests/observe/test_record_maker.py compares them). Only classes whose `__init__`
does nothing else are taken: every field in `__init__`, positional, no `__post_init__`.
"""

from cpython.object cimport PyObject
from cpython.ref cimport Py_DECREF
from cpython.tuple cimport PyTuple_GET_ITEM, PyTuple_GET_SIZE
from libc.stdlib cimport free, malloc

import dataclasses
from types import MemberDescriptorType


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
