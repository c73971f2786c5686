"""Channels: two-way message streams between two actors, or between a client of the API and an actor.

An end is an actor or a ``theater.host.ChannelEnd`` (an end outside every actor: ``QueueEnd`` here for the
embedding API, the server's ``ClientChannel`` for HTTP clients). Delivery to either kind goes through the router.
"""

from __future__ import annotations

import queue
import threading
import uuid

from theater.errors import ChannelClosed, ReceiveTimeout
from theater.host import Endpoint, Router

_CLOSED = object()


def _same(a: Endpoint, b: Endpoint) -> bool:
    """The same end: the same object, or two objects of the same actor (a passivated actor evicted from the router
    comes back as a new object, see ``theater.router``)."""
    if a is b:
        return True
    key = getattr(a, "id", None)
    return isinstance(key, uuid.UUID) and key == getattr(b, "id", None)


class QueueEnd:
    """A client's end of a channel in the embedding API: what the actor sends waits in a queue."""

    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue[object] = queue.SimpleQueue()

    def on_message(self, message: bytes) -> None:
        self._inbox.put(message)

    def on_close(self) -> None:
        self._inbox.put(_CLOSED)

    def get(self, timeout: float | None) -> bytes | None:
        """The next message; None once the channel is closed.

        Raises:
            queue.Empty: nothing arrived within ``timeout`` seconds.
        """
        item = self._inbox.get(timeout=timeout)
        return None if item is _CLOSED else item  # type: ignore[return-value]


class ChannelRegistry:
    """Open channels by id, each with its two ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ends: dict[str, tuple[Endpoint, Endpoint]] = {}

    def open(self, channel_id: str, opener: Endpoint, acceptor: Endpoint) -> None:
        end_of = getattr(acceptor, "channel_end", None)  # an actor another node runs: this node's end of the channel
        if callable(end_of):
            acceptor = end_of(channel_id)
        with self._lock:
            self._ends[channel_id] = (opener, acceptor)

    def peer(self, channel_id: str, me: Endpoint) -> Endpoint:
        """The other end of ``channel_id`` as seen from ``me``.

        Raises:
            ChannelClosed: no such open channel, or ``me`` is not one of its ends.
        """
        with self._lock:
            ends = self._ends.get(channel_id)
        if ends is None or not any(_same(end, me) for end in ends):
            raise ChannelClosed(channel_id)
        return ends[1] if _same(ends[0], me) else ends[0]

    def holds(self, end: Endpoint) -> bool:
        """True while ``end`` is an end of an open channel."""
        with self._lock:
            return any(_same(e, end) for ends in self._ends.values() for e in ends)

    def close(self, channel_id: str) -> None:
        with self._lock:
            self._ends.pop(channel_id, None)

    def drop(self, end: Endpoint) -> list[Endpoint]:
        """Forget every channel ``end`` is an end of (its actor ended) and return their other ends."""
        with self._lock:
            dropped = [(cid, ends) for cid, ends in self._ends.items() if any(_same(e, end) for e in ends)]
            for cid, _ in dropped:
                del self._ends[cid]
        return [ends[1] if _same(ends[0], end) else ends[0] for _, ends in dropped]


class Channel:
    """A client's open channel to an actor (from ``Theater.open_channel``)."""

    def __init__(self, router: Router, channel_id: str, end: QueueEnd, welcome: bytes | None) -> None:
        self._router = router
        self.id = channel_id
        self.welcome = welcome
        self._end = end

    def send(self, message: bytes) -> None:
        """Deliver a message to the actor and return once it has handled it durably.

        Raises:
            ChannelClosed: the channel is closed. MessageTooLarge, MailboxFull: the actor cannot take it.
        """
        peer = self._router.channels.peer(self.id, self._end)
        self._router.deliver_channel_message(peer, self.id, message).result()

    def receive(self, timeout: float | None = None) -> bytes | None:
        """The next message the actor sent on this channel; None once the channel is closed.

        Raises:
            ReceiveTimeout: nothing arrived within ``timeout`` seconds.
        """
        try:
            return self._end.get(timeout)
        except queue.Empty:
            raise ReceiveTimeout(self.id, timeout) from None

    def close(self) -> None:
        """Close the channel; the actor's ``handle-channel-close`` runs."""
        try:
            peer = self._router.channels.peer(self.id, self._end)
        except ChannelClosed:
            return
        self._router.channels.close(self.id)
        self._router.deliver_channel_close(peer, self.id).result()
