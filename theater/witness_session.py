"""The live re-execution of one chain for a witness (``theater.witness``): kept between rounds, fed the chain's
events as they are copied, and stopped where they run out, to go on when more come.

It drives the replay engine's own walk (``replay.replayer``: the tape that serves every host call from the record
and compares every export result and its fuel, with continuity checked as events are read) over a feed that can
grow: when it runs dry the walk stops where it is (before a call whose outcome has not arrived), and the next
round's events let it go on with the same instance.
"""

from __future__ import annotations

import uuid
from collections import deque

from replay.continuity import ContinuityCheck
from replay.errors import ReplayError
from replay.replayer import MID_CHAIN_HINT, Cursor, Replayer, ReplayTape, _epoch_ticks, _Run
from replay.schema import WASM_INSTANTIATE, is_boundary, read_genesis
from store import Event
from store.errors import NotFoundError


class _Starved(Exception):
    """Internal: the chain's copied events are all consumed; re-execution waits for the next round."""


class _Feed:
    """A chain's events as the witness copies them: each is checked for continuity once, and those from ``resume``
    on that re-execution consumes come out. When none are left, ``_Starved`` is raised (not StopIteration), so the
    walk stops where it is and goes on when more events are fed."""

    def __init__(self, check: ContinuityCheck, resume: int) -> None:
        self.check = check
        self.resume = resume
        self.pending: deque[Event] = deque()
        self.instances: list[int] = []  # the seqs of the last wasm/instantiate events read

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> Event:
        while self.pending:
            event = self.pending.popleft()
            self.check.feed(event)  # ContinuityBreak propagates: the record contradicts itself here
            if event.type == WASM_INSTANTIATE:
                self.instances = [*self.instances[-7:], event.seq]
            if event.seq >= self.resume and is_boundary(event):
                return event
        raise _Starved

    def interrupted(self, seq: int) -> bool:
        return seq in self.check.interrupted_seqs


class ChainSession:
    """One chain's re-execution, kept live between rounds: its instance, its state and its place in the chain."""

    def __init__(self, replayer: Replayer, actor: uuid.UUID, resume: int) -> None:
        genesis = replayer.genesis(actor)
        created = read_genesis(genesis)
        limits = replayer.limits.limits(created)
        self.engine = replayer._engine(created.engine)
        try:
            component = self.engine.load(replayer.store, genesis.data["component"])
        except NotFoundError:
            raise ReplayError(f"component {genesis.data['component'].hex()} of actor {actor} is not stored") from None
        self.feed = _Feed(ContinuityCheck(created), resume)
        self.tape = ReplayTape(Cursor(self.feed), hint=MID_CHAIN_HINT if resume > 0 else None, store=replayer.store)
        self.run = _Run(replayer, self.engine, component, self.tape, limits, fresh=resume > 0,
                        checked=self.feed)  # type: ignore[arg-type]  # _Feed is the live form of Checked
        self.run.on_err = created.on_err
        self.pushed = -1  # the last event handed to the feed
        self.start = resume

    def advance(self, events: list[Event]) -> None:
        """Feed the chain's next events and re-execute as far as they go.

        Raises:
            ReplayError: a divergence, a break in continuity, or a record that cannot be re-executed.
        """
        if events:
            self.pushed = events[-1].seq
        self.feed.pending.extend(events)
        try:
            with _epoch_ticks(self.engine):
                self.run.walk()
        except _Starved:
            pass

    @property
    def resume(self) -> int:
        """The first event not consumed yet: where re-execution goes on from after a restart."""
        return max(self.tape.cursor.last_seq + 1, self.start)

    def instance_before(self, seq: int, known: int = 0) -> int:
        """The seq of the ``wasm/instantiate`` that made the instance live before event ``seq`` (``known`` when
        none was read)."""
        return max((s for s in self.feed.instances if s < seq), default=known)

    def on_recorded_state(self, seq: int) -> bool:
        """True when event ``seq`` was reached on an instance this session made from a recorded state (it started
        mid-instance, after a restart), not on one the record's own ``wasm/instantiate`` made."""
        return self.start > 0 and not any(self.start <= s <= seq for s in self.feed.instances)


__all__ = ["ChainSession"]
