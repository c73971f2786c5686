"""Search over every event of a home: by actor, type and time range, with a caller's predicate (text), paged.

Results come in time order: by ``timestamp_ms``, ties in commit order (feed position). The key ``(timestamp_ms,
feed position)`` is unique and total, so a cursor is the key of the last event looked at, and the next page starts
right after it: no duplicate and no gap, whatever is appended meanwhile (an event appended later with an older
timestamp than the cursor is not on later pages; a new search finds it).

The index (LMDB database ``search``) holds three keys per event, all ordered by time within their prefix:

- ``t`` || ts (8) || position (8) -> actor (16) || seq (8) || type: every event;
- ``a`` || actor (16) || ts (8) || position (8) -> seq (8) || type: one actor's events;
- ``y`` || type key || 0x00 || ts (8) || position (8) -> actor (16) || seq (8): one type's events;
- ``c`` || cause (32) || ts (8) || position (8) -> actor (16) || seq (8): the deliveries whose ``wasm/call`` names
  that sender's event as its ``cause`` (so a message is found from the event that sent it).

``meta/search-indexed`` is the feed position below which every event is indexed. The index is not written by
appends (the append path stays as it was): ``catch_up`` indexes the feed from there on, in chunks committed by
the writer like any write (``IndexChunk``), so it is kept up to date incrementally, one search at a time. Events
past the mark (appended since, or everything on a store opened read-only) are the *tail*: a search reads their
headers from the feed and merges them in, in the same snapshot, so it never misses one.

A search reads at most ``max_scan`` index entries and applies the predicate to at most ``max_decode`` events per
call; when a bound stops it first, the page says so (``partial``) and its cursor continues where it stopped.

Cursors are opaque: the key, bound to the query by a keyed blake3 MAC (the key lives in ``meta/search-key``), so a
cursor that was altered, or that belongs to another query, is refused with ``SearchCursorError``. A cursor only
says where a scan starts: whatever it says, a search returns only events that match its query.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import blake3
import lmdb

from store._commit import CommitContext, Pending
from store._index import FEED_VALUE_SIZE, feed_end
from store.codec import DIGEST_SIZE, UINT_WIDTH, Event, bytes_in_place, decode_stored, read_link, text_item
from store.errors import ChecksumMismatch, InvalidInputError, NotFoundError, StoreError
from store.recorder import materialise

if TYPE_CHECKING:
    from store.home import Store

WATERMARK_KEY = b"search-indexed"
CURSOR_KEY = b"search-key"
CHUNK = 8_192  # feed entries indexed per commit
MAX_TAIL = 200_000  # a read-only store's unindexed tail beyond this is refused, not read into memory
DEFAULT_LIMIT = 100
MAX_LIMIT = 1_000
MAX_SCAN = 200_000  # index entries one search call reads at most
MAX_DECODE = 20_000  # events one search call decodes for its predicate at most
MAX_TYPE_KEY = 200
_CURSOR_VERSION = 1
_CURSOR_DOMAIN = b"theater/search-cursor/v1\x00"
_TS_MAX = (1 << 64) - 1
WASM_CALL = "wasm/call"  # the delivery event whose ``cause`` is indexed (``replay.schema.WASM_CALL``)
_CAUSE_KEY = text_item("cause")
_CAUSE_TEXT = _CAUSE_KEY  # a body without these bytes holds no ``cause`` key


class SearchCursorError(InvalidInputError):
    """The cursor ``after`` is not one this home gave for this query (altered, truncated, or another query's)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        StoreError.__init__(self, f"invalid search cursor: {reason}; start again without 'after'")
        self.what, self.value, self.expected = "search cursor", None, "a cursor from a previous page of this search"


class SearchIndexBehind(StoreError):
    """A read-only store's search index lags the feed by ``behind`` events, more than a search reads in memory."""

    def __init__(self, path: str, behind: int) -> None:
        self.path = path
        self.behind = behind
        super().__init__(
            f"the search index of {path} is {behind} events behind (more than {MAX_TAIL}) and the store is open "
            "read-only: search through the server, or open the home for writing once to bring the index up to date"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """What to look for. Empty ``actors``/``types``: any. Types match exactly, or as a prefix when they end with
    ``*``. ``since_ms`` is inclusive, ``until_ms`` exclusive. ``text`` only identifies the predicate in cursors:
    the caller passes the predicate itself to ``search``.
    """

    actors: tuple[uuid.UUID, ...] = ()
    types: tuple[str, ...] = ()
    since_ms: int | None = None
    until_ms: int | None = None
    text: str | None = None
    cause: bytes | None = None  # only deliveries naming this sender's event

    def fingerprint(self) -> bytes:
        """A digest of the query, which a cursor is bound to."""
        canonical = json.dumps([sorted(str(a) for a in self.actors), sorted(self.types), self.since_ms,
                                self.until_ms, self.text, None if self.cause is None else self.cause.hex()],
                               separators=(",", ":"), ensure_ascii=True)
        return blake3.blake3(canonical.encode()).digest()


@dataclass(frozen=True, slots=True, kw_only=True)
class SearchPage:
    """One page of a search.

    Attributes:
        events: the matching events, in time order.
        next: the cursor of the next page; None when the search is complete.
        partial: a bound on the work of one call (``max_scan``, ``max_decode``) stopped it before ``limit``
            events were found; ``next`` continues it.
        scanned: index entries looked at by this call.
    """

    events: tuple[Event, ...]
    next: str | None
    partial: bool
    scanned: int


class _Hit(NamedTuple):
    ts: int
    pos: int
    actor: bytes
    seq: int
    type: str | None  # None: not known from the index entry (a ``y`` key)
    ok: bool = True  # it passes the query's actor, type and time filters (else it is only a step of the scan)
    cause: bytes | None = None  # a ``wasm/call``'s cause, when read (the feed's tail, a ``c`` key)


# Index keys.


def type_key(type_: str) -> bytes:
    """The bytes a type sorts by in the ``y`` keys: its UTF-8 with NUL as 0xFF (never in UTF-8), so the 0x00
    after it ends it unambiguously; a long type is cut and ends in a digest of the whole (0xFE, never in UTF-8)."""
    raw = type_.encode("utf-8", "surrogatepass").replace(b"\x00", b"\xff")
    if len(raw) > MAX_TYPE_KEY:
        raw = raw[:MAX_TYPE_KEY] + b"\xfe" + blake3.blake3(raw).digest()[:8]
    return raw


def _entries(hit: _Hit) -> list[tuple[bytes, bytes]]:
    tail = hit.ts.to_bytes(8, "big") + hit.pos.to_bytes(8, "big")
    seq_b = hit.seq.to_bytes(8, "big")
    type_ = hit.type or ""
    name = type_.encode("utf-8", "surrogatepass")
    entries = [(b"t" + tail, hit.actor + seq_b + name), (b"a" + hit.actor + tail, seq_b + name),
               (b"y" + type_key(type_) + b"\x00" + tail, hit.actor + seq_b)]
    if hit.cause is not None:
        entries.append((b"c" + hit.cause + tail, hit.actor + seq_b))
    return entries


def _header(value: bytes) -> tuple[int, str, bytes | None]:
    """(timestamp_ms, type, cause) of a stored event, read in place when its layout is the usual one; ``cause`` is
    a ``wasm/call``'s causal link, else None."""
    ts, type_, data_at = _ts_type(value)
    if type_ != WASM_CALL or _CAUSE_TEXT not in value:
        return ts, type_, None
    body = value[DIGEST_SIZE:]
    if data_at is not None:
        found = bytes_in_place(body, data_at, _CAUSE_KEY)
        if isinstance(found, bytes):
            return ts, type_, found
    _, fields = decode_stored(bytes(value), where="search index")
    data = fields[6]
    cause = data.get("cause") if isinstance(data, dict) else None
    return ts, type_, cause if isinstance(cause, bytes) and len(cause) == DIGEST_SIZE else None


def _ts_type(value: bytes) -> tuple[int, str, int | None]:
    """(timestamp_ms, type, offset of the data in the body or None) of a stored event."""
    body = value[DIGEST_SIZE:]
    link = read_link(body)
    if link is not None:
        _, seq, parent = link
        at = 3 + 16 + (UINT_WIDTH[body[19]] or 1) + (1 if parent is None else 34)
        width = UINT_WIDTH[body[at]] if at < len(body) else 0
        if width:
            ts = body[at] if width == 1 else int.from_bytes(body[at + 1: at + width], "big")
            at += width
            head = body[at] if at < len(body) else 0
            if 0x60 <= head <= 0x7B:
                size_width = UINT_WIDTH[head - 0x60]
                size = head - 0x60 if size_width == 1 else int.from_bytes(body[at + 1: at + size_width], "big")
                start = at + size_width
                try:
                    return ts, bytes(body[start: start + size]).decode("utf-8"), start + size
                except UnicodeDecodeError:
                    pass
    _, fields = decode_stored(bytes(value), where="search index")
    return fields[4], fields[5], None


def _where(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], pos: int, value: bytes) -> tuple[bytes, int]:
    """(actor, seq) of a feed entry (stores written before feed entries held the seq: from the hash index)."""
    if len(value) == FEED_VALUE_SIZE:
        return bytes(value[:16]), int.from_bytes(value[48:], "big")
    where = txn.get(bytes(value[16:48]), db=dbs["event_index"])
    if where is None:
        raise NotFoundError("event of feed position", str(pos))
    return bytes(where[:16]), int.from_bytes(where[16:], "big")


def _feed_rows(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], start: int, stop: int) -> Iterator[_Hit]:
    """The events at feed positions ``start <= p < stop`` with their time and type."""
    if start >= stop:
        return
    cursor = txn.cursor(db=dbs["feed"])
    if not cursor.set_range(start.to_bytes(8, "big")):
        return
    events = dbs["events"]
    for key, value in cursor:
        pos = int.from_bytes(key, "big")
        if pos >= stop:
            return
        actor, seq = _where(txn, dbs, pos, value)
        stored = txn.get(actor + seq.to_bytes(8, "big"), db=events)
        if stored is None:
            raise NotFoundError("event", f"{uuid.UUID(bytes=actor)} #{seq} (feed position {pos})")
        ts, type_, cause = _header(stored)
        yield _Hit(ts, pos, actor, seq, type_, True, cause)


def read_watermark(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int:
    """The feed position below which every event is in the search index (0 when there is no index)."""
    if "search" not in dbs:
        return 0
    raw = txn.get(WATERMARK_KEY, db=dbs["meta"])
    return 0 if raw is None else int.from_bytes(raw, "big")


class IndexChunk(Pending[int]):
    """Index the next ``limit`` feed entries past the mark, inside the writer's transaction; ``value`` is the mark
    after it. It reads the feed as committed before its batch, so two chunks never index one entry twice."""

    __slots__ = ("limit",)

    def __init__(self, limit: int = CHUNK) -> None:
        super().__init__(0)
        self.limit = limit

    def apply(self, txn: lmdb.Transaction[bytes], ctx: CommitContext) -> None:
        dbs = ctx.dbs
        start = read_watermark(txn, dbs)
        stop = min(feed_end(txn, dbs), start + self.limit)
        puts: list[tuple[bytes, bytes]] = []
        for hit in _feed_rows(txn, dbs, start, stop):
            puts.extend(_entries(hit))
        if puts:
            puts.sort()
            txn.cursor(db=dbs["search"]).putmulti(puts)
        if stop > start:
            txn.put(WATERMARK_KEY, stop.to_bytes(8, "big"), db=dbs["meta"])
            ctx.wrote = True
        if txn.get(CURSOR_KEY, db=dbs["meta"]) is None:
            txn.put(CURSOR_KEY, os.urandom(32), db=dbs["meta"])
            ctx.wrote = True
        self.value = stop


def catch_up(store: Store, *, chunk: int = CHUNK) -> int:
    """Index every event committed so far (on a store open for writing; a read-only one is left as it is) and
    return the mark: the feed position below which every event is indexed.

    Raises:
        StoreError: a chunk could not be committed (the disk is full): the index stays as it was, searches still
            read the rest from the feed.
    """
    env = store.env
    with env.read() as txn:
        mark, end = read_watermark(txn, env.dbs), feed_end(txn, env.dbs)
        keyed = txn.get(CURSOR_KEY, db=env.dbs["meta"]) is not None
    if store.readonly or "search" not in env.dbs:
        return mark
    while mark < end or not keyed:
        op = IndexChunk(chunk)
        store.submit([op])
        mark, keyed = op.wait(), True
    return mark


# Cursors.


def _cursor_key(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> bytes:
    key = txn.get(CURSOR_KEY, db=dbs["meta"])
    # A home never indexed (open read-only): a fixed key, so its cursors are checked against corruption and against
    # use with another query, though not against forgery; a cursor only says where a scan starts, so a forged one
    # can skip events of this query, never show events it does not match.
    return bytes(key) if key is not None else blake3.blake3(b"theater/search-unkeyed").digest()


def encode_cursor(key: bytes, query: Query, ts: int, pos: int) -> str:
    """The opaque cursor that continues ``query`` after the event at ``(ts, pos)``."""
    body = bytes((_CURSOR_VERSION,)) + ts.to_bytes(8, "big") + pos.to_bytes(8, "big")
    mac = blake3.blake3(_CURSOR_DOMAIN + body + query.fingerprint(), key=key).digest()[:16]
    return base64.urlsafe_b64encode(body + mac).decode("ascii").rstrip("=")


def decode_cursor(key: bytes, query: Query, cursor: str) -> tuple[int, int]:
    """The ``(ts, pos)`` a cursor continues after.

    Raises:
        SearchCursorError: not a cursor of this home for this query.
    """
    if not isinstance(cursor, str) or len(cursor) > 64:
        raise SearchCursorError("it is not a cursor this server gave")
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
    except (binascii.Error, ValueError):
        raise SearchCursorError("it is not base64url text") from None
    if len(raw) != 33 or raw[0] != _CURSOR_VERSION:
        raise SearchCursorError("it has the wrong length or version")
    body, mac = raw[:17], raw[17:]
    expected = blake3.blake3(_CURSOR_DOMAIN + body + query.fingerprint(), key=key).digest()[:16]
    if mac != expected:
        raise SearchCursorError("its check does not match: it was altered, or it belongs to another search")
    return int.from_bytes(body[1:9], "big"), int.from_bytes(body[9:17], "big")


# Searching.


class _Reader:
    """The candidate events of a query in one snapshot, in (ts, pos) order, after a cursor."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any], query: Query, after: tuple[int, int] | None
                 ) -> None:
        self.txn, self.dbs, self.query = txn, dbs, query
        self.low_ts = query.since_ms or 0
        self.low = (self.low_ts, 0) if after is None else max(after, (self.low_ts, 0))
        self.skip = after  # a key equal to the cursor is the last event of the previous page
        self.high_ts = _TS_MAX if query.until_ms is None else query.until_ms  # exclusive
        self.exact = tuple(t for t in query.types if not t.endswith("*"))
        self.prefixes = tuple(t[:-1] for t in query.types if t.endswith("*"))
        self.actor_set = frozenset(a.bytes for a in query.actors)

    def type_ok(self, type_: str) -> bool:
        return not self.query.types or type_ in self.exact or type_.startswith(self.prefixes)

    def static_ok(self, hit: _Hit) -> bool:
        """Everything but the predicate: actor, type, time range, after the cursor."""
        key = (hit.ts, hit.pos)
        if key < self.low or (self.skip is not None and key == self.skip) or hit.ts >= self.high_ts:
            return False
        if self.actor_set and hit.actor not in self.actor_set:
            return False
        if self.query.cause is not None and hit.cause != self.query.cause:
            return False
        return hit.type is None or self.type_ok(hit.type)

    def _range(self, prefix: bytes, parse: Callable[[bytes, bytes], _Hit]) -> Iterator[_Hit]:
        """Every index entry under ``prefix`` from the low key on while its time is below the high bound, marked
        ``ok`` when it passes the filters: the caller counts each one against its bound."""
        if self.low[0] >= self.high_ts:
            return
        cursor = self.txn.cursor(db=self.dbs["search"])
        start = prefix + self.low[0].to_bytes(8, "big") + self.low[1].to_bytes(8, "big")
        if not cursor.set_range(start):
            return
        size = len(prefix)
        for key, value in cursor:
            if key[:size] != prefix:
                return
            hit = parse(key[size:], value)
            if hit.ts >= self.high_ts:
                return
            yield hit if self.static_ok(hit) else hit._replace(ok=False)

    def _by_time(self) -> Iterator[_Hit]:
        def parse(rest: bytes, value: bytes) -> _Hit:
            return _Hit(int.from_bytes(rest[:8], "big"), int.from_bytes(rest[8:16], "big"), bytes(value[:16]),
                        int.from_bytes(value[16:24], "big"), bytes(value[24:]).decode("utf-8", "surrogatepass"))
        return self._range(b"t", parse)

    def _by_actor(self, actor: bytes) -> Iterator[_Hit]:
        def parse(rest: bytes, value: bytes) -> _Hit:
            return _Hit(int.from_bytes(rest[:8], "big"), int.from_bytes(rest[8:16], "big"), actor,
                        int.from_bytes(value[:8], "big"), bytes(value[8:]).decode("utf-8", "surrogatepass"))
        return self._range(b"a" + actor, parse)

    def _by_type(self, key: bytes) -> Iterator[_Hit]:
        def parse(rest: bytes, value: bytes) -> _Hit:
            return _Hit(int.from_bytes(rest[:8], "big"), int.from_bytes(rest[8:16], "big"), bytes(value[:16]),
                        int.from_bytes(value[16:24], "big"), None)
        return self._range(b"y" + key + b"\x00", parse)

    def _by_cause(self, cause: bytes) -> Iterator[_Hit]:
        def parse(rest: bytes, value: bytes) -> _Hit:
            return _Hit(int.from_bytes(rest[:8], "big"), int.from_bytes(rest[8:16], "big"), bytes(value[:16]),
                        int.from_bytes(value[16:24], "big"), WASM_CALL, True, cause)
        return self._range(b"c" + cause, parse)

    def _type_keys(self) -> list[bytes]:
        """The type keys of the query's types: exact ones, and every indexed type under each prefix."""
        keys = {type_key(t) for t in self.exact}
        cursor = self.txn.cursor(db=self.dbs["search"])
        for prefix in self.prefixes:
            start = b"y" + prefix.encode("utf-8", "surrogatepass").replace(b"\x00", b"\xff")
            probe = start
            while cursor.set_range(probe):
                key = bytes(cursor.key())
                if not key.startswith(start):
                    break
                name = key[1:-17]
                keys.add(name)
                probe = b"y" + name + b"\x01"
        return sorted(keys)

    def indexed(self) -> Iterator[_Hit]:
        """The index's candidates: from the cause's range, else the actors', else the types', else the time index."""
        if "search" not in self.dbs:
            return iter(())
        if self.query.cause is not None:
            return self._by_cause(self.query.cause)
        if self.actor_set:
            return heapq.merge(*(self._by_actor(a) for a in sorted(self.actor_set)))
        if self.query.types:
            return heapq.merge(*(self._by_type(k) for k in self._type_keys()))
        return self._by_time()

    def tail(self, mark: int, end: int) -> list[_Hit]:
        """The candidates past the index's mark, read from the feed, sorted."""
        hits = [hit for hit in _feed_rows(self.txn, self.dbs, mark, end) if self.static_ok(hit)]
        hits.sort()
        return hits


def search(store: Store, query: Query, *, match: Callable[[Event], bool] | None = None, limit: int = DEFAULT_LIMIT,
           after: str | None = None, max_scan: int = MAX_SCAN, max_decode: int = MAX_DECODE) -> SearchPage:
    """One page of the events that satisfy ``query`` and ``match``, in time order, after the cursor ``after``.

    Brings the index up to date first (``catch_up``) when the store is open for writing.

    Raises:
        InvalidInputError: ``limit`` is not between 1 and ``MAX_LIMIT``.
        SearchCursorError: ``after`` is not a cursor of this home for this query.
        SearchIndexBehind: a read-only store's index lags by more than ``MAX_TAIL`` events.
    """
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidInputError("limit", limit, f"between 1 and {MAX_LIMIT}")
    if max_scan < 1 or max_decode < 1:
        raise InvalidInputError("search bounds", (max_scan, max_decode), "at least 1 each")
    catch_up(store)
    env = store.env
    with env.read() as txn:
        dbs = env.dbs
        key = _cursor_key(txn, dbs)
        start = None if after is None else decode_cursor(key, query, after)
        mark, end = read_watermark(txn, dbs), feed_end(txn, dbs)
        if end - mark > MAX_TAIL:
            raise SearchIndexBehind(str(store.path), end - mark)
        reader = _Reader(txn, dbs, query, start)
        candidates = heapq.merge(reader.indexed(), reader.tail(mark, end))
        return _collect(txn, dbs, reader, candidates, key, match, limit, max_scan, max_decode)


def _collect(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], reader: _Reader, candidates: Iterator[_Hit],
             key: bytes, match: Callable[[Event], bool] | None, limit: int, max_scan: int, max_decode: int
             ) -> SearchPage:
    """Take candidates in order until the page is full, they run out, or a bound is reached; the cursor is the key
    of the last candidate looked at, so the next page starts right after it."""
    found: list[Event] = []
    scanned = decoded = 0
    last: tuple[int, int] | None = None
    query = reader.query
    for hit in candidates:
        if hit.ok and len(found) >= limit:  # another candidate: the page is full and the search goes on
            return SearchPage(events=tuple(found), next=_next(key, query, last), partial=False, scanned=scanned)
        if scanned >= max_scan or (match is not None and decoded >= max_decode):
            return SearchPage(events=tuple(found), next=_next(key, query, last), partial=True, scanned=scanned)
        scanned += 1
        last = (hit.ts, hit.pos)
        if not hit.ok:
            continue
        event = _event(txn, dbs, hit)
        if hit.type is None and not reader.type_ok(event.type):
            continue
        if match is not None:
            decoded += 1
            if not match(event):
                continue
        found.append(event)
    return SearchPage(events=tuple(found), next=None, partial=False, scanned=scanned)


def _next(key: bytes, query: Query, last: tuple[int, int] | None) -> str | None:
    # ``last`` is None only when the first candidate already ends the page: nothing was looked at (limit/bounds >= 1).
    return None if last is None else encode_cursor(key, query, last[0], last[1])


def _event(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], hit: _Hit) -> Event:
    where = f"actor {uuid.UUID(bytes=hit.actor)} seq {hit.seq}"
    value = txn.get(hit.actor + hit.seq.to_bytes(8, "big"), db=dbs["events"])
    if value is None:
        raise NotFoundError("event", where)
    blobs = dbs["blobs"]

    def blob(digest: bytes) -> bytes:
        data = txn.get(digest, db=blobs)
        if data is None:
            raise NotFoundError("blob", digest.hex())
        actual = blake3.blake3(data).digest()
        if actual != digest:
            raise ChecksumMismatch("blob", digest, actual)
        return bytes(data)

    return materialise(bytes(value), where, blob)


__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "IndexChunk",
    "Query",
    "SearchCursorError",
    "SearchIndexBehind",
    "SearchPage",
    "catch_up",
    "decode_cursor",
    "encode_cursor",
    "search",
    "type_key",
]
