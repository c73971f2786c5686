"""A running actor: one instance, one store, one thread, one operation at a time in arrival order.

Every operation (init, a message, a request, a channel event, stop) is queued on the actor's mailbox and run on
its own thread, so an actor blocked in a ``request`` blocks nobody else. After each export call the actor waits
until the call's events are durable and only then releases its effects: messages it sent, responses it gave.
"""

from __future__ import annotations

import queue
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from replay.boundary import Boundary, CallResult, ImportNotGranted, Limits
from replay.errors import GuestFault
from theater.errors import ActorNotRunning, LinkError, MessageError
from theater.handlers import IMPLEMENTED, handler_for_import
from theater.manifest import Manifest
from theater.record import RecordTape
from theater.release import Effect, settle

if TYPE_CHECKING:
    from theater.runtime import Theater

ACTOR_INIT = "theater:simple/actor.init"
HANDLE_SEND = "theater:simple/message-server-client.handle-send"
HANDLE_REQUEST = "theater:simple/message-server-client.handle-request"
HANDLE_CHANNEL_OPEN = "theater:simple/message-server-client.handle-channel-open"
HANDLE_CHANNEL_MESSAGE = "theater:simple/message-server-client.handle-channel-message"
HANDLE_CHANNEL_CLOSE = "theater:simple/message-server-client.handle-channel-close"

STATUSES = ("starting", "running", "restarting", "stopped", "failed")


class Actor:
    """One actor of a ``Theater``. Created by ``Theater.start``; use the Theater's methods to talk to it."""

    def __init__(
        self,
        theater: Theater,
        actor_id: uuid.UUID,
        manifest: Manifest,
        component_hash: bytes,
        tape: RecordTape,
        parent: uuid.UUID | None,
    ) -> None:
        self.theater = theater
        self.id = actor_id
        self.manifest = manifest
        self.component_hash = component_hash
        self.tape = tape
        self.parent = parent
        self.status = "starting"
        self.failure: GuestFault | None = None
        self.state: bytes | None = None
        self.boundary: Boundary | None = None
        self.outstanding: dict[str, Future[bytes]] = {}
        self.shutdown_data: tuple[bytes | None] | None = None
        self.logs: list[str] = []
        self.incarnation = 0  # how many times a supervisor restarted it
        self._effects: list[Callable[[], None]] = []
        self._mailbox: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._ended = False
        self._closing = False  # the end of the mailbox is queued
        self._thread = threading.Thread(target=self._loop, name=f"actor:{actor_id}", daemon=True)
        self._thread.start()

    @property
    def source(self) -> str:
        return self.manifest.source

    @property
    def name(self) -> str:
        return self.manifest.name

    # The mailbox.

    def submit(self, op: Callable[[], Any]) -> Future[Any]:
        """Run ``op`` on the actor's thread after everything queued before it; the future holds its outcome."""
        future: Future[Any] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            value: Any = None
            error: BaseException | None = None
            try:
                value = op()
            except BaseException as exc:  # the actor boundary: every failure goes to whoever waits
                error = exc
            self.defer(lambda failed: settle(future, value, error, failed))
            self.release()

        with self._lock:
            if self._ended:
                future.set_exception(ActorNotRunning(str(self.id), self.status, "its mailbox is closed"))
                return future
            self._mailbox.put(run)
        return future

    def _loop(self) -> None:
        while True:
            op = self._mailbox.get()
            if op is None:
                break
            op()
        with self._lock:
            self._ended = True
        # Whatever arrived after the end still gets an answer: each op fails fast, the actor is not running.
        while True:
            try:
                op = self._mailbox.get_nowait()
            except queue.Empty:
                return
            if op is not None:
                op()

    def on_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def _close_mailbox(self) -> None:
        self._closing = True
        self._mailbox.put(None)

    def revive(self) -> None:
        """Give an actor whose thread has ended (stopped, exited, abandoned) a new thread, so it can be restarted.

        Called by its supervisor, never on the actor's own thread; does nothing while the thread is running.
        """
        if not self._closing:
            return
        self._thread.join()
        with self._lock:
            self._ended = False
            self._closing = False
        self._thread = threading.Thread(target=self._loop, name=f"actor:{self.id}", daemon=True)
        self._thread.start()

    # Effects, released once the events that produced them are durable.

    def defer(self, effect: Effect) -> None:
        """Run ``effect`` once the events recorded so far are durable (see ``theater.release``)."""
        self._effects.append(effect)

    def release(self) -> None:
        """Hand the effects deferred so far to the releaser, without waiting."""
        effects, self._effects = self._effects, []
        if effects:
            self.theater.releaser.hand_over(self.tape.last, effects)

    def flush(self) -> None:
        """Wait until every event so far is durable and the effects deferred so far have run."""
        effects, self._effects = self._effects, []
        self.theater.releaser.hand_over(self.tape.last, effects, wait=True)

    # Life cycle (on the actor's thread).

    def instantiate(self, reason: str, limits: Limits) -> None:
        """Create a fresh instance with the granted handlers linked, and record it."""
        component = self.theater.engine.load(self.theater.store, self.component_hash)
        host = self._host_functions()
        try:
            self.boundary = Boundary(self.theater.engine, component, self.tape, host, limits)
        except ImportNotGranted as missing:
            interface = missing.name.rsplit("/", 1)[0]
            raise LinkError(self.name, interface, handler_for_import(interface)) from None
        # The state it starts from is recorded, so verification can check the calls after it continue from it.
        self.tape.append("wasm/instantiate", {"fuel": self.boundary.instantiate_fuel,
                                              "state": self.tape.state_ref(self.state), "reason": reason})

    def _host_functions(self) -> dict[str, dict[str, Callable[..., Any]]]:
        granted: dict[str, dict[str, Any]] = {"runtime": {}}
        granted.update({h.type: h.config for h in self.manifest.handlers})
        host: dict[str, dict[str, Callable[..., Any]]] = {}
        for type_, config in granted.items():
            handler = IMPLEMENTED[type_](self, config)
            host[handler.interface] = handler.functions()
        return host

    def call(self, export: str, params: list[Any]) -> CallResult:
        """Call an export with the current state; on success the result's state becomes the actor's state.

        Raises:
            ActorNotRunning: the actor has stopped or failed.
            GuestFault: the call failed; the actor is now failed.
        """
        if self.status not in ("running", "starting") or self.boundary is None:
            raise ActorNotRunning(str(self.id), self.status, self.failure.detail if self.failure else None)
        if not self.boundary.has_export(export):
            # Refused before anything crosses the boundary: nothing is recorded and the actor keeps running.
            raise MessageError(f"actor {self.id} ({self.name}) cannot take this: it does not export {export}")
        try:
            result = self.boundary.call(export, self.state, params)
        except GuestFault as fault:
            self._fail(fault)
            raise
        self.state = result.state
        if self.shutdown_data is not None:
            self.finish("exit", self.shutdown_data[0])
        return result

    def has_export(self, export: str) -> bool:
        return self.boundary is not None and self.boundary.has_export(export)

    def _fail(self, fault: GuestFault) -> None:
        self.status = "failed"
        self.failure = fault
        self._drop_outstanding(f"actor {self.id} failed: {fault.detail}")
        self.theater.on_actor_ended(self, "fail")

    def fail(self, fault: GuestFault) -> None:
        """Fail the actor outside any call (its supervisor gave up), recorded as ``actor/failed``."""
        if self.status in ("stopped", "failed"):
            return
        self.tape.append("actor/failed", {"reason": str(fault)})
        self._fail(fault)

    def finish(self, how: str, data: bytes | None = None) -> None:
        """Stop the actor (``how`` is ``stop`` or ``exit``), record it, and end its thread after this op."""
        if self.status in ("stopped", "failed"):
            return
        self.status = "stopped"
        self.tape.append(f"actor/{how}", {"data": data})
        self._drop_outstanding(f"actor {self.id} stopped")
        self.theater.on_actor_ended(self, how, data)
        self._close_mailbox()

    def abandon(self, reason: str) -> None:
        """The actor could not be brought up (no instance): record why, mark it failed, end its thread."""
        self.status = "failed"
        self.failure = GuestFault("host", "instantiate", reason)
        self.tape.append("actor/failed", {"reason": reason})
        self.theater.on_actor_ended(self, "fail")
        self._close_mailbox()

    def _drop_outstanding(self, reason: str) -> None:
        outstanding, self.outstanding = self.outstanding, {}
        error = ActorNotRunning(str(self.id), self.status, reason)
        for reply in outstanding.values():
            self.defer(lambda failed, r=reply: settle(r, None, error, failed))

    def close(self) -> None:
        """End the thread without recording anything (the runtime is closing)."""
        if self.status in ("running", "starting"):
            self.status = "stopped"
        self._close_mailbox()
        if not self.on_thread():
            self._thread.join(timeout=5)

