"""The event logs: compare-and-append, pipelining, reading by seq, hash and prefix, payload spill, the feed."""

from __future__ import annotations

import math
import re
import time
import uuid
from collections import defaultdict

import pytest

from store import (
    EMPTY,
    AmbiguousPrefixError,
    Event,
    FeedEntry,
    Head,
    InvalidInputError,
    NotFoundError,
    StaleHeadError,
    Store,
    blob_digest,
    verify_store,
)
from store.codec import BLOB_TAG, DEFAULT_SPILL_THRESHOLD, event_hash

A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
C = uuid.UUID("00000000-0000-4000-8000-00000000000c")


def head_of(event: Event) -> Head:
    return Head(event.seq, event.hash)


# Appending and the head.


def test_head_of_an_unknown_actor_is_empty(store: Store) -> None:
    assert store.log.head(A) == EMPTY
    assert EMPTY.seq == -1 and EMPTY.hash is None and EMPTY.next_seq == 0


def test_append_builds_a_hash_chain(store: Store) -> None:
    first = store.log.append(A, "actor.started", {"name": "counter"}, expected=EMPTY, timestamp_ms=10)
    second = store.log.append(A, "actor.message", {"n": 1}, expected=head_of(first), timestamp_ms=11)

    assert (first.actor, first.seq, first.parent, first.type, first.timestamp_ms) == (A, 0, None, "actor.started", 10)
    assert (second.seq, second.parent) == (1, first.hash)
    assert first.version == second.version == 1
    assert store.log.head(A) == Head(1, second.hash)
    assert store.log.head(A).next_seq == 2


def test_append_returns_the_event_as_stored(store: Store) -> None:
    appended = store.log.append(A, "t", {"k": [1, 2, 3]}, expected=EMPTY, timestamp_ms=5)

    assert store.log.at(A, 0) == appended
    assert store.log.get(appended.hash) == appended


def test_append_stamps_the_current_time_when_no_timestamp_is_given(store: Store) -> None:
    before = time.time_ns() // 1_000_000
    event = store.log.append(A, "t", None, expected=EMPTY)
    after = time.time_ns() // 1_000_000

    assert before <= event.timestamp_ms <= after
    assert store.log.at(A, 0).timestamp_ms == event.timestamp_ms


def test_hash_is_deterministic_for_the_same_content(tmp_path) -> None:
    hashes = []
    for run in range(3):
        with Store(tmp_path / f"run{run}", durability="buffered") as s:
            head = EMPTY
            for i in range(5):
                head = head_of(s.log.append(A, "t", {"i": i}, expected=head, timestamp_ms=i))
            hashes.append(head.hash)

    assert len(set(hashes)) == 1


def test_hash_depends_on_every_field(store: Store) -> None:
    base = dict(type="t", data={"x": 1}, timestamp_ms=1)
    variants = [
        (A, base),
        (B, base),
        (A, {**base, "type": "u"}),
        (A, {**base, "data": {"x": 2}}),
        (A, {**base, "timestamp_ms": 2}),
    ]

    hashes = {store.log.append_async(actor, expected=EMPTY, **kw).event.hash for actor, kw in variants}

    assert len(hashes) == len(variants)


def test_append_rejects_a_stale_empty_head(store: Store) -> None:
    first = store.log.append(A, "t", 1, expected=EMPTY)

    message = f"stale head for actor {A}: expected empty chain, the chain is at seq 0 {first.hash.hex()[:16]}"
    with pytest.raises(StaleHeadError, match=re.escape(message)) as info:
        store.log.append(A, "t", 2, expected=EMPTY)

    assert info.value.expected == (-1, None)
    assert info.value.actual == (0, first.hash)
    assert store.log.head(A) == head_of(first)


def test_append_rejects_a_head_that_moved_on(store: Store) -> None:
    first = store.log.append(A, "t", 1, expected=EMPTY)
    second = store.log.append(A, "t", 2, expected=head_of(first))

    message = (
        f"stale head for actor {A}: expected seq 0 {first.hash.hex()[:16]}, "
        f"the chain is at seq 1 {second.hash.hex()[:16]}"
    )
    with pytest.raises(StaleHeadError, match=re.escape(message)):
        store.log.append(A, "t", 3, expected=head_of(first))

    assert [e.data for e in store.log.events(A)] == [1, 2]


def test_append_rejects_a_head_ahead_of_the_chain(store: Store) -> None:
    made_up = Head(3, b"\x01" * 32)

    message = f"stale head for actor {A}: expected seq 3 {'01' * 8}, the chain is at empty chain"
    with pytest.raises(StaleHeadError, match=re.escape(message)):
        store.log.append(A, "t", 1, expected=made_up)

    assert store.log.head(A) == EMPTY


def test_append_rejects_the_right_seq_with_the_wrong_hash(store: Store) -> None:
    first = store.log.append(A, "t", 1, expected=EMPTY)

    with pytest.raises(StaleHeadError, match="expected seq 0 0000000000000000, the chain is at seq 0"):
        store.log.append(A, "t", 2, expected=Head(0, bytes(32)))

    assert store.log.head(A) == head_of(first)


@pytest.mark.parametrize("bad", ["", None, 7, b"t"])
def test_append_rejects_a_bad_event_type(store: Store, bad: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid event type {bad!r}: expected a non-empty string")):
        store.log.append(A, bad, 1, expected=EMPTY)  # type: ignore[arg-type]

    assert store.log.head(A) == EMPTY


def test_chains_of_different_actors_are_independent(store: Store, append_chain) -> None:
    a_events = append_chain(store, A, 3)
    b_events = append_chain(store, B, 2)

    assert store.log.head(A) == head_of(a_events[-1])
    assert store.log.head(B) == head_of(b_events[-1])
    assert b_events[0].parent is None


# Pipelining.


def test_pipelined_appends_chain_on_each_other_before_any_is_durable(store: Store) -> None:
    head = EMPTY
    pending = []
    for i in range(100):
        p = store.log.append_async(A, "t", {"i": i}, expected=head, timestamp_ms=i)
        assert p.event.seq == i and p.event.parent == head.hash
        head = head_of(p.event)
        pending.append(p)

    events = [p.wait(30) for p in pending]

    assert [e.seq for e in events] == list(range(100))
    assert store.log.head(A) == head
    assert [e.data["i"] for e in store.log.events(A)] == list(range(100))
    assert verify_store(store).ok


def test_pipelined_appends_after_a_stale_one_all_fail(store: Store) -> None:
    store.log.append(A, "t", "winner", expected=EMPTY)
    head = EMPTY
    pending = []
    for i in range(5):
        p = store.log.append_async(A, "t", i, expected=head)
        head = head_of(p.event)
        pending.append(p)

    for p in pending:
        with pytest.raises(StaleHeadError, match=f"stale head for actor {A}"):
            p.wait(30)

    assert store.log.head(A).seq == 0
    assert [e.data for e in store.log.events(A)] == ["winner"]


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


def test_at_returns_each_event_by_seq(store: Store, append_chain) -> None:
    events = append_chain(store, A, 5)

    assert [store.log.at(A, i) for i in range(5)] == events


def test_at_of_a_missing_event_raises_not_found(store: Store, append_chain) -> None:
    append_chain(store, A, 2)

    with pytest.raises(NotFoundError, match=f"^no event {A} #2$"):
        store.log.at(A, 2)
    with pytest.raises(NotFoundError, match=f"^no event {B} #0$"):
        store.log.at(B, 0)


def test_get_and_locate_find_an_event_by_hash(store: Store, append_chain) -> None:
    append_chain(store, A, 3)
    events = append_chain(store, B, 4)

    assert store.log.get(events[2].hash) == events[2]
    assert store.log.locate(events[2].hash) == (B, 2)


def test_get_of_an_unknown_hash_raises_not_found(store: Store) -> None:
    digest = bytes(range(32))

    with pytest.raises(NotFoundError, match=f"^no event {digest.hex()}$"):
        store.log.get(digest)


@pytest.mark.parametrize("bad", ["ab" * 32, b"\x00" * 31, None], ids=["hex", "31-bytes", "none"])
def test_locate_rejects_a_hash_that_is_not_32_raw_bytes(store: Store, bad: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid event hash {bad!r}: expected 32 raw bytes")):
        store.log.locate(bad)  # type: ignore[arg-type]


def test_resolve_finds_an_event_by_a_unique_prefix(store: Store, append_chain) -> None:
    events = append_chain(store, A, 10)
    target = events[7].hash.hex()

    assert store.log.resolve(target) == events[7].hash
    assert store.log.resolve(target[:12]) == events[7].hash
    assert store.log.resolve(target[:9].upper()) == events[7].hash


def test_resolve_rejects_a_prefix_shared_by_two_events(fast_store: Store, append_chain) -> None:
    # Append until two events share their first four hex digits (deterministic: fixed ids and timestamps).
    by_prefix: dict[str, list[bytes]] = defaultdict(list)
    clash: list[bytes] = []
    while not clash:
        for event in append_chain(fast_store, A, 200):
            by_prefix[event.hash.hex()[:4]].append(event.hash)
            if len(by_prefix[event.hash.hex()[:4]]) == 2:
                clash = by_prefix[event.hash.hex()[:4]]
        assert fast_store.log.head(A).seq < 5000
    prefix = clash[0].hex()[:4]
    everyone = sorted(by_prefix[prefix])
    shown = ", ".join(h.hex()[:16] for h in everyone)

    message = f"event prefix '{prefix}' is ambiguous: it matches {shown}; give more hex digits"
    with pytest.raises(AmbiguousPrefixError, match=re.escape(message)) as info:
        fast_store.log.resolve(prefix)

    assert info.value.candidates == [h.hex() for h in everyone]
    assert fast_store.log.resolve(clash[0].hex()) == clash[0]
    assert fast_store.log.resolve(clash[1].hex()) == clash[1]


def test_resolve_of_an_unknown_prefix_raises_not_found(store: Store, append_chain) -> None:
    hashes = {e.hash.hex()[:6] for e in append_chain(store, A, 5)}
    absent = next(p for p in ("000000", "ffffff", "123456") if p not in hashes)

    with pytest.raises(NotFoundError, match=f"^no event {absent}$"):
        store.log.resolve(absent)


@pytest.mark.parametrize(
    ("prefix", "expected"), [("abc", "between 4 and 64 hex digits"), ("xyz1", "hexadecimal digits")]
)
def test_resolve_rejects_a_malformed_prefix(store: Store, prefix: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid event hash {prefix!r}: expected {expected}")):
        store.log.resolve(prefix)


def test_events_yields_a_range_of_seqs_in_order(store: Store, append_chain) -> None:
    events = append_chain(store, A, 10)
    append_chain(store, B, 3)

    assert list(store.log.events(A)) == events
    assert list(store.log.events(A, 3)) == events[3:]
    assert list(store.log.events(A, 2, 5)) == events[2:5]
    assert list(store.log.events(A, 0, 1)) == events[:1]
    assert list(store.log.events(A, 9, 100)) == events[9:]
    assert list(store.log.events(A, 4, 4)) == []
    assert list(store.log.events(A, 6, 2)) == []
    assert list(store.log.events(A, 10)) == []
    assert list(store.log.events(C)) == []


def test_events_crosses_the_4096_event_page(fast_store: Store, append_chain) -> None:
    events = append_chain(fast_store, A, 4100, data=lambda seq: seq)
    append_chain(fast_store, B, 2)

    assert [e.data for e in fast_store.log.events(A)] == list(range(4100))
    assert [e.seq for e in fast_store.log.events(A, 4090, 4099)] == list(range(4090, 4099))
    assert [seq for seq, _ in fast_store.log.raw_events(A, 4000)] == list(range(4000, 4100))
    assert [seq for seq, _ in fast_store.log.raw_events(A, 0, 4096)] == list(range(4096))
    assert list(fast_store.log.events(A, 4095, 4097)) == events[4095:4097]


def test_raw_events_are_the_stored_hash_and_body(store: Store, append_chain) -> None:
    events = append_chain(store, A, 3)

    raw = list(store.log.raw_events(A))

    assert [seq for seq, _ in raw] == [0, 1, 2]
    for (_, value), event in zip(raw, events):
        assert value[:32] == event.hash
        assert event_hash(value[32:]) == event.hash


def test_actors_lists_every_chain_with_its_head_in_id_order(store: Store, append_chain) -> None:
    heads = {actor: head_of(append_chain(store, actor, n)[-1]) for actor, n in [(C, 1), (A, 3), (B, 2)]}

    assert store.log.actors() == [(A, heads[A]), (B, heads[B]), (C, heads[C])]


def test_actors_of_an_empty_store_is_empty(store: Store) -> None:
    assert store.log.actors() == []


def test_chains_survive_reopening(store_path, append_chain) -> None:
    with Store(store_path) as first:
        events = append_chain(first, A, 5)
    with Store(store_path) as second:
        assert list(second.log.events(A)) == events
        more = second.log.append(A, "t", "more", expected=head_of(events[-1]))
        assert more.seq == 5


# Data: structured round trip, payload spill, unencodable data.


STRUCTURED = {
    "none": None,
    "true": True,
    "false": False,
    "int": -42,
    "big": 2**70,
    "negative_big": -(2**70),
    "float": 1.5,
    "tiny": 5e-324,
    "huge": 1.7976931348623157e308,
    "inf": math.inf,
    "minus_zero": -0.0,
    "str": "héllo ✓",
    "empty_str": "",
    "bytes": b"\x00\xff\x10",
    "list": [1, "two", [3.0, None], {"four": 4}],
    "empty": {"list": [], "dict": {}, "bytes": b""},
}


@pytest.mark.parametrize(
    "data",
    [STRUCTURED, None, 0, "just a string", b"just bytes", [1, 2], 3.25, True],
    ids=["structured", "none", "zero", "str", "bytes", "list", "float", "bool"],
)
def test_structured_data_round_trips_with_its_types(store: Store, same, data: object) -> None:
    event = store.log.append(A, "t", data, expected=EMPTY)

    read = store.log.at(A, 0).data

    assert read == data
    assert same(read, data)  # True stays True, 1.5 stays a float, -0.0 keeps its sign
    assert same(store.log.get(event.hash).data, data)


class Opaque:
    pass


def cyclic() -> list:
    value: list = []
    value.append(value)
    return value


@pytest.mark.parametrize(
    ("data", "named"),
    [
        (Opaque(), "cannot encode type <class '.*Opaque'>"),
        ({"nested": [1, {"deep": object()}]}, "cannot encode type <class 'object'>"),
        (cyclic(), "cyclic data structure"),
        ("lone surrogate \ud800", ""),
    ],
    ids=["object", "nested-object", "cyclic", "lone-surrogate"],
)
def test_data_cbor_cannot_encode_raises_type_error_and_writes_nothing(store: Store, data: object, named: str) -> None:
    with pytest.raises(TypeError, match=f"event data cannot be encoded as CBOR: .*{named}"):
        store.log.append_async(A, "t", data, expected=EMPTY)

    assert store.log.head(A) == EMPTY
    assert store.log.feed() == []


def test_large_bytes_are_spilled_to_the_blob_store_and_read_back(store: Store) -> None:
    payload = bytes(range(256)) * 100  # 25,600 bytes, over the 16 KiB default threshold
    event = store.log.append(A, "t", {"file": payload, "name": "f.bin"}, expected=EMPTY)
    digest = blob_digest(payload)

    (_, value), = store.log.raw_events(A)

    assert store.blobs.has(digest)
    assert store.blobs.get(digest) == payload
    assert digest in value and payload not in value  # the body holds a reference, not the bytes
    assert BLOB_TAG.to_bytes(2, "big") in value
    assert len(value) < 200
    assert store.log.at(A, 0).data == {"file": payload, "name": "f.bin"}
    assert store.log.get(event.hash).data["file"] == payload


def test_spill_reaches_nested_bytes_and_top_level_bytes(store: Store) -> None:
    big1, big2, big3 = (bytes([i]) * (DEFAULT_SPILL_THRESHOLD + 1) for i in (1, 2, 3))
    data = {"a": [big1, {"b": big2}], "small": b"s" * 10}
    first = store.log.append(A, "t", data, expected=EMPTY)
    store.log.append(A, "t", big3, expected=head_of(first))

    assert all(store.blobs.has(blob_digest(b)) for b in (big1, big2, big3))
    assert not store.blobs.has(blob_digest(b"s" * 10))
    assert store.log.at(A, 0).data == data
    assert store.log.at(A, 1).data == big3
    assert verify_store(store).ok


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


def test_feed_lists_appends_in_commit_order_across_actors(store: Store) -> None:
    a0 = store.log.append(A, "t", 0, expected=EMPTY)
    b0 = store.log.append(B, "t", 0, expected=EMPTY)
    a1 = store.log.append(A, "t", 1, expected=head_of(a0))
    c0 = store.log.append(C, "t", 0, expected=EMPTY)

    assert store.log.feed() == [
        FeedEntry(position=0, actor=A, hash=a0.hash, seq=a0.seq),
        FeedEntry(position=1, actor=B, hash=b0.hash, seq=b0.seq),
        FeedEntry(position=2, actor=A, hash=a1.hash, seq=a1.seq),
        FeedEntry(position=3, actor=C, hash=c0.hash, seq=c0.seq),
    ]
    assert store.log.feed_end() == 4


def test_feed_pages_by_start_and_limit(fast_store: Store, append_chain) -> None:
    for i in range(25):
        append_chain(fast_store, (A, B, C)[i % 3], 1)
    everything = fast_store.log.feed()

    pages = []
    start = 0
    while page := fast_store.log.feed(start, 7):
        assert len(page) <= 7
        pages.extend(page)
        start = page[-1].position + 1

    assert pages == everything
    assert [e.position for e in everything] == list(range(25))
    assert fast_store.log.feed(10, 3) == everything[10:13]
    assert fast_store.log.feed(24) == everything[24:]
    assert fast_store.log.feed(25) == []
    assert fast_store.log.feed(1000, 5) == []
    assert fast_store.log.feed(0, 0) == []


def test_feed_of_an_empty_store_is_empty(store: Store) -> None:
    assert store.log.feed() == []
    assert store.log.feed_end() == 0


def test_feed_positions_continue_after_reopening(store_path, append_chain) -> None:
    with Store(store_path) as first:
        append_chain(first, A, 3)
    with Store(store_path) as second:
        assert second.log.feed_end() == 3
        event = append_chain(second, B, 1)[0]
        assert second.log.feed(3) == [FeedEntry(position=3, actor=B, hash=event.hash, seq=event.seq)]
        assert second.log.feed_end() == 4


def test_feed_skips_refused_appends(store: Store) -> None:
    first = store.log.append(A, "t", 1, expected=EMPTY)
    with pytest.raises(StaleHeadError):
        store.log.append(A, "t", 2, expected=EMPTY)

    assert store.log.feed() == [FeedEntry(position=0, actor=A, hash=first.hash, seq=first.seq)]
