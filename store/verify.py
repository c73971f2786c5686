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
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import blake3

from store.blobs import blob_digest
from store.chain import EventLog
from store.codec import (
    BLOB_TAG_BYTES,
    DIGEST_SIZE,
    EVENT_DOMAIN,
    INT_WIDTH,
    NOT_IN_PLACE,
    actor_prefix,
    bytes_in_place,
    collect_blob_refs,
    decode_body,
    event_hash,
    link_prefix,
    read_link,
    text_item,
)
from store.errors import CorruptRecordError
from store.home import Store
from store.recorder import EMPTY, Head, Recorder, Snapshot

log = logging.getLogger("store.verify")

# The runtime's events that name blobs by hash, and the fields that hold them (see docs/events.md). A value that
# is not a 32-byte string is not a blob name (replay refuses such a record by its own checks).
BLOB_FIELDS: dict[str, tuple[str, ...]] = {
    "actor/created": ("component", "manifest", "init_state"),
    "actor/revert": ("state",),
    "wasm/instantiate": ("state", "component"),
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


# The fast path finds these types in a body without decoding it: their canonical encoding, by its first byte.
_NAMING_TYPES: dict[int, bytes] = {text_item(t)[0]: text_item(t) for t in BLOB_FIELDS}
assert len(_NAMING_TYPES) == len(BLOB_FIELDS), "two blob-naming types share a first byte"
_NAMING_BY_HEAD = tuple(_NAMING_TYPES.get(h, b"") for h in range(256))  # a sequence index is cheaper than get
_CREATED = text_item("actor/created")
_FUEL_KEY = text_item("fuel")
_STATE_KEY = text_item("state")


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


def _recorder(store: Store | Recorder) -> Recorder:
    return store.log if isinstance(store, Store) else store


def verify_chain(
    store: Store | Recorder,
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

    ``store`` is a home's ``Store`` or any ``store.recorder.Recorder`` (workers apply only to an LMDB home:
    each opens it by path).

    Returns a report naming the first broken event, if any; it does not raise for a broken chain.
    ``progress`` is called with the number of events checked so far every 4096 events (with workers, only
    this process's range is reported as it goes, the others when they finish).
    """
    if workers is None:
        workers = min(os.cpu_count() or 1, 4)
    seen = None if not blobs else set() if seen_blobs is None else seen_blobs
    recorder = _recorder(store)
    if workers > 1 and isinstance(recorder, EventLog):
        head = recorder.head(actor)
        if head.seq + 1 >= max(PARALLEL_FROM, workers):
            return _verify_parallel(recorder, actor, head.seq + 1, workers, progress, indexes, seen)
    return _verify_range(recorder, actor, 0, None, None, progress, indexes, seen)[0]


def _verify_range(
    recorder: Recorder,
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
    checker = _ChainChecker(actor, indexes=indexes, seen=seen)
    checker.expected_seq = checker.count = start
    checker.prev_hash = prev
    checker.stop = stop
    checker.head = recorder.head(actor)
    try:
        while _check_page(recorder, checker):
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
        with store.log.snapshot() as snapshot:
            before = snapshot.stored(uuid.UUID(bytes=actor), start - 1)
        prev = None if before is None else bytes(before[:DIGEST_SIZE])
        seen: set[bytes] | None = set() if blobs else None
        report, end = _verify_range(store.log, uuid.UUID(bytes=actor), start, stop, prev, None, indexes, seen)
        return report, prev, end


def _verify_parallel(
    recorder: EventLog,
    actor: uuid.UUID,
    events: int,
    workers: int,
    progress: Callable[[int], None] | None,
    indexes: bool,
    seen: set[bytes] | None,
) -> ChainReport:
    starts = [events * i // workers for i in range(workers)]
    bounds: list[int | None] = [*starts, None]
    blobs = seen is not None  # each worker keeps its own set of blobs checked
    try:
        pool = ProcessPoolExecutor(workers - 1, mp_context=multiprocessing.get_context("spawn"))
    except (OSError, ValueError):
        return _verify_range(recorder, actor, 0, None, None, progress, indexes, seen)[0]
    with pool:
        futures = [
            pool.submit(_range_in_worker, str(recorder.path), actor.bytes, starts[i], bounds[i + 1], indexes, blobs)
            for i in range(1, workers)
        ]
        report, end = _verify_range(recorder, actor, 0, bounds[1], None, progress, indexes, seen)
        done = report.events
        for i, future in enumerate(futures, start=1):
            if not report.ok:
                future.cancel()
                continue
            try:
                report, started, next_end = future.result()
            except Exception:  # a worker that could not run (no processes here): check its range in this process
                log.warning("verify worker failed; checking seq %d on in this process", starts[i], exc_info=True)
                report, next_end = _verify_range(recorder, actor, starts[i], bounds[i + 1], end, None, indexes, seen)
                started = end
            if report.ok and started != end:
                problem = Problem(actor=actor, seq=starts[i] - 1, hash=started, kind="hash mismatch",
                                  detail="the event changed while it was being verified")
                report = ChainReport(actor=actor, events=starts[i] - 1, head=report.head, problem=problem)
            end = next_end
            done = report.events
            if progress is not None:
                progress(done)
    return report


def verify_store(store: Store | Recorder, *, progress: Callable[[int], None] | None = None) -> StoreReport:
    """Verify every chain in the store (and every blob the chains name, each once)."""
    done = 0
    reports: list[ChainReport] = []
    seen: set[bytes] = set()  # a component or state shared by many actors is checked once
    for actor, _ in _recorder(store).actors():
        offset = done
        step = None if progress is None else (lambda n, o=offset: progress(o + n))
        report = verify_chain(store, actor, progress=step, seen_blobs=seen)
        done += report.events
        reports.append(report)
    return StoreReport(chains=reports)


_PAGE = 4096


def _check_page(recorder: Recorder, checker: _ChainChecker) -> bool:
    """Check up to one page of events in one snapshot; True when there may be more.

    When the chain ends within this snapshot, the head recorded in the same snapshot must be its last event, so
    appends made while a long walk runs are neither missed nor mistaken for damage. The hash index entries of the
    page are checked with one lookup, in order with the other checks.
    """
    with recorder.snapshot() as snapshot:
        page: list[tuple[bytes, bytes, int]] = []  # (hash, location, seq) of the events checked in this page
        limit = _PAGE if checker.stop is None else min(_PAGE, checker.stop - checker.expected_seq)
        if limit <= 0:
            return False  # the range is done; the range after it checks the head
        try:
            read = checker.check_run(snapshot, snapshot.scan(checker.actor, checker.expected_seq), page, limit)
        except _Broken:
            if checker.indexes:
                checker.check_index(snapshot, page)
            raise
        if checker.indexes:
            checker.check_index(snapshot, page)
        if read >= limit:
            return True
        checker.check_head(snapshot.head(checker.actor))
    return False


class _ChainChecker:
    """Checks one stored event after another; raises ``_Broken`` at the first problem."""

    def __init__(self, actor: uuid.UUID, *, indexes: bool = True, seen: set[bytes] | None = None) -> None:
        self.indexes = indexes
        self.seen = seen  # blobs checked so far; None: blobs named by the chain are not checked
        self.head = EMPTY
        self._prefix_head = actor_prefix(actor.bytes)
        self.actor = actor
        self.actor_bytes = actor.bytes
        self.expected_seq = 0
        self.stop: int | None = None
        self.prev_hash: bytes | None = None
        self.count = 0

    def check_run(
        self, snap: Snapshot, stored: Iterable[tuple[bytes, bytes]], page: list[tuple[bytes, bytes, int]], limit: int
    ) -> int:
        """Check the (location, stored value) pairs of ``stored`` until the chain ends or the page is full; return
        how many were read.

        The hot loop: the chain's state lives in locals (written back at the end, and around the slow path),
        and one prefix comparison checks actor, seq and parent at once. Adds (hash, location, seq) to ``page``
        for the index check when ``indexes`` is on.
        """
        prefix, domain, head = self.actor_bytes, EVENT_DOMAIN, self._prefix_head
        append, blake, tag, indexes = page.append, blake3.blake3, BLOB_TAG_BYTES, self.indexes
        tag_first = tag[0]
        naming, int_width, seen = _NAMING_BY_HEAD, INT_WIDTH, self.seen
        expected, prev, count, read = self.expected_seq, self.prev_hash, self.count, 0
        try:
            for key, value in stored:
                if key != prefix + expected.to_bytes(8, "big") and key[:16] != prefix:
                    break  # the next actor's events: this chain ends here
                body = value[DIGEST_SIZE:]
                digest = value[:DIGEST_SIZE]
                link = link_prefix(head, expected, prev)
                if (
                    key[16:] != expected.to_bytes(8, "big")
                    or blake(domain + body).digest() != digest
                    or not body.startswith(link)
                    or (tag_first in body and tag in body)  # a one-byte memchr first: 26 ns against 285 ns
                ):
                    # The slow path names the problem (or checks the payloads of a body holding the blob tag).
                    self.expected_seq, self.prev_hash, self.count = expected, prev, count
                    self.check(snap, int.from_bytes(key[16:], "big"), value)
                    expected, prev, count = self.expected_seq, self.prev_hash, self.count
                else:
                    if seen is not None:
                        # Find the type past the timestamp without decoding: only blob-naming types go further.
                        at = len(link)
                        try:
                            kind = naming[body[at + int_width[body[at]]]]
                        except IndexError:
                            kind = None  # too short to be an event: the hash covers it, replay refuses it
                        if kind and body.startswith(kind, at + int_width[body[at]]):
                            ref = (
                                NOT_IN_PLACE if kind is _CREATED
                                else bytes_in_place(body, at + int_width[body[at]] + len(kind), _STATE_KEY, _FUEL_KEY)
                            )
                            if ref is not None and (ref is NOT_IN_PLACE or ref not in seen):
                                self.expected_seq, self.prev_hash, self.count = expected, prev, count
                                self._check_named(snap, body, ref, digest)
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

    def check(self, snap: Snapshot, seq: int, value: bytes) -> None:
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
            self._check_payloads(snap, fields, stored_hash)
            if self.seen is not None:
                for name, ref in named_blobs(fields[5], fields[6]):
                    self._check_blob(snap, name, ref, stored_hash)
        self.prev_hash = stored_hash
        self.expected_seq = seq + 1
        self.count += 1

    def check_index(self, snap: Snapshot, page: list[tuple[bytes, bytes, int]]) -> None:
        # Check the hash index points back at every event of the page.
        if not page:
            return
        want = {digest: key for digest, key, _ in page}
        found = snap.locations(list(want))
        if found == want:
            return
        for digest, key, seq in page:
            if found.get(digest) != key:
                self.expected_seq = seq
                self.count = seq  # the events before this one were verified
                raise _Broken("index mismatch", "the hash index does not point at this event", digest)

    def _expected_prefix(self, seq: int) -> bytes:
        return link_prefix(self._prefix_head, seq, self.prev_hash)

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

    def _check_payloads(self, snap: Snapshot, fields: list[Any], digest: bytes) -> None:
        refs: list[bytes] = []
        collect_blob_refs(fields[6], refs)
        for ref in refs:
            if self.seen is not None and ref in self.seen:
                continue
            payload = snap.blob(ref)
            if payload is None:
                raise _Broken("missing payload blob", f"payload blob {ref.hex()} is not in the store", digest)
            actual = blob_digest(payload)
            if actual != ref:
                raise _Broken("payload checksum mismatch", f"payload blob {ref.hex()} hashes to {actual.hex()}", digest)
            self._seen(ref)

    def _check_named(self, snap: Snapshot, body: bytes, ref: bytes | object, digest: bytes) -> None:
        """Check the blobs an event of a blob-naming type names: ``ref``, the state read in place, or all of
        them from the decoded event when it could not be (``NOT_IN_PLACE``)."""
        if ref is not NOT_IN_PLACE:
            self._check_blob(snap, "state", ref, digest)  # type: ignore[arg-type]
            return
        fields = self._decode(body, digest)
        for name, named in named_blobs(fields[5], fields[6]):
            self._check_blob(snap, name, named, digest)

    def _check_blob(self, snap: Snapshot, name: str, ref: bytes, digest: bytes) -> None:
        # Check a blob the event names by hash is present and hashes to that name (once per run).
        assert self.seen is not None
        if ref in self.seen:
            return
        blob = snap.blob(ref)
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
