"""Whether a value in the recorded form fits a WIT type: what a what-if override must pass before a guest gets it.

wasmtime-py lowers ``result`` and ``variant`` untagged when their cases' Python types differ, so a value of the
wrong type can slip into another case (a string given for ``result<u64, string>``'s ok becomes its err). The
record written by the runtime always fits; an override is typed by a person, so it is checked against the type
first, with the place and the expectation named.
"""

from __future__ import annotations

from typing import Any

import wasmtime.component as wc

_INTS = {wc.S8: (-(2**7), 2**7), wc.S16: (-(2**15), 2**15), wc.S32: (-(2**31), 2**31), wc.S64: (-(2**63), 2**63),
         wc.U8: (0, 2**8), wc.U16: (0, 2**16), wc.U32: (0, 2**32), wc.U64: (0, 2**64)}


def misfit(value: Any, ty: Any, where: str = "value") -> str | None:
    """What is wrong with ``value`` as a recorded value of ``ty`` (a ``wasmtime.component`` type), or None."""
    if ty is None:
        return None if value is None else f"{where} must be null (the type has no payload)"
    for cls, (low, high) in _INTS.items():
        if isinstance(ty, cls):
            ok = type(value) is int and low <= value < high
            return None if ok else f"{where} must be an integer in [{low}, {high}), got {value!r}"
    if isinstance(ty, (wc.F32, wc.F64)):
        return None if type(value) in (int, float) else f"{where} must be a number, got {value!r}"
    if isinstance(ty, wc.Bool):
        return None if isinstance(value, bool) else f"{where} must be true or false, got {value!r}"
    if isinstance(ty, wc.Char):
        return None if isinstance(value, str) and len(value) == 1 else f"{where} must be one character"
    if isinstance(ty, wc.String):
        return None if isinstance(value, str) else f"{where} must be a string, got {value!r}"
    return _compound(value, ty, where)


def _compound(value: Any, ty: Any, where: str) -> str | None:
    if isinstance(ty, wc.ListType):
        if isinstance(ty.element, wc.U8):
            return None if isinstance(value, bytes) else f"{where} must be bytes (\"hex:...\" in JSON)"
        if not isinstance(value, list):
            return f"{where} must be a list"
        return next((p for i, v in enumerate(value) if (p := misfit(v, ty.element, f"{where}[{i}]"))), None)
    if isinstance(ty, wc.TupleType):
        if not isinstance(value, list) or len(value) != len(ty.elements):
            return f"{where} must be a list of {len(ty.elements)} values"
        return next((p for i, (v, t) in enumerate(zip(value, ty.elements)) if (p := misfit(v, t, f"{where}[{i}]"))),
                    None)
    if isinstance(ty, wc.RecordType):
        names = [name for name, _ in ty.fields]
        if not isinstance(value, dict) or sorted(value) != sorted(names):
            return f"{where} must be a map of {', '.join(names)}"
        return next((p for name, t in ty.fields if (p := misfit(value[name], t, f"{where}.{name}"))), None)
    if isinstance(ty, wc.OptionType):
        if value is None:
            return None
        if not isinstance(value, dict) or set(value) != {"some"}:
            return f"{where} must be null or {{\"some\": value}}"
        return misfit(value["some"], ty.payload, f"{where}.some")
    if isinstance(ty, (wc.ResultType, wc.VariantType)):
        cases = dict([("ok", ty.ok), ("err", ty.err)] if isinstance(ty, wc.ResultType) else ty.cases)
        if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in cases:
            return f"{where} must be a one-key map naming one of {', '.join(cases)}"
        ((tag, payload),) = value.items()
        return misfit(payload, cases[tag], f"{where}.{tag}")
    if isinstance(ty, wc.EnumType):
        return None if value in list(ty.names) else f"{where} must be one of {', '.join(ty.names)}"
    if isinstance(ty, wc.FlagsType):
        ok = isinstance(value, list) and all(v in list(ty.names) for v in value)
        return None if ok else f"{where} must be a list of flags among {', '.join(ty.names)}"
    return f"{where} has a type overrides cannot give ({type(ty).__name__})"


__all__ = ["misfit"]
