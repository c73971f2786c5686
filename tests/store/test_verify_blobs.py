"""Integrity covers the blobs a chain names: the component, the manifest, the initial state, every state and every
spilled payload must be in the store and hash to their names, each checked once per run."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator

import pytest

import store.verify as verify_module
from store import EMPTY, Head, Store, blob_digest, verify_chain, verify_store
from store.verify import BLOB_FIELDS, named_blobs

A = uuid.UUID("00000000-0000-4000-8000-0000000000a1")
B = uuid.UUID("00000000-0000-4000-8000-0000000000b2")
CALL = "theater:simple/message-server-client.handle-send"
SPILL = 64

BLOBS = {name: f"blob {name}".encode() for name in
         ("component", "manifest", "init", "resumed", "before", "after", "spilled-call")}
DIGESTS = {name: blob_digest(data) for name, data in BLOBS.items()}


def runtime_shaped(store: Store, actor: uuid.UUID, ts: int = 1_700_000_000_000) -> dict[str, int]:
    """A chain with every event that names a blob, each naming its own; returns the seq naming each blob."""
    for data in BLOBS.values():
        store.blobs.put(data)
    d = DIGESTS
    events = [
        ("actor/created", {"id": str(actor), "component": d["component"], "manifest": d["manifest"],
                           "init_state": d["init"], "limits": {"fuel_per_call": 1}}),
        ("wasm/instantiate", {"fuel": 10, "state": d["resumed"], "reason": "resume"}),
        ("wasm/call", {"state": d["before"], "export": CALL, "params": [b"tick"]}),
        ("theater:simple/timing/now", {"params": [], "result": 1}),
        ("wasm/result", {"fuel": 300, "state": d["after"], "export": CALL, "output": []}),
        # A payload long enough to be spilled sends this event down the slow path (decoded).
        ("wasm/call", {"state": d["spilled-call"], "export": CALL, "params": [b"x" * (SPILL * 2)]}),
        ("actor/stop", {"data": None}),
    ]
    head = EMPTY
    for type_, data in events:
        event = store.log.append(actor, type_, data, expected=head, timestamp_ms=ts)
        head = Head(event.seq, event.hash)
    return {"component": 0, "manifest": 0, "init": 0, "resumed": 1, "before": 2, "after": 4, "spilled-call": 5}


@pytest.fixture
def shaped(store_path) -> Iterator[tuple[Store, dict[str, int]]]:
    with Store(store_path, durability="buffered", spill_threshold=SPILL) as s:
        yield s, runtime_shaped(s, A)


def test_runtime_shaped_chain_with_its_blobs_verifies(shaped) -> None:
    store, _ = shaped
    report = verify_chain(store, A)
    assert report.ok, report.problem
    assert report.events == 7


TIMESTAMPS = [5, 1000, 1_700_000_000_000, -5, -1_700_000_000_000]  # the fast path reads past any integer


@pytest.mark.parametrize("ts", TIMESTAMPS)
def test_chain_verify_detects_corrupted_component_blob(store_path, raw, ts) -> None:
    with Store(store_path, durability="buffered", spill_threshold=SPILL) as store:
        runtime_shaped(store, A, ts)
        component = DIGESTS["component"]
        raw.put(store, "blobs", component, b"another component entirely")
        problem = verify_chain(store, A).problem
        assert problem is not None
        assert (problem.kind, problem.seq) == ("blob checksum mismatch", 0)
        assert problem.detail == (f"component blob {component.hex()} hashes to "
                                  f"{blob_digest(b'another component entirely').hex()}")
        assert not verify_store(store).ok


FIELDS = {"component": "component", "manifest": "manifest", "init": "init_state", "resumed": "state",
          "before": "state", "after": "state", "spilled-call": "state"}


@pytest.mark.parametrize("name", sorted(FIELDS))
def test_chain_verify_detects_missing_named_blob_at_the_event_naming_it(shaped, raw, name) -> None:
    store, seqs = shaped
    with raw.changed(store, "blobs", DIGESTS[name], None):
        problem = verify_chain(store, A).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == ("missing blob", seqs[name])
    assert problem.detail == f"{FIELDS[name]} blob {DIGESTS[name].hex()} is not in the store"


@pytest.mark.parametrize("ts", TIMESTAMPS)
def test_chain_verify_detects_missing_result_state_whatever_the_timestamp(store_path, raw, ts) -> None:
    with Store(store_path, durability="buffered", spill_threshold=SPILL) as store:
        seqs = runtime_shaped(store, A, ts)
        raw.delete(store, "blobs", DIGESTS["after"])
        problem = verify_chain(store, A).problem
    assert problem is not None and (problem.kind, problem.seq) == ("missing blob", seqs["after"])


def test_blob_named_after_other_fields_is_found_by_decoding(store, raw) -> None:
    state = store.blobs.put(b"state")
    # A shorter key sorts first in canonical CBOR: the state is not where the fast path looks, so it is decoded.
    store.log.append(A, "wasm/call", {"a": 1, "state": state, "export": CALL, "params": []}, expected=EMPTY)
    assert verify_chain(store, A).ok
    with raw.changed(store, "blobs", state, None):
        problem = verify_chain(store, A).problem
    assert problem is not None and (problem.kind, problem.seq) == ("missing blob", 0)


def test_blob_checks_can_be_skipped_for_pure_hash_chain_speed(shaped, raw) -> None:
    store, _ = shaped
    with raw.changed(store, "blobs", DIGESTS["after"], None):
        assert verify_chain(store, A, blobs=False).ok
        assert not verify_chain(store, A).ok


def test_each_distinct_blob_is_checked_once_per_run(store_path, monkeypatch) -> None:
    with Store(store_path, durability="buffered", spill_threshold=SPILL) as store:
        runtime_shaped(store, A)
        runtime_shaped(store, B)  # the same component, manifest and states, named by a second chain
        hashed: Counter[bytes] = Counter()

        def counting(data: bytes) -> bytes:
            digest = blob_digest(data)
            hashed[digest] += 1
            return digest

        monkeypatch.setattr(verify_module, "blob_digest", counting)
        assert verify_store(store).ok
    spilled = blob_digest(b"x" * (SPILL * 2))
    assert hashed == Counter({digest: 1 for digest in [*DIGESTS.values(), spilled]})


def test_named_blobs_follows_the_table_and_skips_what_is_not_a_hash() -> None:
    assert set(BLOB_FIELDS) == {"actor/created", "actor/revert", "wasm/instantiate", "wasm/call", "wasm/result"}
    assert named_blobs("wasm/call", {"state": DIGESTS["init"]}) == [("state", DIGESTS["init"])]
    assert named_blobs("wasm/call", {"state": "not a hash"}) == []
    assert named_blobs("wasm/call", ["not", "a", "map"]) == []
    assert named_blobs("theater:simple/timing/now", {"state": DIGESTS["init"]}) == []
