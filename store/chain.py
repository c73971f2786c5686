"""The append-only, hash-chained event logs: one chain per actor, plus a home-wide feed in commit order.

Databases (all keys raw bytes):
- ``events``: actor (16) || seq (8, big-endian) -> hash (32) || canonical CBOR body
- ``event_index``: hash -> actor || seq, complete below the feed position in ``meta``'s index watermark; the feed
  entries from there on are its tail (see ``store._index``)
- ``heads``: actor -> seq || hash of the chain's last event
- ``feed``: position (8, big-endian) -> actor || hash || seq (8, big-endian), one entry per append, in commit order
  (stores written before the tail existed hold actor || hash)
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import lmdb

from store._commit import CommitContext, Pending, Writer
from store._env import Environment
from store._index import FEED_VALUE_SIZE, TailIndex
from store._prefix import resolve_prefix
from store.blobs import BlobStore
from store.codec import (
    BLOB_TAG_BYTES,
    DEFAULT_SPILL_THRESHOLD,
    DIGEST_SIZE,
    BlobRef,
    EncodedEvent,
    Event,
    decode_stored,
    encode_fields,
    event_hash,
)
from store.errors import ChecksumMismatch, CorruptRecordError, InvalidInputError, NotFoundError, StaleHeadError


class Head(NamedTuple):
    """The last event of a chain: its sequence number and hash; ``EMPTY`` for a chain with no events.

    A named tuple: appenders build one per append, and it is three times cheaper than a frozen dataclass.
    """

    seq: int
    hash: bytes | None

    @property
    def next_seq(self) -> int:
        return self.seq + 1


EMPTY = Head(-1, None)


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedEntry:
    """One append in the home-wide feed."""

    position: int
    actor: uuid.UUID
    hash: bytes
    seq: int


def event_key(actor: uuid.UUID, seq: int) -> bytes:
    """The ``events`` key of an actor's event ``seq``."""
    return actor.bytes + seq.to_bytes(8, "big")


def _decode_head(raw: bytes | None) -> Head:
    if raw is None:
        return EMPTY
    return Head(int.from_bytes(raw[:8], "big"), bytes(raw[8:]))


class PendingAppend(Pending):
    """An append handed to the writer. ``event`` is known at once; ``wait()`` returns it once durable."""

    __slots__ = ("actor_key", "expected", "encoded", "actor")

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

    @property
    def event(self) -> Event:
        return self.value

    def apply(self, txn: lmdb.Transaction, ctx: CommitContext) -> None:
        # The writer runs this once per append, holding the GIL that every appending thread needs: keep it lean.
        actor_key, expected, encoded = self.actor_key, self.expected, self.encoded
        # Check the parent is the current head (compare-and-append).
        current = ctx.heads.get(actor_key) or ctx.known_heads.get(actor_key) or ctx.head(txn, actor_key)
        if current[0] != expected.seq or current[1] != expected.hash:
            raise StaleHeadError(str(self.actor), (expected.seq, expected.hash), current)
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
        ctx.feed_next += 1
        ctx.heads[actor_key] = (seq, digest)

    def committed(self) -> None:
        self.encoded = None  # type: ignore[assignment]  # the body is in the store now


class EventLog:
    """Every actor's chain in one home."""

    def __init__(
        self, env: Environment, writer: Writer, blobs: BlobStore, *, spill_threshold: int = DEFAULT_SPILL_THRESHOLD
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
        if not isinstance(type, str) or not type:
            raise InvalidInputError("event type", type, "a non-empty string")
        ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
        seq = expected.seq + 1
        actor_key = actor.bytes
        encoded = encode_fields(actor_key, seq, expected.hash, ts, type, data, self._spill_threshold)
        event = Event(encoded.hash, actor, seq, expected.hash, ts, type, data)
        return self._writer.submit(PendingAppend(event, encoded, expected, actor_key))

    def append_stored(self, actor: uuid.UUID, value: bytes, *, expected: Head) -> PendingAppend:
        """Queue an event exactly as stored elsewhere (``hash || body``), e.g. from a bundle.

        The body must hash to the stored hash and name this actor, the next seq and ``expected`` as parent.

        Raises:
            ChecksumMismatch: the body does not hash to the stored hash.
            CorruptRecordError: the body does not decode, or names another actor, seq or parent.
        """
        where = f"actor {actor} seq {expected.next_seq}"
        stored_hash, fields = decode_stored(value, where=where)
        actual = event_hash(value[DIGEST_SIZE:])
        if actual != stored_hash:
            raise ChecksumMismatch("event", stored_hash, actual)
        version, actor_bytes, seq, parent, ts, type_, data = fields
        if actor_bytes != actor.bytes or seq != expected.next_seq or parent != expected.hash:
            raise CorruptRecordError(where, "the event does not continue this chain (actor, seq or parent differ)")
        encoded = EncodedEvent(hash=stored_hash, body=bytes(value[DIGEST_SIZE:]), spilled=())
        event = Event(hash=stored_hash, actor=actor, seq=seq, parent=parent, timestamp_ms=ts, type=type_, data=data,
                      version=version)
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
        if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
            raise InvalidInputError("event hash", digest, "32 raw bytes")
        with self._env.read() as txn:
            where = txn.get(digest, db=self._index) or self._tail.lookup(txn, digest)
        if where is None:
            raise NotFoundError("event", digest.hex())
        return uuid.UUID(bytes=bytes(where[:16])), int.from_bytes(where[16:], "big")

    def tail_lookup(self, txn: lmdb.Transaction, digests: list[bytes]) -> dict[bytes, bytes]:
        """actor || seq of the events among ``digests`` that are in the hash index's tail, as of ``txn``."""
        return self._tail.lookup_many(txn, digests)

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
            cursor = txn.cursor(db=self._feed)
            return int.from_bytes(cursor.key(), "big") + 1 if cursor.last() else 0

    def _materialise(self, value: bytes, where: str) -> Event:
        stored_hash, fields = decode_stored(value, where=where)
        version, actor, seq, parent, ts, type_, data = fields
        return Event(
            hash=stored_hash,
            actor=uuid.UUID(bytes=actor),
            seq=seq,
            parent=parent,
            timestamp_ms=ts,
            type=type_,
            # Only a body holding the blob tag can hold a spilled payload: skip the walk for all others.
            data=self._unspill(data) if BLOB_TAG_BYTES in value else data,
            version=version,
        )

    def _unspill(self, value: Any) -> Any:
        if isinstance(value, BlobRef):
            return self._blobs.get(value.digest)
        if isinstance(value, dict):
            return {k: self._unspill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._unspill(v) for v in value]
        return value
