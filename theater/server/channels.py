"""Channels between API clients and actors.

A client opens a channel and gets its id; it sends on it and closes it by id in later requests. What the actor
sends to the client is kept, numbered from 0, until the client has read it: by polling with ``after`` (every
message up to ``after`` is then dropped) or on a stream (a message is dropped once written). When the actor
closes the channel (or stops), the client sees ``closed``; a closed channel whose messages were all read is
forgotten.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import deque
from typing import Any

from theater.channels import CLOSED, ClientEnd
from theater.errors import MessageError
from theater.runtime import Theater
from theater.server.futures import settled


class ClientChannel(ClientEnd):
    """The server's end of one client channel; the actor's messages arrive through ``inbox.put`` (any thread)."""

    def __init__(self, channel_id: str, actor: uuid.UUID, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.id = channel_id
        self.actor = actor
        self.welcome: bytes | None = None
        self.inbox = self  # type: ignore[assignment]  # the handler calls ``peer.inbox.put(message)``
        self.closed = False
        self._loop = loop
        self._lock = threading.Lock()
        self._messages: deque[tuple[int, bytes]] = deque()
        self._next = 0
        self._changed = asyncio.Event()

    def put(self, item: Any) -> None:
        """Take a message from the actor (or ``CLOSED``); called on the runtime's threads."""
        with self._lock:
            if item is CLOSED:
                self.closed = True
            else:
                self._messages.append((self._next, item))
                self._next += 1
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: the server is going away
            pass

    def _wake(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    def take(self, after: int) -> tuple[list[tuple[int, bytes]], bool]:
        """Drop the messages numbered ``<= after``; return the rest and whether the channel is closed."""
        with self._lock:
            while self._messages and self._messages[0][0] <= after:
                self._messages.popleft()
            return list(self._messages), self.closed

    async def wait(self, after: int, timeout: float) -> tuple[list[tuple[int, bytes]], bool]:
        """Like ``take``, but wait up to ``timeout`` seconds for a message (or the close) when there is none."""
        messages, closed = self.take(after)
        if messages or closed or timeout <= 0:
            return messages, closed
        changed = self._changed  # a later ``put`` sets this one: both run on the loop's thread in turn
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            pass
        return self.take(after)


class ChannelTable:
    """The open client channels of one server, by id."""

    def __init__(self, theater: Theater, loop: asyncio.AbstractEventLoop) -> None:
        self.theater = theater
        self.loop = loop
        self._channels: dict[str, ClientChannel] = {}

    async def open(self, actor_id: uuid.UUID, initial: bytes, timeout: float) -> ClientChannel:
        """Open a channel to a running actor, as ``Theater.open_channel`` does, with a server-side end.

        Raises:
            ActorNotFound, ActorNotRunning: no such actor, or it is not running.
            MessageError: the actor rejected the channel.
            TimeoutError: the actor did not answer within ``timeout`` seconds.
        """
        actor = self.theater.running(actor_id)
        channel = ClientChannel(str(uuid.uuid4()), actor.id, self.loop)
        opening = self.theater.deliver_channel_open(actor, channel.id, initial)
        accepted = await settled(opening, timeout)
        if not accepted["accepted"]:
            message = accepted["message"]
            raise MessageError(f"actor {actor.id} rejected the channel" + (f": {message!r}" if message else ""))
        channel.welcome = accepted["message"]
        self.theater.channels.open(channel.id, channel, actor)
        self._channels[channel.id] = channel
        return channel

    def get(self, channel_id: str) -> ClientChannel:
        """The open channel ``channel_id``.

        Raises:
            MessageError: no such channel (answered with 404 by the routes).
        """
        channel = self._channels.get(channel_id)
        if channel is None:
            raise MessageError(f"no open channel {channel_id}")
        return channel

    def peer(self, channel: ClientChannel) -> Any:
        """The actor at the other end.

        Raises:
            MessageError: the channel is closed.
        """
        return self.theater.channels.peer(channel.id, channel)

    def forget(self, channel: ClientChannel) -> None:
        """Drop a channel the client is done with."""
        self._channels.pop(channel.id, None)

    def close_all(self) -> None:
        """Forget every channel (the server is stopping)."""
        for channel in list(self._channels.values()):
            self.theater.channels.close(channel.id)
        self._channels.clear()


__all__ = ["ChannelTable", "ClientChannel"]
