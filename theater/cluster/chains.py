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

from nats.errors import Error as NatsError
from nats.js.errors import NotFoundError as JsNotFound

from store import Head, Store
from store.errors import CorruptRecordError
from store.recorder import EMPTY, accept_stored
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
