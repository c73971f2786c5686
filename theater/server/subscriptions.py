"""Subscriptions to an actor's events: its history first if asked, then every new event as it is committed.

The cursor of a subscription is the chain's sequence number: history and live events come from the same reads
of the chain, one page after another, so there is no gap and no duplicate between them, and the order on the
stream is exactly the chain's order. The store calls ``CommitHub.on_commit`` (``theater.server.hub``) after every
commit; the hub wakes every waiting subscription, which reads its chain from where it stopped.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from store import Event, Store
from theater.server.hub import CommitHub
from theater.server.streams import HEARTBEAT_S, Sink
from theater.porcelain.forms import event_json
from theater.porcelain.records import type_matches
from theater.server.wire import query_flag, query_int

PAGE = 512


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """Which events of a chain a subscription sends.

    Attributes:
        start: the first sequence number.
        types: event types to send (a trailing ``*`` matches a prefix); empty: every type.
        limit: end the stream after this many events; None: never.
    """

    start: int
    types: tuple[str, ...] = ()
    limit: int | None = None


def read_page(store: Store, actor: uuid.UUID, start: int, stop: int) -> list[Event]:
    """The actor's events ``start <= seq < stop`` (a worker-thread read)."""
    return list(store.log.events(actor, start, stop))


Runner = Callable[..., Awaitable[Any]]


async def follow(hub: CommitHub, store: Store, run: Runner, actor: uuid.UUID, selection: Selection,
                 sink: Sink) -> None:
    """Send the selected events of ``actor``'s chain from ``selection.start`` on, in chain order, forever.

    Returns once ``selection.limit`` events were sent or the hub closes.
    """
    cursor, sent = selection.start, 0
    while True:
        seen = hub.version  # read before the head, so a commit in between wakes the wait below at once
        head = store.log.head(actor)
        if head.seq >= cursor:
            events = await run(read_page, store, actor, cursor, min(head.seq + 1, cursor + PAGE))
            cursor = events[-1].seq + 1 if events else head.seq + 1
            chosen = [e for e in events if type_matches(e.type, selection.types)]
            if selection.limit is not None:
                chosen = chosen[: selection.limit - sent]
            await sink.send_many("event", [(event_json(e), e.seq) for e in chosen])
            sent += len(chosen)
            if selection.limit is not None and sent >= selection.limit:
                return
            continue
        if not await hub.wait(seen, HEARTBEAT_S):
            return
        if hub.version == seen:
            await sink.ping()


def selection_of(request: web.Request, head_seq: int) -> Selection:
    """The subscription's selection from the query: ``history``, ``from``, ``type`` (repeatable), ``limit``.

    The start is ``from`` when given, else 0 with ``history``, else one past a ``Last-Event-ID`` header (an SSE
    client reconnecting), else the next event to be appended.
    """
    start = query_int(request, "from")
    if start is None and query_flag(request, "history"):
        start = 0
    last_id = request.headers.get("Last-Event-ID", "")
    if start is None and last_id.isdigit():
        start = int(last_id) + 1
    if start is None:
        start = head_seq + 1
    return Selection(
        start=start,
        types=tuple(request.query.getall("type", [])),
        limit=query_int(request, "limit", None, minimum=1),
    )


__all__ = ["PAGE", "Selection", "follow", "read_page", "selection_of"]
