"""The recorder contract: every event-log backend (LMDB and memory) keeps the same chain rules.

Each test runs once per backend through the ``log`` fixture (see ``conftest.py``): compare-and-append against the
expected head, pipelining, reading by seq, hash and prefix, ranges, payload spill, the feed in commit order,
stored events from elsewhere, and tamper detection through ``verify``. What only LMDB has (durability, group
commit, reopening, the writer thread) is tested in ``test_chain.py`` and the other modules.
"""

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
    ChecksumMismatch,
    CorruptRecordError,
    Event,
    FeedEntry,
    Head,
    InvalidInputError,
    MemoryLog,
    NotFoundError,
    Recorder,
    StaleHeadError,
    Store,
    blob_digest,
    verify_chain,
    verify_store,
)
from store.codec import BLOB_TAG, DEFAULT_SPILL_THRESHOLD, event_hash

A = uuid.UUID("00000000-0000-4000-8000-00000000000a")
B = uuid.UUID("00000000-0000-4000-8000-00000000000b")
C = uuid.UUID("00000000-0000-4000-8000-00000000000c")


def head_of(event: Event) -> Head:
    return Head(event.seq, event.hash)


def stored_blob(log: Recorder, digest: bytes) -> bytes | None:
    with log.snapshot() as snapshot:
        return snapshot.blob(digest)


# Appending and the head.


def test_head_of_an_unknown_actor_is_empty(log: Recorder) -> None:
    assert log.head(A) == EMPTY
    assert EMPTY.seq == -1 and EMPTY.hash is None and EMPTY.next_seq == 0


def test_append_builds_a_hash_chain(log: Recorder) -> None:
    first = log.append(A, "actor.started", {"name": "counter"}, expected=EMPTY, timestamp_ms=10)
    second = log.append(A, "actor.message", {"n": 1}, expected=head_of(first), timestamp_ms=11)

    assert (first.actor, first.seq, first.parent, first.type, first.timestamp_ms) == (A, 0, None, "actor.started", 10)
    assert (second.seq, second.parent) == (1, first.hash)
    assert first.version == second.version == 1
    assert log.head(A) == Head(1, second.hash)
    assert log.head(A).next_seq == 2


def test_append_returns_the_event_as_stored(log: Recorder) -> None:
    appended = log.append(A, "t", {"k": [1, 2, 3]}, expected=EMPTY, timestamp_ms=5)

    assert log.at(A, 0) == appended
    assert log.get(appended.hash) == appended


def test_append_stamps_the_current_time_when_no_timestamp_is_given(log: Recorder) -> None:
    before = time.time_ns() // 1_000_000
    event = log.append(A, "t", None, expected=EMPTY)
    after = time.time_ns() // 1_000_000

    assert before <= event.timestamp_ms <= after
    assert log.at(A, 0).timestamp_ms == event.timestamp_ms


def test_hash_depends_on_every_field(log: Recorder) -> None:
    base = dict(type="t", data={"x": 1}, timestamp_ms=1)
    variants = [
        (A, base),
        (B, base),
        (A, {**base, "type": "u"}),
        (A, {**base, "data": {"x": 2}}),
        (A, {**base, "timestamp_ms": 2}),
    ]

    hashes = {log.append_async(actor, expected=EMPTY, **kw).event.hash for actor, kw in variants}

    assert len(hashes) == len(variants)


def test_append_rejects_a_stale_empty_head(log: Recorder) -> None:
    first = log.append(A, "t", 1, expected=EMPTY)

    message = f"stale head for actor {A}: expected empty chain, the chain is at seq 0 {first.hash.hex()[:16]}"
    with pytest.raises(StaleHeadError, match=re.escape(message)) as info:
        log.append(A, "t", 2, expected=EMPTY)

    assert info.value.expected == (-1, None)
    assert info.value.actual == (0, first.hash)
    assert log.head(A) == head_of(first)


def test_append_rejects_a_head_that_moved_on(log: Recorder) -> None:
    first = log.append(A, "t", 1, expected=EMPTY)
    second = log.append(A, "t", 2, expected=head_of(first))

    message = (
        f"stale head for actor {A}: expected seq 0 {first.hash.hex()[:16]}, "
        f"the chain is at seq 1 {second.hash.hex()[:16]}"
    )
    with pytest.raises(StaleHeadError, match=re.escape(message)):
        log.append(A, "t", 3, expected=head_of(first))

    assert [e.data for e in log.events(A)] == [1, 2]


def test_append_rejects_a_head_ahead_of_the_chain(log: Recorder) -> None:
    made_up = Head(3, b"\x01" * 32)

    message = f"stale head for actor {A}: expected seq 3 {'01' * 8}, the chain is at empty chain"
    with pytest.raises(StaleHeadError, match=re.escape(message)):
        log.append(A, "t", 1, expected=made_up)

    assert log.head(A) == EMPTY


def test_append_rejects_the_right_seq_with_the_wrong_hash(log: Recorder) -> None:
    first = log.append(A, "t", 1, expected=EMPTY)

    with pytest.raises(StaleHeadError, match="expected seq 0 0000000000000000, the chain is at seq 0"):
        log.append(A, "t", 2, expected=Head(0, bytes(32)))

    assert log.head(A) == head_of(first)


@pytest.mark.parametrize("bad", ["", None, 7, b"t"])
def test_append_rejects_a_bad_event_type(log: Recorder, bad: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid event type {bad!r}: expected a non-empty string")):
        log.append(A, bad, 1, expected=EMPTY)  # type: ignore[arg-type]

    assert log.head(A) == EMPTY


def test_chains_of_different_actors_are_independent(log: Recorder, append_chain) -> None:
    a_events = append_chain(log, A, 3)
    b_events = append_chain(log, B, 2)

    assert log.head(A) == head_of(a_events[-1])
    assert log.head(B) == head_of(b_events[-1])
    assert b_events[0].parent is None


def test_pipelined_appends_chain_on_each_other_before_any_is_durable(log: Recorder) -> None:
    head = EMPTY
    pending = []
    for i in range(100):
        p = log.append_async(A, "t", {"i": i}, expected=head, timestamp_ms=i)
        assert p.event.seq == i and p.event.parent == head.hash
        head = head_of(p.event)
        pending.append(p)

    events = [p.wait(30) for p in pending]

    assert [e.seq for e in events] == list(range(100))
    assert log.head(A) == head
    assert [e.data["i"] for e in log.events(A)] == list(range(100))
    assert verify_store(log).ok


def test_pipelined_appends_after_a_stale_one_all_fail(log: Recorder) -> None:
    log.append(A, "t", "winner", expected=EMPTY)
    head = EMPTY
    pending = []
    for i in range(5):
        p = log.append_async(A, "t", i, expected=head)
        head = head_of(p.event)
        pending.append(p)

    for p in pending:
        with pytest.raises(StaleHeadError, match=f"stale head for actor {A}"):
            p.wait(30)

    assert log.head(A).seq == 0
    assert [e.data for e in log.events(A)] == ["winner"]


def test_at_returns_each_event_by_seq(log: Recorder, append_chain) -> None:
    events = append_chain(log, A, 5)

    assert [log.at(A, i) for i in range(5)] == events


def test_at_of_a_missing_event_raises_not_found(log: Recorder, append_chain) -> None:
    append_chain(log, A, 2)

    with pytest.raises(NotFoundError, match=f"^no event {A} #2$"):
        log.at(A, 2)
    with pytest.raises(NotFoundError, match=f"^no event {B} #0$"):
        log.at(B, 0)


def test_get_and_locate_find_an_event_by_hash(log: Recorder, append_chain) -> None:
    append_chain(log, A, 3)
    events = append_chain(log, B, 4)

    assert log.get(events[2].hash) == events[2]
    assert log.locate(events[2].hash) == (B, 2)


def test_get_of_an_unknown_hash_raises_not_found(log: Recorder) -> None:
    digest = bytes(range(32))

    with pytest.raises(NotFoundError, match=f"^no event {digest.hex()}$"):
        log.get(digest)


@pytest.mark.parametrize("bad", ["ab" * 32, b"\x00" * 31, None], ids=["hex", "31-bytes", "none"])
def test_locate_rejects_a_hash_that_is_not_32_raw_bytes(log: Recorder, bad: object) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid event hash {bad!r}: expected 32 raw bytes")):
        log.locate(bad)  # type: ignore[arg-type]


def test_resolve_finds_an_event_by_a_unique_prefix(log: Recorder, append_chain) -> None:
    events = append_chain(log, A, 10)
    target = events[7].hash.hex()

    assert log.resolve(target) == events[7].hash
    assert log.resolve(target[:12]) == events[7].hash
    assert log.resolve(target[:9].upper()) == events[7].hash


def test_resolve_rejects_a_prefix_shared_by_two_events(log: Recorder, append_chain) -> None:
    # Append until two events share their first four hex digits (deterministic: fixed ids and timestamps).
    by_prefix: dict[str, list[bytes]] = defaultdict(list)
    clash: list[bytes] = []
    while not clash:
        for event in append_chain(log, A, 200):
            by_prefix[event.hash.hex()[:4]].append(event.hash)
            if len(by_prefix[event.hash.hex()[:4]]) == 2:
                clash = by_prefix[event.hash.hex()[:4]]
        assert log.head(A).seq < 5000
    prefix = clash[0].hex()[:4]
    everyone = sorted(by_prefix[prefix])
    shown = ", ".join(h.hex()[:16] for h in everyone)

    message = f"event prefix '{prefix}' is ambiguous: it matches {shown}; give more hex digits"
    with pytest.raises(AmbiguousPrefixError, match=re.escape(message)) as info:
        log.resolve(prefix)

    assert info.value.candidates == [h.hex() for h in everyone]
    assert log.resolve(clash[0].hex()) == clash[0]
    assert log.resolve(clash[1].hex()) == clash[1]


def test_resolve_of_an_unknown_prefix_raises_not_found(log: Recorder, append_chain) -> None:
    hashes = {e.hash.hex()[:6] for e in append_chain(log, A, 5)}
    absent = next(p for p in ("000000", "ffffff", "123456") if p not in hashes)

    with pytest.raises(NotFoundError, match=f"^no event {absent}$"):
        log.resolve(absent)


@pytest.mark.parametrize(
    ("prefix", "expected"), [("abc", "between 4 and 64 hex digits"), ("xyz1", "hexadecimal digits")]
)
def test_resolve_rejects_a_malformed_prefix(log: Recorder, prefix: str, expected: str) -> None:
    with pytest.raises(InvalidInputError, match=re.escape(f"invalid event hash {prefix!r}: expected {expected}")):
        log.resolve(prefix)


def test_events_yields_a_range_of_seqs_in_order(log: Recorder, append_chain) -> None:
    events = append_chain(log, A, 10)
    append_chain(log, B, 3)

    assert list(log.events(A)) == events
    assert list(log.events(A, 3)) == events[3:]
    assert list(log.events(A, 2, 5)) == events[2:5]
    assert list(log.events(A, 0, 1)) == events[:1]
    assert list(log.events(A, 9, 100)) == events[9:]
    assert list(log.events(A, 4, 4)) == []
    assert list(log.events(A, 6, 2)) == []
    assert list(log.events(A, 10)) == []
    assert list(log.events(C)) == []


def test_events_crosses_the_4096_event_page(log: Recorder, append_chain) -> None:
    events = append_chain(log, A, 4100, data=lambda seq: seq)
    append_chain(log, B, 2)

    assert [e.data for e in log.events(A)] == list(range(4100))
    assert [e.seq for e in log.events(A, 4090, 4099)] == list(range(4090, 4099))
    assert [seq for seq, _ in log.raw_events(A, 4000)] == list(range(4000, 4100))
    assert [seq for seq, _ in log.raw_events(A, 0, 4096)] == list(range(4096))
    assert list(log.events(A, 4095, 4097)) == events[4095:4097]


def test_raw_events_are_the_stored_hash_and_body(log: Recorder, append_chain) -> None:
    events = append_chain(log, A, 3)

    raw = list(log.raw_events(A))

    assert [seq for seq, _ in raw] == [0, 1, 2]
    for (_, value), event in zip(raw, events):
        assert value[:32] == event.hash
        assert event_hash(value[32:]) == event.hash


def test_actors_lists_every_chain_with_its_head_in_id_order(log: Recorder, append_chain) -> None:
    heads = {actor: head_of(append_chain(log, actor, n)[-1]) for actor, n in [(C, 1), (A, 3), (B, 2)]}

    assert log.actors() == [(A, heads[A]), (B, heads[B]), (C, heads[C])]


def test_actors_of_an_empty_store_is_empty(log: Recorder) -> None:
    assert log.actors() == []


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
def test_structured_data_round_trips_with_its_types(log: Recorder, same, data: object) -> None:
    event = log.append(A, "t", data, expected=EMPTY)

    read = log.at(A, 0).data

    assert read == data
    assert same(read, data)  # True stays True, 1.5 stays a float, -0.0 keeps its sign
    assert same(log.get(event.hash).data, data)


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
def test_data_cbor_cannot_encode_raises_type_error_and_writes_nothing(log: Recorder, data: object, named: str) -> None:
    with pytest.raises(TypeError, match=f"event data cannot be encoded as CBOR: .*{named}"):
        log.append_async(A, "t", data, expected=EMPTY)

    assert log.head(A) == EMPTY
    assert log.feed() == []


def test_large_bytes_are_spilled_to_the_blob_store_and_read_back(log: Recorder) -> None:
    payload = bytes(range(256)) * 100  # 25,600 bytes, over the 16 KiB default threshold
    event = log.append(A, "t", {"file": payload, "name": "f.bin"}, expected=EMPTY)
    digest = blob_digest(payload)

    (_, value), = log.raw_events(A)

    assert stored_blob(log, digest) == payload
    assert digest in value and payload not in value  # the body holds a reference, not the bytes
    assert BLOB_TAG.to_bytes(2, "big") in value
    assert len(value) < 200
    assert log.at(A, 0).data == {"file": payload, "name": "f.bin"}
    assert log.get(event.hash).data["file"] == payload


def test_spill_reaches_nested_bytes_and_top_level_bytes(log: Recorder) -> None:
    big1, big2, big3 = (bytes([i]) * (DEFAULT_SPILL_THRESHOLD + 1) for i in (1, 2, 3))
    data = {"a": [big1, {"b": big2}], "small": b"s" * 10}
    first = log.append(A, "t", data, expected=EMPTY)
    log.append(A, "t", big3, expected=head_of(first))

    assert all(stored_blob(log, blob_digest(b)) == b for b in (big1, big2, big3))
    assert stored_blob(log, blob_digest(b"s" * 10)) is None
    assert log.at(A, 0).data == data
    assert log.at(A, 1).data == big3
    assert verify_store(log).ok


def test_feed_lists_appends_in_commit_order_across_actors(log: Recorder) -> None:
    a0 = log.append(A, "t", 0, expected=EMPTY)
    b0 = log.append(B, "t", 0, expected=EMPTY)
    a1 = log.append(A, "t", 1, expected=head_of(a0))
    c0 = log.append(C, "t", 0, expected=EMPTY)

    assert log.feed() == [
        FeedEntry(position=0, actor=A, hash=a0.hash, seq=a0.seq),
        FeedEntry(position=1, actor=B, hash=b0.hash, seq=b0.seq),
        FeedEntry(position=2, actor=A, hash=a1.hash, seq=a1.seq),
        FeedEntry(position=3, actor=C, hash=c0.hash, seq=c0.seq),
    ]
    assert log.feed_end() == 4


def test_feed_pages_by_start_and_limit(log: Recorder, append_chain) -> None:
    for i in range(25):
        append_chain(log, (A, B, C)[i % 3], 1)
    everything = log.feed()

    pages = []
    start = 0
    while page := log.feed(start, 7):
        assert len(page) <= 7
        pages.extend(page)
        start = page[-1].position + 1

    assert pages == everything
    assert [e.position for e in everything] == list(range(25))
    assert log.feed(10, 3) == everything[10:13]
    assert log.feed(24) == everything[24:]
    assert log.feed(25) == []
    assert log.feed(1000, 5) == []
    assert log.feed(0, 0) == []


def test_feed_of_an_empty_store_is_empty(log: Recorder) -> None:
    assert log.feed() == []
    assert log.feed_end() == 0


def test_feed_skips_refused_appends(log: Recorder) -> None:
    first = log.append(A, "t", 1, expected=EMPTY)
    with pytest.raises(StaleHeadError):
        log.append(A, "t", 2, expected=EMPTY)

    assert log.feed() == [FeedEntry(position=0, actor=A, hash=first.hash, seq=first.seq)]


# Stored events from elsewhere (bundles).


def test_append_stored_takes_an_event_as_another_recorder_stored_it(log: Recorder, append_chain) -> None:
    source = MemoryLog()
    events = append_chain(source, A, 3)

    head = EMPTY
    for _, value in source.raw_events(A):
        head = head_of(log.append_stored(A, value, expected=head).wait(30))

    assert list(log.events(A)) == events
    assert log.head(A) == head_of(events[-1])
    assert [e.hash for e in log.feed()] == [e.hash for e in events]


def test_append_stored_refuses_a_body_that_does_not_hash_to_its_hash(log: Recorder, append_chain) -> None:
    source = MemoryLog()
    append_chain(source, A, 1)
    ((_, value),) = source.raw_events(A)
    changed = value[:-1] + bytes([value[-1] ^ 1])

    with pytest.raises(ChecksumMismatch):
        log.append_stored(A, changed, expected=EMPTY)

    assert log.head(A) == EMPTY


def test_append_stored_refuses_an_event_of_another_chain(log: Recorder, append_chain) -> None:
    source = MemoryLog()
    append_chain(source, B, 1)
    ((_, value),) = source.raw_events(B)

    with pytest.raises(CorruptRecordError, match="does not continue this chain"):
        log.append_stored(A, value, expected=EMPTY)

    assert log.feed() == []


def test_append_stored_after_a_moved_head_is_stale(log: Recorder, append_chain) -> None:
    source = MemoryLog()
    append_chain(source, A, 1)
    ((_, value),) = source.raw_events(A)
    log.append(A, "t", "first", expected=EMPTY)

    with pytest.raises(CorruptRecordError, match="does not continue this chain"):
        log.append_stored(A, value, expected=log.head(A))
    with pytest.raises(StaleHeadError, match=f"stale head for actor {A}: expected empty chain"):
        log.append_stored(A, value, expected=EMPTY).wait(30)


# Verification over any backend.


def test_verify_passes_intact_chains_of_every_backend(log: Recorder, append_chain) -> None:
    append_chain(log, A, 30)
    append_chain(log, B, 5, data=lambda seq: b"x" * (DEFAULT_SPILL_THRESHOLD + seq))

    report = verify_store(log)

    assert report.ok
    assert report.events == 35


def test_verify_detects_one_changed_byte_in_a_stored_event(backend, append_chain) -> None:
    events = append_chain(backend.log, A, 10)
    value = dict(backend.log.raw_events(A))[4]
    backend.tamper(A, 4, value[:-1] + bytes([value[-1] ^ 0x01]))

    problem = verify_chain(backend.log, A).problem

    assert problem is not None
    assert (problem.kind, problem.seq, problem.hash) == ("hash mismatch", 4, events[4].hash)


def test_verify_detects_a_rewritten_event_with_a_valid_hash(backend, append_chain) -> None:
    events = append_chain(backend.log, A, 6)
    forged = MemoryLog()
    forged_events = append_chain(forged, A, 6, data=lambda seq: {"n": seq, "forged": True})
    backend.tamper(A, 3, dict(forged.raw_events(A))[3])

    problem = verify_chain(backend.log, A).problem

    assert problem is not None
    assert (problem.kind, problem.seq) == ("broken parent link", 3)
    assert problem.hash == forged_events[3].hash != events[3].hash


# Both backends hash alike.


def test_the_same_appends_give_the_same_head_in_every_backend(tmp_path) -> None:
    def run(log: Recorder) -> Head:
        head = EMPTY
        for i in range(20):
            head = head_of(log.append(A, "t", {"i": i, "blob": b"b" * (DEFAULT_SPILL_THRESHOLD + i)}, expected=head,
                                      timestamp_ms=i))
        return head

    with Store(tmp_path / "s", durability="buffered") as store:
        assert run(store.log) == run(MemoryLog())
