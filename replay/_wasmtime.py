"""Every use of wasmtime-py's private internals, in one module, installed explicitly with a version check.

Theater relies on internals of wasmtime-py 50.x (``SUPPORTED``): ``Func._func``, ``_ffi``, ``_enter.enter_wasm``
and ``_enter.maybe_raise_last_exn``, and the component type classes of ``wasmtime.component._types`` (their
properties, ``_tagged``, ``_cases`` and ``add_classes``). Importing this module changes nothing; ``install()``
(called by ``replay.engine.make_engine``) checks the version, the internals and the layout of wasmtime's values,
raising ``UnsupportedWasmtime`` naming both versions (and what differs) otherwise, and patches:

- Type caches: wasmtime-py's type objects ask wasmtime for their element, field and case types every time a value
  is converted; the patch makes each object remember what it asked. A type never changes, so this changes no
  result, only the cost.
- Tagging of variants whose payload may be None: wasmtime-py 50 lowers and lifts ``result<option<T>, E>``
  untagged, but an option's Python classes include ``object``, so every value, the err string too, matches the
  ok case: an err cannot be lowered (``value not valid for this variant``) and a lifted err is indistinguishable
  from an ok. The patch makes such a variant (or result) tagged: its values are ``Variant(tag, payload)`` both
  ways. This *does* change results, on purpose: ``result<option<T>, E>`` is lowered and lifted tagged, where
  unpatched wasmtime-py refuses the err. Options themselves keep wasmtime-py's rule.
  ``tests/replay/test_fastcall.py`` shows both behaviours.
- Bulk ``list<u8>``: wasmtime's C API passes a list as an array of ``wasmtime_component_val_t`` (32 bytes per
  element); wasmtime-py 50 builds and reads it one element at a time in Python (about 1 MB/s). The patched
  ``ListType.convert_to_c``/``convert_from_c`` fill a ``list<u8>``'s array with one strided slice assignment of
  its bytes into a reused buffer whose kinds are set, and read it back with one copy into such a buffer and one
  strided slice per chunk of 65,536 elements, wherever the list sits (a parameter,
  a result, inside an option, result, tuple, record or list, an import's arguments or result). The values are the
  same; ``check_val_layout`` verifies the layout against the C library at install, and the tests compare every
  shape and size with wasmtime-py's own methods (``list_conversions_unpatched``). Other lists keep wasmtime-py's
  path; strings already cross as one buffer. An export call's ``list<u8>`` parameters are not even copied into
  wasmtime's arrays: ``FastFunc`` lends them buffers of its own (see "Lent list<u8> parameters"). What remains per
  element is wasmtime's own: it converts each C value
  to a Rust ``Val`` and lowers or lifts it one by one (about 16 ns per element in, 30 ns out: some 60 and 30 MB/s),
  and charges 48 bytes of hostcall fuel per lifted element (``replay.engine.MAX_MESSAGE_BYTES``). wasmtime-py 50's
  C API offers no path around ``Val`` for a component (no typed calls, no access to a component's memory).
- Allocator thresholds (``tune_allocator``, glibc only): wasmtime's per-call arrays (32-40 bytes per element)
  stay in the heap between calls instead of being mapped and faulted in anew at every call.

It also holds what builds on the internals: ``FastFunc`` (an export call with its types resolved once; wasmtime-py's
``Func.__call__`` rebuilds every parameter and result type object on each call, most of the cost of a small call;
its conversions and the fuel calls ``arm``/``fuel_left`` call wasmtime's cheap C functions through prototypes that
keep the GIL, see "C calls that keep the GIL" below),
``EpochWatch`` (wasmtime's epoch-deadline callback, which wasmtime-py 50 does not wrap: with it a running call can
be stopped from another thread without that thread touching the Store; see ``replay.boundary``; one C callback
shared by every store), ``add_host_func`` (a host function linked with the parameter and result types of the
component's import resolved once, where wasmtime-py's ``add_func`` builds every type object afresh on each call,
through its function table ``_linker.FUNCTIONS`` and ``_enter.LAST_EXCEPTION``), and
``is_tagged``/``case_classes``, which ``replay.values`` uses to read a variant's values the way wasmtime-py does.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.metadata
import mmap
import struct
import sys
import threading
from collections.abc import Callable
from ctypes import byref, pointer
from typing import Any

import wasmtime

from replay.errors import UnsupportedWasmtime

try:
    from wasmtime import _ffi as ffi
    from wasmtime.component import _enter, _linker, _types
    from wasmtime.component._enter import enter_wasm, maybe_raise_last_exn
except ImportError:  # another wasmtime-py layout: install() names the version
    ffi = _types = enter_wasm = maybe_raise_last_exn = _enter = _linker = None  # type: ignore[assignment]

SUPPORTED = "50.x"
_SUPPORTED_MAJOR = "50"
INSTALLED = importlib.metadata.version("wasmtime")


def check_version(installed: str | None = None) -> None:
    """Raises ``UnsupportedWasmtime`` unless ``installed`` (default: the installed wasmtime-py's version) is a
    version in ``SUPPORTED``."""
    installed = INSTALLED if installed is None else installed
    if installed.split(".")[0] != _SUPPORTED_MAJOR:
        raise UnsupportedWasmtime(installed, SUPPORTED)


def install() -> None:
    """Check the installed wasmtime-py and apply Theater's patches to it (idempotent).

    Raises:
        UnsupportedWasmtime: the version is not ``SUPPORTED``, or an internal the patches need is missing.
    """
    check_version()
    if ffi is None or _types is None or enter_wasm is None or _linker is None:
        raise UnsupportedWasmtime(INSTALLED, SUPPORTED,
                                  "its private modules _ffi, _types, _enter or _linker are missing")
    if not (hasattr(_linker, "FUNCTIONS") and hasattr(_linker, "func_finalize") and hasattr(_enter, "LAST_EXCEPTION")):
        raise UnsupportedWasmtime(INSTALLED, SUPPORTED, "missing internals: _linker.FUNCTIONS, _linker.func_finalize "
                                                        "or _enter.LAST_EXCEPTION")
    missing = [
        f"{cls}.{name}"
        for cls, names in {**_CACHED_PROPERTIES, "VariantLikeType": ("_tagged",)}.items()
        for name in names
        if not hasattr(getattr(_types, cls, None), name)
    ]
    if missing:
        raise UnsupportedWasmtime(INSTALLED, SUPPORTED, f"missing internals: {', '.join(missing)}")
    check_val_layout()
    _install_type_caches()
    _install_bulk_bytes()
    tune_allocator()


# glibc's mallopt parameters and the values install() sets (see ``tune_allocator``).
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 << 20  # glibc's largest (HEAP_MAX_SIZE / 2 on 64-bit)
TRIM_THRESHOLD = 64 << 20  # twice the mmap threshold, as glibc's own adjusting sets it


def tune_allocator() -> bool:
    """Keep wasmtime's per-call arrays in the heap, where their pages stay mapped from one call to the next (glibc
    only; True when set).

    An export call with a ``list<u8>`` of n bytes makes wasmtime allocate and free arrays of 32-40 bytes per
    element (the C values of the result, its own ``Val`` lists both ways): 2-2.5 MiB each for 64 KiB. glibc gives
    allocations above its mmap threshold (128 KiB, raised only as far as the largest mapped chunk freed so far)
    pages of their own, and gives the top of a heap back to the kernel once more than the trim threshold is free,
    so those arrays were faulted in anew at every call: about 2,000 page faults per 64 KiB echo (8 MiB zeroed by
    the kernel), a third of its cost, and a figure that moved with whatever the process had freed before.
    ``mallopt`` sets the thresholds glibc's own adjusting reaches once a process has freed one 32 MiB chunk (mmap
    32 MiB, its largest; trim 64 MiB) from the start, and so stops that adjusting: allocations below 32 MiB come
    from the heap, and up to 64 MiB of free heap top is kept per arena. The cost is that memory: a process keeps
    up to 64 MiB of freed heap per arena a thread allocates from instead of returning it at once. Larger
    allocations (a list of more than about 800,000 elements) are mapped as before.
    """
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 (raises AttributeError off glibc)
        mallopt = libc.mallopt
    except (AttributeError, OSError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def is_installed() -> bool:
    """True once ``install()`` has patched wasmtime-py in this process."""
    return (
        _types is not None
        and getattr(_types.VariantLikeType.__dict__.get("_tagged"), "_theater_cached", False)
        and getattr(_types.ListType.__dict__.get("convert_to_c"), "_theater_original", None) is not None
    )


def is_tagged(ty: Any) -> bool:
    """True when wasmtime-py converts values of the variant, result or option type ``ty`` as ``Variant``."""
    return bool(ty._tagged())


def case_classes(ty: Any) -> tuple[type, ...]:
    """The Python classes of the values wasmtime-py gives (and takes) for the type ``ty``."""
    classes: set[type] = set()
    ty.add_classes(classes)
    return tuple(classes)


_CACHED_PROPERTIES = {
    "ListType": ("element",),
    "TupleType": ("elements",),
    "RecordType": ("fields",),
    "VariantType": ("cases",),
    "OptionType": ("payload",),
    "ResultType": ("ok", "err"),
    "EnumType": ("names_count", "names"),
    "FlagsType": ("names",),
}


def _install_type_caches() -> None:
    """Make wasmtime-py's component type objects compute their parts once per object, and tag the variants whose
    payload may be None (idempotent: a patched method carries ``_theater_cached``)."""
    for class_name, names in _CACHED_PROPERTIES.items():
        cls = getattr(_types, class_name)
        for name in names:
            current = cls.__dict__.get(name)
            if isinstance(current, property) and current.fget is not None:
                cached = functools.cached_property(current.fget)
                cached.__set_name__(cls, name)
                setattr(cls, name, cached)
    for cls in (_types.VariantType, _types.OptionType, _types.ResultType, _types.VariantLikeType):
        for method in ("_cases", "_tagged"):
            current = cls.__dict__.get(method)
            if current is not None and not getattr(current, "_theater_cached", False):
                if method == "_tagged" and cls is _types.VariantLikeType:
                    current = _tagged_when_a_payload_may_be_none(current)
                setattr(cls, method, _memoized(method, current))


def _tagged_when_a_payload_may_be_none(original: Any) -> Any:
    """wasmtime-py 50 lowers ``result<option<T>, E>`` untagged: the option's classes include ``object``, so
    every value, the err string too, matches the ok case and an err cannot be returned. A variant (or result)
    with a case whose payload may be None must be tagged; options themselves keep wasmtime-py's rule."""

    def tagged(self: Any) -> bool:
        if original(self):
            return True
        if isinstance(self, _types.OptionType):
            return False
        cases = self._cases()
        for _, ty in cases:
            if ty is not None:
                classes: set[type] = set()
                ty.add_classes(classes)
                if object in classes and len(cases) > 1:
                    return True
        return False

    return tagged


def _memoized(name: str, method: Any) -> Any:
    key = f"_theater_{name}"

    @functools.wraps(method)
    def wrapper(self: Any) -> Any:
        try:
            return self.__dict__[key]
        except KeyError:
            value = self.__dict__[key] = method(self)
            return value

    wrapper._theater_cached = True  # type: ignore[attr-defined]
    return wrapper



# Bulk list<u8> ----------------------------------------------------------------------------------------------------
#
# wasmtime's C API passes a list as an array of ``wasmtime_component_val_t``, one per element (``_VAL_STRIDE``
# bytes each: a kind byte and a union holding the u8). wasmtime-py builds and reads that array one element at a time
# in Python; the bulk path writes the kind and the payload byte of every element with one strided slice assignment
# each, and reads the payloads back with one strided slice. The layout is checked against the C library by
# ``check_val_layout`` when the patches are installed.

_U8_KIND = ffi.WASMTIME_COMPONENT_U8.value if ffi is not None else 2
_POOLED_ELEMENTS = 65536  # lists up to this length are built in a reused buffer (2 MiB each, kinds pre-filled)
_POOL_SIZE = 4


def _val_layout() -> tuple[int, int, int]:
    """(size of a ``wasmtime_component_val_t``, offset of its kind byte, offset of its u8 payload) as wasmtime-py's
    ctypes definitions give them."""
    val: Any = ffi.wasmtime_component_val_t  # ctypes field descriptors carry their offsets
    union: Any = ffi.wasmtime_component_valunion_t
    return ctypes.sizeof(val), val.kind.offset, val.of.offset + union.u8.offset


_VAL_STRIDE, _KIND_AT, _U8_AT = _val_layout() if ffi is not None else (0, 0, 0)
# Where the payload union (``of``) starts inside a ``wasmtime_component_val_t``: a string's ``wasm_byte_vec_t``, a
# list's ``wasmtime_component_vallist_t`` and a tuple's ``wasmtime_component_valtuple_t`` all sit there.
_OF_AT = ffi.wasmtime_component_val_t.of.offset if ffi is not None else 0
_BOOL, _LIST, _STRING = ((ffi.WASMTIME_COMPONENT_BOOL.value, ffi.WASMTIME_COMPONENT_LIST.value,
                          ffi.WASMTIME_COMPONENT_STRING.value) if ffi is not None else (0, 0, 0))


# C calls that keep the GIL -----------------------------------------------------------------------------------------
#
# ctypes releases the GIL around every call of a function of a ``CDLL``, which is how wasmtime-py binds wasmtime. The
# functions below run for well under a microsecond (a malloc and a memcpy, a free, a field of the store); releasing
# the GIL for them buys nothing and, on a busy runtime, makes the calling thread queue behind every other runnable
# thread to get it back after each one (a dozen times per export call). So the conversions and the fuel calls of an
# export call go through prototypes of the same C functions made with ``ctypes.PYFUNCTYPE``, which keeps the GIL,
# taking untyped pointers (``byref`` of the C value, with an offset) instead of wasmtime-py's typed wrappers.
# ``wasmtime_component_func_call`` itself releases the GIL (wasm may run long): ``_func_call``, a ``CFUNCTYPE``
# prototype taking untyped pointers, whose error ``FastFunc`` handles as wasmtime-py's ``enter_wasm`` does.


def _gil_held(name: str, restype: Any, *argtypes: Any) -> Any:
    return ctypes.PYFUNCTYPE(restype, *argtypes)((name, ffi.dll))


if ffi is not None:
    _c_void_p, _c_size_t = ctypes.c_void_p, ctypes.c_size_t
    _byte_vec_new = _gil_held("wasm_byte_vec_new", None, _c_void_p, _c_size_t, ctypes.c_char_p)
    _byte_vec_delete = _gil_held("wasm_byte_vec_delete", None, _c_void_p)
    _vallist_new = _gil_held("wasmtime_component_vallist_new", None, _c_void_p, _c_size_t, _c_void_p)
    _vallist_delete = _gil_held("wasmtime_component_vallist_delete", None, _c_void_p)
    _valtuple_new_uninit = _gil_held("wasmtime_component_valtuple_new_uninit", None, _c_void_p, _c_size_t)
    _valtuple_delete = _gil_held("wasmtime_component_valtuple_delete", None, _c_void_p)
    _val_delete = _gil_held("wasmtime_component_val_delete", None, _c_void_p)
    _set_fuel = _gil_held("wasmtime_context_set_fuel", _c_void_p, _c_void_p, ctypes.c_uint64)
    _get_fuel = _gil_held("wasmtime_context_get_fuel", _c_void_p, _c_void_p, ctypes.POINTER(ctypes.c_uint64))
    _set_epoch_deadline = _gil_held("wasmtime_context_set_epoch_deadline", None, _c_void_p, ctypes.c_uint64)
    # The export call itself releases the GIL (wasm may run long): a ``CFUNCTYPE`` prototype, as wasmtime-py's
    # binding, taking untyped pointers (the parameters and the result are written at addresses).
    _func_call = ctypes.CFUNCTYPE(_c_void_p, _c_void_p, _c_void_p, _c_void_p, _c_size_t, _c_void_p, _c_size_t)(
        ("wasmtime_component_func_call", ffi.dll))
    _memset = ctypes.PYFUNCTYPE(_c_void_p, _c_void_p, ctypes.c_int, _c_size_t)(ctypes._memset_addr)  # type: ignore[attr-defined]
    _memmove = ctypes.PYFUNCTYPE(_c_void_p, _c_void_p, _c_void_p, _c_size_t)(ctypes._memmove_addr)  # type: ignore[attr-defined]
    _Val = ffi.wasmtime_component_val_t
# A value's payload read from a copy of its bytes (``bytes(val)``) at ``_OF_AT``: a list's or tuple's (size, data
# address), an option's box address, a result's (is_ok, box address).
_LIST_AT = struct.Struct("@NP").unpack_from
_LIST_PACK = struct.Struct("@NP").pack_into
_POINTER_AT = struct.Struct("@P").unpack_from
_RESULT_AT = struct.Struct("@?P").unpack_from
_RESULT_PACK = struct.Struct("@?P").pack_into


def _raise_error(error: int) -> None:
    """Raise the ``WasmtimeError`` a C call returned as an address (it is taken over and freed)."""
    raise wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))


def _raise_call_error(error: int) -> None:
    """What wasmtime-py's ``enter_wasm`` does with the error an export call returned: the exception a host function
    raised during the call, if one did (kept by wasmtime-py's trampoline), else the ``WasmtimeError`` or trap."""
    exc = wasmtime.WasmtimeError._from_ptr(ctypes.cast(error, ctypes.POINTER(ffi.wasmtime_error_t)))
    maybe_raise_last_exn()
    raise exc


def arm(store: wasmtime.Store, fuel: int, epoch_ticks: int) -> None:
    """``store.set_fuel(fuel)`` and ``store.set_epoch_deadline(epoch_ticks)``, keeping the GIL.

    Raises:
        WasmtimeError: the store does not consume fuel.
    """
    context = store._context()
    error = _set_fuel(context, fuel)
    if error:
        _raise_error(error)
    _set_epoch_deadline(context, epoch_ticks)


def fuel_left(store: wasmtime.Store) -> int:
    """``store.get_fuel()``, keeping the GIL.

    Raises:
        WasmtimeError: the store does not consume fuel.
    """
    remaining = ctypes.c_uint64(0)
    error = _get_fuel(store._context(), byref(remaining))
    if error:
        _raise_error(error)
    return remaining.value


_U8_KINDS = bytes((_U8_KIND,)) * _POOLED_ELEMENTS  # the kinds of a full ``_Vals`` buffer


class _Vals:
    """A buffer of ``_POOLED_ELEMENTS`` u8 values laid out as ``wasmtime_component_val_t``, their kinds set, and its
    address (the ctypes view taken once keeps the buffer exported, so it can never be resized or moved)."""

    __slots__ = ("buf", "_view", "address")

    def __init__(self) -> None:
        self.buf = bytearray(_POOLED_ELEMENTS * _VAL_STRIDE)
        self.buf[_KIND_AT::_VAL_STRIDE] = _U8_KINDS
        self._view = ctypes.c_char.from_buffer(self.buf)
        self.address = ctypes.addressof(self._view)


_pool: list[_Vals] = []


def _pooled_vals() -> _Vals:
    """A ``_Vals`` buffer no other thread uses (give it back with ``_release``)."""
    try:
        return _pool.pop()
    except IndexError:
        return _Vals()


def _release(vals: _Vals) -> None:
    if len(_pool) < _POOL_SIZE:
        _pool.append(vals)


def _fill_u8_list(target: Any, data: bytes) -> None:
    """Make the ``wasmtime_component_vallist_t`` at ``target`` (a ``byref``) a fresh list holding the bytes ``data``
    as u8 values (owned by whoever owns ``target``)."""
    n = len(data)
    if n == 0 or n > _POOLED_ELEMENTS:
        raw = _new_u8_list(data)
        ctypes.memmove(target, byref(raw), ctypes.sizeof(raw))  # the list moves into ``target``
        return
    vals = _pooled_vals()
    try:
        vals.buf[_U8_AT : n * _VAL_STRIDE : _VAL_STRIDE] = data
        # vallist_new moves the values out of the buffer (a bitwise copy: u8 values own nothing).
        _vallist_new(target, n, vals.address)
    finally:
        _release(vals)


def _new_u8_list(data: bytes) -> Any:
    """A fresh ``wasmtime_component_vallist_t`` (owned by the caller) holding the bytes ``data`` as u8 values.

    The values are written into a reused buffer whose kinds are already set, one payload byte per value with a
    strided slice assignment, then handed to wasmtime: moved by ``vallist_new`` for a list that fits the buffer,
    copied chunk by chunk into the array of ``vallist_new_uninit`` for a longer one.
    """
    raw = ffi.wasmtime_component_vallist_t()
    n = len(data)
    if n == 0:
        ffi.wasmtime_component_vallist_new_uninit(raw, 0)
        return raw
    vals = _pooled_vals()
    buf = vals.buf
    try:
        if n <= _POOLED_ELEMENTS:
            buf[_U8_AT : n * _VAL_STRIDE : _VAL_STRIDE] = data
            # vallist_new moves the values out of ``buf`` (a bitwise copy: u8 values own nothing).
            _vallist_new(byref(raw), n, vals.address)
        else:
            ffi.wasmtime_component_vallist_new_uninit(raw, n)  # wasmtime initialises the values: safe to delete
            try:
                target = _address(raw)
                for start in range(0, n, _POOLED_ELEMENTS):
                    chunk = data[start : start + _POOLED_ELEMENTS]
                    size = len(chunk) * _VAL_STRIDE
                    buf[_U8_AT:size:_VAL_STRIDE] = chunk
                    ctypes.memmove(target + start * _VAL_STRIDE, vals.address, size)
            except BaseException:
                ffi.wasmtime_component_vallist_delete(byref(raw))
                raise
    finally:
        _release(vals)
    return raw


def _address(raw: Any) -> int:
    """The address of the values of a non-empty ``wasmtime_component_vallist_t``."""
    address = ctypes.cast(raw.data, ctypes.c_void_p).value
    if address is None:
        raise AssertionError("a non-empty list<u8> value has no data")
    return address


def _read_u8_list(raw: Any) -> bytes:
    """The bytes of the u8 values in the ``wasmtime_component_vallist_t`` ``raw`` (not freed here)."""
    return b"" if raw.size == 0 else _read_u8_values(raw.size, _address(raw))


def _read_u8_values(n: int, address: int) -> bytes:
    """The bytes of the ``n`` u8 values at ``address``: each chunk of values is copied whole (a memcpy) into a
    pooled ``_Vals`` buffer, its kinds checked and its payload bytes taken, with one strided slice each. The buffer
    is reused, not allocated per chunk (a fresh 2 MiB ``bytes`` per chunk cost half of the read: a megabyte list's
    32 MiB of values faulted in anew at every call); one that met a value of another kind holds that kind and is
    dropped, not given back."""
    if n == 0:
        return b""
    if not address:
        raise AssertionError("a non-empty list<u8> value has no data")
    vals = _pooled_vals()
    buf, target, kinds = vals.buf, vals.address, _U8_KINDS
    parts = []
    intact = True
    try:
        for start in range(0, n, _POOLED_ELEMENTS):
            count = min(_POOLED_ELEMENTS, n - start)
            size = count * _VAL_STRIDE
            _memmove(target, address + start * _VAL_STRIDE, size)
            if buf[_KIND_AT:size:_VAL_STRIDE] != (kinds if count == _POOLED_ELEMENTS else kinds[:count]):
                intact = False  # its kinds are no longer all u8: not given back to the pool
                raise AssertionError("a list<u8> value holds an element that is not a u8")
            parts.append(buf[_U8_AT:size:_VAL_STRIDE])
    finally:
        if intact:
            _release(vals)
    return bytes(parts[0]) if len(parts) == 1 else b"".join(parts)


def _bulk_list_to_c(original: Any) -> Any:
    def convert_to_c(self: Any, store: Any, val: Any, ptr: Any) -> None:
        if not self._is_bytes():
            original(self, store, val, ptr)
            return None
        if not isinstance(val, bytes):
            raise TypeError("expected bytes value")
        raw = _new_u8_list(val)
        ptr.contents.kind = ffi.WASMTIME_COMPONENT_LIST
        ptr.contents.of.list = raw
        return None

    convert_to_c._theater_original = original  # type: ignore[attr-defined]
    return functools.wraps(original)(convert_to_c)


def _bulk_list_from_c(original: Any) -> Any:
    def convert_from_c(self: Any, c: Any) -> Any:
        if not self._is_bytes():
            return original(self, c)
        if c.kind != ffi.WASMTIME_COMPONENT_LIST.value:
            raise AssertionError("a list<u8> value is not a list")
        try:
            return _read_u8_list(c.of.list)
        finally:
            ffi.wasmtime_component_vallist_delete(byref(c.of.list))

    convert_from_c._theater_original = original  # type: ignore[attr-defined]
    return functools.wraps(original)(convert_from_c)


def _install_bulk_bytes() -> None:
    """Make wasmtime-py convert every ``list<u8>`` in bulk (idempotent: a patched method carries
    ``_theater_original``, wasmtime-py's own method, which ``unpatched_lists`` puts back)."""
    cls = _types.ListType
    for name, wrap in (("convert_to_c", _bulk_list_to_c), ("convert_from_c", _bulk_list_from_c)):
        current = cls.__dict__[name]
        if getattr(current, "_theater_original", None) is None:
            setattr(cls, name, wrap(current))
    if not getattr(cls.__dict__.get("_is_bytes"), "_theater_cached", False):
        cls._is_bytes = _memoized("_is_bytes", cls.__dict__["_is_bytes"])  # type: ignore[method-assign]


def list_conversions_unpatched() -> dict[str, Any]:
    """wasmtime-py's own ``ListType`` conversion methods (to compare the bulk path with), by name."""
    return {
        name: getattr(_types.ListType.__dict__[name], "_theater_original", _types.ListType.__dict__[name])
        for name in ("convert_to_c", "convert_from_c")
    }


_VAL_POINTER = ctypes.POINTER(ffi.wasmtime_component_val_t) if ffi is not None else None
_LAYOUT_PROBE = bytes((0, 1, 2, 127, 128, 254, 255))


def check_val_layout() -> None:
    """Check that the bulk ``list<u8>`` path agrees with wasmtime's ``wasmtime_component_val_t`` layout: wasmtime-py's
    ctypes definitions give a one-byte kind and a one-byte u8 payload inside each value, and the C library, copying
    a list built with that layout, gives back the same u8 values.

    Raises:
        UnsupportedWasmtime: the layout differs (naming what differs) or the functions the path calls are missing.
    """
    names = ("wasmtime_component_vallist_new", "wasmtime_component_vallist_new_uninit",
             "wasmtime_component_vallist_copy", "wasmtime_component_vallist_delete", "wasmtime_component_val_t",
             "wasmtime_component_valunion_t", "WASMTIME_COMPONENT_U8", "WASMTIME_COMPONENT_LIST")
    missing = [name for name in names if not hasattr(ffi, name)]
    if missing:
        raise UnsupportedWasmtime(INSTALLED, SUPPORTED, f"missing internals: {', '.join(missing)}")
    val = ffi.wasmtime_component_val_t
    fields = {field[0]: field[1] for field in val._fields_}
    union_fields = {field[0]: field[1] for field in ffi.wasmtime_component_valunion_t._fields_}
    if fields.get("kind") is not ctypes.c_uint8 or union_fields.get("u8") is not ctypes.c_uint8:
        raise UnsupportedWasmtime(INSTALLED, SUPPORTED, "wasmtime_component_val_t's kind or u8 is not one byte")
    pairs = [(ffi.wasmtime_component_vallist_t, "size", "data"), (ffi.wasmtime_component_valtuple_t, "size", "data"),
             (ffi.wasmtime_component_valresult_t, "is_ok", "val")]
    if any((getattr(cls, first).offset, getattr(cls, second).offset) != (0, 8) for cls, first, second in pairs):
        raise UnsupportedWasmtime(INSTALLED, SUPPORTED, "a list's, tuple's or result's C layout changed")
    if ffi.WASMTIME_COMPONENT_BOOL.value != 0:
        raise UnsupportedWasmtime(INSTALLED, SUPPORTED, "a zeroed wasmtime_component_val_t is no longer a bool")
    if (_VAL_STRIDE, _KIND_AT, _U8_AT) != _val_layout():
        raise UnsupportedWasmtime(INSTALLED, SUPPORTED, "wasmtime_component_val_t's layout changed after import")
    raw = _new_u8_list(_LAYOUT_PROBE)
    copy = ffi.wasmtime_component_vallist_t()
    try:
        by_fields = bytes(raw.data[i].of.u8 for i in range(raw.size) if raw.data[i].kind == _U8_KIND)
        ffi.wasmtime_component_vallist_copy(byref(copy), byref(raw))
        by_c = _read_u8_list(copy) if copy.size == len(_LAYOUT_PROBE) else b""
    except AssertionError:
        by_c = b""
    finally:
        ffi.wasmtime_component_vallist_delete(byref(raw))
        ffi.wasmtime_component_vallist_delete(byref(copy))
    if by_fields != _LAYOUT_PROBE or by_c != _LAYOUT_PROBE:
        raise UnsupportedWasmtime(
            INSTALLED, SUPPORTED,
            f"wasmtime_component_val_t layout (size {_VAL_STRIDE}, kind at {_KIND_AT}, u8 at {_U8_AT}) does not "
            f"match the library: wrote {_LAYOUT_PROBE.hex()}, read {by_fields.hex()} by field and {by_c.hex()} "
            "through a C copy",
        )


# Lent list<u8> parameters ----------------------------------------------------------------------------------------
#
# ``wasmtime_component_func_call`` only reads its parameters (it converts each to a Rust ``Val`` by reference) and
# the caller deletes them afterwards. So a ``list<u8>`` parameter of an export call need not be copied into an array
# of wasmtime's own (``vallist_new``: a malloc and a copy of 32 bytes per element, a megabyte list's 32 MiB faulted
# in anew at every call, then freed element by element by the delete): ``FastFunc`` lends it a buffer of ours
# instead, already laid out as u8 values (a pooled ``_Vals``, or for a list longer than that a fresh mapping asking
# for huge pages), and takes it back before it deletes the parameters.
#
# While ``FastFunc`` lowers its parameters, ``_LENDING.lent`` is a list: a ``list<u8>`` of at least ``_LEND_FROM``
# bytes is then written as a *bool* value (kind 0, which owns nothing: any cleanup that deletes it frees nothing of
# ours) whose payload holds the list's (size, address of the lent buffer), and the buffer is added to ``lent``.
# Once every parameter is lowered, ``FastFunc`` finds each such value (``_lent_finder``: through tuples, records and
# untagged options, the only places a lent list can sit in a type it lends for, ``_lends_for``), turns it into the
# list (kind LIST), calls, and before deleting the parameters zeroes those values again (a bool false owning
# nothing), then gives the buffers back. Lowering anywhere else (an import's result, wasmtime-py's own conversions)
# sees ``lent`` None and copies as before. Should a lent value not be found (a shape the finder does not walk), the
# parameters are deleted and lowered again without lending: the values wasmtime sees are always the same.

_LEND_FROM = 4096  # shorter lists are copied: lending costs about what a small copy does


class _Lending(threading.local):
    lent: list[tuple[Any, int, int]] | None = None  # (holder, address, size) of each buffer lent


_LENDING = _Lending()


class _LentMap:
    """A list<u8>'s values laid out in a fresh anonymous mapping (a list longer than a ``_Vals`` buffer holds).

    Huge pages are asked for: a megabyte list is 32 MiB of values, which in 4 KiB pages costs 8,192 page faults
    (most of the cost of writing it); unmapped when given back."""

    __slots__ = ("_map", "address")

    def __init__(self, data: bytes) -> None:
        n = len(data)
        self._map = mmap.mmap(-1, n * _VAL_STRIDE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
        if _MADV_HUGEPAGE is not None:
            try:
                self._map.madvise(_MADV_HUGEPAGE)
            except OSError:
                pass  # a kernel without transparent huge pages: 4 KiB pages, the same values
        self._map[_KIND_AT : n * _VAL_STRIDE : _VAL_STRIDE] = bytes((_U8_KIND,)) * n
        self._map[_U8_AT : n * _VAL_STRIDE : _VAL_STRIDE] = data
        self.address = ctypes.addressof(ctypes.c_char.from_buffer(self._map))  # the view goes at once: closable

    def release(self) -> None:
        self._map.close()


_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)


def _lower_u8_list(at: int, data: bytes) -> None:
    """Write the ``list<u8>`` ``data`` at ``at``: copied into a list of wasmtime's own, or lent (see above)."""
    lent = _LENDING.lent
    n = len(data)
    if lent is None or n < _LEND_FROM:
        _fill_u8_list(at + _OF_AT, data)
        _MEMORY[at + _KIND_AT] = _LIST
        return
    holder: _Vals | _LentMap
    if n <= _POOLED_ELEMENTS:
        holder = _pooled_vals()
        holder.buf[_U8_AT : n * _VAL_STRIDE : _VAL_STRIDE] = data
    else:
        holder = _LentMap(data)
    address = holder.address
    lent.append((holder, address, n))
    _LIST_PACK(_MEMORY, at + _OF_AT, n, address)
    _MEMORY[at + _KIND_AT] = _BOOL  # owns nothing until FastFunc makes it the list


def _give_back(lent: list[tuple[Any, int, int]], start: int = 0) -> None:
    """Give back the buffers of ``lent[start:]`` (and drop them from ``lent``); no value may still hold one."""
    for holder, _, _ in lent[start:]:
        if type(holder) is _Vals:
            _release(holder)
        else:
            holder.release()
    del lent[start:]


def _unlend(found: list[int]) -> None:
    """Make the lent lists at the addresses ``found`` plain bool false values again (owning nothing)."""
    memory, zero = _MEMORY, _ZERO_VAL
    for at in found:
        memory[at : at + _VAL_STRIDE] = zero
    found.clear()


def _u8_list_elsewhere(ty: Any, walked: bool) -> bool:
    """True when a ``list<u8>`` sits in ``ty`` outside the tuples, records and untagged options ``_lent_finder``
    walks (inside another list, a variant, a result or a tagged option)."""
    if isinstance(ty, _types.ListType):
        return (not walked) if ty._is_bytes() else _u8_list_elsewhere(ty.element, False)
    if isinstance(ty, _types.TupleType):
        return any(_u8_list_elsewhere(element, walked) for element in ty.elements)
    if isinstance(ty, _types.RecordType):
        return any(_u8_list_elsewhere(field, walked) for _, field in ty.fields)
    if isinstance(ty, _types.OptionType) and not ty._tagged():
        return _u8_list_elsewhere(ty.payload, walked)
    if isinstance(ty, (_types.OptionType, _types.ResultType, _types.VariantType)):
        return any(case is not None and _u8_list_elsewhere(case, False) for _, case in ty._cases())
    return False


_Finder = Callable[[int, dict[int, int], list[int]], None]


def _lent_finder(ty: Any) -> _Finder | None:
    """A function finding the lent ``list<u8>`` values (``_lower_u8_list``) inside a lowered value of type ``ty``
    at an address, through tuples, records and untagged options: each one whose (address, size) is in ``lent``
    becomes the list and its address is added to ``found``. None when ``ty`` holds no ``list<u8>`` there."""
    memory = _MEMORY
    if isinstance(ty, _types.ListType):
        if not ty._is_bytes():
            return None

        def leaf(at: int, lent: dict[int, int], found: list[int]) -> None:
            if memory[at + _KIND_AT] == _BOOL:
                size, address = _VEC_AT(memory, at + _OF_AT)
                if lent.get(address) == size:
                    memory[at + _KIND_AT] = _LIST
                    found.append(at)

        return leaf
    if isinstance(ty, _types.TupleType):
        items = [(i * _VAL_STRIDE, i, f) for i, f in enumerate(map(_lent_finder, ty.elements)) if f is not None]
        kind = _KINDS["TUPLE"]
    elif isinstance(ty, _types.RecordType):
        items = [(i * _ENTRY_SIZE + _ENTRY_VAL_AT, i, f)
                 for i, f in enumerate(_lent_finder(field) for _, field in ty.fields) if f is not None]
        kind = _KINDS["RECORD"]
    elif isinstance(ty, _types.OptionType) and not ty._tagged():
        payload = _lent_finder(ty.payload)
        if payload is None:
            return None
        option = _KINDS["OPTION"]

        def find_some(at: int, lent: dict[int, int], found: list[int]) -> None:
            if memory[at + _KIND_AT] == option:
                box = _POINTER_AT(memory, at + _OF_AT)[0]
                if box:
                    payload(box, lent, found)

        return find_some
    else:
        return None
    if not items:
        return None

    def find(at: int, lent: dict[int, int], found: list[int]) -> None:
        if memory[at + _KIND_AT] == kind:
            size, address = _VEC_AT(memory, at + _OF_AT)
            if address:
                for offset, i, item in items:
                    if i < size:
                        item(address + offset, lent, found)

    return find


# Compiled conversions --------------------------------------------------------------------------------------------
#
# wasmtime-py converts a value by walking its type objects at every call (a method call per node, the variant's
# cases searched by tag, a generator per tuple, a ctypes object per field it touches, a C call to free each string,
# list, record and box as it goes). ``lowerer`` and ``lifter`` do that walk once per type and return one closure per
# node, with the same checks and the same errors as wasmtime-py's methods (``String``, ``ListType``, ``RecordType``,
# ``TupleType``, ``OptionType``, ``VariantLikeType._lift``/``_lower``, the integer and bool types, the bulk
# ``list<u8>`` path, ``ResultType`` and ``VariantType``; lifting also ``EnumType``, ``FlagsType``), giving the same
# values (tests/replay/test_fastcall.py and test_compiled_converters.py compare them with ``Func.__call__`` for every
# shape, string size and hostile value; test_host_result_lowering.py a host function's result, with
# ``convert_to_c``).
#
# Inside, a node works on the address of its ``wasmtime_component_val_t`` (``_LowerAt``/``_LiftAt``) and reads and
# writes the fields through ``_MEMORY``, a byte view of the whole address space, with ``struct``: no ctypes object is
# made per value. Lowering: a list, tuple or record gets its array from wasmtime (``..._new_uninit``) and its
# elements are lowered in place; a string's bytes are copied by one ``wasm_byte_vec_new`` straight into its value.
# Lifting: the value is read whole (``reader_at``) without being changed, then freed by one
# ``wasmtime_component_val_delete`` (the whole tree; wasmtime-py's per-part ``val_delete`` of an option's or result's
# payload box frees its contents but not the box). Any other type keeps its own ``convert_from_c``/``convert_to_c``.

_Lift = Callable[[Any], Any]
_Lower = Callable[[Any, Any, Any], None]
_LiftAt = Callable[[int], Any]
_LowerAt = Callable[[Any, Any, int], None]

if ffi is not None:
    # Every address of this process, as bytes: a field at address ``a`` is ``_MEMORY[a]``, or read and written with
    # ``struct.unpack_from(fmt, _MEMORY, a)``/``pack_into``. Only addresses of values wasmtime handed over are used.
    _MEMORY = memoryview((ctypes.c_char * sys.maxsize).from_address(0)).cast("B")
    _valrecord_new_uninit = _gil_held("wasmtime_component_valrecord_new_uninit", None, _c_void_p, _c_size_t)
    _valrecord_delete = _gil_held("wasmtime_component_valrecord_delete", None, _c_void_p)
    _vallist_new_uninit = _gil_held("wasmtime_component_vallist_new_uninit", None, _c_void_p, _c_size_t)
    _val_new = _gil_held("wasmtime_component_val_new", _c_void_p, _c_void_p)
    _ENTRY = ffi.wasmtime_component_valrecord_entry_t
    _ENTRY_SIZE, _NAME_AT, _ENTRY_VAL_AT = ctypes.sizeof(_ENTRY), _ENTRY.name.offset, _ENTRY.val.offset
    _KINDS = {name: getattr(ffi, f"WASMTIME_COMPONENT_{name}").value
              for name in ("BOOL", "U8", "U16", "U32", "U64", "S8", "S16", "S32", "S64", "STRING", "LIST",
                           "RECORD", "TUPLE", "OPTION", "RESULT", "VARIANT", "ENUM", "FLAGS")}
    _KINDS["Bool"] = _KINDS["BOOL"]
    # A variant's payload (``wasmtime_component_valvariant_t``): its case name (a ``wasm_name_t``) and its box.
    _VALVARIANT: Any = ffi.wasmtime_component_valvariant_t  # ctypes field descriptors carry their offsets
    _DISCRIMINANT_AT = _OF_AT + _VALVARIANT.discriminant.offset
    _CASE_BOX_AT = _OF_AT + _VALVARIANT.val.offset
    _NAME_SIZE = ctypes.sizeof(ffi.wasm_name_t)  # a flags value is a vec of names
_ZERO_VAL = bytes(_VAL_STRIDE)
# A vec (``wasm_byte_vec_t``, ``vallist``, ``valtuple``, ``valrecord``): (size, data address).
_VEC_AT = struct.Struct("@NP").unpack_from
_POINTER_PACK = struct.Struct("@P").pack_into
# The integer types: (kind name, struct format read back, mask wasmtime-py's ctypes field applies on write).
_INTEGERS = {"U8": ("B", 0xFF), "U16": ("H", 0xFFFF), "U32": ("I", 0xFFFF_FFFF), "U64": ("Q", (1 << 64) - 1),
             "S8": ("b", 0xFF), "S16": ("h", 0xFFFF), "S32": ("i", 0xFFFF_FFFF), "S64": ("q", (1 << 64) - 1)}
_UNSIGNED = {"b": "B", "h": "H", "i": "I", "q": "Q"}


def _cached(ty: Any, key: str, make: Callable[[Any], Any]) -> Any:
    """``make(ty)``, kept on the type object: wasmtime-py's type objects are shared by every instance of a component
    (``replay.boundary.Shape``), so each type's converter is made once, not once per actor (a closure tree per
    actor cost 3 KiB of each idle actor's memory)."""
    if not hasattr(ty, "__dict__"):
        return make(ty)
    found = ty.__dict__.get(key)
    if found is None:
        found = ty.__dict__[key] = make(ty)
    return found


def _bulk_installed() -> bool:
    """True when ``list<u8>`` values are converted in bulk (``_install_bulk_bytes``, done by the engine)."""
    return getattr(_types.ListType.__dict__["convert_from_c"], "_theater_original", None) is not None


def _kind_of(ty: Any) -> str | None:
    """The name of the integer or bool type ``ty`` (``"U16"``), None for any other type."""
    name = type(ty).__name__
    return name if (name in _INTEGERS or name == "Bool") and type(ty) is getattr(_types, name, None) else None


def lifter(ty: Any) -> _Lift:
    """A function converting a ``wasmtime_component_val_t`` of type ``ty`` to Python (and freeing it) exactly as
    ``ty.convert_from_c`` does (made once per type object)."""
    return _cached(ty, "_theater_lift", _make_lifter)  # type: ignore[no-any-return]


def _make_lifter(ty: Any) -> _Lift:
    if _compiled_reader_at(ty) is None:
        return ty.convert_from_c  # type: ignore[no-any-return]
    at, address_of = lifter_at(ty), ctypes.addressof
    return lambda c: at(address_of(c))


def lifter_at(ty: Any) -> _LiftAt:
    """``lifter(ty)`` taking the address of the value instead of a ctypes object.

    A compiled type's value is read whole (``reader_at``), then its C data freed by one
    ``wasmtime_component_val_delete`` (which frees the whole tree: its strings, lists, records and boxes), where
    wasmtime-py frees each part as it goes.
    """
    return _cached(ty, "_theater_lift_at", _make_lifter_at)  # type: ignore[no-any-return]


def _make_lifter_at(ty: Any) -> _LiftAt:
    if _compiled_reader_at(ty) is None:
        convert, from_address = lifter(ty), _Val.from_address
        return lambda address: convert(from_address(address))
    read, delete = reader_at(ty), _val_delete

    def lift(at: int) -> Any:
        value = read(at)  # when it raises, the value is not what wasmtime-py expects either: it is left, not freed
        delete(at)
        return value

    return lift


def reader_at(ty: Any) -> _LiftAt:
    """A function reading the value of type ``ty`` at an address as ``lifter(ty)`` converts it, changing nothing and
    freeing nothing (whoever owns the value deletes it). A part of a type with no compiled reader is converted by its
    own ``convert_from_c``, which frees it as it goes: that part is then zeroed (plain bool false, owning nothing),
    so the owner's delete does not free it again."""
    return _cached(ty, "_theater_read_at", _make_reader_at)  # type: ignore[no-any-return]


def _make_reader_at(ty: Any) -> _LiftAt:
    read = _compiled_reader_at(ty)
    if read is not None:
        return read
    convert, from_address, memory, zero = lifter(ty), _Val.from_address, _MEMORY, _ZERO_VAL

    def read_converted(at: int) -> Any:
        try:
            return convert(from_address(at))
        finally:
            memory[at : at + _VAL_STRIDE] = zero

    return read_converted


def _compiled_reader_at(ty: Any) -> _LiftAt | None:
    if isinstance(ty, _types.TupleType):
        return _tuple_reader(ty)
    if isinstance(ty, (_types.OptionType, _types.ResultType)):
        return _variant_reader(ty)
    if type(ty) is _types.VariantType:
        return _cased_reader(ty)
    if type(ty) is _types.EnumType:
        return _enum_reader()
    if type(ty) is _types.FlagsType:
        return _flags_reader()
    if isinstance(ty, _types.ListType):
        if ty._is_bytes():
            return _bytes_reader() if _bulk_installed() else None
        return _list_reader(ty)
    if isinstance(ty, _types.RecordType):
        return _record_reader(ty)
    if type(ty) is _types.String:
        return _string_reader()
    kind = _kind_of(ty)
    if kind is not None:
        return _scalar_reader(kind)
    return None


def _no_data() -> None:
    """A value wasmtime gave points nowhere where it must point to its data (wasmtime-py's ctypes access would raise
    ``ValueError``; reading address 0 through ``_MEMORY`` would crash the process)."""
    raise AssertionError("a value that must have data points to none")


def _check_kind(address: int, kind: int) -> None:
    if _MEMORY[address + _KIND_AT] != kind:
        raise AssertionError(f"a value of kind {_MEMORY[address + _KIND_AT]} where kind {kind} was expected")


def _scalar_reader(name: str) -> _LiftAt:
    kind = _KINDS[name]
    memory = _MEMORY
    if name == "Bool":
        def read_bool(address: int) -> bool:
            if memory[address + _KIND_AT] != kind:
                _check_kind(address, kind)
            return bool(memory[address + _OF_AT])

        return read_bool
    unpack = struct.Struct("@" + _INTEGERS[name][0]).unpack_from

    def read_int(address: int) -> int:
        if memory[address + _KIND_AT] != kind:
            _check_kind(address, kind)
        return unpack(memory, address + _OF_AT)[0]  # type: ignore[no-any-return]

    return read_int


def _tuple_reader(ty: Any) -> _LiftAt:
    items = [reader_at(element) for element in ty.elements]
    kind, stride, memory = _KINDS["TUPLE"], _VAL_STRIDE, _MEMORY

    def read(at: int) -> Any:
        if memory[at + _KIND_AT] != kind:
            _check_kind(at, kind)
        size, address = _VEC_AT(memory, at + _OF_AT)  # a valtuple is laid out as a vallist: (size, data)
        if size and not address:
            _no_data()
        ret = []
        for item in items[:size]:
            ret.append(item(address))
            address += stride
        return tuple(ret)

    return read


def _list_reader(ty: Any) -> _LiftAt:
    item = reader_at(ty.element)
    kind, stride, memory = _KINDS["LIST"], _VAL_STRIDE, _MEMORY

    def read(at: int) -> list[Any]:
        if memory[at + _KIND_AT] != kind:
            _check_kind(at, kind)
        size, address = _VEC_AT(memory, at + _OF_AT)
        if size and not address:
            _no_data()
        return [item(element) for element in range(address, address + size * stride, stride)]

    return read


def _record_reader(ty: Any) -> _LiftAt:
    fields = [(name, name.encode("utf-8"), reader_at(field)) for name, field in ty.fields]
    kind, size_of, memory = _KINDS["RECORD"], _ENTRY_SIZE, _MEMORY
    record = _types.Record

    def read(at: int) -> Any:
        if memory[at + _KIND_AT] != kind:
            _check_kind(at, kind)
        size, entry = _VEC_AT(memory, at + _OF_AT)
        if size and not entry:
            _no_data()
        ret = record()
        values = ret.__dict__
        for name, encoded, item in fields[:size]:
            name_size, name_at = _VEC_AT(memory, entry + _NAME_AT)
            if memory[name_at : name_at + name_size] != encoded:
                raise AssertionError(f"a record field is not named {name!r}")
            values[name] = item(entry + _ENTRY_VAL_AT)
            entry += size_of
        return ret

    return read


def _variant_reader(ty: Any) -> _LiftAt:
    tagged = ty._tagged()
    cases = {name: (None if case is None else reader_at(case)) for name, case in ty._cases()}
    memory = _MEMORY
    if isinstance(ty, _types.OptionType):
        kind = _KINDS["OPTION"]
        none, some = cases["none"], cases["some"]

        def read_option(at: int) -> Any:
            if memory[at + _KIND_AT] != kind:
                _check_kind(at, kind)
            address = _POINTER_AT(memory, at + _OF_AT)[0]
            if address:
                return _read_case("some", some, address, tagged)
            return _read_case("none", none, 0, tagged)

        return read_option
    kind = _KINDS["RESULT"]
    ok, err = cases["ok"], cases["err"]

    def read_result(at: int) -> Any:
        if memory[at + _KIND_AT] != kind:
            _check_kind(at, kind)
        is_ok, address = _RESULT_AT(memory, at + _OF_AT)
        if is_ok:
            return _read_case("ok", ok, address, tagged)
        return _read_case("err", err, address, tagged)

    return read_result


def _cased_reader(ty: Any) -> _LiftAt:
    """A WIT ``variant``'s value as ``VariantType.convert_from_c`` gives it: its case found by name, its payload (if
    the case has one) read in its box, tagged or not as the (patched) ``_tagged`` says."""
    tagged = ty._tagged()
    cases = {name: (None if case is None else reader_at(case)) for name, case in ty._cases()}
    kind, memory = _KINDS["VARIANT"], _MEMORY

    def read_variant(at: int) -> Any:
        if memory[at + _KIND_AT] != kind:
            _check_kind(at, kind)
        size, address = _VEC_AT(memory, at + _DISCRIMINANT_AT)
        if not address:
            _no_data()
        tag = str(memory[address : address + size], "utf-8")
        try:
            read = cases[tag]
        except KeyError:
            raise ValueError(f"tag {tag} not found in variant cases") from None
        return _read_case(tag, read, _POINTER_AT(memory, at + _CASE_BOX_AT)[0], tagged)

    return read_variant


def _enum_reader() -> _LiftAt:
    kind, memory = _KINDS["ENUM"], _MEMORY

    def read(at: int) -> str:
        if memory[at + _KIND_AT] != kind:
            _check_kind(at, kind)
        size, address = _VEC_AT(memory, at + _OF_AT)
        if not address:
            _no_data()
        return str(memory[address : address + size], "utf-8")

    return read


def _flags_reader() -> _LiftAt:
    kind, memory = _KINDS["FLAGS"], _MEMORY

    def read(at: int) -> set[str]:
        if memory[at + _KIND_AT] != kind:
            _check_kind(at, kind)
        count, names = _VEC_AT(memory, at + _OF_AT)
        if count and not names:
            _no_data()
        ret: set[str] = set()
        for name in range(names, names + count * _NAME_SIZE, _NAME_SIZE):
            size, address = _VEC_AT(memory, name)
            if not address:
                _no_data()
            ret.add(str(memory[address : address + size], "utf-8"))
        return ret

    return read


def _read_case(tag: str, read: _LiftAt | None, address: int, tagged: bool) -> Any:
    """A case's value as ``VariantLikeType._lift`` gives it (its payload boxed at ``address``)."""
    if read is None:
        return _types.Variant(tag) if tagged else None
    if not address:
        _no_data()
    payload = read(address)
    return _types.Variant(tag, payload) if tagged else payload


def _bytes_reader() -> _LiftAt:
    kind, memory = _KINDS["LIST"], _MEMORY

    def read(at: int) -> bytes:
        if memory[at + _KIND_AT] != kind:
            raise AssertionError("a list<u8> value is not a list")
        return _read_u8_values(*_VEC_AT(memory, at + _OF_AT))

    return read


def _string_reader() -> _LiftAt:
    kind, memory = _KINDS["STRING"], _MEMORY

    def read(at: int) -> str:
        if memory[at + _KIND_AT] != kind:
            _check_kind(at, kind)
        size, address = _VEC_AT(memory, at + _OF_AT)
        if size and not address:
            _no_data()
        return str(memory[address : address + size], "utf-8")

    return read


def lowerer(ty: Any) -> _Lower:
    """A function writing the Python value ``val`` of type ``ty`` into ``ptr`` exactly as ``ty.convert_to_c``
    does (same checks, same errors; made once per type object)."""
    return _cached(ty, "_theater_lower", _make_lowerer)  # type: ignore[no-any-return]


def _make_lowerer(ty: Any) -> _Lower:
    at = _compiled_lowerer_at(ty)
    if at is None:
        return ty.convert_to_c  # type: ignore[no-any-return]
    address_of = ctypes.addressof

    def lower(store: Any, val: Any, ptr: Any) -> None:
        at(store, val, address_of(ptr.contents))

    return lower


def lowerer_at(ty: Any) -> _LowerAt:
    """``lowerer(ty)`` taking the address of the value to write instead of a ctypes pointer.

    When it raises, the value at the address owns nothing (whatever it allocated is freed) and must not be deleted.
    """
    return _cached(ty, "_theater_lower_at", _make_lowerer_at)  # type: ignore[no-any-return]


def _make_lowerer_at(ty: Any) -> _LowerAt:
    at = _compiled_lowerer_at(ty)
    if at is not None:
        return at
    convert, from_address = lowerer(ty), _Val.from_address

    def lower(store: Any, val: Any, address: int) -> None:
        convert(store, val, pointer(from_address(address)))

    return lower


def _compiled_lowerer_at(ty: Any) -> _LowerAt | None:
    if isinstance(ty, _types.TupleType):
        return _tuple_lowerer(ty)
    if isinstance(ty, _types.OptionType) and not ty._tagged():
        return _option_lowerer(ty)
    if isinstance(ty, _types.ListType):
        if ty._is_bytes():
            return _bytes_lowerer if _bulk_installed() else None
        return _list_lowerer(ty)
    if isinstance(ty, _types.RecordType):
        return _record_lowerer(ty)
    if isinstance(ty, (_types.ResultType, _types.VariantType)):
        return _cases_lowerer(ty)
    if type(ty) is _types.String:
        return _string_lowerer
    kind = _kind_of(ty)
    if kind is not None:
        return _scalar_lowerer(kind)
    return None


def _bytes_lowerer(store: Any, val: Any, at: int) -> None:
    """The bulk ``ListType.convert_to_c`` of a ``list<u8>``, writing the list in place."""
    if not isinstance(val, bytes):
        raise TypeError("expected bytes value")
    _lower_u8_list(at, val)


def _string_lowerer(store: Any, val: Any, at: int) -> None:
    """``String.convert_to_c``: the UTF-8 bytes copied into a new ``wasm_byte_vec_t`` in place (one C call).

    The kind is set once the bytes are there, so a string that cannot be encoded leaves the value as it was
    (wasmtime-py's sets the kind first), with the same ``TypeError`` or ``UnicodeEncodeError``.
    """
    if not isinstance(val, str):
        raise TypeError("expected string type")
    data = val.encode("utf8")
    _byte_vec_new(at + _OF_AT, len(data), data)
    _MEMORY[at + _KIND_AT] = _STRING


def _scalar_lowerer(name: str) -> _LowerAt:
    """``Bool``/``U8``...``S64.convert_to_c``: the same type check and message; an integer is written as wasmtime-py's
    ctypes field writes it, its low bits (ctypes masks an integer out of range, it does not refuse it)."""
    kind, memory = _KINDS[name], _MEMORY
    if name == "Bool":
        def lower_bool(store: Any, val: Any, at: int) -> None:
            if not isinstance(val, bool):
                raise TypeError("expected bool for Bool type")
            memory[at + _OF_AT] = val
            memory[at + _KIND_AT] = kind

        return lower_bool
    fmt, mask = _INTEGERS[name]
    write = struct.Struct("@" + _UNSIGNED.get(fmt, fmt)).pack_into
    message = f"expected int for {name} type"

    def lower_int(store: Any, val: Any, at: int) -> None:
        if not isinstance(val, int):
            raise TypeError(message)
        write(memory, at + _OF_AT, val & mask)
        memory[at + _KIND_AT] = kind

    return lower_int


def _abandon(at: int, element: int, end: int, delete: Any) -> None:
    """A list's or tuple's element failed to lower: the elements from ``element`` to ``end`` are zeroed (plain bool
    false, owning nothing: wasmtime's array is uninitialised) and the array deleted, freeing the ones written
    (what wasmtime-py's cleanup does)."""
    _memset(element, 0, end - element)
    delete(at + _OF_AT)


def _tuple_lowerer(ty: Any) -> _LowerAt:
    """``TupleType.convert_to_c``, each element lowered in place into an array made by wasmtime."""
    items = [lowerer_at(element) for element in ty.elements]
    if items and all(item is _string_lowerer for item in items):
        return _strings_lowerer(len(items))
    length, size, stride, memory = len(items), len(items) * _VAL_STRIDE, _VAL_STRIDE, _MEMORY
    kind, new, delete = _KINDS["TUPLE"], _valtuple_new_uninit, _valtuple_delete

    def lower(store: Any, val: Any, at: int) -> None:
        if not isinstance(val, tuple):
            raise TypeError("expected tuple type")
        if len(val) != length:
            raise TypeError("tuple length mismatch")
        new(at + _OF_AT, length)
        element = address = _VEC_AT(memory, at + _OF_AT)[1]
        try:
            for item, value in zip(items, val):
                item(store, value, element)
                element += stride
        except BaseException:
            _abandon(at, element, address + size, delete)
            raise
        memory[at + _KIND_AT] = kind

    return lower


def _strings_lowerer(length: int) -> _LowerAt:
    """A tuple of strings (an HTTP header: ``tuple<string, string>``): ``_tuple_lowerer`` with each string's
    ``_string_lowerer`` written inline. Every string is encoded before the array is made, so the first that is not
    a ``str`` or cannot be encoded raises what ``_string_lowerer`` raises, and nothing is allocated."""
    stride, memory = _VAL_STRIDE, _MEMORY
    kind, string, new, byte_vec_new = _KINDS["TUPLE"], _STRING, _valtuple_new_uninit, _byte_vec_new

    def lower(store: Any, val: Any, at: int) -> None:
        if not isinstance(val, tuple):
            raise TypeError("expected tuple type")
        if len(val) != length:
            raise TypeError("tuple length mismatch")
        encoded = []
        for value in val:
            if not isinstance(value, str):
                raise TypeError("expected string type")
            encoded.append(value.encode("utf8"))
        new(at + _OF_AT, length)
        element = _VEC_AT(memory, at + _OF_AT)[1]
        for data in encoded:
            byte_vec_new(element + _OF_AT, len(data), data)
            memory[element + _KIND_AT] = string
            element += stride
        memory[at + _KIND_AT] = kind

    return lower


def _list_lowerer(ty: Any) -> _LowerAt:
    """``ListType.convert_to_c`` of a list that is not ``list<u8>``, each element lowered in place into an array
    made by wasmtime."""
    return _list_writer(lowerer_at(ty.element), recorded=False)


def _list_writer(item: _LowerAt, *, recorded: bool) -> _LowerAt:
    """A list's elements lowered by ``item`` in place into an array made by wasmtime; ``recorded``: only exactly a
    ``list`` is taken, anything else raises ``_NotDirect`` (``recorded_lowerer_at``), else any list subclass is
    and anything else raises wasmtime-py's ``TypeError``."""
    stride, memory = _VAL_STRIDE, _MEMORY
    kind, new, delete = _KINDS["LIST"], _vallist_new_uninit, _vallist_delete

    def lower(store: Any, val: Any, at: int) -> None:
        if recorded:
            if type(val) is not list:
                raise _NotDirect
        elif not isinstance(val, list):
            raise TypeError("expected list value")
        val = val.copy()  # what is written is what was counted, whatever an element's conversion does to the list
        n = len(val)
        new(at + _OF_AT, n)
        element = address = _VEC_AT(memory, at + _OF_AT)[1]
        try:
            for value in val:
                item(store, value, element)
                element += stride
        except BaseException:
            _abandon(at, element, address + n * stride, delete)
            raise
        memory[at + _KIND_AT] = kind

    return lower


def _record_lowerer(ty: Any) -> _LowerAt:
    """``RecordType.convert_to_c``: each field read with ``getattr`` (a missing one raises ``AttributeError``), its
    value lowered and its name copied in place into an array made by wasmtime."""
    fields = [(name, name.encode("utf-8"), lowerer_at(field)) for name, field in ty.fields]
    n, kind, size_of, memory = len(fields), _KINDS["RECORD"], _ENTRY_SIZE, _MEMORY
    new, delete, name_new = _valrecord_new_uninit, _valrecord_delete, _byte_vec_new

    def lower(store: Any, val: Any, at: int) -> None:
        new(at + _OF_AT, n)
        entry = _VEC_AT(memory, at + _OF_AT)[1]
        end = entry + n * size_of
        try:
            for name, encoded, item in fields:
                item(store, getattr(val, name), entry + _ENTRY_VAL_AT)
                name_new(entry + _NAME_AT, len(encoded), encoded)
                entry += size_of
        except BaseException:
            _memset(entry, 0, end - entry)  # the rest, names too: an empty name and a bool own nothing
            delete(at + _OF_AT)
            raise
        memory[at + _KIND_AT] = kind

    return lower


def _option_lowerer(ty: Any) -> _LowerAt:
    payload = ty.payload
    lower_payload = lowerer_at(payload)
    classes: set[type] = set()
    payload.add_classes(classes)
    accepted = tuple(classes)
    kind, memory, address_of, val_type = _KINDS["OPTION"], _MEMORY, ctypes.addressof, _Val

    def lower(store: Any, val: Any, at: int) -> None:
        if val is None:
            box = 0
        elif isinstance(val, accepted):
            value = val_type()
            lower_payload(store, val, address_of(value))
            box = _val_new(address_of(value))  # moves the value into a new box, as wasmtime-py's _lower does
        else:
            raise ValueError("value not valid for this variant")
        _POINTER_PACK(memory, at + _OF_AT, box or 0)
        memory[at + _KIND_AT] = kind

    return lower


def _cases_lowerer(ty: Any) -> _LowerAt:
    """``ResultType``/``VariantType.convert_to_c`` (``VariantLikeType._lower``): the case picked as wasmtime-py picks
    it (tagged: the first case named ``val.tag``, else ``TypeError`` for a value that is not a ``Variant``; untagged:
    the first case whose payload's Python classes the value is an instance of, or None for a case without payload),
    its payload lowered into a value of its own and moved into a new box; ``ValueError`` when no case fits. A host
    function's ``result<response, string>`` takes this path (its response record, headers and body compiled too).

    The case's classes are those wasmtime-py computes on every call (``add_classes``; a type never changes). The
    kind is written last: when the payload raises, the value at ``at`` is as it was and nothing is allocated."""
    tagged = bool(ty._tagged())
    cases: list[tuple[str, _LowerAt | None, tuple[type, ...]]] = [
        (name, None, ()) if case is None else (name, lowerer_at(case), case_classes(case))
        for name, case in ty._cases()]
    variant, val_type, address_of, memory = _types.Variant, _Val, ctypes.addressof, _MEMORY

    def pick(val: Any) -> tuple[str, _LowerAt | None, Any]:
        if tagged:
            if not isinstance(val, variant):
                raise TypeError("expected Variant type")
            for name, item, _ in cases:
                if name != val.tag:
                    continue
                return name, item, val.payload
        else:
            for name, item, accepted in cases:
                if item is None:
                    if val is not None:
                        continue
                elif not isinstance(val, accepted):
                    continue
                return name, item, val
        raise ValueError("value not valid for this variant")

    def boxed(store: Any, item: _LowerAt | None, payload: Any) -> int:
        if item is None:
            return 0
        value = val_type()
        item(store, payload, address_of(value))
        return _val_new(address_of(value)) or 0  # moves the value into a new box, as wasmtime-py's _lower does

    if isinstance(ty, _types.ResultType):
        kind = _KINDS["RESULT"]

        def lower_result(store: Any, val: Any, at: int) -> None:
            name, item, payload = pick(val)
            _RESULT_PACK(memory, at + _OF_AT, name == "ok", boxed(store, item, payload))
            memory[at + _KIND_AT] = kind

        return lower_result
    kind, names = _KINDS["VARIANT"], {name: name.encode("utf-8") for name, _, _ in cases}

    def lower_variant(store: Any, val: Any, at: int) -> None:
        name, item, payload = pick(val)
        box = boxed(store, item, payload)
        encoded = names[name]
        _byte_vec_new(at + _DISCRIMINANT_AT, len(encoded), encoded)
        _POINTER_PACK(memory, at + _CASE_BOX_AT, box)
        memory[at + _KIND_AT] = kind

    return lower_variant


# Lowering straight from the recorded form ------------------------------------------------------------------------
#
# An export's parameters arrive in the recorded form (``replay.values``: a tuple as a list, a record as a map of
# field names, an option as None or ``{"some": v}``). ``values.lowerer`` turns that into wasmtime-py's values (a
# ``Record`` per record, a tuple per tuple) and the compiled lowerers above write those: ~4-5 us for an HTTP
# request. ``recorded_lowerer_at(ty)`` writes the recorded form directly, for types made only of tuples, records,
# untagged options, lists, ``list<u8>``, strings, integers and bools (None for any other type: the caller keeps
# the two steps). It takes only the plainest form of each node (exactly a list of the tuple's length, exactly a
# dict holding every field, exactly ``bytes``); anything else raises (``_NotDirect`` or the error met), with
# nothing owned at the address, and the caller then lowers the value the two-step way, which gives what it always
# gave: the same values or the same error (``FastFunc.call_recorded``; tests/replay/test_direct_lowering.py
# compares the C values written both ways).


class _NotDirect(Exception):
    """A value not in the plainest recorded form of its type: lower it the two-step way."""


def recorded_lowerer_at(ty: Any) -> _LowerAt | None:
    """A function writing the recorded form of a value of type ``ty`` as ``lowerer_at(ty)`` writes
    ``values.lowerer(ty)`` of it, or None when ``ty`` holds a type it does not handle (see above)."""
    found: _LowerAt = _cached(ty, "_theater_lower_recorded", lambda t: _make_recorded_lowerer(t) or _NO_DIRECT)
    return None if found is _NO_DIRECT else found


def _no_direct(store: Any, val: Any, at: int) -> None:
    raise _NotDirect


_NO_DIRECT: _LowerAt = _no_direct  # cached for a type with no direct lowerer (``_cached`` keeps no None)


def _make_recorded_lowerer(ty: Any) -> _LowerAt | None:
    if type(ty) is _types.String:
        return _string_lowerer
    kind = _kind_of(ty)
    if kind is not None:
        return _scalar_lowerer(kind)
    if isinstance(ty, _types.ListType):
        if ty._is_bytes():
            return _recorded_bytes_lowerer if _bulk_installed() else None
        item = recorded_lowerer_at(ty.element)
        return None if item is None else _list_writer(item, recorded=True)
    if isinstance(ty, _types.TupleType):
        items = [recorded_lowerer_at(element) for element in ty.elements]
        if not items or any(item is None for item in items):
            return None
        return _recorded_tuple_lowerer(items)  # type: ignore[arg-type]
    if isinstance(ty, _types.RecordType):
        fields = [(name, recorded_lowerer_at(field)) for name, field in ty.fields]
        if any(item is None for _, item in fields):
            return None
        return _recorded_record_lowerer(fields)  # type: ignore[arg-type]
    if isinstance(ty, _types.OptionType) and not ty._tagged():
        payload = recorded_lowerer_at(ty.payload)
        return None if payload is None else _recorded_option_lowerer(payload)
    return None


def _recorded_bytes_lowerer(store: Any, val: Any, at: int) -> None:
    if type(val) is not bytes:
        raise _NotDirect
    _lower_u8_list(at, val)


def _recorded_tuple_lowerer(items: list[_LowerAt]) -> _LowerAt:
    length, size, stride, memory = len(items), len(items) * _VAL_STRIDE, _VAL_STRIDE, _MEMORY
    kind, new, delete = _KINDS["TUPLE"], _valtuple_new_uninit, _valtuple_delete
    if all(item is _string_lowerer for item in items):  # an HTTP header: every string encoded before any allocation
        string, byte_vec_new = _STRING, _byte_vec_new

        def lower_strings(store: Any, val: Any, at: int) -> None:
            if type(val) is not list or len(val) != length:
                raise _NotDirect
            encoded = []
            for value in val:
                if type(value) is not str:
                    raise _NotDirect
                encoded.append(value.encode("utf8"))
            new(at + _OF_AT, length)
            element = _VEC_AT(memory, at + _OF_AT)[1]
            for data in encoded:
                byte_vec_new(element + _OF_AT, len(data), data)
                memory[element + _KIND_AT] = string
                element += stride
            memory[at + _KIND_AT] = kind

        return lower_strings

    def lower(store: Any, val: Any, at: int) -> None:
        if type(val) is not list or len(val) != length:
            raise _NotDirect
        new(at + _OF_AT, length)
        element = address = _VEC_AT(memory, at + _OF_AT)[1]
        try:
            for item, value in zip(items, val):
                item(store, value, element)
                element += stride
        except BaseException:
            _abandon(at, element, address + size, delete)
            raise
        memory[at + _KIND_AT] = kind

    return lower


def _recorded_record_lowerer(fields: list[tuple[str, _LowerAt]]) -> _LowerAt:
    named = [(name, name.encode("utf-8"), item) for name, item in fields]
    n, kind, size_of, memory = len(named), _KINDS["RECORD"], _ENTRY_SIZE, _MEMORY
    new, delete, name_new = _valrecord_new_uninit, _valrecord_delete, _byte_vec_new

    def lower(store: Any, val: Any, at: int) -> None:
        if type(val) is not dict:
            raise _NotDirect
        new(at + _OF_AT, n)
        entry = _VEC_AT(memory, at + _OF_AT)[1]
        end = entry + n * size_of
        try:
            for name, encoded, item in named:
                item(store, val[name], entry + _ENTRY_VAL_AT)
                name_new(entry + _NAME_AT, len(encoded), encoded)
                entry += size_of
        except BaseException:
            _memset(entry, 0, end - entry)
            delete(at + _OF_AT)
            raise
        memory[at + _KIND_AT] = kind

    return lower


def _recorded_option_lowerer(payload: _LowerAt) -> _LowerAt:
    kind, memory, address_of, val_type = _KINDS["OPTION"], _MEMORY, ctypes.addressof, _Val

    def lower(store: Any, val: Any, at: int) -> None:
        if val is None:
            box = 0
        elif type(val) is dict:
            value = val_type()
            payload(store, val["some"], address_of(value))
            box = _val_new(address_of(value))
        else:
            raise _NotDirect
        _POINTER_PACK(memory, at + _OF_AT, box or 0)
        memory[at + _KIND_AT] = kind

    return lower


# Reading straight into the recorded form --------------------------------------------------------------------------
#
# The mirror of ``recorded_lowerer_at`` for an export's result: ``recorded_reader_at(ty)`` reads a value wasmtime
# gave into the form ``values.lifter(ty)`` makes of ``reader_at(ty)``'s value, without the ``Record`` and tuples
# in between, for types made of tuples, records, untagged options, results, lists, ``list<u8>``, strings, integers,
# bools, enums and flags (None for any other type). A reader changes and frees nothing, so when it meets anything
# unusual (a size or a field name not the type's, a kind not expected) it raises, and the caller reads the value
# again the two-step way, which gives what it always gave (``FastFunc.call_recorded``). An untagged result's case
# is the case wasmtime names; the lifter picks it by the Python class of the payload, so such a result is read
# directly only when that class always picks the case wasmtime names (``_picks_its_own_case``).


def recorded_reader_at(ty: Any) -> _LiftAt | None:
    """A function reading the value of type ``ty`` at an address as ``values.lifter(ty)(reader_at(ty)(at))`` gives it,
    or None when ``ty`` holds a type it does not handle."""
    found: _LiftAt = _cached(ty, "_theater_read_recorded", lambda t: _make_recorded_reader(t) or _NO_DIRECT_READ)
    return None if found is _NO_DIRECT_READ else found


def _no_direct_read(at: int) -> Any:
    raise _NotDirect


_NO_DIRECT_READ: _LiftAt = _no_direct_read
_NOT_READ = object()


def _make_recorded_reader(ty: Any) -> _LiftAt | None:
    if type(ty) is _types.String:
        return _string_reader()
    kind = _kind_of(ty)
    if kind is not None:
        return _scalar_reader(kind)
    if type(ty) is _types.EnumType:
        return _enum_reader()
    if type(ty) is _types.FlagsType:
        flags = _flags_reader()
        return lambda at: sorted(flags(at))
    if isinstance(ty, _types.ListType):
        if ty._is_bytes():
            return _bytes_reader() if _bulk_installed() else None
        item = recorded_reader_at(ty.element)
        return None if item is None else _recorded_list_reader(item)
    if isinstance(ty, _types.TupleType):
        items = [recorded_reader_at(element) for element in ty.elements]
        if any(item is None for item in items):
            return None
        return _recorded_tuple_reader(items)  # type: ignore[arg-type]
    if isinstance(ty, _types.RecordType):
        fields = [(name, recorded_reader_at(field)) for name, field in ty.fields]
        if any(item is None for _, item in fields):
            return None
        return _recorded_record_reader(fields)  # type: ignore[arg-type]
    if isinstance(ty, _types.OptionType):
        if ty._tagged():
            return None
        payload = recorded_reader_at(ty.payload)
        return None if payload is None else _recorded_option_reader(payload)
    if isinstance(ty, _types.ResultType):
        return _recorded_result_reader(ty)
    return None


def _recorded_list_reader(item: _LiftAt) -> _LiftAt:
    kind, stride, memory = _KINDS["LIST"], _VAL_STRIDE, _MEMORY

    def read(at: int) -> list[Any]:
        if memory[at + _KIND_AT] != kind:
            raise _NotDirect
        size, address = _VEC_AT(memory, at + _OF_AT)
        if size and not address:
            raise _NotDirect
        return [item(element) for element in range(address, address + size * stride, stride)]

    return read


def _recorded_tuple_reader(items: list[_LiftAt]) -> _LiftAt:
    length, kind, stride, memory = len(items), _KINDS["TUPLE"], _VAL_STRIDE, _MEMORY

    def read(at: int) -> list[Any]:
        if memory[at + _KIND_AT] != kind:
            raise _NotDirect
        size, address = _VEC_AT(memory, at + _OF_AT)
        if size != length or (size and not address):
            raise _NotDirect
        ret = []
        for item in items:
            ret.append(item(address))
            address += stride
        return ret

    return read


def _recorded_record_reader(fields: list[tuple[str, _LiftAt]]) -> _LiftAt:
    # Read in declaration order (where the entries are), kept in the lifter's order: canonical CBOR key order.
    named = [(name, name.encode("utf-8"), item) for name, item in fields]
    order = sorted(range(len(named)), key=lambda i: (len(named[i][1]), named[i][1]))
    length, kind, size_of, memory = len(named), _KINDS["RECORD"], _ENTRY_SIZE, _MEMORY

    def read(at: int) -> dict[str, Any]:
        if memory[at + _KIND_AT] != kind:
            raise _NotDirect
        size, entry = _VEC_AT(memory, at + _OF_AT)
        if size != length or (size and not entry):
            raise _NotDirect
        got = []
        for _, encoded, item in named:
            name_size, name_at = _VEC_AT(memory, entry + _NAME_AT)
            if memory[name_at : name_at + name_size] != encoded:
                raise _NotDirect
            got.append(item(entry + _ENTRY_VAL_AT))
            entry += size_of
        return {named[i][0]: got[i] for i in order}

    return read


def _recorded_option_reader(payload: _LiftAt) -> _LiftAt:
    kind, memory = _KINDS["OPTION"], _MEMORY

    def read(at: int) -> Any:
        if memory[at + _KIND_AT] != kind:
            raise _NotDirect
        address = _POINTER_AT(memory, at + _OF_AT)[0]
        return {"some": payload(address)} if address else None

    return read


def _python_class(ty: Any) -> type | None:
    """The one Python class of every value ``reader_at(ty)`` gives, None when there is not one (or not known)."""
    if type(ty) is _types.String or type(ty) is _types.EnumType:
        return str
    if type(ty) is _types.FlagsType:
        return set
    kind = _kind_of(ty)
    if kind is not None:
        return bool if kind == "Bool" else int
    if isinstance(ty, _types.ListType):
        return (bytes if _bulk_installed() else None) if ty._is_bytes() else list
    if isinstance(ty, _types.TupleType):
        return tuple
    if isinstance(ty, _types.RecordType):
        return _types.Record
    return None


def _picks_its_own_case(cases: list[tuple[str, Any]]) -> bool:
    """True when, for every case, ``values``' untagged lifter picks that case for the value wasmtime reads for it:
    the first case whose classes (``case_classes``) the payload's class is a subclass of, or the first without a
    payload for None."""
    tests = [(name, None if t is None else case_classes(t)) for name, t in cases]
    for name, t in cases:
        cls = type(None) if t is None else _python_class(t)
        if cls is None:
            return False
        picked = next((n for n, classes in tests
                       if (cls is type(None) if classes is None else issubclass(cls, classes))), None)
        if picked != name:
            return False
    return True


def _recorded_result_reader(ty: Any) -> _LiftAt | None:
    cases = [("ok", ty.ok), ("err", ty.err)]
    tagged = ty._tagged()
    if not tagged and not _picks_its_own_case(cases):
        return None
    readers = {name: (None if t is None else recorded_reader_at(t)) for name, t in cases}
    if any(t is not None and readers[name] is None for name, t in cases):
        return None
    ok, err = readers["ok"], readers["err"]
    kind, memory = _KINDS["RESULT"], _MEMORY

    def read(at: int) -> dict[str, Any]:
        if memory[at + _KIND_AT] != kind:
            raise _NotDirect
        is_ok, address = _RESULT_AT(memory, at + _OF_AT)
        name, payload = ("ok", ok) if is_ok else ("err", err)
        if payload is None:
            return {name: None}
        if not address:
            raise _NotDirect
        return {name: payload(address)}

    return read


class FastFunc:
    """A component function bound to its store, with its parameter and result types resolved once.

    ``types`` (parameter types, result type) may come from another instance of the same component's function
    (``FastFunc.types``): wasmtime-py's type objects are the engine's, not a store's, so instances share them.
    """

    __slots__ = ("_func", "_func_ref", "_store", "_params", "_result", "_lowers", "_lift", "_direct", "_read",
                 "_lend")

    def __init__(
        self, func: wasmtime.component.Func, store: wasmtime.Store, types: tuple[list[Any], Any] | None = None
    ) -> None:
        if types is None:
            fty = func.type(store)
            types = ([ty for _, ty in fty.params], fty.result)
        self._func = func._func
        self._func_ref = byref(self._func)
        self._store = store
        self._params: list[Any] = types[0]
        self._result: Any = types[1]
        self._lowers = tuple(lowerer_at(ty) for ty in self._params)
        self._lift = None if self._result is None else lifter_at(self._result)
        self._direct = recorded_lowerer_at(self._params[-1]) if len(self._params) == 2 else None
        self._read = None if self._result is None else recorded_reader_at(self._result)
        # Where lent list<u8> parameters sit (see "Lent list<u8> parameters"), or None: lend for no parameter.
        self._lend: list[tuple[int, _Finder]] | None = None
        if _bulk_installed() and not any(_u8_list_elsewhere(ty, walked=True) for ty in self._params):
            finders = [(i * _VAL_STRIDE, _lent_finder(ty)) for i, ty in enumerate(self._params)]
            self._lend = [(offset, f) for offset, f in finders if f is not None] or None

    @property
    def types(self) -> tuple[list[Any], Any]:
        """(parameter types, result type), to hand to the next instance's ``FastFunc``."""
        return self._params, self._result

    def __call__(self, *params: Any) -> Any:
        store = self._store
        count = len(self._params)
        if len(params) != count:
            raise TypeError(f"wrong number of parameters: given {len(params)}, expected {count}")
        space = (ffi.wasmtime_component_val_t * (count + 1))()  # the parameters, then the result
        base = ctypes.addressof(space)
        n = 0
        lent: list[tuple[Any, int, int]] | None = None if self._lend is None else []
        found: list[int] = []
        try:
            previous, _LENDING.lent = _LENDING.lent, lent
            try:
                for lower, value in zip(self._lowers, params):
                    lower(store, value, base + n * _VAL_STRIDE)
                    n += 1
            finally:
                _LENDING.lent = previous
            if lent and not self._found(base, lent, found):
                n = self._lent_lost(base, n, lent, found)
                for lower, value in zip(self._lowers, params):
                    lower(store, value, base + n * _VAL_STRIDE)
                    n += 1
            lift = self._lift
            result = base + count * _VAL_STRIDE
            error = _func_call(self._func_ref, store._context(), base, n, None if lift is None else result,
                               0 if lift is None else 1)
            if error:
                _raise_call_error(error)
            return None if lift is None else lift(result)
        finally:
            if found:
                _unlend(found)
            for i in range(n):
                _val_delete(base + i * _VAL_STRIDE)
            if lent:
                _give_back(lent)

    def _found(self, base: int, lent: list[tuple[Any, int, int]], found: list[int]) -> bool:
        """Find the lent lists among the parameters at ``base`` (making each the list it is) into ``found``; True
        when every buffer of ``lent`` was found."""
        table = {address: size for _, address, size in lent}
        for offset, find in self._lend or ():
            find(base + offset, table, found)
        return len(found) == len(lent)

    def _lent_lost(self, base: int, n: int, lent: list[tuple[Any, int, int]], found: list[int]) -> int:
        """A lent list sits where ``_found`` does not look: delete the ``n`` parameters, take every buffer back and
        lend for no call of this function again (the caller lowers the parameters again, copying). Returns 0."""
        _unlend(found)
        for i in range(n):
            _val_delete(base + i * _VAL_STRIDE)
        _give_back(lent)
        self._lend = None
        return 0

    def call_recorded(
        self, first: Any, recorded: Any, lower: Callable[[Any], Any], lift: Callable[[Any], Any] | None = None
    ) -> Any:
        """``self(first, lower(recorded))`` for a function of two parameters, the second given in its recorded form
        and ``lower`` its ``values.lowerer``: that parameter is written straight from the recorded form where its
        type and value allow (``recorded_lowerer_at``), else as ``self`` would write ``lower(recorded)``, with the
        same values or the same error. With ``lift`` (the result type's ``values.lifter``), the result comes back
        as ``lift`` of what ``self`` returns, read straight into that form where its type allows
        (``recorded_reader_at``)."""
        direct = self._direct
        if direct is None:
            value = self(first, lower(recorded))
            return value if lift is None else lift(value)
        store = self._store
        space = (ffi.wasmtime_component_val_t * 3)()  # the two parameters, then the result
        base = ctypes.addressof(space)
        n = 0
        lent: list[tuple[Any, int, int]] | None = None if self._lend is None else []
        found: list[int] = []
        try:
            previous, _LENDING.lent = _LENDING.lent, lent
            try:
                n = self._lower_two(store, base, first, recorded, lower, lent)
            finally:
                _LENDING.lent = previous
            if lent and not self._found(base, lent, found):
                n = self._lent_lost(base, n, lent, found)
                n = self._lower_two(store, base, first, recorded, lower, None)
            result_lift = self._lift
            result = base + 2 * _VAL_STRIDE
            error = _func_call(self._func_ref, store._context(), base, 2, None if result_lift is None else result,
                               0 if result_lift is None else 1)
            if error:
                _raise_call_error(error)
            if result_lift is None:
                return None if lift is None else lift(None)
            if lift is None:
                return result_lift(result)
            read = self._read
            if read is not None:
                try:
                    value = read(result)
                except Exception:  # anything unusual: read again the two-step way, which says what it is
                    value = _NOT_READ
                if value is not _NOT_READ:
                    _val_delete(result)
                    return value
            return lift(result_lift(result))
        finally:
            if found:
                _unlend(found)
            for i in range(n):
                _val_delete(base + i * _VAL_STRIDE)
            if lent:
                _give_back(lent)

    def _lower_two(self, store: Any, base: int, first: Any, recorded: Any, lower: Callable[[Any], Any],
                   lent: list[tuple[Any, int, int]] | None) -> int:
        """``call_recorded``'s two parameters lowered at ``base`` (the second straight from its recorded form where
        it can be); returns 2. When the first raises nothing is left to delete; when the second does, the first
        is deleted here."""
        self._lowers[0](store, first, base)
        try:
            mark = 0 if lent is None else len(lent)
            try:
                self._direct(store, recorded, base + _VAL_STRIDE)  # type: ignore[misc]
            except Exception:  # not the plainest form (or not lowerable at all): the two steps say which
                if lent is not None:
                    _give_back(lent, mark)  # what the direct way lent is in no value any more
                self._lowers[1](store, lower(recorded), base + _VAL_STRIDE)
        except BaseException:
            _val_delete(base)
            raise
        return 2


_EPOCH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t,
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.POINTER(ctypes.c_uint64),
    ctypes.POINTER(ffi.wasmtime_update_deadline_kind_t),
)
_UPDATE_DEADLINE_CONTINUE = 0


def _on_deadline(context: Any, data: int | None, delta: Any, kind: Any) -> int:
    """The one epoch-deadline callback of every store: ``data`` is the address of the store's ``EpochWatch``."""
    watch: EpochWatch = ctypes.cast(data or 0, ctypes.py_object).value
    try:
        reason = watch.check()
    except Exception as exc:  # nothing may escape into wasmtime: a failing check ends the call
        reason = f"epoch check failed: {type(exc).__name__}"
    if reason is None:
        delta[0] = 1
        kind[0] = _UPDATE_DEADLINE_CONTINUE
        return 0
    watch.reason = reason
    error = ffi.wasmtime_error_new(f"theater: {reason}".encode())
    return ctypes.cast(error, ctypes.c_void_p).value or 0


if ffi is not None:
    # Made once for the process: a ctypes callback of its own per store cost a thunk, and a bound method in a cycle.
    _DEADLINE_CALLBACK = _EPOCH_CALLBACK(_on_deadline)
    _set_deadline_callback = _gil_held("wasmtime_store_epoch_deadline_callback", None,
                                       ctypes.POINTER(ffi.wasmtime_store_t), _EPOCH_CALLBACK, _c_void_p, _c_void_p)


class EpochWatch:
    """Asks ``check`` at every epoch tick while wasm runs in ``store``; when it names a reason, the call traps.

    wasmtime calls the callback on the thread that runs the wasm, when the store's epoch deadline is reached; the
    watch re-arms the deadline one tick ahead each time, so ``check`` runs once per tick for as long as a call runs
    (and never while the store is idle or in a host function). The trap carries ``reason`` as its message, and
    ``reason`` stays set until ``reset``. Because the callback is a call out of the wasm code, wasmtime has saved
    the fuel counter to the store by then: the fuel a stopped call consumed is exact, and a replay that runs with
    that much fuel stops at the same point.

    Every store shares one C callback, made once for the process, and hands it the address of its watch (the
    store keeps its watch alive: the address stays valid as long as wasm can run in the store). Installing one
    is a single C call that keeps the GIL.

    Args:
        store: the store to watch (it holds the watch from now on).
        check: returns None to go on, or a short reason (``"deadline"``, ``"stopped"``) to end the call. It must
            not touch the store.
    """

    __slots__ = ("reason", "check")

    def __init__(self, store: Any, check: Callable[[], str | None]) -> None:
        self.reason: str | None = None
        self.check = check
        store._theater_epoch_watch = self  # what the callback's address points to lives as long as the store
        _set_deadline_callback(store.ptr(), _DEADLINE_CALLBACK, id(self), None)

    def reset(self) -> None:
        self.reason = None


# Host functions with their types resolved once ---------------------------------------------------------------------
#
# wasmtime-py's ``LinkerInstance.add_func`` calls a host function through a callback that, on every call, builds the
# function's type object and every parameter and result type object afresh from wasmtime (``FuncType._from_ptr``,
# ``.params``, ``.result``), so the caches of ``_install_type_caches`` never hit: lowering a ``result`` asked
# wasmtime for its ok and err types on every call (a tenth of a supervisor's spawn). ``add_host_func`` links the
# function with the types the component declares for the import (the same types: the linker is the component's),
# resolved once, and converts its result with this module's ``lowerer_at`` (``convert_to_c``'s equivalent, as an
# export call's parameters are lowered; a ``result`` such as ``send-http``'s ``result<response, string>`` compiled
# down to its strings) and its parameters with ``_param_reader``: the values are wasmtime-py's own. Errors
# go back to wasmtime as wasmtime-py's do (``catch_exceptions``): a ``WasmtimeError`` as itself, any other exception
# kept in ``_enter.LAST_EXCEPTION`` for ``enter_wasm`` to raise once the call returns.
#
# Who frees the parameters: wasmtime. Its C API (crates/c-api/src/component/linker.rs,
# ``wasmtime_component_linker_instance_add_func``) converts the arguments into a Rust ``Vec<wasmtime_component_val_t>``,
# passes its pointer to the callback and drops the Vec when the callback returns: every string, list, record and
# option/result/variant box still reachable from an argument is freed then. wasmtime-py's ``convert_from_c`` frees
# as it reads, but its deletes ``take`` (free and leave an empty vec), so the drop afterwards frees nothing twice; an
# option's or result's box it leaves allocated and reachable, so a top-level ``option<string>`` does not leak. But a
# record, list or tuple zeroes each element once converted (``kind = BOOL``), cutting the drop off from the boxes of
# the options, results and variants inside: each one leaked (48 bytes of malloc in use per call for a record with one
# ``option<list<u8>>`` field, measured with ``mallinfo2``). So a parameter of a compiled type is read by ``reader_at``
# (reads, frees and changes nothing: the drop frees the whole tree, boxes included); never by ``lifter_at``, whose
# ``wasmtime_component_val_delete`` drops the boxes without clearing their pointers, which the Vec's drop would free
# again. Variants, enums and flags have compiled readers (a variant inside a record, list or tuple, converted by
# wasmtime-py and zeroed, leaked its payload box on every call). A parameter of any other type (char, float, a
# resource) keeps its own ``convert_from_c``, untouched afterwards; inside a compiled one such a part is converted and
# zeroed by ``reader_at`` (as wasmtime-py's own record and list conversions zero it): none of them owns a box.

HostCall = Callable[..., Any]  # called as ``fn(context_address, *params)``

_HOST_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t,
    ctypes.c_void_p, ctypes.c_size_t,
)


def _param_reader(ty: Any) -> _LiftAt:
    """How a host function's parameter of type ``ty``, owned by wasmtime (freed after the callback), is read: the
    compiled ``reader_at`` (frees nothing), or the type's own ``convert_from_c`` for a type with no compiled reader
    (made once per type object)."""
    return _cached(ty, "_theater_param_read", _make_param_reader)  # type: ignore[no-any-return]


def _make_param_reader(ty: Any) -> _LiftAt:
    if _compiled_reader_at(ty) is not None:
        return reader_at(ty)
    convert, from_address = ty.convert_from_c, _Val.from_address
    return lambda address: convert(from_address(address))


class _HostFunc:
    __slots__ = ("func", "params", "result", "lower", "reads")

    def __init__(self, func: HostCall, ty: Any) -> None:
        self.func = func
        self.params: tuple[Any, ...] = tuple(t for _, t in ty.params)
        self.reads: tuple[tuple[int, _LiftAt], ...] = tuple(
            (i * _VAL_STRIDE, _param_reader(t)) for i, t in enumerate(self.params))
        self.result: Any = ty.result
        # as ``convert_to_c``, made once, writing at the result's address (``lowerer_at``)
        self.lower = None if self.result is None else lowerer_at(self.result)

    def call(self, context: int, args: int, nargs: int, results: int, nresults: int) -> None:
        if nargs != len(self.params) or nresults != (0 if self.result is None else 1):
            raise wasmtime.WasmtimeError(f"host function called with {nargs} parameters and {nresults} results")
        if nargs and not args:
            raise wasmtime.WasmtimeError("host function called with its parameters at address 0")
        if nresults and not results:
            raise wasmtime.WasmtimeError("host function called with its result at address 0")
        values = [read(args + offset) for offset, read in self.reads]
        result = self.func(context, *values)
        if self.lower is None:
            if result is not None:  # wasmtime-py's add_func refuses it too (an assertion there)
                raise TypeError(f"a host function without a result returned {type(result).__name__}")
            return
        self.lower(None, result, results)


def _call_host(data: int | None, context: int | None, ty: int | None, args: int | None, nargs: int,
               results: int | None, nresults: int) -> int:
    """The one C callback of every host function ``add_host_func`` links."""
    try:
        host: _HostFunc = _linker.FUNCTIONS.get(data or 0)  # type: ignore[assignment]
        host.call(context or 0, args or 0, nargs, results or 0, nresults)
        return 0
    except wasmtime.WasmtimeError as exc:
        error = exc
    except Exception as exc:
        _enter.LAST_EXCEPTION = exc
        error = wasmtime.WasmtimeError("python exception")
    return ctypes.cast(error._consume(), ctypes.c_void_p).value or 0


if ffi is not None:
    _HOST_FUNC_CALLBACK = _HOST_CALLBACK(_call_host)
    _add_func = ctypes.CFUNCTYPE(_c_void_p, _c_void_p, ctypes.c_char_p, _c_size_t, _HOST_CALLBACK, _c_void_p,
                                 _c_void_p)(("wasmtime_component_linker_instance_add_func", ffi.dll))


def add_host_func(instance: Any, name: str, ty: Any, func: HostCall) -> None:
    """``instance.add_func(name, ...)`` (``instance`` a ``wasmtime.component.LinkerInstance``) for an import of
    type ``ty`` (a ``FuncType`` of the component's imports): wasm calls ``func(context_address, *params)``, the
    address of the calling store's context (``ctypes.cast(store._context(), c_void_p).value`` of its store),
    params as wasmtime-py gives them; its result is lowered as wasmtime-py lowers a host function's.

    Raises:
        WasmtimeError: the linker refused the name (defined twice).
    """
    instance._assert_not_locked()
    encoded = name.encode("utf-8")
    handle = _linker.FUNCTIONS.allocate(_HostFunc(func, ty))  # type: ignore[arg-type]
    finalize = ctypes.cast(_linker.func_finalize, ctypes.c_void_p).value
    error = _add_func(ctypes.cast(instance.ptr(), ctypes.c_void_p), encoded, len(encoded), _HOST_FUNC_CALLBACK, handle,
                      finalize)
    if error:
        _raise_error(error)


def deserialize(engine: wasmtime.Engine, data: bytes | bytearray) -> Any:
    """The ``wasmtime.component.Component`` serialized in ``data``: wasmtime-py's ``Component.deserialize``
    without its copy of the bytes into a ctypes array (a Python actor's compiled form is ~45 MB: the copy was a
    fifth of a start in a fresh runtime). wasmtime copies the bytes into memory of its own, so nothing here
    outlives the call.

    Raises:
        wasmtime.WasmtimeError: wasmtime refused the bytes (another version or configuration, or not an artifact).
    """
    if isinstance(data, bytearray):
        buffer: Any = (ctypes.c_uint8 * len(data)).from_buffer(data)
    else:
        buffer = ctypes.cast(ctypes.c_char_p(bytes(data)), ctypes.POINTER(ctypes.c_uint8))
    out = ctypes.POINTER(ffi.wasmtime_component_t)()
    error = ffi.wasmtime_component_deserialize(engine.ptr(), buffer, len(data), byref(out))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return wasmtime.component.Component._from_ptr(out)
