"""Where a forked actor's history comes from, and the check that it does.

A fork is an actor whose history begins at an event of another actor's chain. Its creation event records the
origin in ``fork`` (``docs/events.md``)::

    {"actor": bytes(16), "seq": uint, "event": bytes(32)}                      # the source event
    {"actor": ..., "seq": ..., "event": ..., "overrides": [[seq, value], ...]}  # a fork of a what-if run

and its ``init_state`` is the state at that event: the state the source's record holds after event ``seq``
(``replay.history.state_at``), or, with ``overrides``, the state a what-if run of the source up to ``seq`` with
those host results replaced computes (``replay.whatif``). Verifying the fork follows into the source chain's
prefix (``check_origin``): the event must be the source's event ``seq``, the source's events ``0..seq`` must be
intact and re-execute as recorded, and the fork's initial state must be the state there. So the fork's record
is as verifiable as if its history were copied, without copying it; a fork of a fork follows the whole line.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import blake3

from replay.errors import ContinuityBreak, MalformedRecord, ReplayError
from replay.history import state_event_at
from replay.schema import ACTOR_CREATED, STATE_FIELDS, ActorCreated
from store import Event, Store, verify_chain
from store.errors import NotFoundError

FORK = "fork"
MAX_OVERRIDES = 1024  # host results one what-if fork may replace
MAX_FORK_DEPTH = 64  # forks of forks a verification follows (a hostile bundle could nest them to exhaust the stack)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForkOrigin:
    """The source event of a fork, as its creation event records it.

    Attributes:
        actor: the source actor. seq, event: the source event's position and hash.
        overrides: for a fork of a what-if run, the host results replaced, as ``(seq, recorded-form value)``
            pairs in seq order; empty otherwise.
    """

    actor: uuid.UUID
    seq: int
    event: bytes
    overrides: tuple[tuple[int, Any], ...] = ()

    def encode(self) -> dict[str, Any]:
        data: dict[str, Any] = {"seq": self.seq, "actor": self.actor.bytes, "event": self.event}
        if self.overrides:
            data["overrides"] = [[seq, value] for seq, value in self.overrides]
        return data

    @classmethod
    def read(cls, genesis: Event) -> ForkOrigin | None:
        """The origin a creation event records, checked; None for an actor that is not a fork.

        Raises:
            MalformedRecord: naming the field that is missing or of the wrong type.
        """
        created = ActorCreated.decode(genesis)
        if not isinstance(created.fork, dict):
            return None
        data = created.fork

        def bad(field: str, problem: str) -> MalformedRecord:
            return MalformedRecord(seq=genesis.seq, type=genesis.type, field=f"{FORK}.{field}", problem=problem)

        actor, seq, event = data.get("actor"), data.get("seq"), data.get("event")
        if not (isinstance(actor, bytes) and len(actor) == 16):
            raise bad("actor", "must be a 16-byte actor id")
        if type(seq) is not int or seq < 0:
            raise bad("seq", "must be a non-negative integer")
        if not (isinstance(event, bytes) and len(event) == 32):
            raise bad("event", "must be a 32-byte event hash")
        raw = data.get("overrides", [])
        if not isinstance(raw, list) or len(raw) > MAX_OVERRIDES or not all(
                isinstance(p, list) and len(p) == 2 and type(p[0]) is int and 0 <= p[0] <= seq for p in raw):
            raise bad("overrides", f"must be at most {MAX_OVERRIDES} [seq, value] pairs, each seq at most {seq}")
        return cls(actor=uuid.UUID(bytes=actor), seq=seq, event=event,
                   overrides=tuple((p[0], p[1]) for p in raw))


def origin_chains(type_: str, data: Any) -> list[tuple[uuid.UUID, int]]:
    """The source chain (actor, last seq) a creation event's ``fork`` names, for a bundle to carry; a shape that
    is not an origin yields nothing (``ForkOrigin.read`` judges it)."""
    spec = data.get(FORK) if type_ == ACTOR_CREATED and isinstance(data, dict) else None
    if isinstance(spec, dict) and isinstance(spec.get("actor"), bytes) and len(spec["actor"]) == 16 \
            and type(spec.get("seq")) is int and spec["seq"] >= 0:
        return [(uuid.UUID(bytes=spec["actor"]), spec["seq"])]
    return []


# How the source's prefix is re-executed: ``(actor, to_seq) -> the divergence or None`` (the replayer's own
# ``replay``, so a fork of a fork follows the whole line), and how a what-if run computes the state at the fork.
Reexecute = Callable[[uuid.UUID, int], ReplayError | None]
WhatIfState = Callable[[ForkOrigin], bytes | None]


def check_origin(store: Store, genesis: Event, init_state: bytes | None, *, reexecute: Reexecute,
                 whatif_state: WhatIfState) -> ContinuityBreak | None:
    """Check a fork's creation event against the source chain it names; None when it holds (or it is no fork).

    Steps: the event exists and is the source actor's event ``seq``; the source chain is intact; its events
    ``0..seq`` re-execute as recorded; the fork's ``init_state`` is the state there.

    Raises:
        MalformedRecord: the recorded origin is not well formed.
    """
    origin = ForkOrigin.read(genesis)
    if origin is None:
        return None
    where = f"event {origin.seq} of actor {origin.actor}"

    def broken(what: str, recorded: object, implied: object, hint: str | None = None) -> ContinuityBreak:
        return ContinuityBreak(seq=genesis.seq, hash=genesis.hash, what=f"the fork's origin: {what}",
                               expected=recorded, actual=implied, hint=hint)

    # Check the source event is where the record says: the source actor's event seq, with that hash.
    try:
        owner, seq = store.log.locate(origin.event)
    except NotFoundError:
        return broken(f"no event {origin.event.hex()} in the store", origin.event, "no such event",
                      hint="verifying a fork needs its source chain up to the source event (a bundle carries it)")
    if owner != origin.actor or seq != origin.seq:
        return broken(f"event {origin.event.hex()[:16]} is event {seq} of actor {owner}",
                      {"actor": str(origin.actor), "seq": origin.seq}, {"actor": str(owner), "seq": seq})
    # Check the source chain is intact (every hash and link, every blob it names).
    integrity = verify_chain(store, origin.actor)
    if not integrity.ok:
        problem = integrity.problem
        return broken(f"the source chain is broken: {problem.describe() if problem else 'unknown'}",
                      origin.event, "an intact source chain")
    # Check the source's events up to the fork re-execute as recorded.
    divergence = reexecute(origin.actor, origin.seq)
    if divergence is not None:
        return broken(f"{where} does not verify: {divergence}", "the source prefix as recorded", str(divergence))
    # Check the fork starts from the state at the source event (or the what-if run's state there).
    if origin.overrides:
        try:
            state = whatif_state(origin)
        except ReplayError as exc:
            return broken(f"the what-if run of {where} cannot be repeated: {exc}", init_state, None)
        implied = None if state is None else _digest(state)
    else:
        source = state_event_at(store, origin.actor, origin.seq)
        implied = None if source is None else source.data.get(STATE_FIELDS[source.type])
    if implied != init_state:
        return broken(f"the initial state is not the state at {where}", init_state, implied,
                      hint="a fork starts from the state its source had at the source event")
    return None


def _digest(state: bytes) -> bytes:
    return blake3.blake3(state).digest()


__all__ = ["FORK", "MAX_FORK_DEPTH", "MAX_OVERRIDES", "ForkOrigin", "check_origin", "origin_chains"]
