"""Integrity verification of stored chains: every hash, every parent link, every sequence number, every payload.

This checks that the record is intact (nothing changed, nothing missing). That it is *true* (that the recorded
results follow from the component) is checked by re-execution in ``replay``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import blake3

from store.blobs import blob_digest
from store.chain import EMPTY, Head, event_key
from store.codec import (
    EVENT_DOMAIN,
    BLOB_TAG_BYTES,
    DIGEST_SIZE,
    FORMAT_VERSION,
    collect_blob_refs,
    decode_body,
    event_hash,
    read_link,
)
from store.errors import CorruptRecordError
from store.home import Store

PROBLEM_KINDS = (
    "hash mismatch",
    "broken parent link",
    "sequence gap",
    "wrong actor",
    "corrupt record",
    "index mismatch",
    "missing payload blob",
    "payload checksum mismatch",
    "head mismatch",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Problem:
    """The first thing found wrong in a chain."""

    actor: uuid.UUID
    seq: int
    hash: bytes | None
    kind: str
    detail: str

    def describe(self) -> str:
        at = f" {self.hash.hex()}" if self.hash else ""
        return f"actor {self.actor} seq {self.seq}{at}: {self.kind}: {self.detail}"


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainReport:
    """What verifying one chain found."""

    actor: uuid.UUID
    events: int
    head: Head
    problem: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreReport:
    """What verifying every chain of a store found."""

    chains: list[ChainReport] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chains)

    @property
    def events(self) -> int:
        return sum(c.events for c in self.chains)

    @property
    def problems(self) -> list[Problem]:
        return [c.problem for c in self.chains if c.problem is not None]


class _Broken(Exception):
    def __init__(self, kind: str, detail: str, digest: bytes | None = None) -> None:
        self.kind = kind
        self.detail = detail
        self.digest = digest


def verify_chain(
    store: Store, actor: uuid.UUID, *, progress: Callable[[int], None] | None = None, indexes: bool = True
) -> ChainReport:
    """Walk one chain from genesis and recompute every hash and link.

    With ``indexes`` (the default) it also checks that the hash index leads to every event; without, it checks
    the chain alone (about twice as fast on a large chain: the index lookups are random reads).

    Returns a report naming the first broken event, if any; it does not raise for a broken chain.
    ``progress`` is called with the number of events checked so far every 4096 events.
    """
    checker = _ChainChecker(store, actor, indexes=indexes)
    checker.head = store.log.head(actor)
    try:
        while _check_page(store, checker):
            if progress is not None:
                progress(checker.count)
    except _Broken as broken:
        problem = Problem(
            actor=actor, seq=checker.expected_seq, hash=broken.digest, kind=broken.kind, detail=broken.detail
        )
        return ChainReport(actor=actor, events=checker.count, head=checker.head, problem=problem)
    return ChainReport(actor=actor, events=checker.count, head=checker.head)


def verify_store(store: Store, *, progress: Callable[[int], None] | None = None) -> StoreReport:
    """Verify every chain in the store."""
    done = 0
    reports: list[ChainReport] = []
    for actor, _ in store.log.actors():
        offset = done
        step = None if progress is None else (lambda n, o=offset: progress(o + n))
        report = verify_chain(store, actor, progress=step)
        done += report.events
        reports.append(report)
    return StoreReport(chains=reports)


_PAGE = 4096


def _check_page(store: Store, checker: _ChainChecker) -> bool:
    """Check up to one page of events in one snapshot; True when there may be more.

    When the chain ends within this snapshot, the head recorded in the same snapshot must be its last event, so
    appends made while a long walk runs are neither missed nor mistaken for damage. The hash index entries of the
    page are checked with one ``getmulti`` call, in order with the other checks.
    """
    with store.env.read() as txn:
        cursor = txn.cursor(db=store.env.dbs["events"])
        page: list[tuple[bytes, bytes, int]] = []  # (hash, key, seq) of the events checked in this page
        try:
            if cursor.set_range(event_key(checker.actor, checker.expected_seq)):
                checker.check_run(txn, cursor, page)
        except _Broken:
            if checker.indexes:
                checker.check_index(txn, page)
            raise
        if checker.indexes:
            checker.check_index(txn, page)
        if len(page) >= _PAGE:
            return True
        raw = txn.get(checker.actor_bytes, db=store.env.dbs["heads"])
        checker.check_head(EMPTY if raw is None else Head(int.from_bytes(raw[:8], "big"), bytes(raw[8:])))
    return False


class _ChainChecker:
    """Checks one stored event after another; raises ``_Broken`` at the first problem."""

    def __init__(self, store: Store, actor: uuid.UUID, *, indexes: bool = True) -> None:
        self.store = store
        self.indexes = indexes
        self.head = EMPTY
        self._prefix_head = b"\x87" + bytes([FORMAT_VERSION]) + b"\x50" + actor.bytes
        self.actor = actor
        self.actor_bytes = actor.bytes
        self.expected_seq = 0
        self.prev_hash: bytes | None = None
        self.count = 0
        self._index = store.env.dbs["event_index"]

    def check_run(self, txn: Any, cursor: Any, page: list[tuple[bytes, bytes, int]]) -> None:
        """Check events from the cursor on until the chain ends or the page is full (the hot loop, inlined)."""
        prefix, domain, head = self.actor_bytes, EVENT_DOMAIN, self._prefix_head
        append, blake, tag, indexes = page.append, blake3.blake3, BLOB_TAG_BYTES, self.indexes
        for key, value in cursor:
            if key[:16] != prefix:
                return
            seq = int.from_bytes(key[16:], "big")
            digest = value[:DIGEST_SIZE]
            body = value[DIGEST_SIZE:]
            prev = self.prev_hash
            parent = b"\xf6" if prev is None else b"\x58\x20" + prev
            link = head + (bytes((seq,)) if seq < 24 else _uint(seq)) + parent
            if (
                seq != self.expected_seq
                or blake(domain + body).digest() != digest
                or not body.startswith(link)
                or tag in body
            ):
                self.check(txn, seq, value)  # the slow path names the problem (or checks the payloads)
            else:
                self.prev_hash = digest
                self.expected_seq = seq + 1
                self.count += 1
            append((digest, key, seq) if indexes else None)
            if len(page) >= _PAGE:
                return

    def check(self, txn: Any, seq: int, value: bytes) -> None:
        # Check the sequence numbers have no gap.
        if seq != self.expected_seq:
            raise _Broken("sequence gap", f"expected seq {self.expected_seq}, the next stored event is seq {seq}")
        stored_hash = value[:DIGEST_SIZE]
        body = value[DIGEST_SIZE:]
        # Check the body hashes to the stored hash.
        if event_hash(body) != stored_hash:
            self._explain_hash(value)
        # Check the body names this actor, this seq and the previous event as parent: the canonical encoding of
        # those fields is known in advance, so one prefix comparison checks all three.
        if not body.startswith(self._expected_prefix(seq)):
            self._explain_link(seq, body, stored_hash)
        # Check every spilled payload is present and intact.
        if BLOB_TAG_BYTES in body:
            self._check_payloads(txn, body, stored_hash)
        self.prev_hash = stored_hash
        self.expected_seq = seq + 1
        self.count += 1

    def check_index(self, txn: Any, page: list[tuple[bytes, bytes, int]]) -> None:
        # Check the hash index points back at every event of the page.
        if not page or page[0] is None:
            return
        found = dict(txn.cursor(db=self._index).getmulti([digest for digest, _, _ in page]))
        if len(found) < len(page):  # the rest may be in the index's tail (feed entries past the watermark)
            found.update(self.store.log.tail_lookup(txn, [d for d, _, _ in page if d not in found]))
        for digest, key, seq in page:
            if found.get(digest) != key:
                self.expected_seq = seq
                self.count = seq  # the events before this one were verified
                raise _Broken("index mismatch", "the hash index does not point at this event", digest)

    def _expected_prefix(self, seq: int) -> bytes:
        parent = b"\xf6" if self.prev_hash is None else b"\x58\x20" + self.prev_hash
        return self._prefix_head + _uint(seq) + parent

    def _explain_hash(self, value: bytes) -> None:
        if len(value) <= DIGEST_SIZE:
            raise _Broken("corrupt record", f"the record is only {len(value)} bytes")
        stored, actual = value[:DIGEST_SIZE], event_hash(value[DIGEST_SIZE:])
        raise _Broken("hash mismatch", f"stored hash {stored.hex()}, the body hashes to {actual.hex()}", stored)

    def _explain_link(self, seq: int, body: bytes, stored_hash: bytes) -> None:
        actor, body_seq, parent = self._link(body, stored_hash)
        if actor != self.actor_bytes:
            raise _Broken("wrong actor", f"the event names actor {uuid.UUID(bytes=actor)}", stored_hash)
        if body_seq != seq:
            raise _Broken("sequence gap", f"stored at seq {seq} but the event says seq {body_seq}", stored_hash)
        if parent != self.prev_hash:
            raise _Broken(
                "broken parent link",
                f"parent is {_hex(parent)}, the previous event is {_hex(self.prev_hash)}",
                stored_hash,
            )
        raise _Broken("corrupt record", "the event's fields are not in canonical form", stored_hash)

    def _link(self, body: bytes, digest: bytes) -> tuple[bytes, int, bytes | None]:
        link = read_link(body)
        if link is not None:
            return link
        try:
            fields = decode_body(bytes(body), where=f"actor {self.actor} seq {self.expected_seq}")
        except CorruptRecordError as exc:
            raise _Broken("corrupt record", exc.reason, digest) from None
        return fields[1], fields[2], fields[3]

    def _check_payloads(self, txn: Any, body: bytes, digest: bytes) -> None:
        try:
            fields = decode_body(bytes(body), where=f"actor {self.actor} seq {self.expected_seq}")
        except CorruptRecordError as exc:
            raise _Broken("corrupt record", exc.reason, digest) from None
        refs: list[bytes] = []
        collect_blob_refs(fields[6], refs)
        for ref in refs:
            payload = txn.get(ref, db=self.store.env.dbs["blobs"])
            if payload is None:
                raise _Broken("missing payload blob", f"payload blob {ref.hex()} is not in the store", digest)
            actual = blob_digest(payload)
            if actual != ref:
                raise _Broken("payload checksum mismatch", f"payload blob {ref.hex()} hashes to {actual.hex()}", digest)

    def check_head(self, head: Head) -> None:
        # Check the recorded head is the last event walked.
        self.head = head
        if head == EMPTY and self.count == 0:
            return
        if head.seq != self.expected_seq - 1 or head.hash != self.prev_hash:
            raise _Broken(
                "head mismatch",
                f"the head record says seq {head.seq} {_hex(head.hash)}, the chain ends at seq "
                f"{self.expected_seq - 1} {_hex(self.prev_hash)}",
                head.hash,
            )


def _uint(n: int) -> bytes:
    """The canonical CBOR head of an unsigned integer."""
    if n < 24:
        return bytes((n,))
    if n < 0x100:
        return b"\x18" + bytes((n,))
    if n < 0x10000:
        return b"\x19" + n.to_bytes(2, "big")
    if n < 0x100000000:
        return b"\x1a" + n.to_bytes(4, "big")
    return b"\x1b" + n.to_bytes(8, "big")


def _hex(digest: bytes | None) -> str:
    return "none" if digest is None else digest.hex()[:16]
