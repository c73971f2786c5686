"""Integrity verification: any single-byte change, deletion or substitution in a stored chain is reported
at the right event with the right kind; intact chains verify."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from store import EMPTY, ChecksumMismatch, Head, Problem, Store, blob_digest, verify_chain, verify_store
from store.chain import event_key
from store.codec import encode_event, event_hash

A = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
B = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
C = uuid.UUID("00000000-0000-4000-8000-0000000000c3")
SPILL = 64


def payload(actor: uuid.UUID, seq: int) -> bytes:
    """A payload unique to one event and longer than the spill threshold."""
    return (actor.bytes + seq.to_bytes(4, "big")) * 6


def data_for(actor: uuid.UUID):
    # Every third event of a chain carries a spilled payload; the others are small and stay inline.
    return lambda seq: {"seq": seq, "file": payload(actor, seq)} if seq % 3 == 1 else {"seq": seq}


@pytest.fixture(scope="module")
def tampered_home(tmp_path_factory, append_chain) -> Iterator[Store]:
    """A store with three chains (6, 4 and 1 events; some with spilled payloads), shared by the tamper tests.

    Each test changes records and puts them back; the fixture checks the store is intact before handing it on.
    """
    with Store(tmp_path_factory.mktemp("tamper") / "store", durability="buffered", spill_threshold=SPILL) as s:
        for actor, count in [(A, 6), (B, 4), (C, 1)]:
            append_chain(s, actor, count, data=data_for(actor))
        assert verify_store(s).ok
        yield s


@pytest.fixture
def home(tampered_home: Store) -> Iterator[Store]:
    assert verify_store(tampered_home).ok, "a previous test left the shared store tampered"
    yield tampered_home
    assert verify_store(tampered_home).ok, "the test did not restore the shared store"


CHAINS = {A: 6, B: 4, C: 1}
ALL_EVENTS = [(actor, seq) for actor, count in CHAINS.items() for seq in range(count)]
SPILLED = [(actor, seq) for actor, seq in ALL_EVENTS if seq % 3 == 1]


def only_problem(store: Store, actor: uuid.UUID) -> Problem:
    """The one problem verify_store reports, checked to be the one verify_chain reports for ``actor``."""
    report = verify_store(store)
    assert not report.ok
    assert [p.actor for p in report.problems] == [actor]
    chain = verify_chain(store, actor)
    assert chain.problem == report.problems[0]
    return chain.problem


# Intact stores.


def test_intact_store_verifies(home: Store) -> None:
    report = verify_store(home)

    assert report.ok
    assert report.problems == []
    assert report.events == 11
    assert [(c.actor, c.events, c.ok) for c in report.chains] == [(A, 6, True), (B, 4, True), (C, 1, True)]
    assert all(c.head == home.log.head(c.actor) for c in report.chains)


def test_empty_store_and_unknown_chain_verify(store: Store) -> None:
    assert verify_store(store).ok
    report = verify_chain(store, A)
    assert report.ok and report.events == 0 and report.head == EMPTY


def test_verify_reports_progress_every_4096_events(fast_store: Store, append_chain) -> None:
    append_chain(fast_store, A, 4100)
    append_chain(fast_store, B, 4097)
    seen: list[int] = []

    report = verify_store(fast_store, progress=seen.append)

    assert report.ok and report.events == 8197
    assert seen == [4096, 4100 + 4096]


# Any single-byte change to a stored event.


@settings(max_examples=300)
@given(data=st.data())
def test_any_flipped_byte_of_a_stored_event_is_a_hash_mismatch_at_that_event(tampered_home: Store, raw, data) -> None:
    home = tampered_home  # module-scoped: each example restores what it changed
    actor, seq = data.draw(st.sampled_from(ALL_EVENTS), label="event")
    key = event_key(actor, seq)
    original = raw.get(home, "events", key)
    at = data.draw(st.integers(0, len(original) - 1), label="byte position")
    mask = data.draw(st.integers(1, 255), label="xor mask")
    changed = bytearray(original)
    changed[at] ^= mask

    with raw.changed(home, "events", key, bytes(changed)):
        problem = only_problem(home, actor)

    # A byte of the stored hash (at < 32) or of the body: either way the body no longer hashes to the stored
    # hash, and that check runs before any link or head check, so even the last event reports a hash mismatch.
    assert (problem.kind, problem.seq, problem.hash) == ("hash mismatch", seq, bytes(changed[:32]))
    assert problem.detail.startswith(f"stored hash {changed[:32].hex()}, the body hashes to ")


@settings(max_examples=100)
@given(data=st.data())
def test_any_flipped_byte_of_a_spilled_payload_is_a_payload_checksum_mismatch(tampered_home: Store, raw, data) -> None:
    home = tampered_home  # module-scoped: each example restores what it changed
    actor, seq = data.draw(st.sampled_from(SPILLED), label="event")
    digest = blob_digest(payload(actor, seq))
    original = raw.get(home, "blobs", digest)
    at = data.draw(st.integers(0, len(original) - 1), label="byte position")
    changed = bytearray(original)
    changed[at] ^= data.draw(st.integers(1, 255), label="xor mask")

    with raw.changed(home, "blobs", digest, bytes(changed)):
        problem = only_problem(home, actor)

    assert (problem.kind, problem.seq) == ("payload checksum mismatch", seq)
    assert problem.hash == home.log.at(actor, seq).hash
    assert problem.detail == f"payload blob {digest.hex()} hashes to {blob_digest(bytes(changed)).hex()}"


@pytest.mark.parametrize(("actor", "seq"), SPILLED)
def test_a_deleted_payload_blob_is_reported_missing(home: Store, raw, actor, seq) -> None:
    digest = blob_digest(payload(actor, seq))

    with raw.changed(home, "blobs", digest, None):
        problem = only_problem(home, actor)

    assert (problem.kind, problem.seq) == ("missing payload blob", seq)
    assert problem.detail == f"payload blob {digest.hex()} is not in the store"


# Deleted and substituted records.


@pytest.mark.parametrize(("actor", "seq"), [(A, 0), (A, 2), (A, 4), (B, 1)])
def test_a_deleted_event_before_the_last_is_a_sequence_gap(home: Store, raw, actor, seq) -> None:
    with raw.changed(home, "events", event_key(actor, seq), None):
        problem = only_problem(home, actor)

    assert (problem.kind, problem.seq) == ("sequence gap", seq)
    assert problem.detail == f"expected seq {seq}, the next stored event is seq {seq + 1}"


@pytest.mark.parametrize("actor", [A, B, C])
def test_a_deleted_last_event_is_a_head_mismatch(home: Store, raw, actor) -> None:
    last = CHAINS[actor] - 1
    head = home.log.head(actor)

    with raw.changed(home, "events", event_key(actor, last), None):
        problem = only_problem(home, actor)

    assert (problem.kind, problem.seq, problem.hash) == ("head mismatch", last, head.hash)
    ends = "seq -1 none" if last == 0 else f"seq {last - 1} {home.log.at(actor, last - 1).hash.hex()[:16]}"
    assert problem.detail == f"the head record says seq {last} {head.hash.hex()[:16]}, the chain ends at {ends}"


@pytest.mark.parametrize(("actor", "seq"), ALL_EVENTS)
def test_a_deleted_index_entry_is_an_index_mismatch(home: Store, raw, actor, seq) -> None:
    digest = home.log.at(actor, seq).hash

    with raw.changed(home, "event_index", digest, None):
        problem = only_problem(home, actor)

    assert (problem.kind, problem.seq, problem.hash) == ("index mismatch", seq, digest)


def test_an_index_entry_pointing_elsewhere_is_an_index_mismatch(home: Store, raw) -> None:
    digest = home.log.at(A, 3).hash

    with raw.changed(home, "event_index", digest, event_key(A, 2)):
        problem = only_problem(home, A)

    assert (problem.kind, problem.seq) == ("index mismatch", 3)


@pytest.mark.parametrize("byte", [8, 20, 39])
def test_a_changed_head_record_is_a_head_mismatch(home: Store, raw, byte) -> None:
    original = raw.get(home, "heads", A.bytes)
    changed = bytearray(original)
    changed[byte] ^= 0x01

    with raw.changed(home, "heads", A.bytes, bytes(changed)):
        problem = only_problem(home, A)

    assert (problem.kind, problem.seq) == ("head mismatch", 6)


def test_a_rehashed_edit_is_caught_by_the_index_and_the_next_parent_link(home: Store, raw) -> None:
    # The attacker edits event 2 and recomputes its hash; the index still knows the old hash.
    old = home.log.at(A, 2)
    forged = encode_event(
        actor=A, seq=2, parent=old.parent, timestamp_ms=old.timestamp_ms, type=old.type, data={"seq": 999}
    )

    with raw.changed(home, "events", event_key(A, 2), forged.hash + forged.body):
        assert (only_problem(home, A).kind, only_problem(home, A).seq) == ("index mismatch", 2)
        # Fix the index too: now event 3's parent link breaks.
        with raw.changed(home, "event_index", forged.hash, event_key(A, 2)):
            problem = only_problem(home, A)

    assert (problem.kind, problem.seq) == ("broken parent link", 3)
    assert problem.detail == f"parent is {old.hash.hex()[:16]}, the previous event is {forged.hash.hex()[:16]}"


def test_an_event_of_another_actor_is_a_wrong_actor(home: Store, raw) -> None:
    foreign = raw.get(home, "events", event_key(B, 1))

    with raw.changed(home, "events", event_key(A, 1), foreign):
        problem = only_problem(home, A)

    assert (problem.kind, problem.seq) == ("wrong actor", 1)
    assert problem.detail == f"the event names actor {B}"


def test_an_event_stored_under_another_seq_is_a_sequence_gap(home: Store, raw) -> None:
    moved = raw.get(home, "events", event_key(A, 3))

    with raw.changed(home, "events", event_key(A, 2), moved):
        problem = only_problem(home, A)

    assert (problem.kind, problem.seq) == ("sequence gap", 2)
    assert problem.detail == "stored at seq 2 but the event says seq 3"


def test_an_extra_event_after_the_head_is_a_head_mismatch(home: Store, raw) -> None:
    last = home.log.at(C, 0)
    extra = encode_event(actor=C, seq=1, parent=last.hash, timestamp_ms=1, type="t", data=None)

    with raw.changed(home, "events", event_key(C, 1), extra.hash + extra.body):
        with raw.changed(home, "event_index", extra.hash, event_key(C, 1)):
            problem = only_problem(home, C)

    assert (problem.kind, problem.seq) == ("head mismatch", 2)


@pytest.mark.parametrize(
    ("value", "detail"),
    [(b"\x01" * 32, "the record is only 32 bytes"), (b"", "the record is only 0 bytes")],
    ids=["hash-only", "empty"],
)
def test_a_record_too_short_for_an_event_is_corrupt(home: Store, raw, value, detail) -> None:
    with raw.changed(home, "events", event_key(B, 2), value):
        problem = only_problem(home, B)

    assert (problem.kind, problem.seq, problem.detail) == ("corrupt record", 2, detail)


def test_a_well_hashed_body_that_is_not_an_event_is_corrupt(home: Store, raw) -> None:
    body = b"\x83\x01\x02\x03"

    with raw.changed(home, "events", event_key(B, 2), event_hash(body) + body):
        problem = only_problem(home, B)

    assert (problem.kind, problem.seq) == ("corrupt record", 2)
    assert problem.detail == "an event must be a CBOR array of 7 fields"


def test_reading_a_tampered_payload_raises_checksum_mismatch(home: Store, raw) -> None:
    actor, seq = SPILLED[0]
    digest = blob_digest(payload(actor, seq))

    with raw.changed(home, "blobs", digest, b"not the payload"):
        message = f"stored under {digest.hex()} but the bytes hash to {blob_digest(b'not the payload').hex()}"
        with pytest.raises(ChecksumMismatch, match=message):
            home.log.at(actor, seq)


def test_get_by_hash_detects_an_index_entry_leading_to_another_event(home: Store, raw) -> None:
    digest = home.log.at(A, 3).hash
    wrong = home.log.at(A, 2).hash

    with raw.changed(home, "event_index", digest, event_key(A, 2)):
        with pytest.raises(ChecksumMismatch, match=f"stored under {digest.hex()} but the bytes hash to {wrong.hex()}"):
            home.log.get(digest)


def test_an_event_in_non_canonical_form_is_corrupt(home: Store, raw) -> None:
    # Event 2 re-encoded with its seq as a one-byte integer (0x18 0x02) instead of the canonical 0x02, and hashed
    # correctly: every field still reads back the same, but the record is not the canonical one that was hashed.
    canonical = raw.get(home, "events", event_key(B, 2))[32:]
    at = 3 + 16
    assert canonical[at] == 0x02
    body = canonical[:at] + b"\x18\x02" + canonical[at + 1 :]
    digest = event_hash(body)

    with raw.changed(home, "events", event_key(B, 2), digest + body):
        with raw.changed(home, "event_index", digest, event_key(B, 2)):
            problem = only_problem(home, B)

    assert (problem.kind, problem.seq, problem.hash) == ("corrupt record", 2, digest)


def test_the_first_problem_of_a_chain_is_the_one_reported(home: Store, raw) -> None:
    with raw.changed(home, "event_index", home.log.at(A, 1).hash, None):
        with flip_body_byte(home, raw, A, 3):
            assert (only_problem(home, A).kind, only_problem(home, A).seq) == ("index mismatch", 1)
    with flip_body_byte(home, raw, A, 1):
        with raw.changed(home, "event_index", home.log.at(A, 3).hash, None):
            assert (only_problem(home, A).kind, only_problem(home, A).seq) == ("hash mismatch", 1)
    with raw.changed(home, "events", event_key(A, 4), None):
        with raw.changed(home, "blobs", blob_digest(payload(A, 1)), None):
            assert (only_problem(home, A).kind, only_problem(home, A).seq) == ("missing payload blob", 1)


def test_verify_without_indexes_checks_the_chain_alone(home: Store, raw) -> None:
    with raw.changed(home, "event_index", home.log.at(A, 2).hash, None):
        assert verify_chain(home, A, indexes=False).ok
        with flip_body_byte(home, raw, A, 4):
            problem = verify_chain(home, A, indexes=False).problem

    assert (problem.kind, problem.seq) == ("hash mismatch", 4)


def test_problem_describes_itself(home: Store, raw) -> None:
    with raw.changed(home, "events", event_key(A, 2), None):
        problem = only_problem(home, A)

    assert problem.describe() == f"actor {A} seq 2: sequence gap: expected seq 2, the next stored event is seq 3"


# What a report of a broken chain says besides the problem.


def flip_body_byte(store: Store, raw, actor, seq):
    value = bytearray(raw.get(store, "events", event_key(actor, seq)))
    value[40] ^= 0xFF
    return raw.changed(store, "events", event_key(actor, seq), bytes(value))


TAMPERINGS = {
    "hash mismatch": lambda s, raw: flip_body_byte(s, raw, A, 2),
    "sequence gap": lambda s, raw: raw.changed(s, "events", event_key(A, 2), None),
    "index mismatch": lambda s, raw: raw.changed(s, "event_index", s.log.at(A, 2).hash, None),
    "missing payload blob": lambda s, raw: raw.changed(s, "blobs", blob_digest(payload(A, 1)), None),
    "head mismatch": lambda s, raw: raw.changed(s, "events", event_key(A, 5), None),
}


@pytest.mark.parametrize("kind", TAMPERINGS)
def test_report_of_a_broken_chain_counts_the_events_verified_before_the_problem(home: Store, raw, kind) -> None:
    with TAMPERINGS[kind](home, raw):
        report = verify_chain(home, A)

    assert report.problem.kind == kind
    assert report.events == report.problem.seq


@pytest.mark.parametrize("kind", TAMPERINGS)
def test_report_of_a_broken_chain_gives_the_recorded_head(home: Store, raw, kind) -> None:
    recorded = home.log.head(A)

    with TAMPERINGS[kind](home, raw):
        report = verify_chain(home, A)

    assert report.problem.kind == kind
    assert report.head == recorded


# Verifying a chain that grows meanwhile.


def test_verify_chain_of_a_chain_appended_to_during_the_walk_reports_no_problem(
    fast_store: Store, append_chain
) -> None:
    # verify_chain reads the head, then walks the chain page by page (4096 events a page). An append that
    # lands between two pages (here: from the progress callback, as a live writer would) is not corruption.
    events = append_chain(fast_store, A, 4100)
    head = Head(events[-1].seq, events[-1].hash)

    def append_meanwhile(done: int) -> None:
        nonlocal head
        event = fast_store.log.append(A, "t", {"late": done}, expected=head)
        head = Head(event.seq, event.hash)

    report = verify_chain(fast_store, A, progress=append_meanwhile)

    assert report.problem is None, report.problem.describe()
    assert verify_chain(fast_store, A).ok


# Long chains: split into ranges checked by worker processes.


@pytest.fixture
def parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    import store.verify

    monkeypatch.setattr(store.verify, "PARALLEL_FROM", 0)  # split even a short chain


@pytest.fixture(scope="module")
def long_home(tmp_path_factory, append_chain) -> Iterator[Store]:
    with Store(tmp_path_factory.mktemp("long") / "store", durability="buffered", spill_threshold=SPILL) as s:
        append_chain(s, A, 300, data=data_for(A))
        yield s


def test_a_chain_split_across_worker_processes_verifies_whole(long_home: Store, parallel) -> None:
    report = verify_chain(long_home, A, workers=3)

    assert report.ok
    assert (report.events, report.head) == (300, long_home.log.head(A))


@pytest.mark.parametrize(("seqs", "first"), [((250,), 250), ((150, 250), 150), ((100,), 100), ((0, 299), 0)])
def test_workers_report_the_first_broken_event_of_the_whole_chain(long_home: Store, raw, parallel, seqs, first) -> None:
    # Ranges are [0, 100), [100, 200), [200, end): seq 100 is the first event of a worker's range, whose parent
    # that worker takes from the stored hash of seq 99.
    keys = [event_key(A, seq) for seq in seqs]
    originals = [raw.get(long_home, "events", key) for key in keys]
    try:
        for key, value in zip(keys, originals):
            raw.put(long_home, "events", key, value[:-1] + bytes([value[-1] ^ 1]))
        report = verify_chain(long_home, A, workers=3)
        single = verify_chain(long_home, A, workers=1)
    finally:
        for key, value in zip(keys, originals):
            raw.put(long_home, "events", key, value)

    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (first, "hash mismatch")
    assert report == single
    assert verify_chain(long_home, A, workers=3).ok


def test_a_worker_range_whose_first_event_does_not_follow_the_last_is_a_broken_link(
    long_home: Store, raw, parallel
) -> None:
    # Replace seq 100 by a well-formed event (its own hash right) whose parent is not seq 99.
    forged = encode_event(actor=A, seq=100, parent=bytes(32), timestamp_ms=1_000, type="test.event", data={"seq": 100})
    with raw.changed(long_home, "events", event_key(A, 100), forged.hash + forged.body):
        report = verify_chain(long_home, A, workers=3, indexes=False)

    assert report.problem is not None
    assert (report.problem.seq, report.problem.kind) == (100, "broken parent link")
