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
from theater.errors import ChannelNotFound, ChannelRejected
from theater.host import Endpoint
from theater.router import Router
from theater.server.futures import settled


class ClientChannel:
    """The server's end of one client channel (a ``theater.host.ChannelEnd``): the actor's messages and its close
    arrive through ``on_message`` and ``on_close``, on the runtime's threads."""

    def __init__(self, channel_id: str, actor: uuid.UUID, loop: asyncio.AbstractEventLoop) -> None:
        self.id = channel_id
        self.actor = actor
        self.welcome: bytes | None = None
        self.closed = False
        self._loop = loop
        self._lock = threading.Lock()
        self._messages: deque[tuple[int, bytes]] = deque()
        self._next = 0
        self._changed = asyncio.Event()

    def on_message(self, message: bytes) -> None:
        """Take a message from the actor."""
        with self._lock:
            self._messages.append((self._next, message))
            self._next += 1
        self._notify()

    def on_close(self) -> None:
        """The actor closed the channel (or ended)."""
        with self._lock:
            self.closed = True
        self._notify()

    def _notify(self) -> None:
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

    def __init__(self, router: Router, loop: asyncio.AbstractEventLoop) -> None:
        self.router = router
        self.loop = loop
        self._channels: dict[str, ClientChannel] = {}

    async def open(self, actor_id: uuid.UUID, initial: bytes, timeout: float) -> ClientChannel:
        """Open a channel to a running actor, as ``Theater.open_channel`` does, with a server-side end.

        Raises:
            ActorNotFound, ActorNotRunning: no such actor, or it is not running.
            ChannelRejected: the actor rejected the channel.
            TimeoutError: the actor did not answer within ``timeout`` seconds.
        """
        actor = self.router.running(actor_id)
        channel = ClientChannel(str(uuid.uuid4()), actor.id, self.loop)
        opening = self.router.deliver_channel_open(actor, channel.id, initial)
        answer = await settled(opening, timeout)
        if not answer.accepted:
            raise ChannelRejected(str(actor.id), answer.message)
        channel.welcome = answer.message
        self.router.channels.open(channel.id, channel, actor)
        self._channels[channel.id] = channel
        return channel

    def get(self, channel_id: str) -> ClientChannel:
        """The open channel ``channel_id``.

        Raises:
            ChannelNotFound: no such channel.
        """
        channel = self._channels.get(channel_id)
        if channel is None:
            raise ChannelNotFound(channel_id)
        return channel

    def peer(self, channel: ClientChannel) -> Endpoint:
        """The actor at the other end.

        Raises:
            ChannelClosed: the channel is closed.
        """
        return self.router.channels.peer(channel.id, channel)

    def forget(self, channel: ClientChannel) -> None:
        """Drop a channel the client is done with."""
        self._channels.pop(channel.id, None)

    def close_all(self) -> None:
        """Forget every channel (the server is stopping)."""
        for channel in list(self._channels.values()):
            self.router.channels.close(channel.id)
        self._channels.clear()


__all__ = ["ChannelTable", "ClientChannel"]
