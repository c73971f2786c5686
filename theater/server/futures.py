"""Waiting on the event loop for the runtime's futures (``concurrent.futures.Future``) without holding a thread."""

from __future__ import annotations

import asyncio
from concurrent.futures import Future
from typing import Any, TypeVar

T = TypeVar("T")


async def settled(future: Future[T], timeout: float | None = None) -> T:
    """The outcome of a runtime future.

    The wait is shielded: a client that goes away or times out never cancels what the runtime does.

    Raises:
        TimeoutError: no outcome within ``timeout`` seconds (the runtime's operation goes on).
        Whatever the future holds.
    """
    inner = asyncio.wrap_future(future)
    inner.add_done_callback(_retrieve)
    return await asyncio.wait_for(asyncio.shield(inner), timeout)


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a future's outcome as seen (nobody may wait for it any more)."""
    if not future.cancelled():
        future.exception()


__all__ = ["settled"]
