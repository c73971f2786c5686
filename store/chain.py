"""The LMDB recorder: every actor's hash-chained event log and the home-wide feed, in the home's environment.

The chain rules (compare-and-append, encoding, the feed, lookups) are stated in ``store.recorder``; this module
keeps them in LMDB. Databases (all keys raw bytes):
- ``events``: actor (16) || seq (8, big-endian) -> hash (32) || canonical CBOR body
- ``event_index``: hash -> actor || seq, complete below the feed position in ``meta``'s index watermark; the feed
  entries from there on are its tail (see ``store._index``)
- ``heads``: actor -> seq || hash of the chain's last event
- ``feed``: position (8, big-endian) -> actor || hash || seq (8, big-endian), one entry per append, in commit order
  (stores written before the tail existed hold actor || hash)
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lmdb

from store._commit import CommitContext, Pending, ReadOnlyWriter, Writer
from store._env import Environment
from store._index import FEED_VALUE_SIZE, TailIndex, feed_end
from store._prefix import resolve_prefix
from store.blobs import BlobStore
from store.codec import DEFAULT_SPILL_THRESHOLD, EncodedEvent, Event
from store.errors import ChecksumMismatch, CorruptRecordError, NotFoundError
from store.merkle import leaf_hash
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

__all__ = ["EMPTY", "EventLog", "FeedEntry", "Head", "PendingAppend", "event_key"]


def _decode_head(raw: bytes | None) -> Head:
    if raw is None:
        return EMPTY
    return Head(int.from_bytes(raw[:8], "big"), bytes(raw[8:]))


class PendingAppend(Pending[Event]):
    """An append handed to the writer. ``event`` is known at once; ``wait()`` returns it once durable."""

    __slots__ = ("actor_key", "expected", "encoded", "actor", "leaf", "index_later")

    def __init__(self, event: Event, encoded: EncodedEvent, expected: Head, actor_key: bytes | None = None) -> None:
        # Pending.__init__ inlined: this runs once per append.
        self.value = event
        self._error = None
        self._done = False
        self._writer = None
        self.actor = event.actor
        self.actor_key = event.actor.bytes if actor_key is None else actor_key
        self.expected = expected
        self.encoded = encoded
        self.leaf = leaf_hash(encoded.hash)  # the Merkle log's leaf, hashed here in the caller's thread
        self.index_later = expected.seq < 0  # a chain's first append: its batch leaves the index to the tail

    @property
    def event(self) -> Event:
        return self.value

    def apply(self, txn: lmdb.Transaction[bytes], ctx: CommitContext) -> None:
        # The writer runs this once per append, holding the GIL that every appending thread needs: keep it lean.
        actor_key, expected, encoded = self.actor_key, self.expected, self.encoded
        # Check the parent is the current head (compare-and-append).
        current = ctx.heads.get(actor_key) or ctx.known_heads.get(actor_key) or ctx.head(txn, actor_key)
        if current[0] != expected.seq or current[1] != expected.hash:
            raise stale_head(self.actor, expected, current)
        digest = encoded.hash
        seq = expected.seq + 1
        seq_bytes = seq.to_bytes(8, "big")
        key = actor_key + seq_bytes
        if encoded.spilled:
            for blob, payload in encoded.spilled:
                ctx.new_blobs[blob] = payload
        ctx.event_puts.append((key, digest + encoded.body))
        if ctx.index_direct:
            ctx.index_puts.append((digest, key))
        else:
            ctx.deferred.append((digest, key))
        ctx.feed_puts.append((ctx.feed_next.to_bytes(8, "big"), actor_key + digest + seq_bytes))
        ctx.leaves.append(self.leaf)
        ctx.feed_next += 1
        ctx.heads[actor_key] = (seq, digest)

    def committed(self) -> None:
        self.encoded = None  # type: ignore[assignment]  # the body is in the store now


class EventLog:
    """Every actor's chain in one home, in LMDB: a ``store.recorder.Recorder``."""

    def __init__(
        self,
        env: Environment,
        writer: Writer | ReadOnlyWriter,
        blobs: BlobStore,
        *,
        spill_threshold: int = DEFAULT_SPILL_THRESHOLD,
    ) -> None:
        self._env = env
        self._writer = writer
        self._blobs = blobs
        self._spill_threshold = spill_threshold
        self._db = env.dbs["events"]
        self._index = env.dbs["event_index"]
        self._heads = env.dbs["heads"]
        self._feed = env.dbs["feed"]
        self._tail = TailIndex(env.dbs)

    # Appending.

    def append(
        self, actor: uuid.UUID, type: str, data: Any, *, expected: Head, timestamp_ms: int | None = None
    ) -> Event:
        """Append one event after ``expected`` and return it once durable.

        Raises:
            StaleHeadError: the chain's head is not ``expected``.
            StoreFullError: the write did not fit; nothing was written.
        """
        return self.append_async(actor, type, data, expected=expected, timestamp_ms=timestamp_ms).wait()

    def append_async(
        self, actor: uuid.UUID, type: str, data: Any, *, expected: Head, timestamp_ms: int | None = None
    ) -> PendingAppend:
        """Build and hash the event now, in the caller's thread, and queue it for the next group commit.

        The returned ``PendingAppend.event`` is the event as it will be stored (its hash is final), so a caller
        can chain the next append on it before this one is durable; if this one fails, that one fails too.
        """
        return self._writer.submit(self.prepare(actor, type, data, expected=expected, timestamp_ms=timestamp_ms))

    def prepare(
        self,
        actor: uuid.UUID,
        type: str,
        data: Any,
        *,
        expected: Head,
        timestamp_ms: int | None = None,
        plain: bool = False,
    ) -> PendingAppend:
        """``append_async`` without queueing: the event is built and hashed now, ``Store.submit`` queues it.

        ``plain``: the caller knows ``data``'s default CBOR encoding is already canonical (``codec.encode_fields``).

        Raises:
            InvalidInputError: ``type`` is not a non-empty string. TypeError: ``data`` cannot be encoded.
        """
        event, encoded = build_event(actor, type, data, expected, timestamp_ms, self._spill_threshold, plain)
        return PendingAppend(event, encoded, expected, actor.bytes)

    def append_stored(self, actor: uuid.UUID, value: bytes, *, expected: Head) -> PendingAppend:
        """Queue an event exactly as stored elsewhere (``hash || body``), e.g. from a bundle.

        The body must hash to the stored hash and name this actor, the next seq and ``expected`` as parent.

        Raises:
            ChecksumMismatch: the body does not hash to the stored hash.
            CorruptRecordError: the body does not decode, or names another actor, seq or parent.
        """
        event, encoded = accept_stored(actor, value, expected)
        return self._writer.submit(PendingAppend(event, encoded, expected))

    # Reading.

    def head(self, actor: uuid.UUID) -> Head:
        """The chain's current head; ``EMPTY`` when the actor has no events."""
        with self._env.read() as txn:
            return _decode_head(txn.get(actor.bytes, db=self._heads))

    def at(self, actor: uuid.UUID, seq: int) -> Event:
        """The actor's event number ``seq``.

        Raises:
            NotFoundError: no such event.
        """
        with self._env.read() as txn:
            value = txn.get(event_key(actor, seq), db=self._db)
        if value is None:
            raise NotFoundError("event", f"{actor} #{seq}")
        return self._materialise(value, f"actor {actor} seq {seq}")

    def get(self, digest: bytes) -> Event:
        """The event with this hash.

        Raises:
            NotFoundError: no such event.
        """
        actor, seq = self.locate(digest)
        event = self.at(actor, seq)
        if event.hash != digest:
            # Check on read: the index must lead to the event with this hash.
            raise ChecksumMismatch("event index", digest, event.hash)
        return event

    def locate(self, digest: bytes) -> tuple[uuid.UUID, int]:
        """The (actor, seq) of the event with this hash.

        Raises:
            NotFoundError: no such event.
        """
        check_digest(digest)
        with self._env.read() as txn:
            where = txn.get(digest, db=self._index) or self._tail.lookup(txn, digest)
        if where is None:
            raise NotFoundError("event", digest.hex())
        return uuid.UUID(bytes=bytes(where[:16])), int.from_bytes(where[16:], "big")

    def resolve(self, prefix: str) -> bytes:
        """The hash of the one event whose hex form starts with ``prefix`` (at least 4 hex digits)."""
        with self._env.read() as txn:
            return resolve_prefix(
                txn, self._index, prefix, "event", extra=lambda start: self._tail.hashes_starting_with(txn, start)
            )

    def events(self, actor: uuid.UUID, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """The actor's events with ``start <= seq < stop``, in order, from one snapshot."""
        for seq, value in self.raw_events(actor, start, stop):
            yield self._materialise(value, f"actor {actor} seq {seq}")

    def raw_events(self, actor: uuid.UUID, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, stored value) pairs of the actor's events, in order, read in pages of consistent snapshots."""
        prefix = actor.bytes
        seq = start
        while stop is None or seq < stop:
            page: list[tuple[int, bytes]] = []
            with self._env.read() as txn:
                cursor = txn.cursor(db=self._db)
                if not cursor.set_range(event_key(actor, seq)):
                    return
                for key, value in cursor:
                    if key[:16] != prefix:
                        break
                    key_seq = int.from_bytes(key[16:], "big")
                    if (stop is not None and key_seq >= stop) or len(page) >= 4096:
                        break
                    page.append((key_seq, value))
            if not page:
                return
            yield from page
            seq = page[-1][0] + 1
            if len(page) < 4096:
                return

    def actors(self) -> list[tuple[uuid.UUID, Head]]:
        """Every actor with at least one event, with its head, in id order."""
        with self._env.read() as txn:
            return [
                (uuid.UUID(bytes=bytes(key)), _decode_head(value))
                for key, value in txn.cursor(db=self._heads)
            ]

    def actors_page(self, after: uuid.UUID | None, limit: int) -> list[tuple[uuid.UUID, Head]]:
        """At most ``limit`` actors with their heads, in id order, from the first id above ``after`` (a page of
        ``actors`` read with one cursor seek, whatever the number of actors)."""
        page: list[tuple[uuid.UUID, Head]] = []
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._heads)
            if not (cursor.set_range(after.bytes) if after is not None else cursor.first()):
                return page
            for key, value in cursor:
                actor = uuid.UUID(bytes=bytes(key))
                if actor == after:
                    continue
                if len(page) >= limit:
                    break
                page.append((actor, _decode_head(value)))
        return page

    def feed(self, start: int = 0, limit: int | None = None) -> list[FeedEntry]:
        """Feed entries from position ``start`` on, in commit order (at most ``limit``)."""
        out: list[FeedEntry] = []
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._feed)
            if not cursor.set_range(start.to_bytes(8, "big")):
                return out
            for key, value in cursor:
                if limit is not None and len(out) >= limit:
                    break
                digest = bytes(value[16:48])
                if len(value) == FEED_VALUE_SIZE:
                    seq = int.from_bytes(value[48:], "big")
                else:  # written before feed entries held the seq: every such event is in the index
                    where = txn.get(digest, db=self._index)
                    if where is None:
                        raise CorruptRecordError(
                            f"feed position {int.from_bytes(key, 'big')}", "the event it names is not in the hash index"
                        )
                    seq = int.from_bytes(where[16:], "big")
                out.append(
                    FeedEntry(
                        position=int.from_bytes(key, "big"),
                        actor=uuid.UUID(bytes=bytes(value[:16])),
                        hash=digest,
                        seq=seq,
                    )
                )
        return out

    def feed_end(self) -> int:
        """The position the next append will take in the feed."""
        with self._env.read() as txn:
            return feed_end(txn, self._env.dbs)

    @property
    def path(self) -> Path:
        """The directory of the LMDB environment (verification's worker processes open it by this path)."""
        return self._env.path

    @contextmanager
    def snapshot(self) -> Iterator[_Snapshot]:
        """A consistent read snapshot of the stored bytes, for verification."""
        with self._env.read() as txn:
            yield _Snapshot(txn, self._env.dbs, self._tail)

    def _materialise(self, value: bytes, where: str) -> Event:
        return materialise(value, where, self._blobs.get)


class _Snapshot:
    """``store.recorder.Snapshot`` over one LMDB read transaction."""

    __slots__ = ("_txn", "_dbs", "_tail")

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any], tail: TailIndex) -> None:
        self._txn = txn
        self._dbs = dbs
        self._tail = tail

    def head(self, actor: uuid.UUID) -> Head:
        return _decode_head(self._txn.get(actor.bytes, db=self._dbs["heads"]))

    def stored(self, actor: uuid.UUID, seq: int) -> bytes | None:
        return self._txn.get(event_key(actor, seq), db=self._dbs["events"])

    def scan(self, actor: uuid.UUID, seq: int) -> Iterable[tuple[bytes, bytes]]:
        # The cursor itself: verification's hot loop iterates it with no layer between.
        cursor = self._txn.cursor(db=self._dbs["events"])
        return cursor if cursor.set_range(event_key(actor, seq)) else ()

    def locations(self, digests: list[bytes]) -> dict[bytes, bytes]:
        # Sorted lookups walk the B-tree in order (neighbouring leaves, warm branch pages).
        found = dict(self._txn.cursor(db=self._dbs["event_index"]).getmulti(sorted(digests)))
        if len(found) < len(digests):  # the rest may be in the index's tail (feed entries past the watermark)
            found.update(self._tail.lookup_many(self._txn, [d for d in digests if d not in found]))
        return found

    def blob(self, digest: bytes) -> bytes | None:
        return self._txn.get(digest, db=self._dbs["blobs"])
