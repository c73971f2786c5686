"""Fixtures of the replay tests: chains recorded by a real runtime, then read (and rewritten) with the runtime gone.

Helpers are handed out as fixtures because the test modules are not a package (no shared import path).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from store import Event, Store
from store.chain import event_key
from store.codec import encode_event
from tests._forge import Forged, forge
from theater.runtime import Theater

Workload = Callable[[Theater, str], None]


@dataclass(frozen=True, slots=True, kw_only=True)
class Recording:
    """A home holding one recorded actor."""

    home: Path
    actor: uuid.UUID

    @property
    def store_path(self) -> Path:
        return self.home / "store"


class Recorder:
    """Runs one actor through a workload in a fresh home and closes the runtime."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.count = 0

    def __call__(self, component: str, workload: Workload, handlers: Iterable[str] = ("message-server",), *,
                 on_err: str | None = None) -> Recording:
        self.count += 1
        work = self.root / f"recording-{self.count}"
        work.mkdir()
        (work / "actor.wat").write_text(component)
        grants = "".join(f'\n[[handlers]]\ntype = "{h}"\n' for h in handlers)
        top = "" if on_err is None else f'on_err = "{on_err}"\n'
        (work / "actor.toml").write_text(f'name = "recorded"\ncomponent = "actor.wat"\n{top}{grants}')
        with Theater(work / "home", durability="buffered", request_timeout=2.0) as theater:
            actor = theater.start(work / "actor.toml")
            workload(theater, actor)
        return Recording(home=work / "home", actor=uuid.UUID(actor))


@pytest.fixture
def record(tmp_path: Path) -> Recorder:
    """``record(wat_text, workload, handlers, on_err=...)``: a ``Recording`` of one actor after
    ``workload(theater, id)``."""
    return Recorder(tmp_path)


@pytest.fixture
def open_store() -> Iterator[Callable[[Recording], Store]]:
    """``open_store(recording)``: its store, opened for writing with no runtime on it; closed after the test."""
    opened: list[Store] = []

    def open_(recording: Recording) -> Store:
        store = Store(recording.store_path)
        opened.append(store)
        return store

    yield open_
    for store in opened:
        store.close()


def rewrite_chain(store: Store, actor: uuid.UUID, seq: int, change: Callable[[Any], Any]) -> list[Event]:
    """Replace the data of event ``seq`` with ``change(data)`` and re-hash the chain from there on, as an attacker
    with write access would: every later event gets its parent link fixed, the hash index, the feed and the head
    follow, so integrity verification still passes. Returns the rewritten events.
    """
    old = list(store.log.events(actor, seq))
    assert old and old[0].seq == seq, f"actor {actor} has no event {seq}"
    env, dbs = store.env, store.env.dbs
    renamed: dict[bytes, bytes] = {}
    rewritten: list[Event] = []
    parent = old[0].parent
    with env.env.begin(write=True) as txn:
        for event in old:
            data = change(event.data) if event.seq == seq else event.data
            encoded = encode_event(
                actor=actor, seq=event.seq, parent=parent, timestamp_ms=event.timestamp_ms, type=event.type, data=data
            )
            key = event_key(actor, event.seq)
            for digest, payload in encoded.spilled:
                txn.put(digest, payload, db=dbs["blobs"], overwrite=False)
            txn.put(key, encoded.hash + encoded.body, db=dbs["events"])
            txn.delete(event.hash, db=dbs["event_index"])
            txn.put(encoded.hash, key, db=dbs["event_index"])
            renamed[event.hash] = encoded.hash
            rewritten.append(
                Event(hash=encoded.hash, actor=actor, seq=event.seq, parent=parent, timestamp_ms=event.timestamp_ms,
                      type=event.type, data=data)
            )
            parent = encoded.hash
        feed = txn.cursor(db=dbs["feed"])
        updates = [
            (bytes(position), bytes(value[:16]) + renamed[bytes(value[16:])])
            for position, value in feed
            if bytes(value[:16]) == actor.bytes and bytes(value[16:]) in renamed
        ]
        for position, value in updates:
            txn.put(position, value, db=dbs["feed"])
        txn.put(actor.bytes, old[-1].seq.to_bytes(8, "big") + parent, db=dbs["heads"])
    return rewritten


@pytest.fixture(scope="session")
def rewrite() -> Callable[[Store, uuid.UUID, int, Callable[[Any], Any]], list[Event]]:
    """``rewrite(store, actor, seq, change)``: change one event's data and re-hash the rest of the chain."""
    return rewrite_chain


@pytest.fixture
def forged_from(tmp_path: Path) -> Callable[..., Forged]:
    """``forged_from(store, actor, edit, blobs=())``: a forged bundle of the chain with ``edit`` applied."""
    made = iter(range(1000))

    def make(store: Store, actor: uuid.UUID, edit: Any, blobs: Iterable[Any] = ()) -> Forged:
        return forge(store, actor, edit, tmp_path / f"forged-{next(made)}", blobs=blobs)

    return make
