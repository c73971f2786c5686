"""The recorder: the chain rules every event-log backend follows, and the small interface that states them.

A recorder keeps one hash-chained log per actor and a home-wide feed in commit order. The rules, whatever holds
the bytes (LMDB in ``store.chain``, memory in ``store.memory``, a replicated stream later):

- Compare-and-append: an append names the head it expects; it is refused with ``StaleHeadError`` unless that is
  the chain's head when the append is applied. An append chained on a refused one is refused too.
- An event is canonical CBOR hashed with ``store.codec`` (the hash covers the parent, so the chain is
  tamper-evident); byte strings longer than the spill threshold go to the blob store and the body holds their
  hash. Reads give the payloads back.
- A stored event (``hash || body``, e.g. from a bundle) is accepted only if the body hashes to the hash and names
  this actor, the next seq and the expected parent.
- The feed lists every accepted append once, in commit order, numbered from 0 without gaps; refused appends are
  not in it.
- An event is found by (actor, seq), by hash, and by a unique hex prefix of its hash (at least 4 digits).
- ``snapshot()`` gives verification a consistent view of the stored bytes (``store.verify`` checks them).

This module holds the shared parts: ``Head``, ``FeedEntry``, the ``Recorder`` and ``Snapshot`` protocols and the
functions both backends call to build, check and read events, so the rules are written once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from store.codec import (
    BLOB_TAG_BYTES,
    DIGEST_SIZE,
    BlobRef,
    EncodedEvent,
    Event,
    decode_stored,
    encode_fields,
    event_hash,
)
from store.errors import ChecksumMismatch, CorruptRecordError, InvalidInputError, StaleHeadError


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
    """The location of an actor's event ``seq``: actor (16 bytes) || seq (8, big-endian).

    Locations sort by actor, then seq. The hash index maps an event's hash to its location.
    """
    return actor.bytes + seq.to_bytes(8, "big")


class PendingEvent(Protocol):
    """An append handed to a recorder: ``event`` is final at once, ``wait()`` returns it once durable."""

    @property
    def event(self) -> Event: ...

    def done(self) -> bool:
        """True once the append is committed or has failed."""
        ...

    def wait(self, timeout: float | None = None) -> Event:
        """Block until committed and return the event.

        Raises:
            TimeoutError: not committed within ``timeout`` seconds.
            StaleHeadError: the chain's head was not the expected one.
        """
        ...


class Snapshot(Protocol):
    """A consistent view of a recorder's stored bytes, for verification.

    Values are stored events, ``hash (32) || body``, exactly as kept: verification recomputes every hash itself.
    """

    def head(self, actor: uuid.UUID) -> Head:
        """The chain's head as recorded (``EMPTY`` when the actor has none)."""
        ...

    def stored(self, actor: uuid.UUID, seq: int) -> bytes | None:
        """The stored value of the actor's event ``seq``, or None."""
        ...

    def scan(self, actor: uuid.UUID, seq: int) -> Iterable[tuple[bytes, bytes]]:
        """(location, stored value) pairs from the actor's event ``seq`` on, in location order (see ``event_key``).

        The pairs may run on into the next actors' events: the caller stops at the first location not of this
        actor. A backend yields what it holds, gaps included, so that verification can name them.
        """
        ...

    def locations(self, digests: list[bytes]) -> dict[bytes, bytes]:
        """The location the hash index gives for each of ``digests``; hashes it does not know are left out."""
        ...

    def blob(self, digest: bytes) -> bytes | None:
        """The bytes stored under a blob digest, unchecked (the caller hashes them), or None."""
        ...


class Recorder(Protocol):
    """Every actor's chain in one home (see the module docstring for the rules)."""

    def append(
        self, actor: uuid.UUID, type: str, data: Any, *, expected: Head, timestamp_ms: int | None = None
    ) -> Event:
        """Append one event after ``expected`` and return it once durable.

        Raises:
            StaleHeadError: the chain's head is not ``expected``.
            InvalidInputError: ``type`` is not a non-empty string.
            TypeError: ``data`` cannot be encoded as CBOR (nothing is written).
        """
        ...

    def append_async(
        self, actor: uuid.UUID, type: str, data: Any, *, expected: Head, timestamp_ms: int | None = None
    ) -> PendingEvent:
        """Build and hash the event now and queue it; the next append may chain on ``.event`` at once."""
        ...

    def append_stored(self, actor: uuid.UUID, value: bytes, *, expected: Head) -> PendingEvent:
        """Queue an event exactly as stored elsewhere (``hash || body``).

        Raises:
            ChecksumMismatch: the body does not hash to the stored hash.
            CorruptRecordError: the body does not decode, or names another actor, seq or parent.
        """
        ...

    def head(self, actor: uuid.UUID) -> Head:
        """The chain's current head; ``EMPTY`` when the actor has no events."""
        ...

    def at(self, actor: uuid.UUID, seq: int) -> Event:
        """The actor's event number ``seq``. Raises ``NotFoundError`` when there is none."""
        ...

    def get(self, digest: bytes) -> Event:
        """The event with this hash. Raises ``NotFoundError`` when there is none."""
        ...

    def locate(self, digest: bytes) -> tuple[uuid.UUID, int]:
        """The (actor, seq) of the event with this hash.

        Raises:
            InvalidInputError: ``digest`` is not 32 raw bytes. NotFoundError: no such event.
        """
        ...

    def resolve(self, prefix: str) -> bytes:
        """The hash of the one event whose hex form starts with ``prefix`` (4 to 64 hex digits).

        Raises:
            InvalidInputError: not a hex prefix. NotFoundError: no match. AmbiguousPrefixError: several.
        """
        ...

    def events(self, actor: uuid.UUID, start: int = 0, stop: int | None = None) -> Iterator[Event]:
        """The actor's events with ``start <= seq < stop``, in order."""
        ...

    def raw_events(self, actor: uuid.UUID, start: int = 0, stop: int | None = None) -> Iterator[tuple[int, bytes]]:
        """(seq, stored value) pairs of the actor's events with ``start <= seq < stop``, in order."""
        ...

    def actors(self) -> list[tuple[uuid.UUID, Head]]:
        """Every actor with at least one event, with its head, in id order."""
        ...

    def actors_page(self, after: uuid.UUID | None, limit: int) -> list[tuple[uuid.UUID, Head]]:
        """At most ``limit`` actors with their heads, in id order, from the first id above ``after``."""
        ...

    def feed(self, start: int = 0, limit: int | None = None) -> list[FeedEntry]:
        """Feed entries from position ``start`` on, in commit order (at most ``limit``)."""
        ...

    def feed_end(self) -> int:
        """The position the next append will take in the feed."""
        ...

    def snapshot(self) -> AbstractContextManager[Snapshot]:
        """A consistent view of the stored bytes, for verification."""
        ...


# The rules both backends share.


def build_event(
    actor: uuid.UUID,
    type_: str,
    data: Any,
    expected: Head,
    timestamp_ms: int | None,
    spill_threshold: int,
    plain: bool = False,
) -> tuple[Event, EncodedEvent]:
    """The event that follows ``expected``, as it will be stored, and its encoding (hash, body, spilled payloads).

    Raises:
        InvalidInputError: ``type_`` is not a non-empty string.
        TypeError: ``data`` cannot be encoded as CBOR.
    """
    if not isinstance(type_, str) or not type_:
        raise InvalidInputError("event type", type_, "a non-empty string")
    ts = time.time_ns() // 1_000_000 if timestamp_ms is None else timestamp_ms
    seq = expected.seq + 1
    encoded = encode_fields(actor.bytes, seq, expected.hash, ts, type_, data, spill_threshold, plain)
    return Event(encoded.hash, actor, seq, expected.hash, ts, type_, data), encoded


def accept_stored(actor: uuid.UUID, value: bytes, expected: Head) -> tuple[Event, EncodedEvent]:
    """Check a stored event (``hash || body``) continues the chain after ``expected``; return it and its encoding.

    Its payloads stay spilled, as they were: whoever brings the event brings the blobs it names.

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
    return event, encoded


def stale_head(actor: uuid.UUID, expected: Head, current: tuple[int, bytes | None]) -> StaleHeadError:
    """The error for an append that expected ``expected`` on a chain whose head is ``current``."""
    return StaleHeadError(str(actor), (expected.seq, expected.hash), current)


def check_digest(digest: object) -> bytes:
    """Return ``digest`` if it is 32 raw bytes; raises ``InvalidInputError`` otherwise."""
    if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
        raise InvalidInputError("event hash", digest, "32 raw bytes")
    return digest


def materialise(value: bytes, where: str, blob: Callable[[bytes], bytes]) -> Event:
    """The event a stored value holds, with spilled payloads read back through ``blob(digest)``.

    Raises:
        CorruptRecordError: the value is not a well-formed stored event.
    """
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
        data=unspill(data, blob) if BLOB_TAG_BYTES in value else data,
        version=version,
    )


def unspill(value: Any, blob: Callable[[bytes], bytes]) -> Any:
    """``value`` with every ``BlobRef`` replaced by the blob's bytes."""
    if isinstance(value, BlobRef):
        return blob(value.digest)
    if isinstance(value, dict):
        return {k: unspill(v, blob) for k, v in value.items()}
    if isinstance(value, list):
        return [unspill(v, blob) for v in value]
    return value
