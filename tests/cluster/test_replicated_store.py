"""The local side of a replicated home (``store.replicated``), with an in-memory replicator: writes reach LMDB
only after the replicator stored them, and a refused batch never does."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

from store import EMPTY, Head
from store.replicated import Batch, Done, ReplicatedStore, ReplicationError


class HeldReplicator:
    """Keeps every batch until the test says what becomes of it."""

    def __init__(self) -> None:
        self.batches: list[tuple[Batch, Done]] = []
        self.arrived = threading.Event()

    def replicate(self, batch: Batch, done: Done) -> None:
        self.batches.append((batch, done))
        self.arrived.set()


@pytest.fixture
def held(tmp_path: Path):
    replicator = HeldReplicator()
    store = ReplicatedStore(tmp_path / "store", replicator=replicator)
    yield store, replicator
    store.close()


def prepare(store: ReplicatedStore, actor: uuid.UUID, head: Head, n: int):
    writes = []
    for i in range(n):
        pending = store.log.prepare(actor, "test/event", {"i": i}, expected=head)
        head = Head(pending.event.seq, pending.event.hash)
        writes.append(pending)
    return writes


def test_appends_reach_the_local_log_only_after_they_are_replicated(held):
    store, replicator = held
    actor = uuid.uuid4()
    blob = store.blobs.prepare(b"state bytes")
    writes = [blob, *prepare(store, actor, EMPTY, 2)]
    store.submit(writes)
    batch, done = replicator.batches[0]
    assert batch.actor == actor and len(batch.appends) == 2 and batch.blobs == [blob]
    with pytest.raises(TimeoutError):
        writes[-1].wait(0.05)
    assert store.log.head(actor) == EMPTY
    done(None)
    event = writes[-1].wait(5)
    assert store.log.head(actor) == Head(event.seq, event.hash)
    assert store.blobs.get(blob.value) == b"state bytes"


def test_a_batch_the_replicated_record_refuses_is_never_written_locally(held):
    store, replicator = held
    actor = uuid.uuid4()
    writes = prepare(store, actor, EMPTY, 3)
    store.submit(writes)
    _, done = replicator.batches[0]
    done(ReplicationError(str(actor), "another node extended the chain", fenced=True))
    for write in writes:
        with pytest.raises(ReplicationError, match="another node extended the chain") as caught:
            write.wait(5)
        assert caught.value.fenced
    assert store.log.head(actor) == EMPTY
    assert store.log.feed_end() == 0


def test_a_replicated_store_cannot_be_opened_read_only(tmp_path: Path):
    ReplicatedStore(tmp_path / "store", replicator=HeldReplicator()).close()
    from store.errors import StoreError
    with pytest.raises(StoreError, match="read-only"):
        ReplicatedStore(tmp_path / "store", replicator=HeldReplicator(), readonly=True)
