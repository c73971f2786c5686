"""The commit hub: the store's writer thread tells the event loop that something was committed."""

from __future__ import annotations

import asyncio


class CommitHub:
    """Wakes the event loop's waiters after store commits; many commits in a burst make one wake-up."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._scheduled = False
        self.closed = False
        self.version = 0
        self._changed = asyncio.Event()

    def on_commit(self) -> None:
        """Called by the store's writer thread after each commit."""
        if self._scheduled or self.closed:
            return
        self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._wake)
        except RuntimeError:  # the loop is closed: the server is going away
            pass

    def _wake(self) -> None:
        self._scheduled = False
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def wait(self, seen: int, timeout: float) -> bool:
        """Wait until a commit after version ``seen`` (or ``timeout``); False once the hub is closed."""
        if self.version == seen and not self.closed:
            try:
                await asyncio.wait_for(self._changed.wait(), timeout)
            except TimeoutError:
                pass
        return not self.closed

    def close(self) -> None:
        """Wake every waiter for the last time (on the loop's thread)."""
        self.closed = True
        self._wake()


__all__ = ["CommitHub"]
