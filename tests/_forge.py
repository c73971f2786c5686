"""Forging chains as an attacker with the whole record in hand would: edit the events, then build a new, valid
chain from them with the store's own encoding and hashing in a fresh store, and export it as a bundle.

Integrity verification passes on such a chain by construction (every hash and link is right); what catches the
edit, if anything, is re-execution and the continuity of the record.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay.bundle import export_bundle
from store import EMPTY, Head, Store


@dataclass(slots=True, kw_only=True)
class Draft:
    """One event to be (re)written: its type, data and timestamp (the seq and parent follow from its place)."""

    type: str
    data: Any
    ts: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Forged:
    """A forged chain: a home holding it (``home/store``) and the same chain as a bundle file."""

    home: Path
    bundle: Path
    actor: uuid.UUID

    @property
    def store_path(self) -> Path:
        return self.home / "store"


def drafts_of(store: Store, actor: uuid.UUID) -> list[Draft]:
    """The actor's events as editable drafts (data deep-copied)."""
    return [Draft(type=e.type, data=copy.deepcopy(e.data), ts=e.timestamp_ms) for e in store.log.events(actor)]


def forge(
    source: Store,
    actor: uuid.UUID,
    edit: Callable[[list[Draft]], Any],
    where: Path,
    *,
    blobs: Iterable[bytes] = (),
    from_seq: int = 0,
) -> Forged:
    """Rewrite ``actor``'s chain through ``edit`` (which changes the drafts in place, or returns a new list) into a
    fresh home at ``where``, with every blob of ``source`` and the extra ``blobs``, and export it as a bundle."""
    drafts = drafts_of(source, actor)
    edited = edit(drafts)
    if isinstance(edited, list):
        drafts = edited
    where.mkdir(parents=True)
    with Store(where / "store", durability="buffered") as store:
        for digest in source.blobs:
            store.blobs.put(source.blobs.get(digest))
        for blob in blobs:
            store.blobs.put(blob)
        head = EMPTY
        for draft in drafts:
            event = store.log.append(actor, draft.type, draft.data, expected=head, timestamp_ms=draft.ts)
            head = Head(event.seq, event.hash)
        bundle = where / "chain.bundle"
        bundle.write_bytes(export_bundle(store, actor, from_seq=from_seq))
    return Forged(home=where, bundle=bundle, actor=actor)

