"""Chains on a JetStream stream: each chain is one subject, each operation's writes one message (or a few).

A message holds the operation's events exactly as stored (``hash || body``, in chain order) and the blobs they
need: state blobs, a manifest, spilled payloads inline; blobs larger than ``INLINE_BLOB_BYTES`` and components go to
the object store under their hex digest first and are named in ``refs``. Every message is published with
``Nats-Expected-Last-Subject-Sequence`` set to the stream sequence of the chain's last message as this node knows
it: JetStream refuses it if anyone else extended the chain since (the fence), and stores it on ``replicas`` servers
before it acknowledges it.

The replicator keeps, per chain, the last message's stream sequence and the head it ends at (a ``Cursor``); a batch
must start at that head. Any failure (refused, not acknowledged in time) forgets the cursor and tells the node
(``on_lost``), which stops running the actor here and gives up its lease: whoever takes it next reads the chain back
from the stream, whatever of this batch landed there or not.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import cbor2
from nats.errors import Error as NatsError
from nats.js.errors import APIError

from store import Head, Store
from store.errors import NotFoundError, TheaterError
from store.recorder import EMPTY
from store.replicated import Batch, Done, ReplicationError
from theater.cluster.config import chain_subject
from theater.cluster.link import Link

log = logging.getLogger("theater.cluster")

FORMAT = 1
INLINE_BLOB_BYTES = 256 * 1024
MESSAGE_BYTES = 768 * 1024  # below the servers' default max_payload of 1 MiB
WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed expected-last-(subject-)sequence check
EXPECTED_SUBJECT_SEQ = "Nats-Expected-Last-Subject-Sequence"


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a chain ends on the stream: its last message's stream sequence and the head that message ends at."""

    subject_seq: int
    head: Head


def encode_message(events: list[bytes], blobs: list[tuple[bytes, bytes]], refs: list[bytes]) -> bytes:
    return cbor2.dumps({"v": FORMAT, "events": events, "blobs": [[d, b] for d, b in blobs], "refs": refs})


def decode_message(data: bytes, where: str) -> tuple[list[bytes], list[tuple[bytes, bytes]], list[bytes]]:
    """The events, inline blobs and referenced blobs of a chain message.

    Raises:
        ReplicationError: the message is not one of ours (never a traceback: the stream is shared).
    """
    try:
        body = cbor2.loads(data)
        if not isinstance(body, dict) or body.get("v") != FORMAT:
            raise ValueError("unknown format")
        events = [bytes(e) for e in body["events"]]
        blobs = [(bytes(d), bytes(b)) for d, b in body["blobs"]]
        refs = [bytes(d) for d in body["refs"]]
    except (ValueError, TypeError, KeyError, cbor2.CBORDecodeError) as exc:
        raise ReplicationError(where, f"a malformed chain message: {exc}") from None
    return events, blobs, refs


class JetStreamReplicator:
    """Publishes every batch of a ``ReplicatedStore`` to the chain's subject, fenced (see the module docstring).

    ``store`` is set once the store is open (the store needs the replicator first). ``on_new`` is awaited before a
    chain's first message (the node takes the actor's lease there; an error refuses the batch); ``on_lost`` and
    ``on_ended`` are called on the loop when a chain cannot be extended from here or has ended.
    """

    def __init__(self, link: Link) -> None:
        self.link = link
        self.store: Store | None = None
        self._cursors: dict[uuid.UUID, Cursor] = {}
        self._locks: dict[uuid.UUID, asyncio.Lock] = {}
        self._queued: dict[uuid.UUID, int] = {}  # batches of each actor handed over and not yet done
        self.on_new: Callable[[uuid.UUID, dict[str, Any]], Any] | None = None
        self.on_lost: Callable[[uuid.UUID, BaseException], None] = lambda actor, error: None
        self.on_ended: Callable[[uuid.UUID], None] = lambda actor: None
        self.terminal: frozenset[str] = frozenset()
        self.published = 0

    def adopt(self, actor: uuid.UUID, cursor: Cursor) -> None:
        """Take ``cursor`` as where the chain ends (after reading it back from the stream); from the loop."""
        self._cursors[actor] = cursor

    def forget(self, actor: uuid.UUID) -> None:
        self._cursors.pop(actor, None)

    def replicate(self, batch: Batch, done: Done) -> None:
        self.link.loop.call_soon_threadsafe(self._start, batch, done)

    def _start(self, batch: Batch, done: Done) -> None:
        self.link.loop.create_task(self._publish(batch, done))

    async def _publish(self, batch: Batch, done: Done) -> None:
        actor = batch.actor
        if actor is None:  # blobs alone: they go to the object store
            try:
                for put in batch.blobs:
                    await self.upload(put.value, put.data)
            except (NatsError, asyncio.TimeoutError) as exc:
                done(ReplicationError("-", f"a blob could not be stored: {exc or type(exc).__name__}"))
                return
            done(None)
            return
        lock = self._locks.setdefault(actor, asyncio.Lock())
        self._queued[actor] = self._queued.get(actor, 0) + 1
        try:
            await self._publish_in_turn(actor, lock, batch, done)
        finally:
            # Forget the lock only when no batch of this actor waits for it: a lock released to a waiter reads
            # as unlocked, and a fresh lock for the next batch would let two batches of one chain run at once.
            self._queued[actor] -= 1
            if not self._queued[actor]:
                del self._queued[actor]
                self._locks.pop(actor, None)

    async def _publish_in_turn(self, actor: uuid.UUID, lock: asyncio.Lock, batch: Batch, done: Done) -> None:
        async with lock:
            try:
                cursor = await self._append(actor, batch)
            except (ReplicationError, NatsError, asyncio.TimeoutError, TheaterError) as exc:
                self._cursors.pop(actor, None)
                error = exc if isinstance(exc, ReplicationError) else ReplicationError(
                    str(actor), f"not stored in time: {exc or type(exc).__name__}")
                done(error)
                self.on_lost(actor, error)
                return
            self._cursors[actor] = cursor
            self.published += 1
            done(None)
            if any(a.event.type in self.terminal for a in batch.appends):
                self.on_ended(actor)

    async def _append(self, actor: uuid.UUID, batch: Batch) -> Cursor:
        first = batch.appends[0]
        cursor = self._cursors.get(actor)
        if cursor is None and first.expected == EMPTY:
            cursor = Cursor(0, EMPTY)
            if self.on_new is not None:
                await self.on_new(actor, first.event.data if isinstance(first.event.data, dict) else {})
        if cursor is None or cursor.head != first.expected:
            raise ReplicationError(str(actor), "this node does not hold the chain's head (it is not its owner)",
                                   fenced=True)
        blobs, refs = await self._blobs(batch)
        subject = chain_subject(actor)
        seq = cursor.subject_seq
        for events, inline, named in _messages(batch, blobs, refs):
            data = encode_message(events, inline, named)
            try:
                ack = await self.link.js.publish(subject, data, timeout=self.link.config.timeout,
                                                 headers={EXPECTED_SUBJECT_SEQ: str(seq)})
            except APIError as exc:
                if exc.err_code == WRONG_LAST_SEQUENCE:
                    raise ReplicationError(str(actor), "another node extended the chain", fenced=True) from None
                raise
            seq = ack.seq
        last = batch.appends[-1].event
        return Cursor(seq, Head(last.seq, last.hash))

    async def _blobs(self, batch: Batch) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """The blobs of a batch: small ones inline, the rest (and a new chain's component) uploaded and named."""
        inline: list[tuple[bytes, bytes]] = []
        refs: list[bytes] = []
        pairs = [(p.value, p.data) for p in batch.blobs]
        for append in batch.appends:
            encoded = append.encoded
            if encoded is not None:
                pairs.extend(encoded.spilled)
        for digest, data in pairs:
            if len(data) <= INLINE_BLOB_BYTES:
                inline.append((digest, bytes(data)))
            else:
                await self.upload(digest, bytes(data))
                refs.append(digest)
        for append in batch.appends:
            data = append.event.data
            if append.event.seq == 0 and isinstance(data, dict) and isinstance(data.get("component"), bytes):
                component = data["component"]
                await self.upload(component, None)
                refs.append(component)
        return inline, refs

    async def upload(self, digest: bytes, data: bytes | None) -> None:
        """Put a blob into the object store under its hex digest, unless it is there already."""
        name = digest.hex()
        try:
            await self.link.blobs.get_info(name)
            return
        except NatsError:
            pass
        if data is None:
            if self.store is None:
                raise ReplicationError("-", "the store is not open")
            try:
                data = await asyncio.to_thread(self.store.blobs.get, digest)
            except NotFoundError:
                raise ReplicationError("-", f"blob {name[:16]} is missing from the local store") from None
        await self.link.blobs.put(name, data)


def _messages(batch: Batch, blobs: list[tuple[bytes, bytes]], refs: list[bytes]
              ) -> list[tuple[list[bytes], list[tuple[bytes, bytes]], list[bytes]]]:
    """The batch cut into messages below ``MESSAGE_BYTES``; its blobs ride with the first (the events may name
    them), its refs too."""
    out: list[tuple[list[bytes], list[tuple[bytes, bytes]], list[bytes]]] = []
    events: list[bytes] = []
    size = sum(len(b) for _, b in blobs)
    for append in batch.appends:
        encoded = append.encoded
        value = encoded.hash + encoded.body
        if events and size + len(value) > MESSAGE_BYTES:
            out.append((events, blobs if not out else [], refs if not out else []))
            events, size = [], 0
        events.append(value)
        size += len(value)
    out.append((events, blobs if not out else [], refs if not out else []))
    return out
