"""The store side of witnesses: pages of a home's feed with the blobs they need, and a witness's durable progress.

A witness (``theater.witness``) copies a server's events, in feed order, into a home of its own and re-executes them.
It reads the server's feed in pages (``read_feed_page``): each entry is the event exactly as stored
(``hash || body``), and the page carries the blobs those events name (inline up to a size, the larger ones listed for
a separate fetch). Its progress lives in its own home's ``meta`` database, written in one transaction:
``witness-state`` (the pinned server key, the last checkpoint it accepted, the compact range of the leaves it has
verified) and one ``witness-chain`` record per actor (where its re-execution goes on from).

This module is a leaf of ``store``: no network, no replay.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

import cbor2
import lmdb

from store._commit import CommitContext, Pending
from store.codec import collect_blob_refs, decode_stored
from store.errors import CorruptRecordError
from store.home import Store
from store.merkle import EMPTY_ROOT, node_hash
from store.verify import named_blobs

STATE_KEY = b"witness-state"
CHAIN_PREFIX = b"witness-chain/"
STATE_FORMAT = 1
MAX_PAGE_ENTRIES = 4096
MAX_PAGE_BYTES = 4 * 1024 * 1024
MAX_INLINE_BLOB = 256 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class FeedPage:
    """Feed entries ``start <= position < next`` as stored, and the blobs they name.

    Attributes:
        entries: (position, actor id (16 bytes), seq, stored event ``hash || body``), in feed order.
        blobs: blobs the entries name, up to ``MAX_INLINE_BLOB`` bytes each, by digest.
        needs: digests of blobs the entries name that are larger (fetch them one by one), or missing.
        next: the position after the last entry. end: the feed's end when the page was read.
    """

    entries: list[tuple[int, bytes, int, bytes]]
    blobs: dict[bytes, bytes]
    needs: list[bytes]
    next: int
    end: int


def blobs_named(value: bytes, where: str) -> list[bytes]:
    """The digests of every blob a stored event names: spilled payloads, its component, manifest and states.

    Raises:
        CorruptRecordError: the event does not decode.
    """
    _, fields = decode_stored(value, where=where)
    digests: list[bytes] = []
    collect_blob_refs(fields[6], digests)
    digests.extend(digest for _, digest in named_blobs(fields[5], fields[6]))
    return digests


def read_feed_page(store: Store, start: int, stop: int | None, limit: int = MAX_PAGE_ENTRIES,
                   max_bytes: int = MAX_PAGE_BYTES) -> FeedPage:
    """Feed entries from ``start`` (below ``stop`` when given) with their stored events and blobs, in one snapshot.

    At most ``limit`` entries and about ``max_bytes`` bytes (always at least one entry when there is one).
    """
    dbs = store.env.dbs
    entries: list[tuple[int, bytes, int, bytes]] = []
    blobs: dict[bytes, bytes] = {}
    needs: list[bytes] = []
    size = 0
    position = start
    with store.env.read() as txn:
        end = _feed_end(txn, dbs)
        last = end if stop is None else min(stop, end)
        cursor = txn.cursor(db=dbs["feed"])
        found = cursor.set_range(start.to_bytes(8, "big")) if start < last else False
        while found and len(entries) < min(limit, MAX_PAGE_ENTRIES) and (not entries or size < max_bytes):
            position = int.from_bytes(cursor.key(), "big")
            if position >= last:
                break
            raw = bytes(cursor.value())
            actor, seq = raw[:16], int.from_bytes(raw[48:56], "big")
            value = txn.get(actor + raw[48:56], db=dbs["events"])
            if value is None or len(raw) < 56:
                raise CorruptRecordError(f"feed position {position}", "the event it names is not stored")
            value = bytes(value)
            entries.append((position, actor, seq, value))
            size += len(value)
            for digest in blobs_named(value, f"feed position {position}"):
                if digest in blobs or digest in needs:
                    continue
                blob = txn.get(digest, db=dbs["blobs"])
                if blob is not None and len(blob) <= MAX_INLINE_BLOB and size + len(blob) <= max_bytes:
                    blobs[digest] = bytes(blob)
                    size += len(blob)
                else:
                    needs.append(digest)
            position += 1
            found = cursor.next()
    return FeedPage(entries=entries, blobs=blobs, needs=needs, next=entries[-1][0] + 1 if entries else start, end=end)


def _feed_end(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int:
    cursor = txn.cursor(db=dbs["feed"])
    return int.from_bytes(cursor.key(), "big") + 1 if cursor.last() else 0


def page_to_cbor(page: FeedPage) -> bytes:
    """The wire form of a page (``GET /v1/audit/feed``): canonical CBOR."""
    return cbor2.dumps({"entries": [list(e) for e in page.entries], "blobs": page.blobs, "needs": page.needs,
                        "next": page.next, "end": page.end}, canonical=True)


def page_from_cbor(data: bytes, source: str) -> FeedPage:
    """Read a page from the wire, checking every field's type (the server may be hostile).

    Raises:
        CorruptRecordError: it is not a feed page.
    """
    try:
        raw = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, EOFError, TypeError) as exc:
        raise CorruptRecordError(source, f"not a feed page (undecodable CBOR: {exc})") from None
    if not isinstance(raw, dict):
        raise CorruptRecordError(source, "not a feed page (not a map)")
    entries, blobs, needs = raw.get("entries"), raw.get("blobs"), raw.get("needs")
    nxt, end = raw.get("next"), raw.get("end")
    if not (isinstance(entries, list) and isinstance(blobs, dict) and isinstance(needs, list)
            and type(nxt) is int and type(end) is int):
        raise CorruptRecordError(source, "not a feed page (a field is missing or of the wrong type)")
    ok = all(isinstance(e, list) and len(e) == 4 and type(e[0]) is int and isinstance(e[1], bytes)
             and len(e[1]) == 16 and type(e[2]) is int and isinstance(e[3], bytes) for e in entries)
    ok = ok and all(isinstance(k, bytes) and len(k) == 32 and isinstance(v, bytes) for k, v in blobs.items())
    ok = ok and all(isinstance(d, bytes) and len(d) == 32 for d in needs)
    if not ok:
        raise CorruptRecordError(source, "not a feed page (an entry, blob or digest is of the wrong type)")
    return FeedPage(entries=[(e[0], e[1], e[2], e[3]) for e in entries], blobs=blobs, needs=needs, next=nxt,
                    end=end)


class CompactRange:
    """The RFC 9162 tree of a log's first leaves, kept as its perfect subtrees' roots (O(log n)): append, root."""

    def __init__(self, size: int = 0, hashes: list[bytes] | None = None) -> None:
        self.size = size
        self.hashes = list(hashes or [])  # roots of the perfect subtrees, largest (leftmost) first
        if len(self.hashes) != bin(size).count("1"):
            raise CorruptRecordError("witness state", f"a compact range of {size} leaves holds {len(self.hashes)} "
                                                      "subtree hashes")

    def append(self, leaf: bytes) -> None:
        """Add the next leaf hash."""
        h, n = leaf, self.size
        while n & 1:
            h = node_hash(self.hashes.pop(), h)
            n >>= 1
        self.hashes.append(h)
        self.size += 1

    def root(self) -> bytes:
        """The root of the tree of ``size`` leaves."""
        if not self.hashes:
            return EMPTY_ROOT
        root = self.hashes[-1]
        for left in reversed(self.hashes[:-1]):
            root = node_hash(left, root)
        return root


@dataclass(frozen=True, slots=True, kw_only=True)
class ChainProgress:
    """How far a witness has one actor's chain.

    Attributes:
        seq, hash: the last event copied (the chain's head in the witness's home).
        resume: the first event re-execution has not consumed yet: it goes on from there.
        instance: the ``wasm/instantiate`` event that made the instance live at ``resume`` (0: none known): where
            re-execution goes back to when a fresh instance made from the recorded state does not behave as the
            recorded one did (a guest with hidden state between calls).
        calls: export calls re-executed so far (all rounds).
    """

    seq: int
    hash: bytes
    resume: int
    instance: int = 0
    calls: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessState:
    """A witness's durable progress.

    Attributes:
        server_key: the server's verifier key text, pinned on first contact.
        number, note: the last checkpoint accepted (and co-signed); 0 and "" before the first.
        size, hashes: the compact range of the leaves verified (``CompactRange``): the accepted checkpoint's size.
        verified: events copied, checked and re-executed since the witness began (all rounds).
    """

    server_key: str
    number: int = 0
    note: str = ""
    size: int = 0
    hashes: tuple[bytes, ...] = ()
    verified: int = 0
    chains: dict[bytes, ChainProgress] = field(default_factory=dict)


def read_state(store: Store) -> WitnessState | None:
    """The witness's progress kept in ``store`` (None: it has never accepted anything).

    Raises:
        CorruptRecordError: the record does not decode.
    """
    with store.env.read() as txn:
        raw = txn.get(STATE_KEY, db=store.env.dbs["meta"])
        if raw is None:
            return None
        chains: dict[bytes, ChainProgress] = {}
        cursor = txn.cursor(db=store.env.dbs["meta"])
        try:
            for key, value in cursor if cursor.set_range(CHAIN_PREFIX) else ():
                if not bytes(key).startswith(CHAIN_PREFIX):
                    break
                seq, digest, resume, calls, instance = cbor2.loads(bytes(value))
                chains[bytes(key[len(CHAIN_PREFIX):])] = ChainProgress(seq=seq, hash=digest, resume=resume,
                                                                       calls=calls, instance=instance)
            fields = cbor2.loads(bytes(raw))
            return WitnessState(server_key=fields["server_key"], number=fields["number"], note=fields["note"],
                                size=fields["size"], hashes=tuple(fields["hashes"]), verified=fields["verified"],
                                chains=chains)
        except (cbor2.CBORDecodeError, KeyError, TypeError, ValueError) as exc:
            raise CorruptRecordError("witness state", f"it does not decode: {exc}") from None


class PendingWitnessState(Pending[WitnessState]):
    """Writes the witness's progress: the state, and the records of the chains that moved (one transaction)."""

    def __init__(self, state: WitnessState, moved: list[bytes]) -> None:
        super().__init__(state)
        self._moved = moved

    def apply(self, txn: lmdb.Transaction[bytes], ctx: CommitContext) -> None:
        state, meta = self.value, ctx.dbs["meta"]
        txn.put(STATE_KEY, cbor2.dumps({
            "format": STATE_FORMAT, "server_key": state.server_key, "number": state.number, "note": state.note,
            "size": state.size, "hashes": list(state.hashes), "verified": state.verified,
        }, canonical=True), db=meta)
        for actor in self._moved:
            p = state.chains[actor]
            txn.put(CHAIN_PREFIX + actor, cbor2.dumps([p.seq, p.hash, p.resume, p.calls, p.instance]), db=meta)
        ctx.wrote = True


def chain_id(actor: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=actor)


__all__ = ["ChainProgress", "CompactRange", "FeedPage", "PendingWitnessState", "WitnessState", "blobs_named",
           "page_from_cbor", "page_to_cbor", "read_feed_page", "read_state"]
