"""The hash index (event hash -> actor || seq) in two parts: the LMDB ``event_index`` and the feed's tail.

Event hashes are random, so every index entry written lands on a different B-tree page: a group commit of 2,000
events dirtied ~2,000 index pages (8 MB to write and fsync), several times what the events themselves cost. So
under load the writer defers index entries: the feed already records every append (actor, hash, seq) in commit
order, and a *watermark* in ``meta`` says up to which feed position the index is complete. Feed entries from the
watermark on are the index's tail; the writer merges them into ``event_index`` in sorted chunks (piggybacked on
later commits, or once it has been idle a moment: ``store._commit.IDLE_MERGE_AFTER_S``), which touches each index
page once per chunk instead of once per event.

Invariant (kept in every committed transaction): every event whose feed position is below the watermark has its
``event_index`` entry. Events at or past it may or may not; a lookup checks the index first, then the tail.
Light loads never build a tail: a small batch with no tail behind it writes its index entries directly, unless it
holds a chain's first append (an actor's start: ``store._commit.DIRECT_INDEX_BELOW_OPS``).

The writer's side lives here too: ``TailState`` is what the writer knows of the tail between commits, and
``advance_tail`` (called inside each commit's transaction, after the batch's records are written) starts a tail,
grows it, and merges it in chunks.

``TailIndex`` is a reader's view of the tail, cached per process and caught up incrementally from the feed in
the reader's own snapshot, so it works for any writer (this process, another one, one that crashed mid-merge).
"""

from __future__ import annotations

import threading
from operator import itemgetter
from typing import Any, NamedTuple

import lmdb

WATERMARK_KEY = b"index-watermark"
FEED_VALUE_SIZE = 16 + 32 + 8  # actor || hash || seq; stores written before the tail existed hold actor || hash
MERGE_AT = 50_000  # a tail this long is merged into the hash index even under load
MERGE_CHUNK = 8_192  # index entries merged per commit (sorted: one key range, so each page is touched once)


def feed_end(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int:
    """The position the next append takes in the feed, as of ``txn``."""
    cursor = txn.cursor(db=dbs["feed"])
    return int.from_bytes(cursor.key(), "big") + 1 if cursor.last() else 0


def read_watermark_or_none(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int | None:
    """The feed position below which every event is in ``event_index`` as of ``txn``; None when it is all of it."""
    raw = txn.get(WATERMARK_KEY, db=dbs["meta"])
    return None if raw is None else int.from_bytes(raw, "big")


def read_tail(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], start: int, stop: int) -> list[tuple[bytes, bytes]]:
    """(hash, actor || seq) of the feed entries at positions ``start <= p < stop``, in feed order."""
    return [(digest, key) for _, digest, key in read_tail_at(txn, dbs, start, stop)]


def read_tail_at(
    txn: lmdb.Transaction[bytes], dbs: dict[str, Any], start: int, stop: int
) -> list[tuple[int, bytes, bytes]]:
    """(position, hash, actor || seq) of the feed entries at positions ``start <= p < stop``, in feed order.

    Entries of the layout before the seq was stored (actor || hash) are skipped: they are never in a tail.
    """
    out: list[tuple[int, bytes, bytes]] = []
    if start >= stop:
        return out
    cursor = txn.cursor(db=dbs["feed"])
    if not cursor.set_range(start.to_bytes(8, "big")):
        return out
    stop_key = stop.to_bytes(8, "big")
    for key, value in cursor:
        if key >= stop_key:
            break
        if len(value) == FEED_VALUE_SIZE:
            out.append((int.from_bytes(key, "big"), value[16:48], value[:16] + value[48:]))
    return out


class TailIndex:
    """A process's cache of the index tail, keyed by hash, holding (feed position, actor || seq).

    The cache covers feed positions ``[start, end)``. A lookup in a snapshot whose watermark is ``start`` only
    reads the feed entries appended since ``end``; entries past the snapshot's feed end are ignored, so a reader
    never sees an event its snapshot does not hold.
    """

    def __init__(self, dbs: dict[str, Any]) -> None:
        self._dbs = dbs
        self._lock = threading.Lock()
        self._start = -1
        self._end = -1
        self._map: dict[bytes, tuple[int, bytes]] = {}

    def _view(self, txn: lmdb.Transaction[bytes]) -> tuple[dict[bytes, tuple[int, bytes]], int] | None:
        """The tail as of ``txn``: a mapping that may hold newer entries, and the snapshot's feed end.

        Call with the lock held; the mapping is only valid while it is.
        """
        dbs = self._dbs
        end = feed_end(txn, dbs)
        raw = txn.get(WATERMARK_KEY, db=dbs["meta"])
        start = end if raw is None else int.from_bytes(raw, "big")
        if start >= end:
            return None
        if start != self._start:
            if start < self._start:
                # A snapshot older than the cache: answer from its own feed, without caching.
                return {h: (pos, k) for pos, h, k in read_tail_at(txn, dbs, start, end)}, end
            self._start, self._end, self._map = start, start, {}
        if end > self._end:
            for pos, h, k in read_tail_at(txn, dbs, self._end, end):
                self._map[h] = (pos, k)
            self._end = end
        return self._map, end

    def lookup(self, txn: lmdb.Transaction[bytes], digest: bytes) -> bytes | None:
        """The actor || seq of the event with this hash if it is in the snapshot's tail."""
        return self.lookup_many(txn, [digest]).get(digest)

    def lookup_many(self, txn: lmdb.Transaction[bytes], digests: list[bytes]) -> dict[bytes, bytes]:
        """``lookup`` for many hashes at once; absent ones are left out."""
        out: dict[bytes, bytes] = {}
        with self._lock:
            view = self._view(txn)
            if view is None:
                return out
            mapping, end = view
            for digest in digests:
                found = mapping.get(digest)
                if found is not None and found[0] < end:
                    out[digest] = found[1]
        return out

    def hashes_starting_with(self, txn: lmdb.Transaction[bytes], start: bytes) -> list[bytes]:
        """The tail's hashes (in the snapshot) whose bytes start with ``start``."""
        with self._lock:
            view = self._view(txn)
            if view is None:
                return []
            mapping, end = view
            return [h for h, (pos, _) in mapping.items() if pos < end and h.startswith(start)]


class Merge:
    """A tail merge in progress: the sorted entries of the feed positions below ``end`` that were in the tail, and
    how many of them are written."""

    __slots__ = ("entries", "done", "end")

    def __init__(self, entries: list[tuple[bytes, bytes]], end: int, done: int = 0) -> None:
        self.entries = entries
        self.done = done
        self.end = end


class TailState(NamedTuple):
    """What the writer knows of the tail between commits.

    ``watermark``: the feed position the index is complete up to (None: all of it). ``merge``: a merge in
    progress. ``tail``: (hash, actor || seq) of the tail's entries not yet in a merge, in feed order, when the
    writer knows them all (None: read them from the feed when the next merge starts, e.g. a tail left by a crash).
    A commit builds a new state and the writer adopts it only once the commit succeeded, so a retried commit
    starts from the old one.
    """

    watermark: int | None
    merge: Merge | None
    tail: list[tuple[bytes, bytes]] | None

    @classmethod
    def read(cls, txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> TailState:
        """The state as the database alone tells it (on opening, or after another process wrote)."""
        watermark = read_watermark_or_none(txn, dbs)
        return cls(watermark, None, [] if watermark is None else None)


NO_TAIL = TailState(None, None, [])


def advance_tail(
    txn: lmdb.Transaction[bytes],
    dbs: dict[str, Any],
    state: TailState,
    *,
    feed_start: int,
    feed_next: int,
    deferred: list[tuple[bytes, bytes]],
    merge: bool,
) -> tuple[TailState, bool]:
    """Bring the tail up to date with a commit whose records are written; return the new state and whether
    this wrote to the index or the watermark.

    Args:
        feed_start: the feed position the commit's first append took; ``feed_next`` the one after its last.
        deferred: (hash, actor || seq) of the commit's appends whose index entries were not written.
        merge: merge a chunk even if the tail is short (the writer is idle).
    """
    watermark, pending, tail = state
    wrote = False
    if deferred and watermark is None:
        watermark = feed_start  # this batch starts the tail
        txn.put(WATERMARK_KEY, watermark.to_bytes(8, "big"), db=dbs["meta"])
        wrote = True
    if tail is not None and deferred:
        tail = tail + deferred  # a new list: a retried commit starts from the old one
    if watermark is not None and (merge or pending is not None or feed_next - watermark >= MERGE_AT):
        if pending is None:  # a merge starts: it takes the whole tail, a new one begins
            pending, tail = _start_merge(txn, dbs, watermark, feed_next, tail), []
        watermark, pending = _merge_step(txn, dbs, watermark, feed_next, pending)
        wrote = True
    if watermark is None:
        tail = []
    return TailState(watermark, pending, tail), wrote


def _start_merge(
    txn: lmdb.Transaction[bytes],
    dbs: dict[str, Any],
    watermark: int,
    feed_next: int,
    tail: list[tuple[bytes, bytes]] | None,
) -> Merge:
    """A merge of every tail entry up to ``feed_next``, sorted by hash."""
    if tail is None or len(tail) != feed_next - watermark:
        tail = read_tail(txn, dbs, watermark, feed_next)
    entries = sorted(tail, key=itemgetter(0))  # bytes against bytes: 3x faster than comparing the tuples
    return Merge(entries, feed_next)


def _merge_step(
    txn: lmdb.Transaction[bytes], dbs: dict[str, Any], watermark: int, feed_next: int, merge: Merge
) -> tuple[int | None, Merge | None]:
    """Write the next sorted chunk of the tail into the hash index; return the new (watermark, merge)."""
    chunk = merge.entries[merge.done : merge.done + MERGE_CHUNK]
    if chunk:
        txn.cursor(db=dbs["event_index"]).putmulti(chunk)
    done = merge.done + len(chunk)
    if done < len(merge.entries):
        # A new object: a retried commit starts from the old one.
        return watermark, Merge(merge.entries, merge.end, done)
    # Every entry below merge.end is indexed now.
    if merge.end >= feed_next:
        txn.delete(WATERMARK_KEY, db=dbs["meta"])
        return None, None
    txn.put(WATERMARK_KEY, merge.end.to_bytes(8, "big"), db=dbs["meta"])
    return merge.end, None
