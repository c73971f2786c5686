"""Handler ``message-server``: send, request (with deferred responses) and channels between actors.

Ordering: effects of a call (a message sent, a response given, a channel message) are released only once the
events that produced them are durable. A ``request`` or ``open-channel`` first releases what the caller did so far,
so a message sent before a request to the same actor arrives before it.

Waiting: ``request`` and ``open-channel`` wait for the other actor's answer holding the caller's worker thread (the
guest's stack is on it); the scheduler keeps other workers running meanwhile (``theater.scheduler.blocking``), or
answers ``err`` (``ResourceExhausted``) before sending anything when no thread is left to wait on.

Bounds: ``send`` and ``send-on-channel`` keep a place in the receiver's mailbox before they answer ``ok``; when
the mailbox is full they answer ``err`` ("mailbox of actor ... is full ...") and nothing is sent. A message
accepted this way is never refused later for lack of room.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from replay.errors import GuestFault
from store.errors import InvalidInputError, StoreError
from theater.envelope import Envelope
from theater.errors import ChannelClosed, ChannelRejected, RequestCancelled, RuntimeFault
from theater.handlers._base import Handler
from theater.host import ActorHost, Router
from theater.mailbox import Reservation
from theater.release import settle
from theater.scheduler import blocking


class MessageServerHandler(Handler):
    """The ``message-server-host`` interface."""

    type = "message-server"
    interface = "theater:simple/message-server-host"

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "send": self.send,
            "request": self.request,
            "open-channel": self.open_channel,
            "send-on-channel": self.send_on_channel,
            "close-channel": self.close_channel,
            "list-outstanding-requests": self.list_outstanding_requests,
            "respond-to-request": self.respond_to_request,
            "cancel-request": self.cancel_request,
        }

    @property
    def router(self) -> Router:
        return self.actor.router

    def _target(self, actor_id: str, *, remote: bool = False) -> ActorHost:
        try:
            return self.router.target(actor_id) if remote else self.router.running(actor_id)
        except (InvalidInputError, RuntimeFault) as exc:
            raise _Refused(str(exc)) from None

    def send(self, actor_id: str, msg: bytes) -> dict[str, Any]:
        try:
            target = self._target(actor_id, remote=True)
            place = self.router.reserve(target, msg)
        except (_Refused, RuntimeFault) as exc:
            return {"err": str(exc)}
        router = self.router
        envelope = self._stamped()

        def deliver(failed: BaseException | None) -> None:
            if failed is not None:
                _release(place)
            else:
                router.deliver_send(target, msg, place, envelope)

        self.actor.defer(deliver)
        return {"ok": None}

    def request(self, actor_id: str, msg: bytes) -> dict[str, Any]:
        try:
            target = self._target(actor_id, remote=True)
            if target is self.actor:
                return {"err": f"request from actor {self.actor.id} to itself would deadlock"}
            self.actor.flush_committed()
            with blocking():  # with no thread left to wait on: ResourceExhausted before anything is sent
                reply = self.router.deliver_request(target, msg, self._before())
                return {"ok": self.router.wait_reply(reply, None, f"request to {actor_id}", waiter=self.actor)}
        except (_Refused, RuntimeFault, GuestFault, StoreError) as exc:
            return {"err": str(exc)}

    def open_channel(self, actor_id: str, initial: bytes) -> dict[str, Any]:
        try:
            target = self._target(actor_id, remote=True)
            if target is self.actor:
                return {"err": "an actor cannot open a channel to itself"}
            self.actor.flush_committed()
            channel_id = str(uuid.uuid4())
            with blocking():  # with no thread left to wait on: ResourceExhausted before anything is sent
                answer = self.router.wait_reply(
                    self.router.deliver_channel_open(target, channel_id, initial, self._before()), None,
                    f"open-channel to {actor_id}", waiter=self.actor,
                )
        except (_Refused, RuntimeFault, GuestFault, StoreError) as exc:
            return {"err": str(exc)}
        if not answer.accepted:
            return {"err": str(ChannelRejected(actor_id, answer.message))}
        self.router.channels.open(channel_id, self.actor, target)
        return {"ok": channel_id}

    def send_on_channel(self, channel_id: str, msg: bytes) -> dict[str, Any]:
        try:
            peer = self.router.channels.peer(channel_id, self.actor)
            place = self.router.reserve(peer, msg)
        except RuntimeFault as exc:
            return {"err": str(exc)}
        router = self.router
        envelope = self._stamped()

        def deliver(failed: BaseException | None) -> None:
            if failed is not None:
                _release(place)
            else:
                router.deliver_channel_message(peer, channel_id, msg, place, envelope)

        self.actor.defer(deliver)
        return {"ok": None}

    def close_channel(self, channel_id: str) -> dict[str, Any]:
        try:
            peer = self.router.channels.peer(channel_id, self.actor)
        except ChannelClosed as exc:
            return {"err": str(exc)}
        self.router.channels.close(channel_id)
        router = self.router
        envelope = self._stamped()

        def deliver(failed: BaseException | None) -> None:
            if failed is None:
                router.deliver_channel_close(peer, channel_id, envelope)

        self.actor.defer(deliver)
        return {"ok": None}

    def _stamped(self) -> Envelope:
        """The envelope of a message released after this host call: its cause is this call's own event, which
        the boundary appends when the call returns (the message is delivered once that event is durable)."""
        envelope = self.actor.envelope()
        self.actor.tape.stamp_next(envelope)
        return envelope

    def _before(self) -> Envelope:
        """The envelope of a request or channel opened now: this call's own event is appended only with the
        answer, so its cause is the event before it (what the sender's chain holds now, made durable by
        ``flush_committed``)."""
        envelope = self.actor.envelope()
        envelope.cause = self.actor.tape.head.hash
        return envelope

    def list_outstanding_requests(self) -> list[str]:
        return sorted(self.actor.outstanding)

    def respond_to_request(self, request_id: str, response: bytes) -> dict[str, Any]:
        reply = self.actor.outstanding.pop(request_id, None)
        if reply is None:
            return {"err": f"no outstanding request {request_id}"}
        self.actor.defer(lambda failed: settle(reply, response, None, failed))
        return {"ok": None}

    def cancel_request(self, request_id: str) -> dict[str, Any]:
        reply = self.actor.outstanding.pop(request_id, None)
        if reply is None:
            return {"err": f"no outstanding request {request_id}"}
        error = RequestCancelled(request_id, str(self.actor.id))
        self.actor.defer(lambda failed: settle(reply, None, error, failed))
        return {"ok": None}


class _Refused(Exception):
    pass


def _release(place: Reservation | None) -> None:
    if place is not None:
        place.release()
