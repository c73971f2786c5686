"""The fence, on a real three-server JetStream cluster: two homes replicate the same chain; the one that did not
read the chain's latest messages is refused, and its local log keeps nothing of the refused append."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from store import EMPTY, Head
from store.replicated import ReplicatedStore, ReplicationError
from store.errors import ChecksumMismatch
from theater.cluster.chains import ChainFollower, apply_chain, check_chain, read_chain
from theater.cluster.config import ClusterConfig, chain_subject
from theater.cluster.link import Link
from theater.cluster.replicator import JetStreamReplicator, encode_message

pytestmark = [pytest.mark.slow, pytest.mark.cluster]


@pytest.fixture
def homes(tmp_path: Path, nats_cluster):
    opened = []

    def home(name: str) -> tuple[ReplicatedStore, JetStreamReplicator]:
        link = Link(ClusterConfig.parse(nats_cluster.urls, name)).open()
        replicator = JetStreamReplicator(link)
        store = ReplicatedStore(tmp_path / name, replicator=replicator)
        replicator.store = store
        opened.append((store, link))
        return store, replicator

    yield home
    for store, link in opened:
        store.close()
        link.close()


def append(store: ReplicatedStore, actor: uuid.UUID, head: Head, n: int) -> Head:
    writes = []
    for i in range(n):
        pending = store.log.prepare(actor, "test/event", {"i": i, "blob": b"x" * 9000}, expected=head)
        head = Head(pending.event.seq, pending.event.hash)
        writes.append(pending)
    store.submit(writes)
    writes[-1].wait(10)
    return head


def test_a_stale_writer_is_refused_by_the_fence(homes):
    old, old_replicator = homes("old")
    new, new_replicator = homes("new")
    actor = uuid.uuid4()
    head = append(old, actor, EMPTY, 2)
    # The new owner reads the chain back (checking it) and extends it.
    link = new_replicator.link
    cursor = apply_chain(new, actor, link.call(read_chain(link, actor)), {})
    assert cursor.head == head
    new_replicator.adopt(actor, cursor)
    append(new, actor, head, 1)
    # The old owner still believes its head is the chain's: its append is refused, and not written locally.
    with pytest.raises(ReplicationError, match="another node extended the chain") as refused:
        append(old, actor, head, 1)
    assert refused.value.fenced
    assert old.log.head(actor) == head
    messages = link.call(read_chain(link, actor))
    assert check_chain(messages, actor) == 3
    assert new.log.head(actor).seq == 2


def test_a_chain_read_back_with_a_forged_event_is_refused(homes):
    writer, replicator = homes("writer")
    reader, _ = homes("reader")
    actor = uuid.uuid4()
    append(writer, actor, EMPTY, 2)
    link = replicator.link
    messages = link.call(read_chain(link, actor))
    event = bytearray(messages[0].events[-1])
    event[-1] ^= 1  # one byte of the last event's body
    messages[0].events[-1] = bytes(event)
    with pytest.raises(ChecksumMismatch):
        apply_chain(reader, actor, messages, {})


def test_batches_of_one_chain_handed_over_back_to_back_are_stored_in_order(homes):
    store, replicator = homes("writer")
    actor, head, lasts = uuid.uuid4(), EMPTY, []
    for _ in range(200):  # each operation's writes handed over without waiting for the one before
        pending = store.log.prepare(actor, "test/event", {"n": head.seq + 1}, expected=head)
        head = Head(pending.event.seq, pending.event.hash)
        store.submit([pending])
        lasts.append(pending)
    for pending in lasts:
        pending.wait(30)
    assert store.log.head(actor) == head
    link = replicator.link
    assert check_chain(link.call(read_chain(link, actor)), actor) == 200


def test_a_large_blob_goes_through_the_object_store_and_comes_back_checked(homes):
    writer, replicator = homes("writer")
    reader, _ = homes("reader")
    actor = uuid.uuid4()
    big = bytes(range(256)) * 2048  # 512 KiB: above what rides inside a chain message
    put = writer.blobs.prepare(big)
    event = writer.log.prepare(actor, "test/event", {"state": put.value}, expected=EMPTY)
    writer.submit([put, event])
    event.wait(30)
    link = replicator.link
    messages = link.call(read_chain(link, actor))
    assert [m.refs for m in messages] == [[put.value]] and messages[0].blobs == []
    from theater.cluster.chains import fetch_blob
    fetched = {put.value: link.call(fetch_blob(link, put.value))}
    apply_chain(reader, actor, messages, fetched)
    assert reader.blobs.get(put.value) == big
    from store.errors import CorruptRecordError
    with pytest.raises(CorruptRecordError, match="hash to"):  # a blob that is not what its name says is refused
        apply_chain(homes("other")[0], actor, messages, {put.value: big[:-1]})


def test_a_forged_event_on_the_stream_is_not_streamed_to_a_subscriber(homes):
    writer, replicator = homes("writer")
    actor = uuid.uuid4()
    big = bytes(range(256)) * 80  # 20 KiB: spilled to a blob that rides in the chain's message
    first = writer.log.prepare(actor, "test/event", {"blob": big}, expected=EMPTY)
    second = writer.log.prepare(actor, "test/event", {"blob": big},
                                expected=Head(first.event.seq, first.event.hash))
    writer.submit([first, second])
    second.wait(10)
    link = replicator.link
    assert link.call(read_chain(link, actor))[0].blobs  # the payload was spilled
    follower = link.call(ChainFollower(link, actor).open())
    try:
        events = link.call(follower.next(10))
        assert events is not None
        assert [e.seq for e in events] == [0, 1]
        assert [e.data["blob"] for e in events] == [big, big]  # the spilled payloads read back, checked
        # Whoever can publish on the stream appends a message outside the fence: a copy of the last event with one
        # byte changed. The subscriber gets an error, never the event.
        forged = bytearray(link.call(read_chain(link, actor))[-1].events[-1])
        forged[-1] ^= 1
        link.call(link.js.publish(chain_subject(actor), encode_message([bytes(forged)], [], [])))
        with pytest.raises(ChecksumMismatch):
            link.call(follower.next(10))
    finally:
        link.call(follower.close())
