"""The host interface: how handlers and supervision see an actor and the runtime around it.

Handlers (``theater.handlers``) and supervision (``theater.supervision``) import this module, never
``theater.runtime`` or ``theater.actor`` (an import-linter contract in pyproject.toml holds them to it). What they
are given is typed by the protocols here; the runtime's objects satisfy them structurally:

- ``ActorHost``: the actor a handler serves: its id, name, manifest, state, recording, deferred effects, flushes,
  waits, mailbox places, operations queued on its mailbox and export calls in them (``submit``, ``call``: how a
  server hands it a request), and the ``Router`` and ``Children`` it may use;
- ``SupervisedActor``: what supervision sees of an actor: the handler's view plus its life cycle (control
  operations, stop, failure, revival);
- ``Router``: delivery between actors (send, request, channel operations), waiting for a reply, message checks,
  and the open ``Channels``;
- ``ChannelEnd``: an end of a channel outside every actor (an API client's): it takes messages and the close;
- ``Children``: one actor's children, as the ``supervisor`` handler manages them.

Nothing here runs anything; see docs/handlers.md for how a handler uses it.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol, TypeAlias, Union

from replay.boundary import CallResult
from replay.errors import GuestFault
from replay.schema import InstantiateReason
from store import Event, Head, Store
from theater.envelope import Envelope
from theater.mailbox import Reservation
from theater.manifest import Manifest, Maximums
from theater.release import Effect
from theater.status import ActorStatus


class Recording(Protocol):
    """An actor's chain as the host appends to it (``theater.record.RecordTape``)."""

    def append(self, type: str, data: Any) -> Event:
        """Queue one event after the current head; it is durable after ``wait_durable``."""
        ...

    def wait_durable(self, timeout: float | None = None) -> None:
        """Block until every event appended so far is durable (raises the store's error if one failed)."""
        ...

    @property
    def head(self) -> Head:
        """The chain's head as appended so far (durable or not)."""
        ...

    def stamp_next(self, envelope: Envelope) -> None:
        """Set ``envelope.cause`` to the hash of the next event appended (the host function's own event)."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ChannelAnswer:
    """An actor's answer to a channel being opened to it: whether it accepts, and what it says."""

    accepted: bool
    message: bytes | None


class ChannelEnd(Protocol):
    """An end of a channel held outside every actor (an API client's); called on the runtime's threads."""

    def on_message(self, message: bytes) -> None:
        """Take a message the actor sent on the channel."""
        ...

    def on_close(self) -> None:
        """The channel is closed (by the actor, or because the actor ended)."""
        ...


class Children(Protocol):
    """One actor's children, as its ``supervisor`` handler manages them (in the actor's own operations)."""

    def spawn(self, manifest: Manifest, *, init_state: bytes | None, call_init: bool) -> uuid.UUID:
        """Start a child from ``manifest`` (its grants within the parent's) and return its id.

        Raises:
            TheaterError: the child could not be started (the message says why).
        """
        ...

    def ids(self) -> list[uuid.UUID]:
        """The children's ids in start order."""
        ...

    def get(self, child_id: str) -> ActorHost:
        """One child.

        Raises:
            SupervisionError: ``child_id`` is not one of them.
        """
        ...

    def stop(self, child_id: str, reason: str) -> None:
        """Stop a child and its subtree, and forget it.

        Raises:
            SupervisionError: ``child_id`` is not one of them.
        """
        ...

    def restart(self, child_id: str) -> None:
        """Restart a child now.

        Raises:
            SupervisionError: ``child_id`` is not one of them.
        """
        ...


class ActorHost(Protocol):
    """The actor a handler serves. Host functions run in the actor's operations, one call at a time, on the
    scheduler's worker that holds it; a host function that waits wraps the wait in ``theater.scheduler.blocking``.

    Attributes:
        state: the state of its latest successful call (read it; the boundary sets it).
        outstanding: requests it deferred, by request id, with the future their sender waits on.
        shutdown_data: set (a 1-tuple) by ``runtime.shutdown``: the actor exits after the current call.
        logs: the latest lines it logged through ``runtime.log`` (bounded; the chain holds every one).
        stop_requested: set when a stop is on its way: a host function that waits must end early.
    """

    state: bytes | None
    outstanding: dict[str, Future[bytes]]
    shutdown_data: tuple[bytes | None] | None
    logs: deque[str]
    stop_requested: threading.Event

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def name(self) -> str: ...

    @property
    def source(self) -> str:
        """Where its manifest came from (for ``ManifestError``)."""
        ...

    @property
    def manifest(self) -> Manifest: ...

    @property
    def tape(self) -> Recording:
        """Its chain: host functions return values, the boundary records them; append only host events."""
        ...

    @property
    def store(self) -> Store:
        """The home's store (blobs, and chains to read)."""
        ...

    @property
    def maximums(self) -> Maximums:
        """The runtime's maximums (sizes of files a manifest names, limits)."""
        ...

    @property
    def router(self) -> Router: ...

    @property
    def children(self) -> Children: ...

    def defer(self, effect: Effect) -> None:
        """Run ``effect(failed)`` once the events recorded so far are durable; ``failed`` is the store's error
        when they could not be committed (then the effect must not take place)."""
        ...

    def envelope(self) -> Envelope:
        """A new host-side envelope for a message it sends (``theater.envelope``)."""
        ...

    def flush(self) -> None:
        """Wait until every event so far is durable (or failed) and the effects deferred so far have run."""
        ...

    def flush_committed(self) -> None:
        """``flush``, then refuse to go on if an event so far could not be committed.

        Raises:
            MessageError: an event so far could not be committed.
        """
        ...

    def wait_for(self, future: Future[Any], timeout: float) -> bool:
        """Wait until ``future`` is done, ``timeout`` s pass, or a stop is requested; True when it is done."""
        ...

    def reserve(self, size: int) -> Reservation:
        """Keep a place in this actor's mailbox for a message of ``size`` bytes delivered later.

        Raises:
            MailboxFull: no room. ActorNotRunning: it has ended.
        """
        ...

    def check_message(self, size: int) -> None:
        """Refuse a message larger than this actor takes.

        Raises:
            MessageTooLarge: it is larger.
        """
        ...

    @property
    def max_message_bytes(self) -> int:
        """The largest message this actor takes (what ``check_message`` holds a size against)."""
        ...

    def submit(
        self, op: Callable[[], Any], *, size: int = 0, reservation: Reservation | None = None, force: bool = False
    ) -> Future[Any]:
        """Run ``op`` as the actor's operation after the messages queued before it (a request a server took, say);
        the future holds its outcome. ``op`` takes a place in the bounded mailbox (``size`` bytes, or the place
        ``reservation`` kept; ``force`` skips the bounds): a full mailbox fails the future with ``MailboxFull``, an
        ended actor with ``ActorNotRunning``."""
        ...

    def call(self, export: str, params: list[Any], envelope: Envelope | None = None) -> CallResult:
        """Call an export with the current state, recorded (in one of the actor's operations, e.g. an ``op`` given
        to ``submit``).

        Raises:
            ActorNotRunning, ExportMissing, ErrAnswered, GuestFault: as ``theater.actor.Actor.call`` says.
        """
        ...


class SupervisedActor(ActorHost, Protocol):
    """What supervision sees of an actor: the handler's view plus its life cycle.

    Attributes:
        parent: its supervisor's id, if any.
        status: ``starting``, ``running``, ``restarting``, ``stopped`` or ``failed`` (an ``ActorStatus``).
        failure: the fault that failed it, if it failed.
        incarnation: how many times it was restarted.
    """

    parent: uuid.UUID | None
    status: ActorStatus
    failure: GuestFault | None
    incarnation: int

    def on_thread(self) -> bool:
        """True on the worker running one of this actor's operations now."""
        ...

    def control(self, op: Callable[[], Any]) -> Future[Any]:
        """Run ``op`` as the actor's operation before every waiting message."""
        ...

    def interrupt(self, op: Callable[[], Any]) -> Future[Any]:
        """``control(op)``, ending the call running now at the next epoch tick; ``op`` must stop the actor."""
        ...

    def has_export(self, export: str) -> bool: ...

    def finish(self, how: str, data: bytes | None = None) -> None:
        """Stop (``how``: ``stop`` or ``exit``), recorded; its mailbox ends after this operation."""
        ...

    def fail(self, fault: GuestFault) -> None:
        """Fail it outside any call, recorded as ``actor/failed``."""
        ...

    def abandon(self, reason: str) -> None:
        """In its operation: fail it for good, recorded as ``actor/failed`` with ``reason``; its mailbox ends."""
        ...

    def revive(self) -> None:
        """Let an ended actor take operations again, so it can be restarted (never in its own operations)."""
        ...

    def boot(self, reason: InstantiateReason, *, call_init: bool = True) -> None:
        """In its operation: a fresh instance from ``state`` (recorded with ``reason``), then ``init`` if asked.

        Raises:
            TheaterError: it could not be brought up (recorded; it is failed).
        """
        ...


Endpoint: TypeAlias = Union[ActorHost, ChannelEnd]


class Channels(Protocol):
    """The open channels, each with its two ends."""

    def open(self, channel_id: str, opener: Endpoint, acceptor: Endpoint) -> None: ...

    def peer(self, channel_id: str, me: Endpoint) -> Endpoint:
        """The other end of ``channel_id`` as seen from ``me``.

        Raises:
            ChannelClosed: no such open channel, or ``me`` is not one of its ends.
        """
        ...

    def holds(self, end: Endpoint) -> bool:
        """True while ``end`` is an end of an open channel."""
        ...

    def close(self, channel_id: str) -> None: ...


class Router(Protocol):
    """Delivery between actors (and from the API into them).

    Every delivery takes a place in the receiver's bounded mailbox: the ``reservation`` kept for it, or a new one
    (the future then fails with ``MailboxFull`` when there is none). Deliveries return futures; an actor that
    waits for one from a host function passes itself as ``waiter`` to ``wait_reply``, so a stop ends the wait.
    """

    @property
    def channels(self) -> Channels: ...

    def running(self, actor_id: str | uuid.UUID) -> ActorHost:
        """A running actor.

        Raises:
            InvalidInputError: not an actor id. ActorNotFound, ActorNotRunning: unknown, or not running.
        """
        ...

    def target(self, actor_id: str | uuid.UUID) -> ActorHost:
        """The running actor a guest's send or request names: ``running``, or in a cluster one that another node
        runs (deliveries to it are forwarded there).

        Raises:
            InvalidInputError, ActorNotFound, ActorNotRunning: as ``running``.
        """
        ...

    def reserve(self, target: Endpoint, message: bytes) -> Reservation | None:
        """Check ``message`` against the target's limit and keep a place in its mailbox (None for a channel end
        outside every actor: it needs none).

        Raises:
            MessageTooLarge, MailboxFull, ActorNotRunning: the message cannot be taken.
        """
        ...

    def deliver_send(
        self, target: ActorHost, message: bytes, reservation: Reservation | None = None,
        envelope: Envelope | None = None,
    ) -> Future[None]: ...

    def deliver_request(self, target: ActorHost, message: bytes, envelope: Envelope | None = None
                        ) -> Future[bytes]: ...

    def deliver_channel_open(self, target: ActorHost, channel_id: str, initial: bytes,
                             envelope: Envelope | None = None) -> Future[ChannelAnswer]: ...

    def deliver_channel_message(
        self, peer: Endpoint, channel_id: str, message: bytes, reservation: Reservation | None = None,
        envelope: Envelope | None = None,
    ) -> Future[None]: ...

    def deliver_channel_close(self, peer: Endpoint, channel_id: str, envelope: Envelope | None = None
                              ) -> Future[None]: ...

    def wait_reply(
        self, reply: Future[Any], timeout: float | None, what: str, *, waiter: ActorHost | None = None
    ) -> Any:
        """The outcome of ``reply``.

        Raises:
            ReplyTimeout: none within ``timeout`` (None: the runtime's request timeout).
            ReplyAbandoned: ``waiter`` is being stopped.
            Whatever the reply holds.
        """
        ...


__all__ = [
    "ActorHost",
    "ChannelAnswer",
    "ChannelEnd",
    "Channels",
    "Children",
    "Endpoint",
    "Recording",
    "Router",
    "SupervisedActor",
]
