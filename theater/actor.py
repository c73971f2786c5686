"""A running actor: one instance, one store, a mailbox, one operation at a time.

Every operation (init, a message, a request, a channel event, stop) is queued on the actor's mailbox. An actor has
no thread of its own: the runtime's scheduler (``theater.scheduler``) runs the operations of actors with queued work
on a bounded pool of worker threads, a few operations per turn, never two of one actor at once. Messages wait in a
bounded lane in arrival order; control operations (stop, supervision) wait in a lane served first (see
``theater.mailbox``). A host function that waits (a ``request``, ``open-channel``, a sleep) keeps its worker, since
the guest's stack is on it, and tells the scheduler so (``blocking``), which keeps other workers running: an actor
blocked in a ``request`` blocks nobody else. ``on_thread`` is true on the worker running one of its operations now.
A stop also ends the call that is running, at the next epoch tick (``replay.boundary``): it is recorded as a
``stopped`` fault. After each export call the actor waits until the call's events are durable and only then
releases its effects: messages it sent, responses it gave.

When a commit fails (the disk is full), the operations whose events it held get the store's error and none of
their effects is released. Before its next operation the actor goes back to its chain, the truth (``recover``):
its tape is reset to the committed head, its state to the state of its last committed result, and before its next
call it gets a fresh instance started from that state (``wasm/instantiate`` with reason ``recover``), since the old
instance's memory may hold what the failed calls did. Until then it reports the status ``recovering``.

Running out of a resource is a ``ResourceExhausted`` to whoever needed it, never a raw exception: no thread for
a host call to wait on (``theater.scheduler``), no memory for an instance (wasmtime's ``Cannot allocate memory``
when the actor starts). The other actors keep running.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from typing import Any

from replay.boundary import STOPPED, Boundary, CallResult, import_functions
from replay.engine import MAX_MESSAGE_BYTES, Engine
from replay.errors import FaultKind, GuestFault
from replay.schema import (
    CHAIN_ENDS,
    MISSING,
    ActorExit,
    ActorFailed,
    ActorPassivated,
    ActorStop,
    InstantiateReason,
    Limits,
    WasmInstantiate,
)
from store import Store
from store.errors import StoreError, TheaterError
from replay.errors import ComponentError
from theater.errors import (
    ActorNotRunning,
    ErrAnswered,
    ExportMissing,
    MailboxFull,
    MessageError,
    MessageTooLarge,
    ResourceExhausted,
)
from theater.envelope import Envelope
from theater.handlers import IMPLEMENTED, Handler, check_grants, configs
from theater.host import Children, Router
from theater.mailbox import END, Mailbox, MailboxClosed, MailboxLimits, Reservation
from theater.manifest import Manifest, Maximums
from theater.record import RecordTape, Write, committed_state
from theater.release import Effect, Releaser, Settle, settle
from theater.scheduler import Scheduler, blocking, current, in_place
from theater.status import ENDED, LIVE, ActorStatus
from theater.telemetry import Telemetry

ACTOR_INIT = "theater:simple/actor.init"
HANDLE_SEND = "theater:simple/message-server-client.handle-send"
HANDLE_REQUEST = "theater:simple/message-server-client.handle-request"
HANDLE_CHANNEL_OPEN = "theater:simple/message-server-client.handle-channel-open"
HANDLE_CHANNEL_MESSAGE = "theater:simple/message-server-client.handle-channel-message"
HANDLE_CHANNEL_CLOSE = "theater:simple/message-server-client.handle-channel-close"

# Events that end a chain: after one of them the actor does not run until it is restarted.
ENDS = CHAIN_ENDS
# How many of its latest ``runtime.log`` lines an actor keeps in memory (``Actor.logs``); the chain holds them all.
LOG_LINES = 1000
log = logging.getLogger("theater.actor")
# What wasmtime says when the system refuses it memory for an instance (ENOMEM).
_OUT_OF_MEMORY = ("cannot allocate memory", "os error 12")


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """What a runtime gives each of its actors: shared parts, and callbacks into the runtime.

    Attributes:
        store: the home's store. engine: the wasmtime engine. releaser: releases effects once durable.
        mailbox_limits: the bounds of every actor's mailbox. maximums: the runtime's maximums.
        router: delivery between actors (``theater.host.Router``).
        children_of: an actor's children as its ``supervisor`` handler sees them.
        on_ended: called in an actor's operation when it stops, exits (``how``, with its data) or fails.
        scheduler: the worker pool that runs every actor's operations.
        telemetry: OpenTelemetry spans and metrics (``theater.telemetry``); None (default): off, nothing traced.
    """

    store: Store
    engine: Engine
    releaser: Releaser
    mailbox_limits: MailboxLimits
    maximums: Maximums
    router: Router
    children_of: Callable[[Actor], Children]
    on_ended: Callable[[Actor, str, bytes | None], None]
    scheduler: Scheduler
    telemetry: Telemetry | None = None


class Actor:
    """One actor of a ``Theater`` (it satisfies ``theater.host.SupervisedActor``). Created by ``Theater.start``;
    use the Theater's methods to talk to it."""

    # Passivation (see ``theater.passivation``); class defaults, set on the actor's thread.
    last_active = 0.0  # ``time.monotonic()`` when its latest call or instance began or ended
    passivated = False  # it has no instance; its next call makes one (reason ``activation``)
    activation = InstantiateReason.ACTIVATE  # how that instance is recorded (``resume``: brought back lazily)
    evicted = False  # it left the router while passivated: a new object stands for it (set under the router lock)
    # A turn's shared release (``run_slice``), on the worker holding it: in a turn now; a release is owed.
    _in_slice = False
    _owed = False

    def __init__(
        self,
        stage: Stage,
        actor_id: uuid.UUID,
        manifest: Manifest,
        component_hash: bytes,
        tape: RecordTape,
        parent: uuid.UUID | None,
        *,
        held: bool = False,
    ) -> None:
        self.stage = stage
        self.id = actor_id
        self.manifest = manifest
        self.component_hash = component_hash
        self.upgraded = False  # it runs another component than its creation's: each instance records which
        self.tape = tape
        tape.before_tick = self.release_due
        self.parent = parent
        self.status = ActorStatus.STARTING
        self.failure: GuestFault | None = None
        self.state: bytes | None = None
        self.boundary: Boundary | None = None
        self.handlers: list[Handler] = []  # the handlers of the current instance (closed with it)
        self.outstanding: dict[str, Future[bytes]] = {}
        self.shutdown_data: tuple[bytes | None] | None = None
        self._logs: deque[str] | None = None  # made on the first line: an idle actor keeps no buffer
        self.incarnation = 0  # how many times a supervisor restarted it
        self._recovering = False  # a commit failed: re-instantiate from the committed state before the next call
        self._end_lock = threading.Lock()  # one ``confirm_end`` at a time
        self._effects: list[Effect] = []
        # ``held``: its creator runs its first operation in place (``start_here``) before any worker may.
        self.mailbox = Mailbox(str(actor_id), stage.mailbox_limits, partial(stage.scheduler.ready, self), held=held)
        self.stop_requested = threading.Event()  # set by ``interrupt``: the running call ends at the next tick
        self._closing = False  # the mailbox is ending: no operation runs after the current one
        self._ended: threading.Event | None = None  # set once the mailbox has ended and its leftovers are answered
        self._wake: threading.Event | None = None  # set by ``interrupt`` to end a ``wait_for``

    @property
    def logs(self) -> deque[str]:
        """The latest lines it logged through ``runtime.log`` (``LOG_LINES`` at most; the chain holds every one)."""
        if self._logs is None:
            self._logs = deque(maxlen=LOG_LINES)
        return self._logs

    @logs.setter
    def logs(self, lines: deque[str]) -> None:
        self._logs = lines

    @property
    def source(self) -> str:
        return self.manifest.source

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def store(self) -> Store:
        return self.stage.store

    @property
    def maximums(self) -> Maximums:
        return self.stage.maximums

    @property
    def router(self) -> Router:
        return self.stage.router

    @property
    def children(self) -> Children:
        return self.stage.children_of(self)

    @property
    def max_message_bytes(self) -> int:
        """The largest message this actor takes: its manifest's ``max_message_bytes``, within what one call can
        hand back out of a guest (``replay.engine.MAX_MESSAGE_BYTES``)."""
        return min(self.manifest.limits.max_message_bytes, MAX_MESSAGE_BYTES)

    def check_message(self, size: int) -> None:
        """Refuse a message of ``size`` bytes above ``max_message_bytes``.

        Raises:
            MessageTooLarge: it is larger; the message names both sizes.
        """
        limit = self.max_message_bytes
        if size > limit:
            raise MessageTooLarge(str(self.id), size=size, limit=limit, declared=self.manifest.limits.max_message_bytes,
                                  call_limit=MAX_MESSAGE_BYTES)

    # The mailbox.

    def submit(
        self, op: Callable[[], Any], *, size: int = 0, reservation: Reservation | None = None, force: bool = False
    ) -> Future[Any]:
        """Run ``op`` as the actor's operation after the messages queued before it; the future holds its outcome.

        ``op`` takes a place in the bounded message lane (``size`` bytes, or the place ``reservation`` kept;
        ``force`` skips the bounds). A full mailbox fails the future with ``MailboxFull``, an ended actor with
        ``ActorNotRunning``.
        """
        future, run = self._operation(op)
        try:
            self.mailbox.put(run, size=size, reservation=reservation, force=force)
        except MailboxClosed:
            future.set_exception(ActorNotRunning(str(self.id), self.status, "its mailbox is closed"))
        except MailboxFull as full:
            future.set_exception(full)
        return future

    def post(self, op: Callable[[], None], failed: Callable[[BaseException], Effect], *, size: int = 0) -> None:
        """``submit`` for an operation that answers for itself (a request settles its own reply), without a future:
        if the actor cannot run it (its recovery after a failed commit fails), ``failed(error)`` is its effect.

        Raises:
            MailboxFull: no room in the message lane. ActorNotRunning: the actor has ended.
        """
        def run() -> None:
            try:
                self.recover()
                op()
            except BaseException as exc:  # the actor boundary: every failure goes to whoever waits
                self.defer(failed(exc))
            self.release()

        try:
            self.mailbox.put(run, size=size)
        except MailboxClosed:
            raise ActorNotRunning(str(self.id), self.status, "its mailbox is closed") from None

    def submit_queued(
        self, op: Callable[[], Any], on_lost: Callable[[BaseException], None]
    ) -> Future[tuple[Write, ...]]:
        """``submit`` for a start whose caller records what follows on a chain that depends on this one (a parent
        recording its child's spawn): once ``op`` has run, its writes are handed to the store and the future holds
        the tape's writes not yet seen committed (``RecordTape.handed_over``). The caller makes its next append
        depend on them (``RecordTape.depend_on``): that append, and every later one of its chain, fails if one of
        them does, so nothing the caller releases can outrun this actor's commit. If ``op`` raises, the future fails as
        ``submit``'s does, once the events recorded so far are durable (or have failed). If the writes of a
        successful ``op`` fail to commit, ``on_lost`` is called with the error (on the releaser's thread).
        """
        future, run = self._queued_operation(op, on_lost)
        try:
            self.mailbox.put(run, size=0)
        except MailboxClosed:
            future.set_exception(ActorNotRunning(str(self.id), self.status, "its mailbox is closed"))
        except MailboxFull as full:
            future.set_exception(full)
        return future

    def _queued_operation(
        self, op: Callable[[], Any], on_lost: Callable[[BaseException], None]
    ) -> tuple[Future[tuple[Write, ...]], Callable[[], None]]:
        future: Future[tuple[Write, ...]] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                self.recover()
                op()
            except BaseException as exc:  # the actor boundary: every failure goes to whoever waits
                error = exc
                self.defer(lambda failed: settle(future, None, error, failed))
                self.release()
                return
            self.defer(lambda failed: None if failed is None else on_lost(failed))
            self.release_now()  # hands the held writes to the store (effects the op deferred wait for them)
            future.set_result(self.tape.handed_over())

        return future, run

    def start_here(self, op: Callable[[], Any]) -> Future[Any]:
        """``submit(op)`` for the first operation of an actor made ``held``, run now on the calling thread (a
        start: no hand-off to a worker and back); the future is settled as ``submit``'s."""
        future, run = self._operation(op)
        self._run_here(run)
        return future

    def start_here_queued(
        self, op: Callable[[], Any], on_lost: Callable[[BaseException], None]
    ) -> Future[tuple[Write, ...]]:
        """``submit_queued(op, on_lost)`` for the first operation of an actor made ``held``, run now on the
        calling thread (a parent's worker spawning it)."""
        future, run = self._queued_operation(op, on_lost)
        self._run_here(run)
        return future

    def _run_here(self, run: Callable[[], None]) -> None:
        """Run one operation on this thread as the worker holding the actor (``theater.scheduler.in_place``), then
        let go of its held mailbox: a worker takes what arrived meanwhile (a stop, a message)."""
        try:
            with in_place(self):
                run()
        finally:
            if self.mailbox.keep_turn():
                self.stage.scheduler.ready(self)

    def control(self, op: Callable[[], Any]) -> Future[Any]:
        """Run ``op`` as the actor's operation before every waiting message (stop, supervision); never refused for
        a full mailbox. An ended actor fails the future with ``ActorNotRunning``."""
        future, run = self._operation(op)
        try:
            self.mailbox.put_control(run)
        except MailboxClosed:
            future.set_exception(ActorNotRunning(str(self.id), self.status, "its mailbox is closed"))
        return future

    def interrupt(self, op: Callable[[], Any]) -> Future[Any]:
        """``control(op)``, and end the call running now (if any) at the next epoch tick with a ``stopped`` fault:
        ``op`` must stop the actor. Calls made after this, before ``op`` runs, end the same way."""
        future = self.control(op)
        if not future.done():
            self.stop_requested.set()
            wake = self._wake
            if wake is not None:
                wake.set()
        return future

    def wait_for(self, future: Future[Any], timeout: float) -> bool:
        """In a host function of this actor: wait until ``future`` is done, ``timeout`` s pass, or a stop is
        requested (``interrupt``); True when the future is done. The scheduler keeps other workers running
        meanwhile (``theater.scheduler.blocking``).

        Raises:
            ResourceExhausted: no thread is left to run other actors while this one waits; nothing was waited for.
        """
        wake = threading.Event()
        future.add_done_callback(lambda _: wake.set())
        self._wake = wake
        try:
            if not self.stop_requested.is_set() and not future.done():
                with blocking():
                    wake.wait(timeout)
        finally:
            self._wake = None
        return future.done()

    def reserve(self, size: int) -> Reservation:
        """Keep a place in the mailbox for a message of ``size`` bytes that ``submit`` will queue later.

        Raises:
            MailboxFull: no room. ActorNotRunning: the actor has ended.
        """
        try:
            return self.mailbox.reserve(size)
        except MailboxClosed:
            raise ActorNotRunning(str(self.id), self.status, "its mailbox is closed") from None

    def _operation(self, op: Callable[[], Any]) -> tuple[Future[Any], Callable[[], None]]:
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            value: Any = None
            error: BaseException | None = None
            try:
                self.recover()
                value = op()
            except BaseException as exc:  # the actor boundary: every failure goes to whoever waits
                error = exc
            self.defer(Settle(future, value, error))
            self.release()

        return future, run

    def run_slice(self, quantum: int) -> bool:
        """For the scheduler's worker holding this actor: run up to ``quantum`` operations in mailbox order; True
        when more is waiting (the worker queues the actor again).

        The operations of one turn share their release (``release``): their writes go to the store and their
        effects to the releaser together, after the last of them or as soon as nothing else waits, and always
        before the worker lets the actor go. A later operation of the turn that calls out (a host call, an epoch
        tick of a long call: ``RecordTape.tick``) or waits (``scheduler.blocking``) releases what is owed first, so
        a reply is never held back by the next operation's work. Effects still run only once durable.
        """
        self._in_slice = True
        try:
            for left in range(quantum - 1, -1, -1):
                op = self.mailbox.take()
                if op is None:
                    return False
                if op is END:
                    self._in_slice = False
                    self.release_due()
                    # Whatever arrived after the end still gets an answer: each op fails fast, the actor is not
                    # running.
                    for leftover in self.mailbox.close():
                        leftover()
                    self._ended_event().set()
                    return False
                op()
                if not left or not self.mailbox.busy():
                    self.release_due()
        finally:
            self._in_slice = False
            self.release_due()  # only after an operation raised (each catches everything): the last guard
        return self.mailbox.keep_turn()

    def on_thread(self) -> bool:
        """True on the worker running one of this actor's operations now."""
        return current() is self

    def _close_mailbox(self) -> None:
        self._closing = True
        if self.mailbox.end():
            self._ended_event().set()  # no worker held it: nothing was left to answer

    def _ended_event(self) -> threading.Event:
        with self._end_lock:
            if self._ended is None:
                self._ended = threading.Event()
            return self._ended

    def wait_ended(self, timeout: float | None = None) -> bool:
        """Wait until the actor's mailbox has ended (it stopped, exited, failed for good or is closing) and what
        was left in it has been answered; True when it has. Never call it in one of the actor's own operations."""
        ended = self._ended_event()
        with blocking():
            return ended.wait(timeout)

    def revive(self) -> None:
        """Let an actor whose mailbox has ended (stopped, exited, abandoned) take operations again, so it can be
        restarted.

        Called by its supervisor, never in one of the actor's own operations; waits for the operation that ended
        it to finish; does nothing while its mailbox is open.
        """
        if not self._closing:
            return
        self.wait_ended()
        self._ended = None
        self._closing = False
        self.stop_requested.clear()
        self.mailbox.reopen()

    # Effects, released once the events that produced them are durable.

    def defer(self, effect: Effect) -> None:
        """Run ``effect`` once the events recorded so far are durable (see ``theater.release``)."""
        self._effects.append(effect)

    def release(self) -> None:
        """Hand the writes held so far to the store and the effects deferred so far to the releaser, without
        waiting (an operation with no effect, a request answered later, still has its events committed now).

        In a turn of the scheduler (``run_slice``) the hand-over is owed until the turn's operations are done (or
        one calls out or waits, ``release_due``); elsewhere it happens now.
        """
        if self._in_slice:
            self._owed = True
            return
        self.release_now()

    def release_now(self) -> None:
        """``release`` at once, in a turn too (what follows needs the writes in the store's hands)."""
        self._owed = False
        last = self.tape.last
        effects, self._effects = self._effects, []
        if effects:
            self.stage.releaser.hand_over(last, effects, watch=self.tape)

    def release_due(self) -> None:
        """Make the hand-over a turn's operations owe (``release``), if any; on the actor's worker. The tape calls
        it before every host call and epoch tick (``RecordTape.before_tick``)."""
        if self._owed:
            self.release_now()

    def before_wait(self) -> bool:
        """What a wait in one of the actor's operations does first (``scheduler.blocking``): ``release_due``, and
        tell the tape (``RecordTape.wait_begins``), so a call waiting in a host function (a sleep, a request) has
        what it recorded so far in the store's hands within a tick even though the tape holds it across host calls.
        True when ``after_wait`` must follow the wait."""
        if self._owed:
            self.release_now()  # hands the held writes over too
            return False
        return self.tape.wait_begins()

    def after_wait(self) -> None:
        """The wait ``before_wait`` began is over (``scheduler.blocking``)."""
        self.tape.wait_ends()

    def flush(self) -> None:
        """Wait until every event so far is durable (or has failed) and the effects deferred so far have run."""
        self._run_effects()

    def flush_committed(self) -> None:
        """``flush``, then refuse to go on if an event so far could not be committed: what would follow (a request,
        a channel opened) depends on it and must not be released either.

        Raises:
            MessageError: an event so far could not be committed (a handler turns it into the guest's ``err``).
        """
        self._run_effects()
        cause = self.tape.failure()
        if cause is not None:
            raise MessageError(
                f"actor {self.id} cannot go on: what it recorded before could not be committed "
                f"({type(cause).__name__}: {cause})"
            )

    def _run_effects(self) -> None:
        effects, self._effects = self._effects, []
        self.stage.releaser.hand_over(self.tape.last, effects, wait=True, watch=self.tape)

    # Recovery after a failed commit (in the actor's operations).

    @property
    def reported_status(self) -> ActorStatus:
        """The status to show: ``recovering`` for a running actor whose commit failed and that has not yet been
        re-instantiated from its committed state (it does so before its next call), else ``status``."""
        if self.status == ActorStatus.RUNNING and (self._recovering or self.tape.broken()):
            return ActorStatus.RECOVERING
        if self.status == ActorStatus.RUNNING and self.passivated:
            return ActorStatus.PASSIVATED
        return self.status

    def current_state(self) -> bytes | None:
        """The state of its latest successful call; while it is ``recovering``, the state its chain holds (what it
        will start from again), not what the calls whose commit failed left. Any thread may call it."""
        if self.reported_status == ActorStatus.RECOVERING:
            return committed_state(self.stage.store, self.id)
        return self.state

    def recover(self) -> None:
        """If an append of this actor failed to commit, go back to the chain; does nothing otherwise.

        Called before every operation. Waits until every effect handed over so far has run (each was given the
        store's error, so none of the failed operations' effects is released), resets the tape to the committed
        head, sets the state to the committed state, forgets the outstanding requests that were answered with
        the error, and drops the instance: the next call starts a fresh one (``_reinstantiate``).

        Raises:
            StoreError: a state blob the chain names could not be written again (the disk is still full); or not
                even the actor's creation was committed (the failure that kept it out): the actor is failed now.
        """
        cause = self.tape.failure()
        if cause is None:
            return
        self._run_effects()
        head = self.tape.reset()
        self.outstanding = {key: reply for key, reply in self.outstanding.items() if not reply.done()}
        if head.hash is None:
            reason = f"its creation could not be committed ({type(cause).__name__}: {cause})"
            self.status = ActorStatus.FAILED
            self.failure = GuestFault(FaultKind.HOST, "instantiate", reason)
            self.boundary = None
            self._close_mailbox()
            raise cause
        self.state = committed_state(self.stage.store, self.id)
        if self.status in LIVE:
            self.boundary = None
            self._recovering = True

    def confirm_end(self) -> None:
        """Make sure the chain of an actor that has ended records its end; called by ``Theater.stop`` for an actor
        that is stopped or failed already, never in one of the actor's own operations.

        An end (stop, exit, being given up) takes effect at once: the mailbox ends, the children are stopped. When
        the commit that held its record failed, the chain does not say so (a runtime started on the home later
        would resume the actor), so the end is recorded again, now that the store may take it. Does nothing for an
        actor whose mailbox is still open (a failed actor waiting for its supervisor) or whose end is in its chain.

        Raises:
            StoreError: the record could not be committed (the disk is still full); call again later.
        """
        if not self._closing or self.on_thread():
            return
        self.wait_ended()
        with self._end_lock:
            try:  # the end may still be on its way to the disk: read the chain once it is there (or refused)
                self.tape.wait_durable()
            except StoreError:
                pass  # refused: recorded again below
            if self.tape.failure() is not None or self.tape.broken():
                self.tape.reset()
            head = self.stage.store.log.head(self.id)
            if head.hash is None or self.stage.store.log.at(self.id, head.seq).type in ENDS:
                return
            if self.status == ActorStatus.FAILED:
                detail = self.failure.detail if self.failure is not None else "failed"
                self.tape.record(ActorFailed(reason=detail))
            elif self.shutdown_data is not None:
                self.tape.record(ActorExit(data=self.shutdown_data[0]))
            else:
                self.tape.record(ActorStop())
            self.tape.wait_durable()

    def _limits(self) -> Limits:
        return self.manifest.limits.per_call()

    def _reinstantiate(self) -> None:
        """A fresh instance from the committed state, recorded as ``wasm/instantiate`` with reason ``recover``."""
        self.instantiate(InstantiateReason.RECOVER, self._limits())

    # Life cycle (in the actor's operations).

    def boot(self, reason: InstantiateReason, *, call_init: bool = True) -> None:
        """Bring the actor up from ``state``: a fresh instance (``wasm/instantiate`` with ``reason``), then
        ``init`` when ``call_init`` and it exports one; then it is running.

        Raises:
            TheaterError: no instance could be made (the actor is abandoned: recorded as failed), or ``init``
                failed (the actor is failed).
        """
        try:
            self.instantiate(reason, self._limits())
        except TheaterError as exc:
            self.abandon(f"{type(exc).__name__}: {exc}")
            raise
        if call_init and self.has_export(ACTOR_INIT):
            self.call(ACTOR_INIT, [str(self.id)])
        elif reason == InstantiateReason.RESTART:
            self.reattach()  # a restart from its last state: no init makes its servers again
        if self.status == ActorStatus.STARTING:
            self.status = ActorStatus.RUNNING

    def reattach(self) -> None:
        """In its operation, on an instance that did not call ``init`` (a resume, a restart from its last state):
        bring back what its handlers held outside the instance, from the record (each handler class with a
        ``reattach``: the servers of ``http-framework``)."""
        for spec in self.manifest.handlers:
            reattach = getattr(IMPLEMENTED.get(spec.type), "reattach", None)
            if reattach is not None:
                for problem in reattach(self, spec.config):
                    log.warning("actor %s could not take back %s", self.id, problem)

    def instantiate(self, reason: InstantiateReason, limits: Limits) -> None:
        """Create a fresh instance with the granted handlers linked, and record it.

        Raises:
            LinkError: the component imports an interface its manifest does not grant (``check_grants``).
            ManifestError: a handler's config is invalid, or a handler type is not in this build.
            ResourceExhausted: the system refused the memory for the instance.
        """
        engine = self.stage.engine
        component = engine.load(self.stage.store, self.component_hash)
        check_grants(self.manifest, import_functions(engine, component))
        host = self._host_functions()
        try:
            self.boundary = Boundary(engine, component, self.tape, host, limits, interrupt=self.stop_requested,
                                     on_err=self.manifest.on_err)
        except ComponentError as exc:
            if any(words in exc.reason.lower() for words in _OUT_OF_MEMORY):
                detail = f"the system refused memory for its instance ({exc.reason})"
                raise ResourceExhausted("memory", str(self.id), detail) from None
            raise
        self._recovering = False
        self.passivated = False
        self.last_active = time.monotonic()
        if self.stage.telemetry is not None:
            self.stage.telemetry.instantiated(self, reason)
        # The state it starts from is recorded, so verification can check the calls after it continue from it.
        self.tape.record(WasmInstantiate(fuel=self.boundary.instantiate_fuel, state=self.tape.state_ref(self.state),
                                         reason=InstantiateReason(reason),
                                         component=self.component_hash if self.upgraded else MISSING))

    def _host_functions(self) -> dict[str, dict[str, Callable[..., Any]]]:
        self.close_handlers()
        host: dict[str, dict[str, Callable[..., Any]]] = {}
        for type_, config in configs(self.manifest).items():
            handler = IMPLEMENTED[type_](self, config)
            self.handlers.append(handler)
            host[handler.interface] = handler.functions()
        if self.stage.telemetry is not None:
            host = self.stage.telemetry.wrap_host(self, host)
        return host

    def envelope(self) -> Envelope:
        """A new envelope for a message this actor sends: its trace context when tracing is on."""
        telemetry = self.stage.telemetry
        return Envelope(trace=None if telemetry is None else telemetry.capture())

    def close_handlers(self) -> None:
        """Let the handlers of the instance that is going release what they hold (e.g. kill its processes)."""
        handlers, self.handlers = self.handlers, []
        for handler in handlers:
            handler.close()

    def call(self, export: str, params: list[Any], envelope: Envelope | None = None) -> CallResult:
        """Call an export with the current state; on success the result's state becomes the actor's state.

        ``envelope`` (a delivery from another actor) gives the ``wasm/call`` its causal link and, when tracing
        is on, the span its parent.

        An ``err`` the actor answers (its manifest's ``on_err`` is ``answer``, the default; never ``init``'s) is
        recorded as ``wasm/err-answer`` and logged; the call's state change is discarded and the actor goes on.

        Raises:
            ActorNotRunning: the actor has stopped or failed.
            ErrAnswered: the export returned ``err`` and the actor answered it: it keeps running, its state as
                before the call.
            GuestFault: the call failed; the actor is now failed, unless the fault is ``stopped`` (a stop ended
                the call: the stop itself, queued ahead of everything else, stops the actor next).
        """
        if self._recovering and self.status in LIVE:
            self._reinstantiate()
        if self.passivated and self.status in LIVE:
            self.activate()
        if self.status not in LIVE or self.boundary is None:
            raise ActorNotRunning(str(self.id), self.status, self.failure.detail if self.failure else None)
        if not self.boundary.has_export(export):
            # Refused before anything crosses the boundary: nothing is recorded and the actor keeps running.
            raise ExportMissing(str(self.id), self.name, export)
        telemetry = self.stage.telemetry
        span = None if telemetry is None else telemetry.start_call(self, export, envelope)
        if envelope is not None:
            self.tape.cause = envelope.cause
        try:
            result = self.boundary.call(export, self.state, params)
        except GuestFault as fault:
            if span is not None:
                span.failed(fault)
            if fault.answered:
                self._answered(fault)
            if fault.kind != STOPPED:
                self._fail(fault)
            raise
        finally:
            self.tape.cause = None  # never carried over to a call it was not given for
            if span is not None:
                span.end()
        self.state = result.state
        self.last_active = time.monotonic()
        if self.shutdown_data is not None:
            self.finish("exit", self.shutdown_data[0])
        return result

    def _answered(self, fault: GuestFault) -> None:
        """An err the actor answered: its state stays, it goes on (exiting if the call asked to shut down).

        Raises:
            ErrAnswered: always, for whoever made the call.
        """
        self.last_active = time.monotonic()
        log.warning("actor %s (%s) answered %s with err: %s", self.id, self.name, fault.export, fault.detail[:500])
        if self.shutdown_data is not None:
            self.finish("exit", self.shutdown_data[0])
        raise ErrAnswered(str(self.id), self.name, fault) from None

    def has_export(self, export: str) -> bool:
        """Whether its component exports ``export`` (on its thread: a passivated actor is activated to tell)."""
        if self.passivated and self.status in LIVE:
            self.activate()
        return self.boundary is not None and self.boundary.has_export(export)

    # Passivation (on the actor's thread; see ``theater.passivation``).

    def holds_live(self) -> bool:
        """True while it holds something its instance must keep: an outstanding request, an open channel, a
        child in this runtime, or a handler that says so (``Handler.holds_live``)."""
        return (bool(self.outstanding) or self.router.channels.holds(self) or bool(self.children.ids())
                or any(handler.holds_live() for handler in self.handlers))

    def passivate(self, idle_after: float) -> bool:
        """Drop the instance of a running actor idle for ``idle_after`` seconds that holds nothing live, recorded
        as ``actor/passivated`` with the state it holds; True when it did (once the event is durable).

        Does nothing (False) for an actor that is not running, already passivated, recovering, has operations
        waiting, or ran a call within ``idle_after`` seconds.

        Raises:
            StoreError: the passivation could not be committed; the actor keeps its instance (``recover`` makes
                a fresh one before its next call).
        """
        idle = time.monotonic() - self.last_active
        if (self.status != ActorStatus.RUNNING or self.boundary is None or self._recovering or self.tape.broken()
                or idle < idle_after or self.mailbox.waiting or self.holds_live()):
            return False
        self.tape.record(ActorPassivated(state=self.tape.state_ref(self.state), idle_ms=int(idle * 1000)))
        self.tape.wait_durable()
        self.close_handlers()
        self.boundary = None
        self.passivated, self.activation = True, InstantiateReason.ACTIVATE
        return True

    def activate(self) -> None:
        """A fresh instance from the state its passivation held, recorded as ``wasm/instantiate`` with reason
        ``activation`` (``activate``; ``resume`` for an actor a runtime restart left running).

        Raises:
            ActorNotRunning: this object was evicted (``evicted``): the router's new one stands for the actor.
            TheaterError: no instance could be made; the actor stays passivated and the next call tries again.
        """
        if self.evicted:
            raise ActorNotRunning(str(self.id), ActorStatus.PASSIVATED, "it was evicted; address it by its id")
        self.instantiate(self.activation, self._limits())

    def _fail(self, fault: GuestFault) -> None:
        self.status = ActorStatus.FAILED
        self.failure = fault
        self._drop_outstanding(f"actor {self.id} failed: {fault.detail}")
        self.close_handlers()
        self.stage.on_ended(self, "fail", None)

    def fail(self, fault: GuestFault) -> None:
        """Fail the actor outside any call (its supervisor gave up), recorded as ``actor/failed``."""
        if self.status in ENDED:
            return
        self.tape.record(ActorFailed(reason=str(fault)))
        self._fail(fault)

    def finish(self, how: str, data: bytes | None = None) -> None:
        """Stop the actor (``how`` is ``stop`` or ``exit``), record it, and end its mailbox after this op."""
        if self.status in ENDED:
            return
        self.status = ActorStatus.STOPPED
        self.tape.record(ActorStop(data=data) if how == "stop" else ActorExit(data=data))
        self._drop_outstanding(f"actor {self.id} stopped")
        self.close_handlers()
        self.stage.on_ended(self, how, data)
        self._close_mailbox()

    def abandon(self, reason: str) -> None:
        """The actor could not be brought up (no instance): record why, mark it failed, end its mailbox."""
        self.status = ActorStatus.FAILED
        self.failure = GuestFault(FaultKind.HOST, "instantiate", reason)
        self.tape.record(ActorFailed(reason=reason))
        self._drop_outstanding(f"actor {self.id} failed: {reason}")
        self.close_handlers()
        self.stage.on_ended(self, "fail", None)
        self._close_mailbox()

    def _drop_outstanding(self, reason: str) -> None:
        outstanding, self.outstanding = self.outstanding, {}
        error = ActorNotRunning(str(self.id), self.status, reason)
        for reply in outstanding.values():
            self.defer(Settle(reply, None, error))

    def close(self) -> None:
        """End the mailbox without recording anything (the runtime is closing). A call still running is not
        interrupted: a chain that ends in a recorded failure would not be resumed by the next runtime."""
        if self.status in LIVE:
            self.status = ActorStatus.STOPPED
        self.close_handlers()
        self._close_mailbox()
        if not self.on_thread():
            self.wait_ended(timeout=5)

