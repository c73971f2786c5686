"""The home's Merkle log: every committed event's hash is a leaf of one append-only RFC 9162 tree, in feed order.

Tree hashing is RFC 9162's (certificate transparency v2) with SHA-256: ``leaf = SHA-256(0x00 || event hash)``,
``node = SHA-256(0x01 || left || right)``, and the tree of ``n`` leaves splits at the largest power of two below
``n``. SHA-256 (where blobs and events use blake3) because the point of this log is that others check it: every
transparency-log verifier (RFC 9162, C2SP tlog-checkpoint, sigsum, Go's ``transparency-dev/merkle``) speaks SHA-256,
and a proof only an in-house verifier can check proves little to an auditor.

Leaf ``i`` is the event at feed position ``i``: the feed already numbers every append in commit order, from 0,
without gaps, and never drops one. So "commit order" is the feed's order, for homes written before this log existed
too (their tree is built once from the feed by the first commit that finds it behind, see ``extend``).

Storage (the ``merkle`` database, written by the writer inside the same transaction as the events):
- ``level (1 byte) || index (8, big-endian)`` -> the 32-byte hash of the perfect subtree of ``2**level`` leaves
  starting at leaf ``index * 2**level``, for ``level >= 4``, stored once it is complete (one put per 8 appends).
  Smaller subtrees are recomputed when read from at most 8 consecutive feed entries (leaf ``i`` is
  ``SHA-256(0x00 || hash)`` of feed entry ``i``): a proof needs at most one of them per level.
- ``b"p" || actor (16) || seq (8)`` -> leaf index (8): the last event of each actor in each run of 1,024 leaves,
  written when a checkpoint is made (only events in a checkpoint can be proven; ``index_positions``). An event's
  leaf is found from the next such record by scanning the feed back from there, at most 1,024 entries.
- ``meta`` ``merkle-size``: how many leaves the tree holds (equal to the feed's length after every commit);
  ``merkle-indexed``: how many have their lookup records.

Every tree of size ``n`` splits into perfect subtrees aligned on their size (RFC 9162's recursion only ever makes
such ranges), so the root of any earlier size, inclusion proofs and consistency proofs are computed from stored
nodes in ``O(log n)`` (roots) or ``O(log² n)`` (proofs) reads, never by rebuilding.

The proof and verification functions at the top need no store: ``verify_inclusion`` and ``verify_consistency`` are
RFC 9162 sections 2.1.3.2 and 2.1.4.2, for auditors holding nothing but a proof and a signed root.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import lmdb

from store._index import FEED_VALUE_SIZE
from store.errors import CorruptRecordError, InvalidInputError, NotFoundError

HASH_SIZE = 32
SIZE_KEY = b"merkle-size"
POSITION_PREFIX = b"p"
STORED_FROM_LEVEL = 4  # subtrees of fewer leaves (at most 8) are recomputed from the feed when read
POSITION_CHUNK = 1024  # the lookup records: each actor's last leaf in each run of this many leaves
INDEXED_KEY = b"merkle-indexed"  # in meta: the leaves below this have their lookup records

# Reads the hash of perfect subtree (level, index); level 0 is a leaf hash.
NodeReader = Callable[[int, int], bytes]


def leaf_hash(data: bytes) -> bytes:
    """RFC 9162 leaf hash: SHA-256(0x00 || data)."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 9162 interior node hash: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def _split(n: int) -> int:
    """The largest power of two strictly below ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def subtree_root(read: NodeReader, lo: int, hi: int) -> bytes:
    """MTH(D[lo:hi]) for a range RFC 9162's recursion makes (``lo`` aligned on the perfect parts), from stored nodes."""
    n = hi - lo
    if n == 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0:
        return read(n.bit_length() - 1, lo // n)
    k = _split(n)
    return node_hash(read((k.bit_length() - 1), lo // k), subtree_root(read, lo + k, hi))


def inclusion_path(read: NodeReader, index: int, size: int) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH(index, D[0:size]), bottom-up."""
    if not 0 <= index < size:
        raise InvalidInputError("leaf index", str(index), f"a leaf of the tree of size {size} (0..{size - 1})")
    path: list[bytes] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            path.append(subtree_root(read, lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_root(read, lo, lo + k))
            lo = lo + k
    path.reverse()
    return path


def consistency_path(read: NodeReader, old: int, new: int) -> list[bytes]:
    """RFC 9162 2.1.4.1 PROOF(old, D[0:new]): the proof that the tree of size ``new`` extends that of ``old``."""
    if not 0 <= old <= new:
        raise InvalidInputError("tree sizes", f"{old}, {new}", "0 <= old <= new")
    if old == 0 or old == new:
        return []
    path: list[bytes] = []
    lo, hi, m, whole = 0, new, old, True
    while m != hi - lo:
        k = _split(hi - lo)
        if m <= k:
            path.append(subtree_root(read, lo + k, hi))
            hi = lo + k
        else:
            path.append(subtree_root(read, lo, lo + k))
            lo, m, whole = lo + k, m - k, False
    if not whole:
        path.append(subtree_root(read, lo, hi))
    path.reverse()
    return path


def verify_inclusion(leaf: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> bool:
    """RFC 9162 2.1.3.2: True when ``path`` proves leaf hash ``leaf`` is leaf ``index`` of the tree ``root``."""
    if not 0 <= index < size:
        return False
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old: int, new: int, path: Sequence[bytes], old_root: bytes, new_root: bytes) -> bool:
    """RFC 9162 2.1.4.2: True when ``path`` proves the tree ``new_root`` of size ``new`` extends ``old_root``."""
    if not 0 <= old <= new:
        return False
    if old == new:
        return not path and old_root == new_root
    if old == 0:
        return not path
    if not path:
        return False
    nodes = list(path)
    if old & (old - 1) == 0:
        nodes.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# The writer's side.


def _node_key(level: int, index: int) -> bytes:
    return bytes((level,)) + index.to_bytes(8, "big")


def read_size(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int:
    """The number of leaves in the tree as of ``txn`` (0 for a home whose tree was never built)."""
    if "merkle" not in dbs:
        return 0
    raw = txn.get(SIZE_KEY, db=dbs["meta"])
    return 0 if raw is None else int.from_bytes(raw, "big")


class Frontier:
    """The tree's right edge as a commit left it: its size and, for each set bit of the size, the root of the
    complete subtree the next leaves' parents combine with (``nodes[level]``; unused levels hold ``b""``).

    The writer keeps the one its last commit made and hands it to the next ``extend``, which then reads no node:
    without it every commit recomputed the levels below ``STORED_FROM_LEVEL`` from up to 15 feed entries.
    Never changed once made (``extend`` builds a new one), so a commit that fails leaves the kept one as it was.
    """

    __slots__ = ("size", "nodes")

    def __init__(self, size: int, nodes: list[bytes]) -> None:
        self.size = size
        self.nodes = nodes


def extend(
    txn: lmdb.Transaction[bytes],
    dbs: dict[str, Any],
    feed_start: int,
    leaves: Sequence[bytes],
    frontier: Frontier | None = None,
) -> Frontier | None:
    """Add this commit's appends to the tree, inside the commit's write transaction; the tree's new frontier when
    it wrote, None when there was nothing to add.

    ``leaves`` are the leaf hashes of the commit's new feed entries, at positions from ``feed_start`` on (hashed
    by the appenders, in their threads). A tree behind the feed (a home written before the log existed, or by a
    writer that did not keep it) is first caught up from the stored feed, so the tree is always the feed's leaves
    in feed order. ``frontier`` is the one the previous commit of this transaction's lineage returned (the caller
    vouches that nothing else wrote since, as it does for its feed position): its size is taken as the stored size,
    without reading it. Without one the size and the frontier are read from the store.

    The stored size is not read when a frontier is given because that read is the commit's only ``txn.get`` of a
    present key, and py-lmdb lets the GIL go around such a get (it faults the value's pages in first): the writer
    thread then waited behind the appending threads to win it back, once per commit.

    Raises:
        CorruptRecordError: the stored tree is longer than the feed.
    """
    size = read_size(txn, dbs) if frontier is None else frontier.size
    if size > feed_start:
        raise CorruptRecordError("merkle log", f"it holds {size} leaves but the feed only {feed_start} entries")
    hashes: list[bytes] = []
    if size < feed_start:
        cursor = txn.cursor(db=dbs["feed"])
        if cursor.set_range(size.to_bytes(8, "big")):
            stop = feed_start.to_bytes(8, "big")
            for key, value in cursor:
                if key >= stop:
                    break
                hashes.append(leaf_hash(bytes(value[16:48])))
        if len(hashes) != feed_start - size:
            raise CorruptRecordError("feed", f"positions {size}..{feed_start - 1} are not all there")
    hashes.extend(leaves)
    if not hashes:
        return None
    edge = list(frontier.nodes) if frontier is not None else read_frontier(txn, dbs, size)
    # The hot loop (once per append, on the writer thread): half the appends end at once, the rest hash a parent.
    sha256 = hashlib.sha256
    puts: list[tuple[bytes, bytes]] = []
    position = size
    for h in hashes:
        index, level = position, 0
        while index & 1:
            h = sha256(b"\x01" + edge[level] + h).digest()
            level += 1
            index >>= 1
            if level >= STORED_FROM_LEVEL:
                puts.append((bytes((level,)) + index.to_bytes(8, "big"), h))
        edge[level] = h
        position += 1
    if puts:
        puts.sort()
        txn.cursor(db=dbs["merkle"]).putmulti(puts)
    txn.put(SIZE_KEY, position.to_bytes(8, "big"), db=dbs["meta"])
    return Frontier(position, edge)


def read_frontier(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], size: int) -> list[bytes]:
    """The frontier of the stored tree of ``size`` leaves (see ``Frontier``), read from its nodes."""
    edge: list[bytes] = [b""] * 64
    start = 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            edge[level] = read_node(txn, dbs, level, start >> level)
            start += 1 << level
    return edge


def index_positions(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], stop: int) -> None:
    """Record where events are in the tree, for the leaves from the last indexed one up to ``stop``.

    Only events in a checkpoint can be proven, so the lookup records are written when a checkpoint is made, not
    with every commit (that kept about one B-tree page per actor per commit out of the appends' fsync). For each
    run of ``POSITION_CHUNK`` leaves, the last event of each actor in it gets ``b"p" || actor || seq`` -> its leaf.
    """
    raw = txn.get(INDEXED_KEY, db=dbs["meta"])
    start = 0 if raw is None else int.from_bytes(raw, "big")
    if start >= stop:
        return
    records: dict[bytes, tuple[int, int]] = {}
    puts: list[tuple[bytes, bytes]] = []
    cursor = txn.cursor(db=dbs["feed"])
    if cursor.set_range(start.to_bytes(8, "big")):
        end = stop.to_bytes(8, "big")
        for key, value in cursor:
            if key >= end:
                break
            full = _full_feed_value(txn, dbs, bytes(value))
            position = int.from_bytes(key, "big")
            if len(full) == FEED_VALUE_SIZE:
                records[full[:16]] = (int.from_bytes(full[48:], "big"), position)
            if position % POSITION_CHUNK == POSITION_CHUNK - 1:
                puts.extend(_records(records))
                records.clear()
    puts.extend(_records(records))
    puts.sort()
    txn.cursor(db=dbs["merkle"]).putmulti(puts)
    txn.put(INDEXED_KEY, stop.to_bytes(8, "big"), db=dbs["meta"])


def _records(records: dict[bytes, tuple[int, int]]) -> list[tuple[bytes, bytes]]:
    return [(POSITION_PREFIX + actor + seq.to_bytes(8, "big"), at.to_bytes(8, "big"))
            for actor, (seq, at) in records.items()]


def _full_feed_value(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], value: bytes) -> bytes:
    """The feed value with its seq: entries of the old layout (actor || hash) get it from the hash index."""
    if len(value) == FEED_VALUE_SIZE:
        return value
    where = txn.get(value[16:48], db=dbs["event_index"])  # the old layout: every such event is in the index
    return value if where is None else value + bytes(where[16:])


def read_node(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], level: int, index: int) -> bytes:
    """The hash of the complete perfect subtree (level, index): stored from ``STORED_FROM_LEVEL`` up, computed from
    the feed's event hashes below it."""
    if level >= STORED_FROM_LEVEL:
        raw = txn.get(_node_key(level, index), db=dbs["merkle"])
        if raw is None:
            raise CorruptRecordError("merkle log", f"node {level}/{index} is missing")
        return bytes(raw)
    width = 1 << level
    cursor = txn.cursor(db=dbs["feed"])
    first = index * width
    hashes = []
    if cursor.set_key(first.to_bytes(8, "big")):
        for _, value in cursor:
            hashes.append(leaf_hash(bytes(value[16:48])))
            if len(hashes) == width:
                break
    if len(hashes) != width:
        raise CorruptRecordError(f"feed positions {first}..{first + width - 1}", "missing")
    while len(hashes) > 1:
        hashes = [node_hash(hashes[i], hashes[i + 1]) for i in range(0, len(hashes), 2)]
    return hashes[0]


def _feed_hash(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], position: int) -> bytes:
    raw = txn.get(position.to_bytes(8, "big"), db=dbs["feed"])
    if raw is None:
        raise CorruptRecordError(f"feed position {position}", "missing")
    return bytes(raw[16:48])


# The readers' side.


class TreeView:
    """The tree as of one read transaction: sizes, roots, proofs and leaf positions."""

    def __init__(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> None:
        self._txn = txn
        self._dbs = dbs
        self.size = read_size(txn, dbs)

    def read(self, level: int, index: int) -> bytes:
        """The hash of perfect subtree (level, index): stored, or computed from the feed below level 4."""
        return read_node(self._txn, self._dbs, level, index)

    def leaf(self, index: int) -> bytes:
        """The data of leaf ``index``: the event hash at that feed position."""
        return _feed_hash(self._txn, self._dbs, index)

    def _check(self, size: int) -> None:
        if not 0 <= size <= self.size:
            raise InvalidInputError("tree size", str(size), f"at most the log's size, {self.size}")

    def root(self, size: int | None = None) -> bytes:
        """The root of the tree of the first ``size`` leaves (default: all of them)."""
        size = self.size if size is None else size
        self._check(size)
        return subtree_root(self.read, 0, size)

    def inclusion(self, index: int, size: int) -> list[bytes]:
        """The inclusion proof of leaf ``index`` in the tree of size ``size``."""
        self._check(size)
        return inclusion_path(self.read, index, size)

    def consistency(self, old: int, new: int) -> list[bytes]:
        """The consistency proof from the tree of size ``old`` to the one of size ``new``."""
        self._check(new)
        return consistency_path(self.read, old, new)

    def position(self, actor: uuid.UUID, seq: int, digest: bytes) -> int:
        """The leaf index of event ``seq`` of ``actor`` (whose hash is ``digest``).

        Raises:
            NotFoundError: the event is not in the log (yet).
        """
        if "merkle" not in self._dbs:
            raise NotFoundError("event in the merkle log", digest.hex())
        cursor = self._txn.cursor(db=self._dbs["merkle"])
        if cursor.set_range(POSITION_PREFIX + actor.bytes + seq.to_bytes(8, "big")):
            key = bytes(cursor.key())
            if key[:17] == POSITION_PREFIX + actor.bytes:
                position = int.from_bytes(cursor.value(), "big")
                feed = self._txn.cursor(db=self._dbs["feed"])
                if feed.set_key(position.to_bytes(8, "big")):
                    # The record is this actor's last event of one commit: scan back through that commit.
                    while True:
                        value = feed.value()
                        if value[16:48] == digest:
                            found = int.from_bytes(feed.key(), "big")
                            if found >= self.size:
                                break
                            return found
                        if value[:16] == actor.bytes and len(value) == FEED_VALUE_SIZE:
                            if int.from_bytes(value[48:], "big") < seq:
                                break
                        if not feed.prev():
                            break
        raise NotFoundError("event in the merkle log", digest.hex())
