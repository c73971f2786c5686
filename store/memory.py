"""An in-memory recorder: the chain rules of ``store.recorder`` kept in dictionaries, for tests and tools.

Nothing is durable: an append is committed when ``append_async`` returns (its ``wait()`` returns at once, or
raises the error that refused it). Spilled payloads go to the log's own blob dictionary. Safe to share between
threads: one lock orders every append, so the feed is the order appends were applied in.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from store._prefix import parse_hex_prefix, pick_one
from store.codec import DEFAULT_SPILL_THRESHOLD, EncodedEvent, Event
from store.errors import ChecksumMismatch, NotFoundError, StoreError
from store.recorder import (
    EMPTY,
    FeedEntry,
    Head,
    accept_stored,
    build_event,
    check_digest,
    event_key,
    materialise,
    stale_head,
)


class MemoryAppend:
    """An append to a ``MemoryLog``: applied (or refused) already."""

    __slots__ = ("event", "_error")

    def __init__(self, event: Event, error: StoreError | None) -> None:
        self.event = event
        self._error = error

    def done(self) -> bool:
        return True

    def wait(self, timeout: float | None = None) -> Event:
        """Return the event, or raise the error that refused it (``StaleHeadError``)."""
        if self._error is not None:
            raise self._error
        return self.event


class MemoryLog:
    """Every actor's chain in memory: a ``store.recorder.Recorder``.

    Args:
        spill_threshold: byte strings in event data longer than this go to the log's blob dictionary.
    """

    def __init__(self, *, spill_threshold: int = DEFAULT_SPILL_THRESHOLD) -> None:
        self._spill_threshold = spill_threshold
        self._lock = threading.Lock()
        self._chains: dict[uuid.UUID, list[bytes]] = {}  # actor -> stored values (hash || body), by seq
        self._heads: dict[uuid.UUID, Head] = {}
        self._index: dict[bytes, bytes] = {}  # hash -> location (see ``event_key``)
        self._feed: list[FeedEntry] = []
        self._blobs: dict[bytes, bytes] = {}

    # Appending.

    def append(
        self, actor: uuid.UUID, type: str, data: object, *, expected: Head, timestamp_ms: int | None = None
    ) -> Event:
        return self.append_async(actor, type, data, expected=expected, timestamp_ms=timestamp_ms).wait()

    def append_async(
        self, actor: uuid.UUID, type: str, data: object, *, expected: Head, timestamp_ms: int | None = None
    ) -> MemoryAppend:
        event, encoded = build_event(actor, type, data, expected, timestamp_ms, self._spill_threshold)
        return self._apply(event, encoded, expected)

    def append_stored(self, actor: uuid.UUID, value: bytes, *, expected: Head) -> MemoryAppend:
        event, encoded = accept_stored(actor, value, expected)
        return self._apply(event, encoded, expected)

    def _apply(self, event: Event, encoded: EncodedEvent, expected: Head) -> MemoryAppend:
        actor = event.actor
        with self._lock:
            # Check the parent is the current head (compare-and-append).
            current = self._heads.get(actor, EMPTY)
            if current != expected:
                return MemoryAppend(event, stale_head(actor, expected, current))
            for digest, payload in encoded.spilled:
                self._blobs.setdefault(digest, payload)
            self._chains.setdefault(actor, []).append(encoded.hash + encoded.body)
            self._index[encoded.hash] = event_key(actor, event.seq)
            self._feed.append(FeedEntry(position=len(self._feed), actor=actor, hash=encoded.hash, seq=event.seq))
            self._heads[actor] = Head(event.seq, encoded.hash)
        return MemoryAppend(event, None)

    # Reading.

    def head(self, actor: uuid.UUID) -> Head:
        return self._heads.get(actor, EMPTY)

    def at(self, actor: uuid.UUID, seq: int) -> Event:
        chain = self._chains.get(actor, [])
        if not 0 <= seq < len(chain):
            raise NotFoundError("event", f"{actor} #{seq}")
        return materialise(chain[seq], f"actor {actor} seq {seq}", self._blob)

    def get(self, digest: bytes) -> Event:
        actor, seq = self.locate(digest)
        event = self.at(actor, seq)
        if event.hash != digest:
            # Check on read: the index must lead to the event with this hash.
            raise ChecksumMismatch("event index", digest, event.hash)
        return event

    def locate(self, digest: bytes) -> tuple[uuid.UUID, int]:
        where = self._index.get(check_digest(digest))
        if where is None:
            raise NotFoundError("event", digest.hex())
        return uuid.UUID(bytes=where[:16]), int.from_bytes(where[16:], "big")

    def resolve(self, prefix: str) -> bytes:
        _, text = parse_hex_prefix(prefix, "event")
        with self._lock:
            hashes = list(self._index)
        return pick_one("event", text, sorted(h.hex() for h in hashes if h.hex().startswith(text)))

    def events(self, actor: uuid.UUID, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        for seq, value in self.raw_events(actor, start, stop):
            yield materialise(value, f"actor {actor} seq {seq}", self._blob)

    def raw_events(self, actor: uuid.UUID, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        chain = self._chains.get(actor, [])
        end = len(chain) if stop is None else min(stop, len(chain))
        return iter([(seq, chain[seq]) for seq in range(max(start, 0), end)])

    def actors(self) -> list[tuple[uuid.UUID, Head]]:
        with self._lock:
            heads = list(self._heads.items())
        return sorted(heads, key=lambda item: item[0].bytes)

    def actors_page(self, after: uuid.UUID | None, limit: int) -> list[tuple[uuid.UUID, Head]]:
        start = b"" if after is None else after.bytes
        return [item for item in self.actors() if item[0].bytes > start][:limit]

    def feed(self, start: int = 0, limit: int | None = None) -> list[FeedEntry]:
        with self._lock:
            end = len(self._feed) if limit is None else min(len(self._feed), start + limit)
            return self._feed[start:end]

    def feed_end(self) -> int:
        return len(self._feed)

    @contextmanager
    def snapshot(self) -> Iterator[_Snapshot]:
        with self._lock:
            lengths = {actor: len(chain) for actor, chain in self._chains.items()}
            heads = dict(self._heads)
        yield _Snapshot(self, lengths, heads)

    def _blob(self, digest: bytes) -> bytes:
        try:
            return self._blobs[digest]
        except KeyError:
            raise NotFoundError("blob", digest.hex()) from None


class _Snapshot:
    """``store.recorder.Snapshot`` of a ``MemoryLog``: the chains as long as they were when it was taken."""

    def __init__(self, log: MemoryLog, lengths: dict[uuid.UUID, int], heads: dict[uuid.UUID, Head]) -> None:
        self._log = log
        self._lengths = lengths
        self._heads = heads

    def head(self, actor: uuid.UUID) -> Head:
        return self._heads.get(actor, EMPTY)

    def stored(self, actor: uuid.UUID, seq: int) -> bytes | None:
        return self._log._chains[actor][seq] if 0 <= seq < self._lengths.get(actor, 0) else None

    def scan(self, actor: uuid.UUID, seq: int) -> Iterable[tuple[bytes, bytes]]:
        chain = self._log._chains.get(actor, [])
        return ((event_key(actor, s), chain[s]) for s in range(max(seq, 0), self._lengths.get(actor, 0)))

    def locations(self, digests: list[bytes]) -> dict[bytes, bytes]:
        index, out = self._log._index, {}
        for digest in digests:
            where = index.get(digest)
            if where is not None and self._holds(where):
                out[digest] = where
        return out

    def blob(self, digest: bytes) -> bytes | None:
        return self._log._blobs.get(digest)

    def _holds(self, where: bytes) -> bool:
        return int.from_bytes(where[16:], "big") < self._lengths.get(uuid.UUID(bytes=where[:16]), 0)
