"""Channels: two-way message streams between two actors, or between a client of the API and an actor."""

from __future__ import annotations

import queue
import threading
import uuid
from typing import TYPE_CHECKING, Any, Union

from theater.errors import MessageError

if TYPE_CHECKING:
    from theater.actor import Actor
    from theater.runtime import Theater

CLOSED = object()


class ClientEnd:
    """The API client's end of a channel: what the actor sends arrives in ``inbox``."""

    def __init__(self) -> None:
        self.inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()


Endpoint = Union["Actor", ClientEnd]


class ChannelRegistry:
    """Open channels by id, each with its two ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ends: dict[str, tuple[Endpoint, Endpoint]] = {}

    def open(self, channel_id: str, opener: Endpoint, acceptor: Endpoint) -> None:
        with self._lock:
            self._ends[channel_id] = (opener, acceptor)

    def peer(self, channel_id: str, me: Endpoint) -> Endpoint:
        """The other end of ``channel_id`` as seen from ``me``.

        Raises:
            MessageError: no such open channel, or ``me`` is not one of its ends.
        """
        with self._lock:
            ends = self._ends.get(channel_id)
        if ends is None or me not in ends:
            raise MessageError(f"no open channel {channel_id}")
        return ends[1] if ends[0] is me else ends[0]

    def close(self, channel_id: str) -> None:
        with self._lock:
            self._ends.pop(channel_id, None)

    def drop_actor(self, actor_id: uuid.UUID) -> None:
        """Close every channel of an actor that ended; client ends see the channel close."""
        with self._lock:
            dropped = [
                (cid, ends) for cid, ends in self._ends.items() if any(getattr(e, "id", None) == actor_id for e in ends)
            ]
            for cid, _ in dropped:
                del self._ends[cid]
        for _, ends in dropped:
            for end in ends:
                if isinstance(end, ClientEnd):
                    end.inbox.put(CLOSED)


class Channel:
    """A client's open channel to an actor (from ``Theater.open_channel``)."""

    def __init__(self, theater: Theater, channel_id: str, end: ClientEnd, welcome: bytes | None) -> None:
        self.theater = theater
        self.id = channel_id
        self.welcome = welcome
        self._end = end

    def send(self, message: bytes) -> None:
        """Deliver a message to the actor and return once it has handled it durably."""
        peer = self.theater.channels.peer(self.id, self._end)
        self.theater.deliver_channel_message(peer, self.id, message).result()  # type: ignore[arg-type]

    def receive(self, timeout: float | None = None) -> bytes | None:
        """The next message the actor sent on this channel; None once the channel is closed.

        Raises:
            MessageError: nothing arrived within ``timeout`` seconds.
        """
        try:
            item = self._end.inbox.get(timeout=timeout)
        except queue.Empty:
            raise MessageError(f"no message on channel {self.id} within {timeout} s") from None
        return None if item is CLOSED else item

    def close(self) -> None:
        """Close the channel; the actor's ``handle-channel-close`` runs."""
        try:
            peer = self.theater.channels.peer(self.id, self._end)
        except MessageError:
            return
        self.theater.channels.close(self.id)
        self.theater.deliver_channel_close(peer, self.id).result()  # type: ignore[arg-type]
