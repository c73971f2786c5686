"""Integrity verification of stored chains: every hash, every parent link, every sequence number, every payload,
every blob the chain names.

This checks that the record is intact (nothing changed, nothing missing). That it is *true* (that the recorded
results follow from the component) is checked by re-execution in ``replay``.

Besides spilled payloads, a chain names blobs by hash in the runtime's own events (``BLOB_FIELDS``: the component,
the manifest, the initial state, every state): each must be in the store and hash to its name. Each distinct blob
is checked once per run (per process when a long chain is split across workers).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
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
    uint_head,
)
from store.errors import CorruptRecordError
from store.home import Store

log = logging.getLogger("store.verify")

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
    "missing blob",
    "blob checksum mismatch",
)

# The runtime's events that name blobs by hash, and the fields that hold them (see docs/events.md). A value that
# is not a 32-byte string is not a blob name (replay refuses such a record by its own checks).
BLOB_FIELDS: dict[str, tuple[str, ...]] = {
    "actor/created": ("component", "manifest", "init_state"),
    "wasm/instantiate": ("state",),
    "wasm/call": ("state",),
    "wasm/result": ("state",),
}
SEEN_BLOBS_MAX = 1 << 20  # digests remembered as checked; past this the memory is cleared (a blob may be re-read)


def named_blobs(type_: str, data: Any) -> list[tuple[str, bytes]]:
    """The (field, digest) of every blob an event of ``type_`` names in its data (see ``BLOB_FIELDS``)."""
    fields = BLOB_FIELDS.get(type_)
    if not fields or not isinstance(data, dict):
        return []
    out = []
    for name in fields:
        value = data.get(name)
        if isinstance(value, bytes) and len(value) == DIGEST_SIZE:
            out.append((name, value))
    return out


def _text_head(text: str) -> bytes:
    raw = text.encode()
    assert len(raw) < 24
    return bytes((0x60 | len(raw),)) + raw


# The fast path finds these types in a body without decoding it: their canonical encoding, by its first byte.
_NAMING_TYPES: dict[int, bytes] = {_text_head(t)[0]: _text_head(t) for t in BLOB_FIELDS}
assert len(_NAMING_TYPES) == len(BLOB_FIELDS), "two blob-naming types share a first byte"
_NAMING_BY_HEAD = tuple(_NAMING_TYPES.get(h, b"") for h in range(256))  # a sequence index is cheaper than get
_CREATED = _text_head("actor/created")
# The width of a CBOR unsigned integer (head included) by its head byte; 0 for anything else.
_UINT_WIDTH = tuple(1 if h < 24 else 1 + (1 << (h - 24)) if h < 28 else 0 for h in range(256))
# The same for any integer, negative ones (major type 1) too: a timestamp is an integer.
_INT_WIDTH = tuple(_UINT_WIDTH[h] or (_UINT_WIDTH[h - 0x20] if 0x20 <= h < 0x3C else 0) for h in range(256))
_FUEL_KEY = _text_head("fuel")
_STATE_KEY = _text_head("state")


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


PARALLEL_FROM = 262_144  # events; below this, starting worker processes costs more than it saves


def verify_chain(
    store: Store,
    actor: uuid.UUID,
    *,
    progress: Callable[[int], None] | None = None,
    indexes: bool = True,
    workers: int | None = None,
    blobs: bool = True,
    seen_blobs: set[bytes] | None = None,
) -> ChainReport:
    """Walk one chain from genesis and recompute every hash and link.

    With ``indexes`` (the default) it also checks that the hash index leads to every event; without, it checks
    the chain alone (about twice as fast on a large chain: the index lookups are random reads).

    With ``blobs`` (the default) every blob the chain names (``BLOB_FIELDS``) must be in the store and hash to
    its name, each distinct blob checked once (``seen_blobs``, shared by the chains of one run, holds those
    already checked). Without, only the chain's own bytes and spilled payloads are checked: a measure of pure
    hash-chain speed, not a full integrity check.

    A chain of ``PARALLEL_FROM`` events or more is split into ``workers`` consecutive ranges (default: one per
    CPU, at most 4), each checked by its own process reading its own snapshots; range k starts from the stored
    hash of the event before it, and the report requires that hash to be exactly where range k-1 ended. The
    hot loop holds the GIL, so threads would not help.

    Returns a report naming the first broken event, if any; it does not raise for a broken chain.
    ``progress`` is called with the number of events checked so far every 4096 events (with workers, only
    this process's range is reported as it goes, the others when they finish).
    """
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    seen = None if not blobs else set() if seen_blobs is None else seen_blobs
    if workers > 1:
        head = store.log.head(actor)
        if head.seq + 1 >= max(PARALLEL_FROM, workers):
            return _verify_parallel(store, actor, head.seq + 1, workers, progress, indexes, seen)
    return _verify_range(store, actor, 0, None, None, progress, indexes, seen)[0]


def _verify_range(
    store: Store,
    actor: uuid.UUID,
    start: int,
    stop: int | None,
    prev: bytes | None,
    progress: Callable[[int], None] | None,
    indexes: bool,
    seen: set[bytes] | None,
) -> tuple[ChainReport, bytes | None]:
    """Verify events ``start <= seq < stop`` (to the chain's end when ``stop`` is None), the first one's parent
    being ``prev``; return the report and the hash the range ended on. ``seen``: the blobs already checked
    (None: the blobs the chain names are not checked)."""
    checker = _ChainChecker(store, actor, indexes=indexes, seen=seen)
    checker.expected_seq = checker.count = start
    checker.prev_hash = prev
    checker.stop = stop
    checker.head = store.log.head(actor)
    try:
        while _check_page(store, checker):
            if progress is not None:
                progress(checker.count)
    except _Broken as broken:
        problem = Problem(
            actor=actor, seq=checker.expected_seq, hash=broken.digest, kind=broken.kind, detail=broken.detail
        )
        return ChainReport(actor=actor, events=checker.count, head=checker.head, problem=problem), checker.prev_hash
    return ChainReport(actor=actor, events=checker.count, head=checker.head), checker.prev_hash


def _range_in_worker(
    path: str, actor: bytes, start: int, stop: int | None, indexes: bool, blobs: bool = True
) -> tuple[ChainReport, bytes | None, bytes | None]:
    """A worker process's range: (report, the stored hash it started from, the hash it ended on)."""
    with Store(path, readonly=True) as store:
        where = event_key(uuid.UUID(bytes=actor), start - 1)
        with store.env.read() as txn:
            before = txn.get(where, db=store.env.dbs["events"])
        prev = None if before is None else bytes(before[:DIGEST_SIZE])
        seen: set[bytes] | None = set() if blobs else None
        report, end = _verify_range(store, uuid.UUID(bytes=actor), start, stop, prev, None, indexes, seen)
        return report, prev, end


def _verify_parallel(
    store: Store,
    actor: uuid.UUID,
    events: int,
    workers: int,
    progress: Callable[[int], None] | None,
    indexes: bool,
    seen: set[bytes] | None,
) -> ChainReport:
    bounds = [events * i // workers for i in range(workers)] + [None]
    blobs = seen is not None  # each worker keeps its own set of blobs checked
    try:
        pool = ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"))
    except (OSError, ValueError):
        return _verify_range(store, actor, 0, None, None, progress, indexes, seen)[0]
    with pool:
        futures = [
            pool.submit(_range_in_worker, str(store.path), actor.bytes, bounds[i], bounds[i + 1], indexes, blobs)
            for i in range(1, workers)
        ]
        report, end = _verify_range(store, actor, 0, bounds[1], None, progress, indexes, seen)
        done = report.events
        for i, future in enumerate(futures, start=1):
            if not report.ok:
                future.cancel()
                continue
            try:
                report, started, next_end = future.result()
            except Exception:  # a worker that could not run (no processes here): check its range in this process
                log.warning("verify worker failed; checking seq %d on in this process", bounds[i], exc_info=True)
                report, next_end = _verify_range(store, actor, bounds[i], bounds[i + 1], end, None, indexes, seen)
                started = end
            if report.ok and started != end:
                problem = Problem(actor=actor, seq=bounds[i] - 1, hash=started, kind="hash mismatch",
                                  detail="the event changed while it was being verified")
                report = ChainReport(actor=actor, events=bounds[i] - 1, head=report.head, problem=problem)
            end = next_end
            done = report.events
            if progress is not None:
                progress(done)
    return report


def verify_store(store: Store, *, progress: Callable[[int], None] | None = None) -> StoreReport:
    """Verify every chain in the store (and every blob the chains name, each once)."""
    done = 0
    reports: list[ChainReport] = []
    seen: set[bytes] = set()  # a component or state shared by many actors is checked once
    for actor, _ in store.log.actors():
        offset = done
        step = None if progress is None else (lambda n, o=offset: progress(o + n))
        report = verify_chain(store, actor, progress=step, seen_blobs=seen)
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
        read = 0
        limit = _PAGE if checker.stop is None else min(_PAGE, checker.stop - checker.expected_seq)
        if limit <= 0:
            return False  # the range is done; the range after it checks the head
        try:
            if cursor.set_range(event_key(checker.actor, checker.expected_seq)):
                read = checker.check_run(txn, cursor, page, limit)
        except _Broken:
            if checker.indexes:
                checker.check_index(txn, page)
            raise
        if checker.indexes:
            checker.check_index(txn, page)
        if read >= limit:
            return True
        raw = txn.get(checker.actor_bytes, db=store.env.dbs["heads"])
        checker.check_head(EMPTY if raw is None else Head(int.from_bytes(raw[:8], "big"), bytes(raw[8:])))
    return False


_UNREAD = object()  # a blob name the fast path leaves to a full decode


def _state_in_place(body: bytes, at: int, kind: bytes) -> bytes | None | object:
    """The ``state`` blob hash of a ``wasm/call``, ``wasm/result`` or ``wasm/instantiate`` whose data starts at
    ``at``, read without decoding: None when it holds none, ``_UNREAD`` when it is not where canonical key order
    puts it (the map's first key, or the second after ``fuel``) or the event is a creation event."""
    if kind is _CREATED:
        return _UNREAD
    try:
        if not 0xA1 <= body[at] <= 0xB7:
            return _UNREAD
        at += 1
        if body.startswith(_FUEL_KEY, at):
            width = _UINT_WIDTH[body[at + 5]]
            if not width:
                return _UNREAD
            at += 5 + width
        if not body.startswith(_STATE_KEY, at):
            return _UNREAD
        at += 6
        if body[at] == 0xF6:
            return None
        if body[at] == 0x58 and body[at + 1] == DIGEST_SIZE and len(body) >= at + 2 + DIGEST_SIZE:
            return body[at + 2 : at + 2 + DIGEST_SIZE]
    except IndexError:
        pass
    return _UNREAD


class _ChainChecker:
    """Checks one stored event after another; raises ``_Broken`` at the first problem."""

    def __init__(self, store: Store, actor: uuid.UUID, *, indexes: bool = True, seen: set[bytes] | None = None) -> None:
        self.store = store
        self.indexes = indexes
        self.seen = seen  # blobs checked so far; None: blobs named by the chain are not checked
        self.head = EMPTY
        self._prefix_head = b"\x87" + bytes([FORMAT_VERSION]) + b"\x50" + actor.bytes
        self.actor = actor
        self.actor_bytes = actor.bytes
        self.expected_seq = 0
        self.stop: int | None = None
        self.prev_hash: bytes | None = None
        self.count = 0
        self._index = store.env.dbs["event_index"]
        self._blobs = store.env.dbs["blobs"]

    def check_run(self, txn: Any, cursor: Any, page: list[tuple[bytes, bytes, int]], limit: int) -> int:
        """Check events from the cursor on until the chain ends or the page is full; return how many were read.

        The hot loop: the chain's state lives in locals (written back at the end, and around the slow path),
        and one prefix comparison checks actor, seq and parent at once. Adds (hash, key, seq) to ``page`` for
        the index check when ``indexes`` is on.
        """
        prefix, domain, head = self.actor_bytes, EVENT_DOMAIN, self._prefix_head
        append, blake, tag, indexes = page.append, blake3.blake3, BLOB_TAG_BYTES, self.indexes
        tag_first = tag[0]
        names, naming, int_width, seen = self.seen is not None, _NAMING_BY_HEAD, _INT_WIDTH, self.seen
        expected, prev, count, read = self.expected_seq, self.prev_hash, self.count, 0
        try:
            for key, value in cursor:
                if key != prefix + expected.to_bytes(8, "big") and key[:16] != prefix:
                    break  # the next actor's events: this chain ends here
                body = value[DIGEST_SIZE:]
                digest = value[:DIGEST_SIZE]
                if expected < 24:
                    seq_head = bytes((expected,))
                elif expected >= 65536 and expected < 4294967296:
                    seq_head = b"\x1a" + expected.to_bytes(4, "big")
                else:
                    seq_head = uint_head(expected)
                link = head + seq_head + (b"\xf6" if prev is None else b"\x58\x20" + prev)
                if (
                    key[16:] != expected.to_bytes(8, "big")
                    or blake(domain + body).digest() != digest
                    or not body.startswith(link)
                    or (tag_first in body and tag in body)  # a one-byte memchr first: 26 ns against 285 ns
                ):
                    # The slow path names the problem (or checks the payloads of a body holding the blob tag).
                    self.expected_seq, self.prev_hash, self.count = expected, prev, count
                    self.check(txn, int.from_bytes(key[16:], "big"), value)
                    expected, prev, count = self.expected_seq, self.prev_hash, self.count
                else:
                    if names:
                        # Find the type past the timestamp without decoding: only blob-naming types go further.
                        at = len(link)
                        try:
                            kind = naming[body[at + int_width[body[at]]]]
                        except IndexError:
                            kind = None  # too short to be an event: the hash covers it, replay refuses it
                        if kind and body.startswith(kind, at + int_width[body[at]]):
                            ref = _state_in_place(body, at + int_width[body[at]] + len(kind), kind)
                            if ref is not None and (ref is _UNREAD or ref not in seen):
                                self.expected_seq, self.prev_hash, self.count = expected, prev, count
                                self._check_named(txn, body, ref, digest)
                    prev = digest
                    expected += 1
                    count += 1
                if indexes:
                    append((digest, key, expected - 1))
                read += 1
                if read >= limit:
                    break
        finally:
            self.expected_seq, self.prev_hash, self.count = expected, prev, count
        return read

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
        # Check every spilled payload, and every blob the event names, is present and intact.
        if BLOB_TAG_BYTES in body:
            fields = self._decode(body, stored_hash)
            self._check_payloads(txn, fields, stored_hash)
            if self.seen is not None:
                for name, ref in named_blobs(fields[5], fields[6]):
                    self._check_blob(txn, name, ref, stored_hash)
        self.prev_hash = stored_hash
        self.expected_seq = seq + 1
        self.count += 1

    def check_index(self, txn: Any, page: list[tuple[bytes, bytes, int]]) -> None:
        # Check the hash index points back at every event of the page.
        if not page:
            return
        want = {digest: key for digest, key, _ in page}
        # Sorted lookups walk the B-tree in order (neighbouring leaves, warm branch pages).
        found = dict(txn.cursor(db=self._index).getmulti(sorted(want)))
        if len(found) < len(want):  # the rest may be in the index's tail (feed entries past the watermark)
            found.update(self.store.log.tail_lookup(txn, [d for d in want if d not in found]))
        if found == want:
            return
        for digest, key, seq in page:
            if found.get(digest) != key:
                self.expected_seq = seq
                self.count = seq  # the events before this one were verified
                raise _Broken("index mismatch", "the hash index does not point at this event", digest)

    def _expected_prefix(self, seq: int) -> bytes:
        parent = b"\xf6" if self.prev_hash is None else b"\x58\x20" + self.prev_hash
        return self._prefix_head + uint_head(seq) + parent

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

    def _decode(self, body: bytes, digest: bytes) -> list[Any]:
        try:
            return decode_body(bytes(body), where=f"actor {self.actor} seq {self.expected_seq}")
        except CorruptRecordError as exc:
            raise _Broken("corrupt record", exc.reason, digest) from None

    def _check_payloads(self, txn: Any, fields: list[Any], digest: bytes) -> None:
        refs: list[bytes] = []
        collect_blob_refs(fields[6], refs)
        for ref in refs:
            if self.seen is not None and ref in self.seen:
                continue
            payload = txn.get(ref, db=self._blobs)
            if payload is None:
                raise _Broken("missing payload blob", f"payload blob {ref.hex()} is not in the store", digest)
            actual = blob_digest(payload)
            if actual != ref:
                raise _Broken("payload checksum mismatch", f"payload blob {ref.hex()} hashes to {actual.hex()}", digest)
            self._seen(ref)

    def _check_named(self, txn: Any, body: bytes, ref: bytes | object, digest: bytes) -> None:
        """Check the blobs an event of a blob-naming type names: ``ref``, the state read in place, or all of
        them from the decoded event when it could not be (``_UNREAD``)."""
        if ref is not _UNREAD:
            self._check_blob(txn, "state", ref, digest)  # type: ignore[arg-type]
            return
        fields = self._decode(body, digest)
        for name, named in named_blobs(fields[5], fields[6]):
            self._check_blob(txn, name, named, digest)

    def _check_blob(self, txn: Any, name: str, ref: bytes, digest: bytes) -> None:
        # Check a blob the event names by hash is present and hashes to that name (once per run).
        assert self.seen is not None
        if ref in self.seen:
            return
        blob = txn.get(ref, db=self._blobs)
        if blob is None:
            raise _Broken("missing blob", f"{name} blob {ref.hex()} is not in the store", digest)
        actual = blob_digest(blob)
        if actual != ref:
            raise _Broken("blob checksum mismatch", f"{name} blob {ref.hex()} hashes to {actual.hex()}", digest)
        self._seen(ref)

    def _seen(self, ref: bytes) -> None:
        if self.seen is None:
            return
        if len(self.seen) >= SEEN_BLOBS_MAX:
            self.seen.clear()
        self.seen.add(ref)

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


def _hex(digest: bytes | None) -> str:
    return "none" if digest is None else digest.hex()[:16]
