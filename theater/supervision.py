"""Supervision: actor trees that recover from failure, with OTP's strategies, restart types and intensity.

Every actor may supervise children (started with ``Theater.start(..., parent=...)`` or by the ``supervisor``
handler's ``spawn`` / ``resume``). Its manifest's ``[supervision]`` table is the policy:

- restart type (per child, default from the parent): ``permanent`` children are always restarted, ``transient``
  ones only after a failure (not after a normal exit), ``temporary`` ones never;
- strategy: ``one_for_one`` restarts the child that ended, ``one_for_all`` stops the others (in reverse start
  order) and restarts all of them in start order, ``rest_for_one`` does that for the child and those started
  after it. A ``temporary`` sibling that had to be stopped is not restarted: it is dropped, as in OTP;
- intensity: more than ``intensity`` restarts within ``period_s`` and the supervisor gives up: it stops all its
  children in reverse start order and fails itself, so its own parent decides;
- backoff: a child's n-th restart within the period waits ``min(backoff_max_ms, backoff_initial_ms * 2**(n-1))``,
  of which the second half is jitter from a generator seeded by (supervisor, child, n): the delay is a runtime
  decision, recorded in ``supervisor/restart``, and the same in every run;
- restart from ``init`` (the child starts over the way it was first started: the same state, ``init`` called if
  it was) or from ``last_state`` (the state of its last successful call, no ``init``).

A restart keeps the actor id and gives it a new instance and store (wasmtime poisons a store after a trap): the
child's chain shows ``wasm/instantiate`` with reason ``restart``. Every decision is an event in the supervisor's
chain: ``supervisor/spawn``, ``supervisor/restart``, ``supervisor/give-up``, ``supervisor/stop``. A restart is
durable in the supervisor's chain before the child is brought back, so nothing the new instance does is seen
before the decision that explains it.

Threads: a supervisor's children and decisions belong to its own operations ("its thread": the scheduler's worker
running one of its operations, ``theater.scheduler``). A child's end reaches its parent as an operation queued on
the parent's mailbox once the child's last events are durable, never inline; there the parent first tells its guest
(``handle-child-error`` / ``handle-child-exit``, when exported) and then applies the policy. A parent waits on its
children's operations (to start, stop or restart them), never the other way round; every such wait is a
``blocking`` section, so the scheduler runs the children on other workers meanwhile. One change comes from
elsewhere: a child whose spawn the parent's chain could not record is forgotten on the releaser's thread, before
the parent's next operation goes back to its chain (``Supervision._unrecorded``). Other threads read the children
(``Supervision.children``) from a copy-on-write map, with no lock on any operation's path.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, wait
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from replay.errors import FaultKind, GuestFault
from replay.schema import (
    SUPERVISOR_SPAWN,
    InstantiateReason,
    Payload,
    SupervisorGiveUp,
    SupervisorRestart,
    SupervisorSpawn,
    SupervisorStop,
)
from store import Store
from store.errors import StoreError, TheaterError
from theater.errors import ActorNotRunning, ErrAnswered, ResourceExhausted, SupervisionError
from theater.host import ActorHost, SupervisedActor
from theater.manifest import (
    RESTART_FROM,
    RESTART_TYPES,
    Manifest,
    SupervisionSpec,
    check_permissions,
    start_state,
)
from theater.release import Settle
from theater.scheduler import blocking
from theater.status import ENDED, LIVE, ActorStatus

HANDLE_CHILD_ERROR = "theater:simple/supervisor-handlers.handle-child-error"
HANDLE_CHILD_EXIT = "theater:simple/supervisor-handlers.handle-child-exit"

# How a guest failure is reported to a parent's guest (``wit-error-type``).
ERROR_TYPES: dict[str, str] = {
    FaultKind.TRAP: "internal",
    FaultKind.ERR: "internal",
    FaultKind.FUEL: "operation-timeout",
    FaultKind.DEADLINE: "operation-timeout",
    FaultKind.STOPPED: "internal",
    FaultKind.MEMORY: "internal",
    FaultKind.HOST: "internal",
}
_MISSING_EXPORT = "the component does not export this function"

T = TypeVar("T")
log = logging.getLogger("theater.supervision")


class Launch(Protocol):
    """The runtime's callback that creates, records and boots an actor (``start`` without the supervision)."""

    def __call__(
        self, manifest: Manifest, *, init_state: bytes | None, parent: uuid.UUID | None, call_init: bool
    ) -> SupervisedActor: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How a supervisor treats one child: when to restart it and from what."""

    restart: str = "permanent"
    restart_from: str = "init"

    def __post_init__(self) -> None:
        if self.restart not in RESTART_TYPES:
            raise SupervisionError(f"restart must be one of {', '.join(RESTART_TYPES)}, got {self.restart!r}")
        if self.restart_from not in RESTART_FROM:
            raise SupervisionError(f"restart_from must be one of {', '.join(RESTART_FROM)}, got {self.restart_from!r}")

    @classmethod
    def defaults(cls, spec: SupervisionSpec, restart: str | None = None, restart_from: str | None = None) -> ChildSpec:
        """The parent's defaults, overridden where given."""
        return cls(restart=restart or spec.restart, restart_from=restart_from or spec.restart_from)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ending:
    """How a child's incarnation ended: ``failure`` (with the fault), ``exit`` (with its data) or ``stop``."""

    how: str
    fault: GuestFault | None = None
    data: bytes | None = None

    @property
    def abnormal(self) -> bool:
        return self.how == "failure"

    def record(self) -> dict[str, Any]:
        if self.fault is not None:
            return {"how": self.how, "kind": str(self.fault.kind), "export": self.fault.export,
                    "detail": self.fault.detail}
        return {"how": self.how, "data": self.data}


def wit_actor_error(fault: GuestFault) -> dict[str, Any]:
    """A guest failure as the recorded form of ``wit-actor-error``: its kind mapped, the details as JSON data."""
    error_type = "function-not-found" if _MISSING_EXPORT in fault.detail else ERROR_TYPES.get(fault.kind, "internal")
    data = json.dumps({"kind": str(fault.kind), "export": fault.export, "detail": fault.detail}, sort_keys=True)
    return {"error-type": error_type, "data": {"some": data.encode()}}


def should_restart(restart: str, ending: Ending) -> bool:
    """OTP's restart types: permanent always, transient after an abnormal end, temporary never."""
    return restart == "permanent" or (restart == "transient" and ending.abnormal)


def backoff_ms(spec: SupervisionSpec, n: int, seed: str) -> int:
    """The delay before a child's ``n``-th restart within the period: exponential, its upper half jittered."""
    if spec.backoff_initial_ms == 0:
        return 0
    base = min(spec.backoff_max_ms, spec.backoff_initial_ms * 2 ** (n - 1))
    return base // 2 + int(random.Random(seed).random() * (base - base // 2))


class Child:
    """A child as its supervisor sees it; changed only on the supervisor's thread.

    Attributes:
        watched: the incarnation whose end the supervisor waits to hear about; None while it is being stopped or
            restarted on purpose, so that end is not taken for a failure.
        restart_pending: a restart is decided and has not happened yet (it may be waiting for its backoff).
        stopping: a stop that did not finish within the shutdown timeout (the child was in a host call that
            the stop cannot end, such as a ``request`` waiting for its answer); a restart waits for it.
    """

    def __init__(self, actor: SupervisedActor, spec: ChildSpec, start_state: bytes | None, call_init: bool) -> None:
        self.actor = actor
        self.spec = spec
        self.start_state = start_state
        self.call_init = call_init
        self.watched: int | None = actor.incarnation
        self.restarts: deque[float] = deque()
        self.restart_pending = False  # a restart is decided (maybe waiting for its backoff)
        self.stopping: Future[Any] | None = None  # a stop that outlived the shutdown timeout


class Supervisor:
    """The children of one actor in start order, and the times of its recent restarts.

    ``children`` is copied on write: every change publishes a new dict (``add``, ``drop``) and a published one is
    never changed, so any thread may read the one it finds (``Supervision.children``) while the supervisor's thread
    changes them, and always sees a set of children the supervisor had at one moment, in start order. Never change
    it in place. Reading costs no lock; the changes (a spawn, a stop, the rare forgetting of a child whose spawn
    record was lost, on the releaser's thread) take ``_changing`` to build the next dict from the latest one.
    """

    def __init__(self, actor: SupervisedActor) -> None:
        self.actor = actor
        self.children: dict[uuid.UUID, Child] = {}
        self.restarts: deque[float] = deque()
        self._changing = threading.Lock()

    def add(self, child: Child, rank: Callable[[uuid.UUID], int] | None = None) -> None:
        """Publish the children with ``child`` added last, or in the order ``rank`` gives (by id)."""
        with self._changing:
            children = {**self.children, child.actor.id: child}
            if rank is not None:
                children = dict(sorted(children.items(), key=lambda item: rank(item[0])))
            self.children = children

    def drop(self, child_id: uuid.UUID, only: Child | None = None) -> Child | None:
        """Publish the children without ``child_id`` (if it is still ``only``, when given); what was dropped."""
        with self._changing:
            found = self.children.get(child_id)
            if found is None or (only is not None and found is not only):
                return None
            self.children = {key: child for key, child in self.children.items() if key != child_id}
            return found

    @property
    def spec(self) -> SupervisionSpec:
        return self.actor.manifest.supervision

    def record(self, payload: Payload) -> None:
        self.actor.tape.append(payload.TYPE, payload.encode())

    def child(self, child_id: str | uuid.UUID) -> Child:
        """One of this supervisor's children.

        Raises:
            SupervisionError: ``child_id`` is not one of them.
        """
        try:
            key = child_id if isinstance(child_id, uuid.UUID) else uuid.UUID(str(child_id))
        except ValueError:
            raise SupervisionError(f"{child_id!r} is not an actor id") from None
        found = self.children.get(key)
        if found is None:
            raise SupervisionError(f"actor {key} is not a child of actor {self.actor.id}")
        return found

    def group(self, child: Child) -> list[Child]:
        """The children a restart of ``child`` takes along, in start order, by the strategy."""
        order = list(self.children.values())
        if child not in order:  # forgotten meanwhile (its spawn record was lost): it takes nobody along
            return [child]
        if self.spec.strategy == "one_for_all":
            return order
        if self.spec.strategy == "rest_for_one":
            return order[order.index(child):]
        return [child]


def _log_failure(done: Future[Any]) -> None:
    """A decision that failed unexpectedly must not vanish with its future."""
    error = done.exception()
    if error is not None and not isinstance(error, ActorNotRunning):
        log.error("a supervision decision failed", exc_info=error)


def on_thread(actor: SupervisedActor, fn: Callable[[], T]) -> T:
    """Run ``fn`` on the actor's thread (at once when already there) and return its outcome.

    It is a control operation: it runs before the messages waiting in the actor's mailbox and is never refused
    for a full mailbox.
    """
    if actor.on_thread():
        return fn()
    future = actor.control(fn)
    with blocking():
        return future.result()


class Supervision:
    """The supervision of one ``Theater``: who supervises whom, and the policy engine.

    It sees actors through ``theater.host.SupervisedActor`` and the runtime only through what it is given.

    Args:
        store: the home's store (spawn records and creation events are read from the chains).
        launch: creates, records and boots an actor (the runtime's).
        clock: seconds, for restart intensity and backoff (a fake in tests).
        seed: mixed into the jitter of every backoff.
        permits: checks that a child's manifest grants no more than its parent's (raises ``ManifestError``); the
            runtime passes ``theater.handlers.check_permissions``, which also compares each handler's config.
    """

    def __init__(
        self, store: Store, launch: Launch, *, clock: Callable[[], float] = time.monotonic, seed: str = "",
        permits: Callable[[Manifest, Manifest], None] = check_permissions,
    ) -> None:
        self.store = store
        self.launch = launch
        self.permits = permits
        self.clock = clock
        self.seed = seed
        self._supervisors: dict[uuid.UUID, Supervisor] = {}
        self._timers: set[threading.Timer] = set()
        self._lock = threading.Lock()
        self._closed = False
        # Told (on the actor's thread) when an actor whose parent this runtime does not supervise ends: in a
        # cluster, its parent runs on another node (``theater.cluster.remote``).
        self.orphaned: Callable[[SupervisedActor, Ending], None] | None = None

    # Who supervises whom.

    def supervisor(self, actor: SupervisedActor) -> Supervisor:
        """The actor's record as a supervisor (made on first use)."""
        with self._lock:
            found = self._supervisors.get(actor.id)
            if found is None:
                found = self._supervisors[actor.id] = Supervisor(actor)
            return found

    def children(self, actor_id: uuid.UUID) -> list[uuid.UUID]:
        """The ids of an actor's children in start order (read from any thread: ``Supervisor.children`` is
        copied on write, so this is the set it had at one moment)."""
        with self._lock:
            found = self._supervisors.get(actor_id)
        return list(found.children) if found is not None else []

    def supervising(self, actor: SupervisedActor) -> Supervisor | None:
        """The supervisor of a live child, or None."""
        if actor.parent is None:
            return None
        with self._lock:
            found = self._supervisors.get(actor.parent)
        return found if found is not None and actor.id in found.children else None

    # Starting children (on the parent's thread).

    def start_child(
        self, parent: SupervisedActor, manifest: Manifest, *, init_state: bytes | None = None, call_init: bool = True,
        restart: str | None = None, restart_from: str | None = None,
    ) -> SupervisedActor:
        """Start a child of ``parent`` and record ``supervisor/spawn`` in the parent's chain.

        Raises:
            ManifestError: the child asks for a handler, a handler's grant or a limit beyond its parent's (or its
                manifest is bad).
            ActorNotRunning: the parent is not running.
            SupervisionError: ``restart`` or ``restart_from`` is not a known value.
            LinkError, ComponentError, GuestFault: the child could not be started (its ``init`` failed).
        """
        declared = parent.manifest.supervision.child_options(manifest.name)
        if declared is not None:
            restart = restart or declared.restart
            restart_from = restart_from or declared.restart_from
        spec = ChildSpec.defaults(parent.manifest.supervision, restart, restart_from)
        return on_thread(parent, lambda: self._spawn(parent, manifest, init_state, call_init, spec))

    def _spawn(
        self, parent: SupervisedActor, manifest: Manifest, state: bytes | None, call_init: bool, spec: ChildSpec
    ) -> SupervisedActor:
        if parent.status not in LIVE:
            raise ActorNotRunning(str(parent.id), parent.status, "a parent must be running to start children")
        sup = self.supervisor(parent)
        start = start_state(manifest, state, call_init)
        def spawned(child: str | None, error: str | None) -> SupervisorSpawn:
            return SupervisorSpawn(child=child, name=manifest.name, restart=spec.restart,
                                   restart_from=spec.restart_from, init=call_init, error=error)

        try:
            self.permits(manifest, parent.manifest)
            child = self.launch(manifest, init_state=state, parent=parent.id, call_init=call_init)
        except TheaterError as exc:
            sup.record(spawned(None, str(exc)))
            raise
        entry = Child(child, spec, start, call_init)
        sup.add(entry)
        sup.record(spawned(str(child.id), None))
        # The child's start is its own chain's (it may be durable already); the parent's record of it is not. Should
        # that record not be committed, the child must not run on as a child the parent's chain does not name. The
        # effect only settles a future (``Settle``), so a committed spawn's answer still settles on the committing
        # thread (``theater.release``); a failed one runs on the releaser's thread, which calls ``_unrecorded``.
        recorded: Future[None] = Future()
        recorded.add_done_callback(lambda done: self._unrecorded(sup, entry, done.exception()))
        parent.defer(Settle(recorded))
        return child

    def _unrecorded(self, sup: Supervisor, entry: Child, error: BaseException | None) -> None:
        """The effect of a spawn whose record in the parent's chain could not be committed (the disk is full): the
        supervisor forgets the child, as its chain does, and the child is failed, its chain saying why (recorded
        once the store takes it: ``Theater.stop`` records it again). Its own children go with it.

        Runs on the releaser's thread, before the parent's next operation goes back to its chain
        (``Actor.recover`` waits for it), so no operation of the parent that can still be committed sees the child.
        It never waits: the child is failed in its own operation, queued ahead of its messages. If the spawn's own
        operation forgot the child meanwhile (it stopped it), there is nothing left to do. With no ``error`` (the
        record is durable) it does nothing.
        """
        if error is None or sup.drop(entry.actor.id, only=entry) is None:
            return
        entry.watched = None  # its end is no news for the parent
        entry.restart_pending = False
        actor = entry.actor
        reason = f"its parent's record of its spawn could not be committed ({type(error).__name__}: {error})"
        log.warning("actor %s: child %s is failed: %s", sup.actor.id, actor.id, reason)
        if actor.status == ActorStatus.RESTARTING:
            actor.status = ActorStatus.STOPPED  # no instance: it was waiting for a restart that will not come
            return

        def drop() -> None:
            if actor.status in LIVE:
                actor.abandon(reason)

        def dropped(done: Future[Any]) -> None:
            # An ended child refuses it, and one whose creation was lost too is failed by its recovery (the store's
            # error): nothing to report then.
            if not isinstance(done.exception(), StoreError):
                _log_failure(done)

        actor.interrupt(drop).add_done_callback(dropped)

    def adopt(self, parent: SupervisedActor, child: SupervisedActor) -> None:
        """Register a reopened child with its reopened parent, as its spawn recorded it (after a restart).

        The child's restart type and source come from the ``supervisor/spawn`` event in the parent's chain; its
        start state from its own creation event. Children are kept in the order they were first spawned. A child
        whose spawn the parent's chain does not record (its start was committed, the parent's record of it never
        was: the runtime stopped between the two commits, or the disk was full) is not adopted: it is failed, its
        chain saying why, as a running runtime does with it (``_unrecorded``).
        """

        def register() -> None:
            sup = self.supervisor(parent)
            known = sup.children.get(child.id)
            if known is not None and known.actor is not child and getattr(known.actor, "remote", False):
                known.actor = child  # a child on another node, now reopened here: supervised here from now on
                known.watched = None if known.watched is None else child.incarnation
                return
            if known is not None:
                return
            spawned = self._spawn_record(parent, child.id)
            if not spawned:
                reason = f"its parent's record of its spawn was never committed (not in the chain of actor {parent.id})"
                log.warning("actor %s: child %s is not adopted but failed: %s", parent.id, child.id, reason)
                child.interrupt(lambda: child.abandon(reason) if child.status in LIVE else None).add_done_callback(
                    _log_failure)
                return
            spec = ChildSpec.defaults(parent.manifest.supervision, spawned.get("restart"),
                                      spawned.get("restart_from"))
            genesis = self.store.log.at(child.id, 0)
            digest = genesis.data.get("init_state")
            start = None if digest is None else self.store.blobs.get(digest)
            order = self._spawn_order(parent)
            sup.add(Child(child, spec, start, bool(spawned.get("init", True))),
                    rank=lambda key: order.get(key, len(order)))

        on_thread(parent, register)

    def _spawn_record(self, parent: SupervisedActor, child_id: uuid.UUID) -> dict[str, Any]:
        for event in self.store.log.events(parent.id):
            if event.type == SUPERVISOR_SPAWN and event.data.get("child") == str(child_id):
                return dict(event.data)
        return {}

    def _spawn_order(self, parent: SupervisedActor) -> dict[uuid.UUID, int]:
        order: dict[uuid.UUID, int] = {}
        for event in self.store.log.events(parent.id):
            if event.type == SUPERVISOR_SPAWN and event.data.get("child"):
                order.setdefault(uuid.UUID(event.data["child"]), len(order))
        return order

    # Stopping (on the parent's thread).

    def stop_child(self, parent: SupervisedActor, child_id: str | uuid.UUID, reason: str) -> None:
        """Stop one child and its subtree and forget it.

        Raises:
            SupervisionError: it is not a child of ``parent``.
        """
        sup = self.supervisor(parent)
        on_thread(parent, lambda: self._stop(sup, sup.child(child_id), reason, forget=True))

    def stop_children(self, actor: SupervisedActor, reason: str) -> None:
        """Stop every child of ``actor`` (on its thread), in reverse start order, each after its own subtree."""
        with self._lock:
            sup = self._supervisors.get(actor.id)
        if sup is None:
            return
        for child in reversed(list(sup.children.values())):
            self._stop(sup, child, reason, forget=True)

    def shutdown(self, actor: SupervisedActor, how: str = "stop") -> None:
        """On the actor's thread: stop its children, then the actor itself."""
        self.stop_children(actor, f"parent {how}")
        actor.finish(how)

    def _stop(self, sup: Supervisor, child: Child, reason: str, *, forget: bool) -> None:
        child.watched = None
        if forget:
            sup.drop(child.actor.id, only=child)
            child.restart_pending = False
        outcome = self._stop_actor(child, sup.spec.shutdown_timeout_ms / 1000)
        sup.record(SupervisorStop(child=str(child.actor.id), reason=reason, outcome=outcome))

    def _stop_actor(self, child: Child, timeout: float) -> str:
        actor = child.actor
        if actor.status == ActorStatus.RESTARTING:
            actor.status = ActorStatus.STOPPED  # no instance to stop: it was waiting for its restart
            return "stopped"
        if actor.status not in LIVE:
            return f"already {actor.status}"
        stopping = actor.interrupt(lambda: self.shutdown(actor))  # ahead of its messages; ends a running call
        try:
            with blocking():
                stopping.result(timeout)
        except (FutureTimeout, ResourceExhausted):
            # The child is in a host call a stop cannot end (or no thread was left to wait on): it stops when that
            # returns; a restart waits for it.
            child.stopping = stopping
            return "timeout"
        except ActorNotRunning:
            return f"already {actor.status}"
        return "stopped"

    # Restarting (on the parent's thread).

    def restart_child(self, parent: SupervisedActor, child_id: str | uuid.UUID, reason: str = "requested") -> None:
        """Restart one child now, whatever its status; not counted against the restart intensity.

        Raises:
            SupervisionError: it is not a child of ``parent``.
        """
        sup = self.supervisor(parent)
        on_thread(parent, lambda: self._restart_now(sup, sup.child(child_id), reason))

    def _restart_now(self, sup: Supervisor, child: Child, reason: str) -> None:
        child.watched = None
        if child.actor.status in LIVE:
            self._stop_actor(child, sup.spec.shutdown_timeout_ms / 1000)
        sup.record(self._restart_record(sup, child, reason, delay_ms=0))
        self._decided(sup, [child])
        self._reboot(child)

    @staticmethod
    def _decided(sup: Supervisor, members: list[Child]) -> None:
        """Mark ``members`` restarting, then wait until the supervisor's decisions recorded so far are durable,
        before a child acts on them: a restarted child answers as soon as its own events are durable, so its new
        instance would otherwise be seen (and could outlive a crash) before the ``supervisor/restart`` that
        explains it is in the parent's chain. They are marked first, so a stop that sees the decision in the chain
        finds them restarting (and cancels the restart) rather than ended.

        Raises:
            StoreError: the decision could not be committed; the members are left as they were (ended), as the
                chains say.
        """
        before = [(member, member.actor.status) for member in members]
        for member in members:
            member.actor.status = ActorStatus.RESTARTING
        try:
            with blocking():
                sup.actor.tape.wait_durable()
        except StoreError:
            for member, status in before:
                member.actor.status = status
            raise

    def _restart_record(self, sup: Supervisor, child: Child, reason: str, *, delay_ms: int,
                        cause: dict[str, Any] | None = None) -> SupervisorRestart:
        extra = {} if cause is None else {"cause": cause}  # a requested restart records no cause
        return SupervisorRestart(child=str(child.actor.id), reason=reason, strategy=sup.spec.strategy,
                                 restart_from=child.spec.restart_from, incarnation=child.actor.incarnation + 1,
                                 delay_ms=delay_ms, **extra)

    def _reboot(self, child: Child) -> None:
        """A new instance for the child, on its thread; a failure reaches the parent as the child's end."""
        actor = child.actor
        if child.spec.restart_from == "init":
            state, call_init = child.start_state, child.call_init
        else:
            state, call_init = actor.state, False
        if child.stopping is not None:
            with blocking():
                wait([child.stopping])
            child.stopping = None
        child.restart_pending = False
        actor.incarnation += 1
        child.watched = actor.incarnation
        actor.revive()

        def boot() -> None:
            actor.failure = None
            actor.shutdown_data = None
            actor.state = state
            actor.status = ActorStatus.STARTING
            actor.boot(InstantiateReason.RESTART, call_init=call_init)

        booting = actor.control(boot)
        try:
            with blocking():
                booting.result()
        except TheaterError:
            pass  # recorded in the child's chain; its end is on its way to us

    # A child's end (hook on the child's thread, then an operation on the parent's).

    def actor_ended(self, actor: SupervisedActor, how: str, data: bytes | None = None) -> None:
        """Called on an actor's thread when it stopped, exited or failed: stop its subtree, tell its parent.

        What it knew as a supervisor goes with it: a restarted actor starts without children or restart history.
        """
        self.stop_children(actor, f"parent {'failed' if how == 'fail' else how}")
        with self._lock:
            self._supervisors.pop(actor.id, None)
        sup = self.supervising(actor)
        if how == "fail":
            ending = Ending(how="failure", fault=actor.failure)
        else:
            ending = Ending(how=how, data=data)
        if sup is None and actor.parent is not None and self.orphaned is not None and not self._closed:
            self.orphaned(actor, ending)
        if sup is None or self._closed:
            return
        incarnation = actor.incarnation

        def tell_parent(failed: BaseException | None) -> None:
            if failed is None:
                self._queue(sup, lambda: self._heard(sup, actor.id, incarnation, ending))

        actor.defer(tell_parent)

    def heard(self, parent: SupervisedActor, child_id: uuid.UUID, ending: Ending) -> bool:
        """The end of a child that runs elsewhere (``theater.cluster.remote``), told by its node: queued on the
        parent's mailbox and decided there as a local child's end; False when ``child_id`` is not its child."""
        with self._lock:
            sup = self._supervisors.get(parent.id)
        child = None if sup is None else sup.children.get(child_id)
        if sup is None or child is None:
            return False
        incarnation = child.actor.incarnation
        self._queue(sup, lambda: self._heard(sup, child_id, incarnation, ending))
        return True

    def _queue(self, sup: Supervisor, op: Callable[[], None]) -> None:
        if not self._closed:
            sup.actor.control(op).add_done_callback(_log_failure)  # an ended parent refuses it: nobody to tell

    def _heard(self, sup: Supervisor, child_id: uuid.UUID, incarnation: int, ending: Ending) -> None:
        child = sup.children.get(child_id)
        if self._closed or child is None or child.watched != incarnation or sup.actor.status != ActorStatus.RUNNING:
            return
        child.watched = None
        if not self._tell(sup.actor, child_id, ending):
            return
        untouched = sup.children.get(child_id) is child and child.watched is None  # the guest did not act itself
        if untouched and child.actor.status in ENDED:
            self._apply(sup, child, ending)

    def _tell(self, parent: SupervisedActor, child_id: uuid.UUID, ending: Ending) -> bool:
        """Call the parent's ``supervisor-handlers`` export, if any; False when the parent failed doing so."""
        params: list[Any]
        if ending.fault is not None:
            export, params = HANDLE_CHILD_ERROR, [str(child_id), wit_actor_error(ending.fault)]
        else:
            export, params = HANDLE_CHILD_EXIT, [str(child_id), None if ending.data is None else {"some": ending.data}]
        if not parent.has_export(export):
            return True
        try:
            parent.call(export, params)
        except ErrAnswered:
            pass  # the parent's guest answered err: it goes on, and so does its declared policy
        except (GuestFault, ActorNotRunning):
            return False
        return parent.status == ActorStatus.RUNNING

    def _apply(self, sup: Supervisor, child: Child, ending: Ending) -> None:
        """The declared policy for a child that ended on its own."""
        if not should_restart(child.spec.restart, ending):
            return
        now = self.clock()
        if not self._within_intensity(sup, now):
            self._give_up(sup, child, ending)
            return
        group = sup.group(child)
        for other in reversed(group):
            if other is not child:
                self._stop(sup, other, f"{sup.spec.strategy}: sibling {child.actor.id} ended",
                           forget=other.spec.restart == "temporary")
        group = [c for c in group if c.actor.id in sup.children]
        delay = self._delay(sup, child, now)
        for member in group:
            reason = ending.how if member is child else "sibling"
            cause = {"child": str(child.actor.id), **ending.record()}
            sup.record(self._restart_record(sup, member, reason, delay_ms=delay, cause=cause))
        self._decided(sup, group)
        for member in group:
            member.restart_pending = True
        ids = [m.actor.id for m in group]
        if delay == 0:
            self._restart_group(sup, ids)
        else:
            self._later(sup, delay, lambda: self._restart_group(sup, ids))

    def _within_intensity(self, sup: Supervisor, now: float) -> bool:
        sup.restarts.append(now)
        while sup.restarts and sup.restarts[0] <= now - sup.spec.period_s:
            sup.restarts.popleft()
        return len(sup.restarts) <= sup.spec.intensity

    def _delay(self, sup: Supervisor, child: Child, now: float) -> int:
        child.restarts.append(now)
        while child.restarts and child.restarts[0] <= now - sup.spec.period_s:
            child.restarts.popleft()
        n = len(child.restarts)
        return backoff_ms(sup.spec, n, f"{self.seed}/{sup.actor.id}/{child.actor.id}/{n}")

    def _restart_group(self, sup: Supervisor, ids: list[uuid.UUID]) -> None:
        for child_id in ids:
            child = sup.children.get(child_id)
            if child is not None and child.restart_pending and sup.actor.status == ActorStatus.RUNNING:
                self._reboot(child)

    def _later(self, sup: Supervisor, delay_ms: int, op: Callable[[], None]) -> None:
        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            self._queue(sup, op)

        timer = threading.Timer(delay_ms / 1000, fire)
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._timers.add(timer)
        timer.start()

    def _give_up(self, sup: Supervisor, child: Child, ending: Ending) -> None:
        spec = sup.spec
        reason = f"more than {spec.intensity} restarts within {spec.period_s:g} s"
        sup.record(SupervisorGiveUp(child=str(child.actor.id), reason=reason, cause=ending.record(),
                                    intensity=spec.intensity, period_s=spec.period_s))
        self.stop_children(sup.actor, "supervisor gave up")
        detail = f"{reason}; the last: child {child.actor.id} ({ending.how})"
        sup.actor.fail(GuestFault(FaultKind.HOST, "supervision", f"gave up: {detail}"))

    def forget(self, actor: SupervisedActor) -> bool:
        """Drop what is known of ``actor`` as a supervisor, before it leaves memory (a passivated actor evicted,
        see ``theater.passivation``): True, unless it has children (then nothing changes)."""
        with self._lock:
            found = self._supervisors.get(actor.id)
            if found is not None and found.children:
                return False
            self._supervisors.pop(actor.id, None)
            return True

    def of(self, actor: SupervisedActor) -> ChildrenOf:
        """``actor``'s children, as its ``supervisor`` handler sees them (``theater.host.Children``)."""
        return ChildrenOf(self, actor)

    def close(self) -> None:
        """Cancel pending restarts; nothing more is decided."""
        with self._lock:
            self._closed = True
            timers, self._timers = list(self._timers), set()
        for timer in timers:
            timer.cancel()



class ChildrenOf:
    """One actor's children through ``theater.host.Children``: what its ``supervisor`` handler may do."""

    def __init__(self, supervision: Supervision, actor: SupervisedActor) -> None:
        self._supervision = supervision
        self._actor = actor

    def spawn(self, manifest: Manifest, *, init_state: bytes | None, call_init: bool) -> uuid.UUID:
        return self._supervision.start_child(self._actor, manifest, init_state=init_state, call_init=call_init).id

    def ids(self) -> list[uuid.UUID]:
        return self._supervision.children(self._actor.id)

    def get(self, child_id: str) -> ActorHost:
        return self._supervision.supervisor(self._actor).child(child_id).actor

    def stop(self, child_id: str, reason: str) -> None:
        self._supervision.stop_child(self._actor, child_id, reason)

    def restart(self, child_id: str) -> None:
        self._supervision.restart_child(self._actor, child_id)
