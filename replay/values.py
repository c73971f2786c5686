"""Conversion between wasmtime-py's component values and the recorded form, driven by the WIT type.

wasmtime-py lifts ``result`` and ``variant`` untagged when the Python types of the cases differ (a
``result<_, string>`` comes back as ``None`` or a ``str``) and as ``Variant`` when they overlap. This is the one
place that normalises them. The recorded form is plain CBOR-able data, readable in ``theater events``:

==================  ==========================================
WIT                 recorded
==================  ==========================================
bool, ints, floats  the value; char and string: ``str``
list<u8>            ``bytes``; other lists: ``list``
tuple               ``list``
record              ``dict`` of field name to value
option<T>           ``None`` or ``{"some": v}``
result<T, E>        ``{"ok": v}`` or ``{"err": v}`` (``v`` None without payload)
variant             ``{case: v}``; enum: the case name; flags: sorted list of names
==================  ==========================================

``lifter(ty)`` and ``lowerer(ty)`` build the converter for a type once; calling it is cheap. ``canonical(ty)`` tells
whether the lifter's values of a type need no canonical re-ordering when stored.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import Any

import wasmtime.component as wc

from replay._wasmtime import case_classes, is_tagged

Converter = Callable[[Any], Any]

_SCALARS = (wc.Bool, wc.S8, wc.S16, wc.S32, wc.S64, wc.U8, wc.U16, wc.U32, wc.U64, wc.F32, wc.F64, wc.Char, wc.String)


def _identity(value: Any) -> Any:
    return value


def lifter(ty: Any) -> Converter:
    """A function turning a wasmtime-py value of type ``ty`` into the recorded form.

    Raises:
        TypeError: ``ty`` is a resource or another type Theater does not record.
    """
    if ty is None or isinstance(ty, _SCALARS):
        return _identity
    if isinstance(ty, wc.ListType):
        if isinstance(ty.element, wc.U8):
            return bytes
        item = lifter(ty.element)
        return list if item is _identity else (lambda v: [item(x) for x in v])
    if isinstance(ty, wc.TupleType):
        items = [lifter(t) for t in ty.elements]
        if all(item is _identity for item in items):  # a header: the same list, copied in C
            n = len(items)
            return lambda v: list(islice(v, n))
        return lambda v: [f(x) for f, x in zip(items, v)]
    if isinstance(ty, wc.RecordType):
        # Fields in canonical CBOR key order (shorter names first): the store then encodes the map without
        # cbor2's slower canonical mode, and the value is the same as the one read back.
        fields = sorted(((name, lifter(t)) for name, t in ty.fields), key=lambda f: (len(f[0].encode()), f[0].encode()))
        return lambda v: {name: f(getattr(v, name)) for name, f in fields}
    if isinstance(ty, wc.OptionType):
        payload = lifter(ty.payload)
        if is_tagged(ty):  # an option of something that can be None itself: wasmtime-py gives a ``Variant``
            return lambda v: None if v.tag == "none" else {"some": payload(v.payload)}
        return lambda v: None if v is None else {"some": payload(v)}
    if isinstance(ty, (wc.ResultType, wc.VariantType)):
        return _variant_lifter(ty)
    if isinstance(ty, wc.EnumType):
        return _identity
    if isinstance(ty, wc.FlagsType):
        return lambda v: sorted(v)
    raise TypeError(f"cannot record a value of type {type(ty).__name__}")


def canonical(ty: Any) -> bool:
    """True when every value ``lifter(ty)`` makes is already in canonical CBOR form as cbor2 encodes it by default.

    The lifter writes a record's fields in canonical key order and a variant, result or option as a one-key map;
    every other node is a string, byte string, integer, bool, null or list, which CBOR encodes one way only. Floats
    are the exception (canonical CBOR writes each in its shortest exact width, cbor2's default does not), and so is
    a record with a field name that is not ASCII (the store's own check, ``store.codec._plain``, leaves those to
    the canonical path): a type holding either, or a type the lifter does not record, is not canonical. The store
    then skips that check for such values (``EventLog.prepare(plain=True)``); tests/replay/test_canonical_lift.py
    compares the bytes both ways for every shape the lifter makes.
    """
    if ty is None:
        return True
    if isinstance(ty, (wc.F32, wc.F64)):
        return False
    if isinstance(ty, (_SCALARS, wc.EnumType, wc.FlagsType)):
        return True
    if isinstance(ty, wc.ListType):
        return canonical(ty.element)
    if isinstance(ty, wc.TupleType):
        return all(canonical(t) for t in ty.elements)
    if isinstance(ty, wc.RecordType):
        return all(name.isascii() and canonical(t) for name, t in ty.fields)
    if isinstance(ty, wc.OptionType):
        return canonical(ty.payload)
    if isinstance(ty, (wc.ResultType, wc.VariantType)):
        return all(canonical(t) for _, t in _cases(ty))
    return False


def _cases(ty: Any) -> list[tuple[str, Any]]:
    if isinstance(ty, wc.ResultType):
        return [("ok", ty.ok), ("err", ty.err)]
    return list(ty.cases)


def _variant_lifter(ty: Any) -> Converter:
    cases = _cases(ty)
    if is_tagged(ty):
        conv = {name: (lifter(t) if t is not None else None) for name, t in cases}

        def lift_tagged(v: Any) -> Any:
            f = conv[v.tag]
            return {v.tag: None if f is None else f(v.payload)}

        return lift_tagged
    # Untagged: the Python type of the value tells the case apart.
    tests: list[tuple[str, tuple[type, ...] | None, Converter | None]] = []
    for name, t in cases:
        if t is None:
            tests.append((name, None, None))
        else:
            tests.append((name, case_classes(t), lifter(t)))

    def lift_untagged(v: Any) -> Any:
        for name, classes, f in tests:
            if classes is None:
                if v is None:
                    return {name: None}
            elif isinstance(v, classes):
                return {name: f(v)}  # type: ignore[misc]
        raise TypeError(f"value {v!r} matches no case of the variant")

    return lift_untagged


def lowerer(ty: Any) -> Converter:
    """A function turning a recorded value of type ``ty`` back into what wasmtime-py expects.

    Raises:
        TypeError: ``ty`` is not supported (see ``lifter``); when a value does not fit, the function raises
            ``ValueError`` naming what was expected.
    """
    if ty is None or isinstance(ty, _SCALARS):
        return _identity
    if isinstance(ty, wc.ListType):
        if isinstance(ty.element, wc.U8):
            return _lower_bytes
        item = lowerer(ty.element)
        return list if item is _identity else (lambda v: [item(x) for x in v])
    if isinstance(ty, wc.TupleType):
        return _tuple_lowerer([lowerer(t) for t in ty.elements])
    if isinstance(ty, wc.RecordType):
        return _record_lowerer([(name, lowerer(t)) for name, t in ty.fields])
    if isinstance(ty, wc.OptionType):
        payload = lowerer(ty.payload)
        if is_tagged(ty):
            return lambda v: wc.Variant("none") if v is None else wc.Variant("some", payload(v["some"]))
        return lambda v: None if v is None else payload(v["some"])
    if isinstance(ty, (wc.ResultType, wc.VariantType)):
        return _variant_lowerer(ty)
    if isinstance(ty, wc.EnumType):
        return _identity
    if isinstance(ty, wc.FlagsType):
        return lambda v: set(v)
    raise TypeError(f"cannot replay a value of type {type(ty).__name__}")


def _lower_bytes(value: Any) -> bytes:
    # Not ``bytes(value)``: for an integer that makes that many zero bytes (a recorded 10**12 would be a terabyte).
    if not isinstance(value, (bytes, bytearray, memoryview)):
        raise ValueError(f"expected bytes for list<u8>, got {type(value).__name__}")
    return bytes(value)


def _tuple_lowerer(items: list[Converter]) -> Converter:
    # The first ``len(items)`` items of ``v`` (fewer when it is shorter), each converted: what
    # ``tuple(f(x) for f, x in zip(items, v))`` gives, without a generator per value; with no item to convert (an
    # HTTP header, ``tuple<string, string>``), ``islice`` copies them in C.
    n = len(items)
    if all(item is _identity for item in items):
        return lambda v: tuple(islice(v, n))
    return lambda v: tuple([f(x) for f, x in zip(items, v)])


def _record_lowerer(fields: list[tuple[str, Converter]]) -> Converter:
    # A ``wc.Record`` with the fields set in declaration order, as ``setattr`` would set them (a plain class: its
    # attributes are its ``__dict__``), each read from the map first; a missing field raises ``KeyError`` before any
    # later field is converted, as before.
    record = wc.Record

    def lower(v: Any) -> wc.Record:
        rec = record()
        values = rec.__dict__
        for name, f in fields:
            values[name] = f(v[name])
        return rec

    return lower


def _variant_lowerer(ty: Any) -> Converter:
    tagged = is_tagged(ty)
    conv = {name: (lowerer(t) if t is not None else None) for name, t in _cases(ty)}

    def lower(v: Any) -> Any:
        if not isinstance(v, dict) or len(v) != 1:
            raise ValueError(f"expected a one-key map naming the case, got {v!r}")
        ((tag, payload),) = v.items()
        if tag not in conv:
            raise ValueError(f"unknown case {tag!r}; expected one of {sorted(conv)}")
        f = conv[tag]
        value = None if f is None else f(payload)
        return wc.Variant(tag, value) if tagged else value

    return lower
