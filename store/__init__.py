"""The storage layer: one LMDB environment per Theater home.

It holds the content-addressed blob store (blake3) and the append-only, hash-chained event logs, one chain per
actor, with group commit. This package is a leaf: it imports nothing of ``replay`` or ``theater``, and never
wasmtime, click or rich. It never reads environment variables or config files; callers pass paths and options.

Modules: ``home`` (Store: opens a home), ``blobs`` (content-addressed blobs and labels), ``artifacts`` (compiled
components sealed with the home's key, outside LMDB), ``recorder`` (the chain rules and the ``Recorder`` interface
every event-log backend implements), ``chain`` (the LMDB recorder: event logs and the feed), ``memory`` (the
in-memory recorder), ``codec`` (canonical encoding and hashing of events), ``verify`` (integrity checks, over any
recorder), ``merkle`` (the home's RFC 9162 Merkle log of every event), ``checkpoint`` (its Ed25519 key and signed
checkpoints), ``audit`` (inclusion and consistency proofs, checked with only the verifier key), ``ids`` (actor
ids), ``errors`` (the error tree and its root). Private: ``_env`` (the LMDB environment), ``_commit`` (group
commit), ``_index`` (the hash index and its tail), ``_prefix`` (hex prefixes).
"""

from store.artifacts import ArtifactCache
from store.blobs import RESERVED_LABEL_PREFIXES, BlobStore, blob_digest
from store.chain import EventLog, PendingAppend
from store.codec import Event
from store.errors import (
    AmbiguousPrefixError,
    ArtifactRejected,
    ChecksumMismatch,
    CorruptRecordError,
    InvalidInputError,
    NotFoundError,
    ReadOnlyError,
    ReservedLabelError,
    StaleHeadError,
    StoreClosedError,
    StoreError,
    StoreFullError,
    StoreOpenError,
    StoreWriteError,
    TheaterError,
)
from store.home import DURABILITY_MODES, Store
from store.ids import new_actor_id, parse_actor_id
from store.memory import MemoryLog
from store.recorder import EMPTY, FeedEntry, Head, PendingEvent, Recorder, Snapshot
from store.verify import ChainReport, Problem, StoreReport, verify_chain, verify_store

__all__ = [
    "DURABILITY_MODES",
    "EMPTY",
    "RESERVED_LABEL_PREFIXES",
    "AmbiguousPrefixError",
    "ArtifactCache",
    "ArtifactRejected",
    "BlobStore",
    "ChainReport",
    "ChecksumMismatch",
    "CorruptRecordError",
    "Event",
    "EventLog",
    "FeedEntry",
    "Head",
    "InvalidInputError",
    "MemoryLog",
    "NotFoundError",
    "PendingAppend",
    "PendingEvent",
    "Problem",
    "ReadOnlyError",
    "Recorder",
    "ReservedLabelError",
    "Snapshot",
    "StaleHeadError",
    "Store",
    "StoreClosedError",
    "StoreError",
    "StoreFullError",
    "StoreOpenError",
    "StoreReport",
    "StoreWriteError",
    "TheaterError",
    "blob_digest",
    "new_actor_id",
    "parse_actor_id",
    "verify_chain",
    "verify_store",
]
