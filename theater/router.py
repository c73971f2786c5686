"""The router: a runtime's live actors by id, and delivery into their mailboxes.

``Theater`` (the embedding API), the message-server handler (through ``theater.host.Router``) and the server's
routes deliver through it. It is internal: ``Theater.router`` is there for the server and for tests that need
to hold a delivery's future (to see a message wait in a mailbox, say); embedders use ``Theater``'s methods.

Each message takes a place in the receiver's bounded message lane: the one ``reservation`` kept for it (a
message from another actor, reserved before the sender's call answered ``ok``), else a new one, and the future
fails with ``MailboxFull`` when there is none.

Passivated actors may leave the router entirely (``evict``); ``get`` brings one back through the runtime's
``loader`` (see ``theater.passivation``), and a delivery to an evicted object goes to the object that now stands for
its actor. Eviction and every delivery hold the router's lock, so an actor is never evicted with a message on its
way, and two deliveries to an evicted actor load one object, hence one instance.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from functools import partial
from random import getrandbits
from typing import Any, cast

from store import parse_actor_id
from theater.actor import (
    HANDLE_CHANNEL_CLOSE,
    HANDLE_CHANNEL_MESSAGE,
    HANDLE_CHANNEL_OPEN,
    HANDLE_REQUEST,
    HANDLE_SEND,
    Actor,
)
from theater.channels import ChannelRegistry
from theater.envelope import Envelope
from theater.errors import (
    ActorNotFound,
    ActorNotRunning,
    MailboxFull,
    MessageError,
    ReplyAbandoned,
    ReplyTimeout,
)
from theater.host import ActorHost, ChannelAnswer, ChannelEnd, Endpoint
from theater.mailbox import Reservation
from theater.release import Settle
from theater.status import LIVE, ActorStatus


def _actor(end: Endpoint) -> Actor:
    """An end that is an actor of this runtime (every ``ActorHost`` the router hands out is one)."""
    if not isinstance(end, Actor):
        raise TypeError(f"expected an actor of this runtime, got {type(end).__name__}")
    return end


class RemoteActor:
    """An actor another node of a cluster runs (``theater.cluster``): a guest's send or request to it is forwarded
    to that node. ``send`` and ``request`` return futures as the local deliveries do; ``open_channel`` (channel
    id, initial message) asks that node to open a channel to it, and ``channel_end`` (channel id) is this node's
    end of an opened one (``theater.channels.ChannelRegistry.open`` keeps it instead of the actor)."""

    def __init__(self, actor_id: uuid.UUID, send: Callable[[bytes], Future[None]],
                 request: Callable[[bytes], Future[bytes]],
                 open_channel: Callable[[str, bytes], Future[ChannelAnswer]] | None = None,
                 channel_end: Callable[[str], ChannelEnd] | None = None) -> None:
        self.id = actor_id
        self.send = send
        self.request = request
        self.open_channel = open_channel
        self.channel_end = channel_end


class Router:
    """The live actors of one runtime, and delivery into their mailboxes.

    Args:
        request_timeout: seconds ``wait_reply`` waits when given no timeout.
    """

    def __init__(self, request_timeout: float) -> None:
        self.request_timeout = request_timeout
        self.channels = ChannelRegistry()
        self.remote: Callable[[uuid.UUID], RemoteActor | None] | None = None  # set by a cluster node (``target``)
        # Brings back an actor that is not in the router (evicted, or left by an earlier runtime), or None.
        self.loader: Callable[[uuid.UUID], Actor | None] | None = None
        self._actors: dict[uuid.UUID, Actor] = {}
        self._lock = threading.RLock()

    # The actors.

    def add(self, actor: Actor) -> None:
        """Register an actor (a new one, or a reopened one in place of its old object)."""
        with self._lock:
            self._actors[actor.id] = actor

    def add_unless_live(self, actor: Actor) -> Actor:
        """Register ``actor`` unless a live object of its actor is registered (then return that one)."""
        with self._lock:
            found = self._actors.get(actor.id)
            if found is not None and found.status in LIVE:
                return found
            self._actors[actor.id] = actor
            return actor

    def find(self, actor_id: uuid.UUID) -> Actor | None:
        with self._lock:
            return self._actors.get(actor_id)

    def all(self) -> list[Actor]:
        """Every actor, in the order they were first registered."""
        with self._lock:
            return list(self._actors.values())

    def count(self) -> int:
        with self._lock:
            return len(self._actors)

    def get(self, actor_id: str | uuid.UUID) -> Actor:
        """The actor, whatever its status; one the router does not hold is brought back by ``loader`` if it can.

        Raises:
            InvalidInputError: not an actor id. ActorNotFound: no such actor.
            TheaterError: the loader found the actor but could not bring it back (its record is unreadable).
        """
        key = parse_actor_id(actor_id)
        with self._lock:
            actor = self._actors.get(key)
            if actor is None and self.loader is not None:
                actor = self.loader(key)
                if actor is not None:
                    self._actors[key] = actor
        if actor is None:
            raise ActorNotFound(str(actor_id))
        return actor

    def discard(self, actor: Actor) -> None:
        """Forget ``actor`` (it runs on another node now: ``Theater.relinquish``); its mailbox is the caller's."""
        with self._lock:
            if self._actors.get(actor.id) is actor:
                del self._actors[actor.id]

    def evict(self, actor: Actor) -> bool:
        """Take a passivated actor out of the router and end its mailbox, unless something waits in it (or a
        place is kept for a message); True when it did. Called on the actor's thread."""
        with self._lock:
            if self._actors.get(actor.id) is not actor or not actor.passivated or actor.mailbox.waiting:
                return False
            del self._actors[actor.id]
            actor.evicted = True
            actor._close_mailbox()  # the thread ends after this operation
            return True

    @contextmanager
    def holding(self, actor_id: str | uuid.UUID) -> Iterator[Actor]:
        """The actor (as ``get``), not evicted while the block runs: queue an operation on it there."""
        with self._lock:
            yield self.get(actor_id)

    def current(self, target: Actor) -> Actor:
        """The object that stands for ``target``'s actor now (``target`` itself unless it was evicted)."""
        return self.get(target.id) if target.evicted else target

    def _submit(self, target: Actor, op: Callable[[Actor], Any], **options: Any) -> Future[Any]:
        """``submit`` ``op(actor)`` to the object that stands for ``target``'s actor now (under the lock)."""
        with self._lock:
            actor = self.current(target)
            return actor.submit(partial(op, actor), **options)

    def running(self, actor_id: str | uuid.UUID) -> Actor:
        """The actor, if it is running.

        Raises:
            InvalidInputError, ActorNotFound, ActorNotRunning.
        """
        actor = self.get(actor_id)
        if actor.status != ActorStatus.RUNNING:
            raise ActorNotRunning(str(actor.id), actor.status, actor.failure.detail if actor.failure else None)
        return actor

    def target(self, actor_id: str | uuid.UUID) -> ActorHost:
        """The running actor a guest's send or request names: one of this runtime (as ``running``), or, in a
        cluster, one that another node runs (a ``RemoteActor``, which ``deliver_send`` and ``deliver_request``
        forward).

        Raises:
            InvalidInputError, ActorNotFound, ActorNotRunning: as ``running``, when no other node runs it either.
        """
        try:
            return self.running(actor_id)
        except ActorNotFound:
            remote = self.remote(parse_actor_id(actor_id)) if self.remote is not None else None
            if remote is None:
                raise
            return cast(ActorHost, remote)

    # Message checks.

    def check_message(self, target: Endpoint, message: bytes, reservation: Reservation | None = None) -> None:
        """Refuse a message larger than an actor target takes; the place ``reservation`` kept is then released.

        Raises:
            MessageTooLarge: it is larger.
        """
        if not isinstance(target, Actor):
            return
        try:
            target.check_message(len(message))
        except MessageError:
            if reservation is not None:
                reservation.release()  # the place kept for it is not left taken
            raise

    def reserve(self, target: Endpoint, message: bytes) -> Reservation | None:
        """Check ``message`` and keep a place for it in an actor target's mailbox; None for a channel end.

        Raises:
            MessageTooLarge, MailboxFull, ActorNotRunning.
        """
        if not isinstance(target, Actor):
            return None
        self.check_message(target, message)
        with self._lock:
            return self.current(target).reserve(len(message))

    # Delivery.

    def deliver_send(self, target: ActorHost, message: bytes, reservation: Reservation | None = None,
                     envelope: Envelope | None = None) -> Future[None]:
        if isinstance(target, RemoteActor):
            return target.send(message)
        actor = _actor(target)
        self.check_message(actor, message, reservation)
        return self._submit(actor, lambda a: a.call(HANDLE_SEND, [message], envelope) and None, size=len(message),
                            reservation=reservation)

    def deliver_request(self, target: ActorHost, message: bytes, envelope: Envelope | None = None
                        ) -> Future[bytes]:
        if isinstance(target, RemoteActor):
            return target.request(message)
        actor = _actor(target)
        self.check_message(actor, message)
        reply: Future[bytes] = Future()

        def handle(actor: Actor) -> None:
            request_id = new_request_id()
            try:
                result = actor.call(HANDLE_REQUEST, [request_id, message], envelope)
            except BaseException as exc:
                actor.defer(Settle(reply, None, exc))
                return
            response = result.output[0][0]
            if response is None:
                actor.outstanding[request_id] = reply
            else:
                actor.defer(Settle(reply, response["some"]))

        try:
            with self._lock:
                actor = self.current(actor)
                actor.post(partial(handle, actor), partial(Settle, reply, None), size=len(message))
        except (MailboxFull, ActorNotRunning) as refused:  # the reply carries the refusal
            reply.set_exception(refused)
        return reply

    def deliver_channel_open(self, target: ActorHost, channel_id: str, initial: bytes,
                             envelope: Envelope | None = None) -> Future[ChannelAnswer]:
        if isinstance(target, RemoteActor):
            if target.open_channel is None:  # refused before anything is sent
                raise ActorNotRunning(str(target.id), "on another node", "channels between nodes are not supported")
            return target.open_channel(channel_id, initial)
        actor = _actor(target)
        self.check_message(actor, initial)

        def handle(actor: Actor) -> ChannelAnswer:
            result = actor.call(HANDLE_CHANNEL_OPEN, [channel_id, initial], envelope)
            accept = result.output[0][0]
            message = accept["message"]
            return ChannelAnswer(accepted=accept["accepted"], message=None if message is None else message["some"])

        return self._submit(actor, handle, size=len(initial))

    def deliver_channel_message(
        self, peer: Endpoint, channel_id: str, message: bytes, reservation: Reservation | None = None,
        envelope: Envelope | None = None,
    ) -> Future[None]:
        if not isinstance(peer, Actor):
            cast(ChannelEnd, peer).on_message(message)
            return _done()
        self.check_message(peer, message, reservation)
        return self._submit(peer, lambda a: a.call(HANDLE_CHANNEL_MESSAGE, [channel_id, message], envelope) and None,
                            size=len(message), reservation=reservation)

    def deliver_channel_close(self, peer: Endpoint, channel_id: str, envelope: Envelope | None = None
                              ) -> Future[None]:
        if not isinstance(peer, Actor):
            cast(ChannelEnd, peer).on_close()
            return _done()
        # Never refused for a full mailbox: it follows the channel's messages, which were accepted.
        return self._submit(peer, lambda a: a.call(HANDLE_CHANNEL_CLOSE, [channel_id], envelope) and None,
                            force=True)

    def wait_reply(self, reply: Future[Any], timeout: float | None, what: str, *, waiter: ActorHost | None = None
                   ) -> Any:
        """Wait for an actor's answer; see ``theater.host.Router.wait_reply``.

        Raises:
            ReplyTimeout: no answer within ``timeout`` (None: ``request_timeout``).
            ReplyAbandoned: ``waiter`` (the actor whose host function waits) is being stopped.
        """
        limit = self.request_timeout if timeout is None else timeout
        if waiter is not None and not waiter.wait_for(reply, limit) and waiter.stop_requested.is_set():
            raise ReplyAbandoned(what, str(waiter.id))
        try:
            return reply.result(timeout=0 if waiter is not None else limit)
        except FutureTimeout:
            raise ReplyTimeout(what, limit) from None

    def drop_actor(self, actor: Actor) -> None:
        """Close every channel of an actor that ended; ends outside every actor see the close."""
        for peer in self.channels.drop(actor):
            if not isinstance(peer, Actor):
                cast(ChannelEnd, peer).on_close()


_V4 = 0x4000 << 64  # the version nibble of a UUID's 128-bit integer
_V4_MASK = ~(0xF000 << 64)
_RFC4122 = 0x8000 << 48  # the variant bits
_RFC4122_MASK = ~(0xC000 << 48)


def new_request_id() -> str:
    """A fresh request id: a random version-4 UUID in its usual text form, as ``str(uuid.uuid4())`` gives.

    Drawn from ``random``, not ``os.urandom`` (a system call per request, during which the worker lets the GIL go):
    a request id only has to be unique among the outstanding requests of one actor, which are kept per actor and
    answered only by that actor's own guest (``respond-to-request``), so nothing relies on it being unguessable.
    """
    h = "%032x" % (getrandbits(128) & _V4_MASK & _RFC4122_MASK | _V4 | _RFC4122)
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _done() -> Future[None]:
    """A delivery to a channel end outside every actor: done as soon as it is handed over."""
    future: Future[None] = Future()
    future.set_result(None)
    return future


__all__ = ["RemoteActor", "Router"]
