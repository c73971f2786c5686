"""Reading chains back from the stream: into the local home before a node runs an actor it takes over, and whole
for ``theater cluster status`` and the checks of the tests.

Every event read back is checked before it is kept: its body must hash to its hash and continue the chain (actor,
seq, parent: ``store.recorder.accept_stored``), so a node never resumes an actor from a record that does not hold
together.
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Any

from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError as JsNotFound

from store import Event, Head, Store
from store.blobs import blob_digest
from store.codec import BLOB_TAG_BYTES, BlobRef, decode_stored
from store.errors import CorruptRecordError
from store.recorder import EMPTY, accept_stored, unspill
from store.replicated import ReplicationError
from theater.cluster.config import STREAM, chain_subject
from theater.cluster.link import Link
from theater.cluster.replicator import Cursor, decode_message

READ_WAIT_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainMessage:
    """One message of a chain's subject, decoded."""

    stream_seq: int
    events: list[bytes]
    blobs: list[tuple[bytes, bytes]]
    refs: list[bytes]


async def read_chain(link: Link, actor: uuid.UUID) -> list[ChainMessage]:
    """Every message of the chain's subject, in stream order (empty for a chain the stream does not hold).

    Raises:
        ReplicationError: a message is malformed, or the stream did not deliver them in time.
    """
    subject = chain_subject(actor)
    try:
        last = await link.js.get_last_msg(STREAM, subject)
    except JsNotFound:
        return []
    out: list[ChainMessage] = []
    sub = await link.js.subscribe(subject, ordered_consumer=True)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=READ_WAIT_S)
            except (NatsError, asyncio.TimeoutError):
                raise ReplicationError(str(actor), "the stream did not deliver the chain in time") from None
            seq = msg.metadata.sequence.stream
            events, blobs, refs = decode_message(msg.data, str(actor))
            out.append(ChainMessage(stream_seq=seq, events=events, blobs=blobs, refs=refs))
            if seq >= last.seq:
                return out
    finally:
        await sub.unsubscribe()


async def fetch_blob(link: Link, digest: bytes) -> bytes:
    """A blob of the object store, checked against its digest by the local store when it is put."""
    result = await link.blobs.get(digest.hex())
    return bytes(result.data)


def apply_chain(store: Store, actor: uuid.UUID, messages: list[ChainMessage], fetched: dict[bytes, bytes]
                ) -> Cursor:
    """Bring the local home's copy of a chain up to the stream's: the blobs first, then each missing event,
    checked (hash, actor, seq, parent) as it is appended. Returns where the chain ends on the stream.

    Raises:
        CorruptRecordError, ChecksumMismatch: an event does not hash to its hash or does not continue the chain,
            or the local copy differs from the stream's (nothing is resumed from it).
    """
    head = store.log.head(actor)
    expected = EMPTY
    for message in messages:
        for digest, data in message.blobs:
            if not store.blobs.has(digest):
                _put_checked(store, digest, data)
        for digest in message.refs:
            if not store.blobs.has(digest):
                _put_checked(store, digest, fetched[digest])
        for value in message.events:
            event, _ = accept_stored(actor, value, expected)  # Check hash, seq and parent first.
            if event.seq <= head.seq:
                local = store.log.at(actor, event.seq)
                if local.hash != event.hash:
                    raise CorruptRecordError(f"actor {actor} seq {event.seq}",
                                             "the local copy of the chain differs from the replicated one")
            else:
                store.log.append_stored(actor, value, expected=expected).wait()
            expected = Head(event.seq, event.hash)
    return Cursor(messages[-1].stream_seq if messages else 0, expected)


def _put_checked(store: Store, digest: bytes, data: bytes) -> None:
    actual = store.blobs.put(data)
    if actual != digest:
        raise CorruptRecordError(f"blob {digest.hex()[:16]}", f"its bytes hash to {actual.hex()[:16]}")


def check_chain(messages: list[ChainMessage], actor: uuid.UUID) -> int:
    """Check a chain as the stream holds it: every event hashes right and follows the one before (one event per
    seq, none missing). Returns the number of events.

    Raises:
        CorruptRecordError, ChecksumMismatch: as ``accept_stored``.
    """
    expected = EMPTY
    for message in messages:
        for value in message.events:
            event, _ = accept_stored(actor, value, expected)
            expected = Head(event.seq, event.hash)
    return expected.seq + 1


class ChainFollower:
    """A chain's events as the stream holds them, from its first, then each new one as it is acknowledged: what a
    node that does not run an actor streams to a subscriber (``GET /v1/actors/{id}/subscribe``). Runs on the
    link's loop.

    Every event is checked as it arrives (hash, actor, seq, parent: ``accept_stored``, from the chain's first
    event), so a subscriber is never sent an event that does not continue the chain; payloads spilled to blobs are
    read back from the message that carried them or from the object store, checked against their digests.
    """

    def __init__(self, link: Link, actor: uuid.UUID) -> None:
        self.link = link
        self.actor = actor
        self.expected = EMPTY
        self._sub: Any = None

    async def open(self) -> ChainFollower:
        self._sub = await self.link.js.subscribe(chain_subject(self.actor), ordered_consumer=True)
        return self

    async def next(self, timeout: float) -> list[Event] | None:
        """The events of the chain's next message, checked; None when none came within ``timeout`` seconds.

        Raises:
            ReplicationError: a message is not one of ours. CorruptRecordError, ChecksumMismatch: an event does not
                hash to its hash or does not continue the chain.
        """
        try:
            msg = await self._sub.next_msg(timeout=timeout)
        except (NatsError, asyncio.TimeoutError):
            return None
        events, blobs, _ = decode_message(msg.data, str(self.actor))
        carried = dict(blobs)
        out = []
        for value in events:
            event, _ = accept_stored(self.actor, value, self.expected)
            self.expected = Head(event.seq, event.hash)
            if BLOB_TAG_BYTES in value:
                found = {digest: await self._blob(digest, carried) for digest in _refs(event.data)}
                event = event._replace(data=unspill(event.data, found.__getitem__))
            out.append(event)
        return out

    async def _blob(self, digest: bytes, carried: dict[bytes, bytes]) -> bytes:
        data = carried.get(digest)
        if data is None:
            data = await fetch_blob(self.link, digest)
        if blob_digest(data) != digest:
            raise CorruptRecordError(f"blob {digest.hex()[:16]}", "its bytes do not hash to its name")
        return data

    async def close(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except NatsError:
                pass  # the connection is going: the consumer goes with it


async def stream_head(link: Link, actor: uuid.UUID) -> int | None:
    """The seq of the chain's last event on the stream; None when the stream holds no such chain.

    Raises:
        ReplicationError: its last message is not one of ours. CorruptRecordError: its last event does not decode.
    """
    try:
        last = await link.js.get_last_msg(STREAM, chain_subject(actor))
    except JsNotFound:
        return None
    events, _, _ = decode_message(last.data, str(actor))
    if not events:
        raise ReplicationError(str(actor), "the chain's last message holds no event")
    _, fields = decode_stored(events[-1], where=f"actor {actor}")
    seq = fields[2]
    if not isinstance(seq, int):
        raise CorruptRecordError(f"actor {actor}", "the chain's last event has no seq")
    return seq


def _refs(value: Any) -> set[bytes]:
    """The digests of the blobs a decoded event's data names."""
    if isinstance(value, BlobRef):
        return {value.digest}
    if isinstance(value, dict):
        return set().union(*(_refs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_refs(v) for v in value)) if value else set()
    return set()
