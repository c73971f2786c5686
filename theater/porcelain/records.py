"""Reading an actor's record: its events (selected by type and range), its state at any point, and verification
(integrity, then re-execution). Everything here reads the store only: no running runtime is needed.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass

from replay import Replayer, ReplayLimits, ReplayReport, state_at, state_event_at
from store import EMPTY, ChainReport, Event, Head, Store, verify_chain
from store.errors import InvalidInputError
from theater.causes import LinkReport, check_links
from theater.errors import ActorNotFound

Progress = Callable[[int], None] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class EventPage:
    """Events selected from one chain.

    Attributes:
        actor: whose chain.
        head: the chain's last sequence number when it was read.
        events: the selected events, in chain order.
        next: where the next page starts when ``limit`` cut the selection short, else None.
    """

    actor: uuid.UUID
    head: int
    events: tuple[Event, ...]
    next: int | None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatePoint:
    """An actor's state after some event.

    Attributes:
        actor: whose state.
        source: the event the state comes from (its last ``wasm/result`` or its genesis up to the point); None
            when no state was ever set.
        state: the state's bytes (None: no state).
    """

    actor: uuid.UUID
    source: Event | None
    state: bytes | None


@dataclass(frozen=True, slots=True, kw_only=True)
class VerifyReport:
    """The integrity of a chain and, when it is intact, its re-execution.

    Attributes:
        actor: the chain's actor.
        integrity: every hash, link, payload and referenced blob checked.
        replay: the re-execution; None when the integrity check failed (nothing is re-executed then).
        links: every causal link of its deliveries checked against the senders' chains (``theater.causes``);
            None when not checked (a bundle, which holds no senders' chains, or a broken chain).
    """

    actor: uuid.UUID
    integrity: ChainReport
    replay: ReplayReport | None
    links: LinkReport | None = None

    @property
    def ok(self) -> bool:
        return (self.integrity.ok and self.replay is not None and self.replay.ok
                and (self.links is None or self.links.ok))


def recorded_head(store: Store, actor: uuid.UUID) -> Head:
    """The head of the actor's chain.

    Raises:
        ActorNotFound: the home has no chain for it.
    """
    head = store.log.head(actor)
    if head == EMPTY:
        raise ActorNotFound(str(actor))
    return head


def type_matches(event_type: str, patterns: tuple[str, ...]) -> bool:
    """True when no pattern is given or one matches: exactly, or as a prefix when it ends with ``*``."""
    if not patterns:
        return True
    return any(event_type.startswith(p[:-1]) if p.endswith("*") else event_type == p for p in patterns)


def select_events(store: Store, actor: uuid.UUID, *, types: tuple[str, ...] = (), start: int = 0,
                  to: int | None = None, limit: int | None = None) -> EventPage:
    """The actor's events from ``start`` to ``to`` (inclusive) whose type matches ``types``, at most ``limit``.

    Raises:
        ActorNotFound: the home has no chain for the actor.
    """
    head = recorded_head(store, actor)
    last = head.seq if to is None else min(head.seq, to)
    selected: list[Event] = []
    next_seq = None
    for event in store.log.events(actor, start, None if to is None else to + 1):
        if type_matches(event.type, types):
            selected.append(event)
            if limit is not None and len(selected) >= limit:
                next_seq = event.seq + 1 if event.seq < last else None
                break
    return EventPage(actor=actor, head=head.seq, events=tuple(selected), next=next_seq)


def event_seq(store: Store, actor: uuid.UUID, ref: str) -> int:
    """The sequence number of the event ``ref`` (a full hash or a unique hex prefix), which must be ``actor``'s.

    Raises:
        InvalidInputError: not a hex prefix, or the event belongs to another actor.
        NotFoundError, AmbiguousPrefixError: no event, or several, match.
    """
    owner, seq = store.log.locate(store.log.resolve(ref))
    if owner != actor:
        raise InvalidInputError("event", ref, f"an event of actor {actor} (it belongs to {owner})")
    return seq


def state_point(store: Store, actor: uuid.UUID, *, seq: int | None = None, event: str | None = None) -> StatePoint:
    """The actor's state now, after event number ``seq``, or after the event ``event`` (hash or prefix).

    Raises:
        ActorNotFound: the home has no chain for the actor.
        InvalidInputError: both ``seq`` and ``event`` given, or the event is another actor's.
    """
    if seq is not None and event is not None:
        raise InvalidInputError("state point", f"seq={seq}, event={event}", "a sequence number or an event, not both")
    recorded_head(store, actor)
    if event is not None:
        seq = event_seq(store, actor, event)
    return StatePoint(actor=actor, source=state_event_at(store, actor, seq), state=state_at(store, actor, seq))


def verify_actor(store: Store, actor: uuid.UUID, *, start: int = 0, to: int | None = None,
                 limits: ReplayLimits | None = None,
                 progress: Callable[[str], Progress] | None = None, links: bool = True) -> VerifyReport:
    """Check the chain's integrity, then (when intact) re-execute events ``start``..``to`` and compare, and
    check the causal links of its deliveries ``0..to`` against the senders' chains in the home (``links``: a
    bundle's store holds no senders' chains, so verifying a bundle passes False).

    ``progress(step)`` may give a callback per step (``integrity``, ``replay``) that gets the events done.

    Raises:
        ActorNotFound: the home has no chain for the actor.
    """
    recorded_head(store, actor)
    step = progress or (lambda _name: None)
    integrity = verify_chain(store, actor, progress=step("integrity"))
    replayed = None
    linked = None
    if integrity.ok:
        replayed = Replayer(store, limits=limits or ReplayLimits()).replay(
            actor, from_seq=start, to_seq=to, progress=step("replay"))
        if links:
            linked = check_links(store, actor, to=to)
    return VerifyReport(actor=actor, integrity=integrity, replay=replayed, links=linked)


__all__ = [
    "EventPage",
    "StatePoint",
    "VerifyReport",
    "event_seq",
    "recorded_head",
    "select_events",
    "state_point",
    "type_matches",
    "verify_actor",
]
