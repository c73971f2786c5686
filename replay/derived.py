"""Host results the record holds by reference, because the chain itself already holds them.

``runtime.get-chain`` hands the guest its own chain, ``supervisor.get-child-events`` a child's. Recording such a
result whole would store the chain again at every call (storage growing with the square of the chain's length).
A host function returns a ``Derived`` instead: ``value`` goes to the guest, ``ref`` to the record, as the host
call's ``result_ref`` field in place of ``result`` (``docs/events.md``)::

    {"chain": {"actor": bytes(16), "to_seq": uint, "head": bytes(32)}}          # the chain-event list
    {"ok": REF}                                                                  # result<..., E>'s ok of REF

The list is the actor's events ``0..to_seq`` in ``theater:simple`` ``chain-event`` form (``chain_event``). The
head hash pins the whole prefix (each event's hash covers its parent's), so the reference is as tamper-evident as
the value: replay (``expand``) reads the events back from the store and refuses a prefix whose last hash is not
``head``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import cbor2

from replay.errors import MalformedRecord, RecordIncomplete
from store import Event, Store

RESULT_REF = "result_ref"  # the host-call field holding a result by reference (instead of ``result``)
CHAIN = "chain"
OK = "ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class Derived:
    """A host function's result the record keeps by reference.

    Attributes:
        value: the result (recorded form) the guest receives.
        ref: what the record keeps; ``expand(store, ref)`` gives ``value`` back.
    """

    value: Any
    ref: dict[str, Any]


class RefMismatch(Exception):
    """The store's chain does not end at the head a reference names (``expected``, ``actual``: hashes or None)."""

    def __init__(self, actor: uuid.UUID, to_seq: int, expected: bytes, actual: bytes | None) -> None:
        self.actor = actor
        self.to_seq = to_seq
        self.expected = expected
        self.actual = actual
        super().__init__(f"the chain of actor {actor} at seq {to_seq}")


def chain_event(event: Event) -> dict[str, Any]:
    """One event as the guest sees it: a ``theater:simple/types.chain-event`` in recorded form."""
    return {
        "hash": event.hash,
        "parent-hash": None if event.parent is None else {"some": event.parent},
        "event-type": event.type,
        "data": cbor2.dumps(event.data, canonical=True),
        "timestamp": event.timestamp_ms,
    }


def chain_result(events: Iterable[Event], *, actor: uuid.UUID, ok: bool = False) -> Derived | Any:
    """The chain-event list of ``events`` (an actor's chain read from seq 0), with its reference.

    Returns the value itself, not a ``Derived``, for an empty chain (there is no head to refer to).
    """
    read = list(events)
    value: Any = [chain_event(e) for e in read]
    if not read:
        return {OK: value} if ok else value
    last = read[-1]
    ref: dict[str, Any] = {CHAIN: {"actor": actor.bytes, "to_seq": last.seq, "head": last.hash}}
    return Derived(value={OK: value} if ok else value, ref={OK: ref} if ok else ref)


def check_ref(event: Event, ref: Any, field: str = RESULT_REF) -> None:
    """Check a recorded reference's shape.

    Raises:
        MalformedRecord: naming the event and the field.
    """
    def bad(where: str, problem: str) -> MalformedRecord:
        return MalformedRecord(seq=event.seq, type=event.type, field=where, problem=problem)

    if not isinstance(ref, dict) or len(ref) != 1 or next(iter(ref)) not in (CHAIN, OK):
        raise bad(field, "must be a map with one key, 'chain' or 'ok'")
    if OK in ref:
        check_ref(event, ref[OK], f"{field}.{OK}")
        return
    spec = ref[CHAIN]
    where = f"{field}.{CHAIN}"
    if not isinstance(spec, dict) or set(spec) != {"actor", "to_seq", "head"}:
        raise bad(where, "must be a map of actor, to_seq and head")
    if not (isinstance(spec["actor"], bytes) and len(spec["actor"]) == 16):
        raise bad(f"{where}.actor", "must be a 16-byte actor id")
    if type(spec["to_seq"]) is not int or spec["to_seq"] < 0:
        raise bad(f"{where}.to_seq", "must be a non-negative integer")
    if not (isinstance(spec["head"], bytes) and len(spec["head"]) == 32):
        raise bad(f"{where}.head", "must be a 32-byte event hash")


def referenced_chains(data: Any) -> Iterator[tuple[uuid.UUID, int]]:
    """The chains (actor, last seq) a host call's data refers to through its ``result_ref``, if any; a shape
    that is not a reference yields nothing (``check_ref`` judges it)."""
    ref = data.get(RESULT_REF) if isinstance(data, dict) else None
    while isinstance(ref, dict) and OK in ref:
        ref = ref[OK]
    spec = ref.get(CHAIN) if isinstance(ref, dict) else None
    if isinstance(spec, dict) and isinstance(spec.get("actor"), bytes) and len(spec["actor"]) == 16 \
            and type(spec.get("to_seq")) is int and spec["to_seq"] >= 0:
        yield uuid.UUID(bytes=spec["actor"]), spec["to_seq"]


def expand(store: Store, ref: dict[str, Any]) -> Any:
    """The value a (checked) reference stands for, read from the store.

    Raises:
        RecordIncomplete: the store lacks the referenced chain or part of it.
        RefMismatch: the store's event at ``to_seq`` is not the recorded head.
    """
    if OK in ref:
        return {OK: expand(store, ref[OK])}
    spec = ref[CHAIN]
    actor, to_seq, head = uuid.UUID(bytes=spec["actor"]), spec["to_seq"], spec["head"]
    events = list(store.log.events(actor, 0, to_seq + 1))
    if len(events) != to_seq + 1:
        raise RecordIncomplete(f"a host result refers to events 0..{to_seq} of actor {actor}; the store holds "
                               f"{len(events)} (verify needs that actor's chain too)")
    if events[-1].hash != head:
        raise RefMismatch(actor, to_seq, head, events[-1].hash)
    return [chain_event(e) for e in events]


__all__ = ["CHAIN", "OK", "RESULT_REF", "Derived", "RefMismatch", "chain_event", "chain_result", "check_ref",
           "expand", "referenced_chains"]
