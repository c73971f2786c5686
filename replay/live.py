"""Live replay: the re-execution of one chain kept running while its events arrive.

``Replayer.replay`` walks a chain that is all there; a follower of a chain that grows (a witness copying a
server's record, for one) needs the same walk over a feed that is handed more events as they come: the same tape
that serves every host call from the record and compares every export result and its fuel, the same continuity
check as events are read, the same per-call wall-clock bound. ``LiveReplay`` is that walk, kept between feeds: when
its events run out it stops where it is (before a call whose outcome has not arrived yet) and goes on, on the same
instance, when the next events are fed.

It can start mid-chain, at a call whose state is recorded (where an earlier follower stopped, after a restart): the
instance is then made fresh from the recorded state at that call, as ``Replayer.replay(from_seq=...)`` does. A
guest with hidden state (globals kept between calls) may not behave the same on such an instance; the session
says when a divergence happened on one (``on_recorded_state``) so that its owner can re-execute from the start of
the recorded instance instead (``instance_before``).

Events must be fed in order, each exactly once, starting at seq 0 whatever ``resume`` is (continuity is checked
from genesis); those before ``resume`` are checked but not re-executed.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable, Iterator

from replay.continuity import ContinuityCheck
from replay.history import component_at
from replay._reexecution import epoch_ticks, load_component
from replay.replayer import MID_CHAIN_HINT, Checked, Cursor, Replayer, ReplayTape, Walk
from replay.schema import WASM_INSTANTIATE, is_boundary, read_genesis
from store import Event
from store.errors import InvalidInputError

__all__ = ["LiveReplay"]

_KEPT_INSTANCES = 8  # the seqs of the last ``wasm/instantiate`` events read, for ``instance_before``


class _Starved(Exception):
    """Internal: every event fed so far is consumed; the walk waits for the next feed."""


class _Feed(Checked):
    """The chain's events as they are fed: each is checked for continuity once, and the boundary events from
    ``resume`` on come out. When none are left ``_Starved`` is raised (not StopIteration: the cursor would take
    that for the end of the record), so the walk stops where it is and goes on when more events are fed."""

    def __init__(self, check: ContinuityCheck, resume: int) -> None:
        super().__init__(iter(()), check, resume)
        self.pending: deque[Event] = deque()
        self.instances: list[int] = []

    def __iter__(self) -> Iterator[Event]:
        return self

    def __next__(self) -> Event:
        while self.pending:
            event = self.pending.popleft()
            self.check.feed(event)  # ContinuityBreak propagates: the record contradicts itself here
            if event.type == WASM_INSTANTIATE:
                self.instances = [*self.instances[1 - _KEPT_INSTANCES:], event.seq]
            if event.seq >= self.from_seq and is_boundary(event):
                return event
        raise _Starved


class LiveReplay:
    """One chain's re-execution, kept live between feeds: its instance, its state and its place in the chain.

    Args:
        replayer: the replayer of the store that holds the chain's genesis and blobs (its limits apply).
        actor: the chain.
        resume: the first event to re-execute (0: from genesis); mid-chain it must be an export call whose state is
            recorded, or the start of an instance.

    Raises:
        RecordIncomplete: the chain has no genesis, or its component is not in the blob store.
        SettingsMismatch, MalformedRecord: the genesis cannot be re-executed here.
        LimitRefused: a recorded limit is above the replayer's maximum.
        InvalidInputError: ``resume`` is negative or not an int.
    """

    def __init__(self, replayer: Replayer, actor: uuid.UUID, *, resume: int = 0) -> None:
        if type(resume) is not int or resume < 0:
            raise InvalidInputError("resume", resume, "a sequence number (0 or more)")
        genesis = replayer.genesis(actor)
        created = read_genesis(genesis)
        limits = replayer.limits.limits(created)
        self.actor = actor
        self.start = resume
        self._engine = replayer.engine_for(created.engine)
        # Mid-chain, the component is the one the instance before ``resume`` runs (an upgrade changes it).
        component = load_component(self._engine, replayer.store, created.component if resume == 0
                                   else component_at(replayer.store, actor, resume))
        self._feed = _Feed(ContinuityCheck(created), resume)
        self._tape = ReplayTape(Cursor(self._feed), hint=MID_CHAIN_HINT if resume > 0 else None,
                                store=replayer.store)
        self._run = Walk(replayer, self._engine, component, self._tape, limits, fresh=resume > 0,
                         checked=self._feed)
        self._run.on_err = created.on_err
        self._fed = -1

    def advance(self, events: Iterable[Event]) -> int:
        """Feed the chain's next events and re-execute as far as they go.

        Returns:
            How many export calls this feed re-executed (interrupted ones not counted).

        Raises:
            InvalidInputError: an event is not the one after the last fed (events go in order, each once).
            Divergence: re-execution does not follow the record.
            ContinuityBreak: the record contradicts itself.
            RecordIncomplete, MalformedRecord, ReplayTimeout: the record cannot be re-executed.
        """
        batch = list(events)
        for expected, event in enumerate(batch, start=self._fed + 1):  # all checked before any is taken
            if event.seq != expected:
                raise InvalidInputError("event", event.seq, f"seq {expected}: the events of a live replay are fed "
                                        "in order, each once")
        if batch:
            self._fed = batch[-1].seq
        before = self._tape.calls
        self._feed.pending.extend(batch)
        try:
            with epoch_ticks(self._engine):
                self._run.walk()
        except _Starved:
            pass
        return self._tape.calls - before

    @property
    def fed(self) -> int:
        """The seq of the last event fed (-1: none yet)."""
        return self._fed

    @property
    def calls(self) -> int:
        """Export calls re-executed since this session started."""
        return self._tape.calls

    @property
    def host_calls(self) -> int:
        """Host calls served from the record since this session started."""
        return self._tape.host_calls

    @property
    def state(self) -> bytes | None:
        """The state after the last call re-executed (None: none yet, or a call without state)."""
        return self._run.state

    @property
    def resume(self) -> int:
        """The first event not consumed yet: where a new session goes on from after a restart."""
        return max(self._tape.cursor.last_seq + 1, self.start)

    def instance_before(self, seq: int, known: int = 0) -> int:
        """The seq of the ``wasm/instantiate`` that made the instance live before event ``seq`` (``known`` when this
        session read none before it)."""
        return max((s for s in self._feed.instances if s < seq), default=known)

    def on_recorded_state(self, seq: int) -> bool:
        """True when event ``seq`` was reached on an instance this session made from a recorded state (it started
        mid-instance), not on one the record's own ``wasm/instantiate`` made."""
        return self.start > 0 and not any(self.start <= s <= seq for s in self._feed.instances)
