"""Portable bundles: one file holding an actor's chain and every blob it references.

A bundle is canonical CBOR of the map::

    {"format": "theater-bundle/1", "actor": bytes(16), "from_seq": uint, "to_seq": uint,
     "events": [stored event (hash || body), ...], "blobs": {digest: bytes, ...},
     "chains": {bytes(16): [stored event, ...], ...},     # only when the chain refers to other chains
     "audit": {inclusion proof}}                          # only when exported with one (docs/audit.md)

Events always start at genesis, so the chain's integrity is provable from the bundle alone; ``from_seq`` is where
re-execution starts by default (``theater chain export --from``). ``blobs`` holds the component, the manifest,
every state and every spilled payload the events reference. ``chains`` holds, from genesis, the other actors'
chains a host result refers to (``supervisor.get-child-events`` is recorded by reference to the child's chain,
``replay.derived``), with their blobs, so re-execution can hand the guest the same value; for a fork, the source
chain up to the source event (``replay.lineage``), so its verification can follow into it. A bundle verifies on a
machine with no Theater home: it is loaded into a temporary store first.

``audit``, when present, is the inclusion proof (``store.audit``, the JSON form as a map) of the bundle's last event
in a checkpoint its home signed: ``theater verify BUNDLE --key VKEY`` then proves where the chain comes from.

A bundle comes from anyone: its header is checked against its events (``to_seq`` is the seq of the last event,
``from_seq`` lies within them, every field has its type) before anything is imported.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cbor2

from replay.derived import referenced_chains
from replay.errors import RecordIncomplete
from replay.lineage import origin_chains
from store import EMPTY, Head, Store
from store.codec import DIGEST_SIZE, BlobRef, collect_blob_refs, decode_stored
from store.errors import ChecksumMismatch, CorruptRecordError, InvalidInputError, NotFoundError
from store.verify import named_blobs

BUNDLE_FORMAT = "theater-bundle/1"


def export_bundle(store: Store, actor: uuid.UUID, *, from_seq: int = 0, to_seq: int | None = None,
                  audit: dict[str, Any] | None = None) -> bytes:
    """The bundle of ``actor``'s chain from genesis up to ``to_seq`` (default: its head), with ``audit`` (the
    inclusion proof of its last event) when given.

    Raises:
        NotFoundError: no such actor; RecordIncomplete: a referenced blob is missing from the store.
        InvalidInputError: ``from_seq`` is not within the events exported.
    """
    head = store.log.head(actor)
    if head.hash is None:
        raise NotFoundError("actor", str(actor))
    last = head.seq if to_seq is None else min(to_seq, head.seq)
    if type(from_seq) is not int or not 0 <= from_seq <= last:
        raise InvalidInputError("from_seq", from_seq, f"a sequence number within the events exported (0..{last})")
    digests: list[bytes] = []
    wanted: dict[uuid.UUID, int] = {}
    events = _export_chain(store, actor, last, digests, wanted)
    chains: dict[bytes, list[bytes]] = {}
    while pending := [(other, seq) for other, seq in wanted.items() if other != actor and other.bytes not in chains]:
        for other, seq in pending:  # chains referred to, and those they refer to in turn
            chains[other.bytes] = _export_chain(store, other, seq, digests, wanted)
    blobs: dict[bytes, bytes] = {}
    for digest in digests:
        if digest not in blobs:
            try:
                blobs[digest] = store.blobs.get(digest)
            except NotFoundError:
                raise RecordIncomplete(f"blob {digest.hex()} referenced by the chain is not in the store") from None
    bundle = {"format": BUNDLE_FORMAT, "actor": actor.bytes, "from_seq": from_seq, "to_seq": last, "events": events,
              "blobs": blobs}
    if chains:
        bundle["chains"] = chains
    if audit is not None:
        bundle["audit"] = audit
    return cbor2.dumps(bundle, canonical=True)


def _export_chain(store: Store, actor: uuid.UUID, last: int, digests: list[bytes],
                  wanted: dict[uuid.UUID, int]) -> list[bytes]:
    """Events ``0..last`` of ``actor`` as stored; the blobs they name go to ``digests``, the chains their host
    results refer to (and up to which seq) to ``wanted``.

    Raises:
        RecordIncomplete: the store holds fewer events of ``actor``.
    """
    events: list[bytes] = []
    for seq, value in store.log.raw_events(actor, 0, last + 1):
        events.append(bytes(value))
        _, fields = decode_stored(value, where=f"actor {actor} seq {seq}")
        collect_blob_refs(fields[6], digests)
        digests.extend(digest for _, digest in named_blobs(fields[5], fields[6]))
        for other, to_seq in (*referenced_chains(fields[6]), *origin_chains(fields[5], fields[6])):
            wanted[other] = max(to_seq, wanted.get(other, -1))
    if len(events) != last + 1:
        raise RecordIncomplete(f"events 0..{last} of actor {actor} are referred to; the store holds {len(events)}")
    return events


def read_bundle(data: bytes, *, source: str = "bundle") -> dict[str, Any]:
    """Decode and check the shape of a bundle.

    Raises:
        CorruptRecordError: not a bundle of a known format, naming what is wrong.
    """
    try:
        bundle = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, EOFError, TypeError) as exc:
        raise CorruptRecordError(source, f"not a Theater bundle (undecodable CBOR: {exc})") from None
    if not isinstance(bundle, dict) or bundle.get("format") != BUNDLE_FORMAT:
        raise CorruptRecordError(source, f"not a Theater bundle (expected format {BUNDLE_FORMAT!r})")
    actor = bundle.get("actor")
    if not (isinstance(actor, bytes) and len(actor) == 16):
        raise CorruptRecordError(source, "the bundle's actor id is not 16 bytes")
    events, blobs = bundle.get("events"), bundle.get("blobs")
    if not isinstance(events, list) or not isinstance(blobs, dict):
        raise CorruptRecordError(source, "the bundle lacks its events list or blobs map")
    # Check every event is a stored event (hash and body) and every blob is keyed by a digest.
    for seq, value in enumerate(events):
        if not isinstance(value, bytes) or len(value) <= DIGEST_SIZE:
            raise CorruptRecordError(f"{source}: event {seq}", f"must be a stored event (bytes longer than "
                                                               f"{DIGEST_SIZE}), got {_kind(value)}")
    for digest, blob in blobs.items():
        if not (isinstance(digest, bytes) and len(digest) == DIGEST_SIZE) or not isinstance(blob, bytes):
            raise CorruptRecordError(source, "every blob must be keyed by its 32-byte digest and hold bytes")
    # Check the chains referred to are stored events keyed by 16-byte actor ids.
    chains = bundle.get("chains", {})
    if not isinstance(chains, dict):
        raise CorruptRecordError(source, f"the bundle's chains must be a map, got {_kind(chains)}")
    for other, chain in chains.items():
        if not (isinstance(other, bytes) and len(other) == 16) or other == actor or not isinstance(chain, list) \
                or not chain or not all(isinstance(v, bytes) and len(v) > DIGEST_SIZE for v in chain):
            raise CorruptRecordError(source, "every referred chain must be keyed by another 16-byte actor id and "
                                             "hold stored events")
    if "audit" in bundle and not isinstance(bundle["audit"], dict):
        raise CorruptRecordError(source, f"the bundle's audit proof must be a map, got {_kind(bundle['audit'])}")
    # Check the header matches the events: to_seq is the last event, from_seq lies within them.
    if not events:
        raise CorruptRecordError(source, "the bundle holds no events")
    to_seq, from_seq = bundle.get("to_seq"), bundle.get("from_seq")
    if type(to_seq) is not int or to_seq != len(events) - 1:
        raise CorruptRecordError(source, f"the header says to_seq {_shown(to_seq)} but the bundle holds events "
                                         f"0..{len(events) - 1}")
    if type(from_seq) is not int or not 0 <= from_seq <= to_seq:
        raise CorruptRecordError(source, f"the header's from_seq {_shown(from_seq)} is not within its events "
                                         f"(0..{to_seq})")
    return bundle


def _kind(value: Any) -> str:
    return f"{len(value)} bytes" if isinstance(value, bytes) else type(value).__name__


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def import_bundle(store: Store, data: bytes, *, source: str = "bundle") -> uuid.UUID:
    """Write a bundle's blobs and events into ``store``; events already present are checked, not duplicated.

    Raises:
        CorruptRecordError, ChecksumMismatch: the bundle is damaged (names the event); StaleHeadError: the store
            holds a different chain for this actor.
    """
    bundle = read_bundle(data, source=source)
    actor = uuid.UUID(bytes=bundle["actor"])
    for digest, blob in bundle["blobs"].items():
        if store.blobs.put_async(blob).value != digest:
            raise CorruptRecordError(f"{source}: blob {bytes(digest).hex()}", "its bytes do not hash to its key")
    for other, chain in bundle.get("chains", {}).items():
        _import_chain(store, uuid.UUID(bytes=other), chain, f"{source}: chain of actor {uuid.UUID(bytes=other)}")
    _import_chain(store, actor, bundle["events"], source)
    return actor


def _import_chain(store: Store, actor: uuid.UUID, events: list[bytes], source: str) -> None:
    head = store.log.head(actor)
    pending = None
    expected = EMPTY
    for value in events:
        if expected.seq < head.seq:
            existing = store.log.at(actor, expected.seq + 1)
            if existing.hash != bytes(value[:DIGEST_SIZE]):
                raise CorruptRecordError(f"{source}: event {expected.seq + 1}", "differs from the chain in this store")
            expected = Head(existing.seq, existing.hash)
            continue
        try:
            pending = store.log.append_stored(actor, value, expected=expected)
        except (ChecksumMismatch, CorruptRecordError) as exc:
            raise CorruptRecordError(f"{source}: event {expected.next_seq}", str(exc)) from None
        expected = Head(pending.event.seq, pending.event.hash)
    if pending is not None:
        pending.wait()


@contextmanager
def opened_bundle(path: Path) -> Iterator[tuple[Store, uuid.UUID, dict[str, Any]]]:
    """A temporary store holding the bundle at ``path``, for verification with no home at all."""
    data = Path(path).read_bytes()
    with tempfile.TemporaryDirectory(prefix="theater-bundle-") as tmp:
        store = Store(Path(tmp) / "store", durability="buffered")
        try:
            actor = import_bundle(store, data, source=str(path))
            yield store, actor, read_bundle(data, source=str(path))
        finally:
            store.close()


__all__ = ["BUNDLE_FORMAT", "BlobRef", "export_bundle", "import_bundle", "opened_bundle", "read_bundle"]
