"""The LMDB event logs: what only a durable home has (group commit, the writer thread, reopening, blobs shared
with the blob store). The rules every backend keeps are in ``test_recorder.py``."""

from __future__ import annotations

import uuid

import pytest

from store import (
    EMPTY,
    Event,
    FeedEntry,
    Head,
    StaleHeadError,
    Store,
    blob_digest,
)
from store.codec import DEFAULT_SPILL_THRESHOLD

A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
C = uuid.UUID("00000000-0000-4000-8000-00000000000c")


def head_of(event: Event) -> Head:
    return Head(event.seq, event.hash)


# Appending and the head.


def test_hash_is_deterministic_for_the_same_content(tmp_path) -> None:
    hashes = []
    for run in range(3):
        with Store(tmp_path / f"run{run}", durability="buffered") as s:
            head = EMPTY
            for i in range(5):
                head = head_of(s.log.append(A, "t", {"i": i}, expected=head, timestamp_ms=i))
            hashes.append(head.hash)

    assert len(set(hashes)) == 1


# Pipelining.


def test_a_refused_write_fails_alone_in_its_batch(store: Store, writer_held) -> None:
    a0 = store.log.append(A, "t", "a0", expected=EMPTY)
    with writer_held(store):
        good = store.log.append_async(A, "t", "a1", expected=head_of(a0))
        stale = store.log.append_async(B, "t", "b?", expected=head_of(a0))
        blob = store.blobs.put_async(b"payload")
        after = store.log.append_async(A, "t", "a2", expected=head_of(good.event))

    assert good.wait(30).seq == 1
    assert after.wait(30).seq == 2
    assert blob.wait(30) == blob_digest(b"payload")
    with pytest.raises(StaleHeadError, match=f"stale head for actor {B}: expected seq 0"):
        stale.wait(30)
    assert store.log.head(B) == EMPTY
    assert [e.data for e in store.log.events(A)] == ["a0", "a1", "a2"]


def test_wait_times_out_while_the_writer_is_blocked(store: Store, writer_held) -> None:
    with writer_held(store):
        pending = store.log.append_async(A, "t", 1, expected=EMPTY)
        with pytest.raises(TimeoutError, match="write not committed within 0.01 s"):
            pending.wait(0.01)
        assert not pending.done()

    assert pending.wait(30).seq == 0
    assert pending.done()


# Reading: at, get, locate, resolve, events, actors.


def test_chains_survive_reopening(store_path, append_chain) -> None:
    with Store(store_path) as first:
        events = append_chain(first, A, 5)
    with Store(store_path) as second:
        assert list(second.log.events(A)) == events
        more = second.log.append(A, "t", "more", expected=head_of(events[-1]))
        assert more.seq == 5


# Data: structured round trip, payload spill, unencodable data.


def test_bytes_at_the_spill_threshold_stay_inline(tmp_path) -> None:
    with Store(tmp_path / "s", spill_threshold=1024) as s:
        at_threshold = b"i" * 1024
        over = b"o" * 1025
        s.log.append(A, "t", {"at": at_threshold, "over": over}, expected=EMPTY)

        assert list(s.blobs) == [blob_digest(over)]
        assert s.log.at(A, 0).data == {"at": at_threshold, "over": over}


def test_the_same_spilled_payload_is_stored_once(store: Store) -> None:
    payload = b"p" * (DEFAULT_SPILL_THRESHOLD * 2)
    first = store.log.append(A, "t", payload, expected=EMPTY)
    store.log.append(B, "t", payload, expected=EMPTY)
    store.log.append(A, "t", [payload, payload], expected=head_of(first))

    assert list(store.blobs) == [blob_digest(payload)]
    assert store.log.at(A, 1).data == [payload, payload]


# The feed.


def test_feed_positions_continue_after_reopening(store_path, append_chain) -> None:
    with Store(store_path) as first:
        append_chain(first, A, 3)
    with Store(store_path) as second:
        assert second.log.feed_end() == 3
        event = append_chain(second, B, 1)[0]
        assert second.log.feed(3) == [FeedEntry(position=3, actor=B, hash=event.hash, seq=event.seq)]
        assert second.log.feed_end() == 4


