"""Event search across a home: by actor, type, time range and text in the decoded data, paged
(``store.search`` does the reading; this module parses what a user types and matches the text).

The text matches, case-insensitively, the event's type followed by its data as the CLI shows it
(``theater.porcelain.forms.readable_text``: host call names, parameters and results, printable bytes as text,
other bytes as ``hex:...``).
"""

from __future__ import annotations

import datetime
import math
import uuid
from collections.abc import Callable

from store import Event, Store
from store.errors import InvalidInputError
from store.search import DEFAULT_LIMIT, MAX_LIMIT, Query, SearchPage, search
from theater.porcelain.actors import resolve_actor
from theater.porcelain.forms import readable_text

MAX_TEXT = 1_000  # characters of a text query

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "MAX_TEXT", "parse_time_ms", "search_events", "text_matcher"]


def parse_time_ms(text: str, what: str) -> int:
    """A point in time as the first millisecond at or after it: ISO-8601 (``2026-12-02T03:00:00Z``; no zone means
    UTC) or an integer of nanoseconds since the epoch.

    Raises:
        InvalidInputError: neither.
    """
    text = text.strip()
    if text.isdigit():
        return math.ceil(int(text) / 1_000_000) if len(text) <= 30 else _bad(what, text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        return _bad(what, text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    delta = moment - datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
    micros = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    return max(0, math.ceil(micros / 1000))


def _digest(text: str) -> bytes:
    try:
        digest = bytes.fromhex(text)
    except ValueError:
        digest = b""
    if len(digest) != 32:
        raise InvalidInputError("cause", text[:80], "an event hash: 64 hex digits")
    return digest


def _bad(what: str, text: str) -> int:
    raise InvalidInputError(what, text[:80], "an ISO-8601 time (2026-12-02T03:00:00Z) or nanoseconds since the epoch")


def text_matcher(text: str) -> Callable[[Event], bool]:
    """A predicate: the text occurs, ignoring case, in the event's type or its data as the CLI shows it."""
    needle = text.casefold()

    def match(event: Event) -> bool:
        return needle in event.type.casefold() or needle in readable_text(event.data).casefold()

    return match


def search_events(store: Store, *, actors: tuple[str, ...] = (), types: tuple[str, ...] = (),
                  since: str | None = None, until: str | None = None, text: str | None = None,
                  cause: str | None = None, limit: int = DEFAULT_LIMIT, after: str | None = None) -> SearchPage:
    """One page of the home's events that match every filter given, in time order (``store.search``).

    ``actors`` are ids or unique prefixes; ``types`` exact or ``prefix*``; ``since`` (inclusive) and ``until``
    (exclusive) as ``parse_time_ms`` reads them; ``text`` as ``text_matcher``; ``cause`` the hash (64 hex digits)
    of a sender's event: only the deliveries that name it; ``after`` a previous page's ``next``.

    Raises:
        InvalidInputError: a malformed filter, a limit out of range, or a text over ``MAX_TEXT`` characters.
        ActorNotFound, AmbiguousPrefixError: an actor filter names no recorded actor, or several.
        SearchCursorError: ``after`` was altered or belongs to another search.
    """
    ids: tuple[uuid.UUID, ...] = tuple(sorted({resolve_actor(store, a) for a in actors}))
    if text is not None and len(text) > MAX_TEXT:
        raise InvalidInputError("search text", text[:40] + "...", f"at most {MAX_TEXT} characters")
    if any(not t for t in types):
        raise InvalidInputError("type", "", "a non-empty event type, or a prefix ending in *")
    query = Query(actors=ids, types=tuple(sorted(set(types))),
                  since_ms=None if since is None else parse_time_ms(since, "since"),
                  until_ms=None if until is None else parse_time_ms(until, "until"),
                  text=text or None, cause=None if cause is None else _digest(cause))
    match = text_matcher(text) if text else None
    return search(store, query, match=match, limit=limit, after=after)
