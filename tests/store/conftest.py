"""Fixtures of the storage-layer tests: real LMDB homes under ``tmp_path``, chain builders and raw LMDB access.

Helpers are handed out as fixtures because the test modules are not a package (no shared import path).
"""

from __future__ import annotations

import math
import struct
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from store import Event, Head, MemoryLog, Store
from store.recorder import event_key

WAIT = 30.0  # seconds a single write may take before a test gives up on it instead of hanging


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "store"


@pytest.fixture
def store(store_path: Path) -> Iterator[Store]:
    """A fresh writable store with the default settings (sync durability)."""
    with Store(store_path) as opened:
        yield opened


@pytest.fixture
def fast_store(store_path: Path) -> Iterator[Store]:
    """A fresh writable store that leaves flushing to the OS, for tests that append a lot."""
    with Store(store_path, durability="buffered") as opened:
        yield opened


def _append_chain(
    store: Store,
    actor: uuid.UUID,
    count: int,
    *,
    data: Callable[[int], Any] = lambda seq: {"n": seq},
    type: str = "test.event",
    ts: int = 1_000,
) -> list[Event]:
    """Append ``count`` events after the actor's head, pipelined, with fixed timestamps; return them when durable.

    ``store`` is a ``Store`` or any recorder.
    """
    log = store.log if isinstance(store, Store) else store
    head = log.head(actor)
    pending = []
    for _ in range(count):
        p = log.append_async(actor, type, data(head.seq + 1), expected=head, timestamp_ms=ts)
        head = Head(p.event.seq, p.event.hash)
        pending.append(p)
    return [p.wait(WAIT) for p in pending]


@pytest.fixture(scope="session")
def append_chain() -> Callable[..., list[Event]]:
    """``append_chain(store_or_recorder, actor, count, data=seq -> data)``: deterministic events, pipelined."""
    return _append_chain


@contextmanager
def _writer_held(store: Store) -> Iterator[None]:
    txn = store.env.env.begin(write=True)
    try:
        yield
    finally:
        txn.abort()


@pytest.fixture(scope="session")
def writer_held() -> Callable[[Store], Any]:
    """``with writer_held(store):`` holds LMDB's write lock, so the writer thread blocks and writes pile up.

    On leaving, the writer commits what was queued meanwhile in at most two batches (the one it had already
    taken, and the rest), which makes multi-write batches deterministic.
    """
    return _writer_held


class Raw:
    """Reads and writes a store's LMDB databases directly, behind the store's back (to play the attacker)."""

    @staticmethod
    def get(store: Store, db: str, key: bytes) -> bytes | None:
        with store.env.env.begin() as txn:
            value = txn.get(key, db=store.env.dbs[db])
        return None if value is None else bytes(value)

    @staticmethod
    def put(store: Store, db: str, key: bytes, value: bytes) -> None:
        with store.env.env.begin(write=True) as txn:
            txn.put(key, value, db=store.env.dbs[db])

    @staticmethod
    def delete(store: Store, db: str, key: bytes) -> None:
        with store.env.env.begin(write=True) as txn:
            assert txn.delete(key, db=store.env.dbs[db]), f"no key {key.hex()} in {db}"

    @staticmethod
    def keys(store: Store, db: str) -> list[bytes]:
        with store.env.env.begin() as txn:
            return [bytes(k) for k in txn.cursor(db=store.env.dbs[db]).iternext(keys=True, values=False)]

    @classmethod
    @contextmanager
    def changed(cls, store: Store, db: str, key: bytes, value: bytes | None) -> Iterator[bytes | None]:
        """Replace (or delete, for None) one record for the duration of the block; yields the original."""
        original = cls.get(store, db, key)
        if value is None:
            cls.delete(store, db, key)
        else:
            cls.put(store, db, key, value)
        try:
            yield original
        finally:
            if original is None:
                if cls.get(store, db, key) is not None:
                    cls.delete(store, db, key)
            else:
                cls.put(store, db, key, original)


@pytest.fixture(scope="session")
def raw() -> type[Raw]:
    return Raw


def _same(a: Any, b: Any) -> bool:
    """Equal with the same types all the way down (True is not 1, 1.0 is not 1, -0.0 is not 0.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return struct.pack(">d", a) == struct.pack(">d", b) or (math.isnan(a) and math.isnan(b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(v, b[k]) for k, v in a.items())
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


@pytest.fixture(scope="session")
def same() -> Callable[[Any, Any], bool]:
    """``same(a, b)``: equal values of the same types, recursively (dict order aside)."""
    return _same


class Backend:
    """One recorder under test, and a way to change its stored bytes behind its back (to play the attacker)."""

    def __init__(self, name: str, log: Any, tamper: Callable[[uuid.UUID, int, bytes], None]) -> None:
        self.name = name
        self.log = log
        self.tamper = tamper


@pytest.fixture(params=["memory", "lmdb"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """Each recorder backend in turn: an in-memory log, and a real LMDB home (buffered) under ``tmp_path``."""
    if request.param == "memory":
        log = MemoryLog()

        def tamper_memory(actor: uuid.UUID, seq: int, value: bytes) -> None:
            log._chains[actor][seq] = value

        yield Backend("memory", log, tamper_memory)
        return
    with Store(tmp_path / "store", durability="buffered") as opened:

        def tamper_lmdb(actor: uuid.UUID, seq: int, value: bytes) -> None:
            Raw.put(opened, "events", event_key(actor, seq), value)

        yield Backend("lmdb", opened.log, tamper_lmdb)


@pytest.fixture
def log(backend: Backend) -> Any:
    """The recorder of ``backend`` (the contract tests run once per backend)."""
    return backend.log
