"""``runtime.get-chain`` and ``supervisor.get-child-events`` hand the guest a chain the record already holds: the
result is recorded by reference (``replay.derived``), so storage grows with the chain, not with its square, and
replay reads the same value back from the store."""

from __future__ import annotations

import uuid

import cbor2
import pytest

from replay import Replayer
from replay.bundle import export_bundle, opened_bundle
from replay.derived import RESULT_REF
from store import Store
from store.errors import CorruptRecordError
from tests._forge import forge
from tests.components import supervisor_wat as sw
from tests.components import wat

MSG = ["message-server"]
GET_CHAIN = "theater:simple/runtime/get-chain"
GET_CHILD_EVENTS = "theater:simple/supervisor/get-child-events"
# Every call hands the guest the whole chain, and wasmtime-py lowers a list<u8> one byte at a time (~0.4 ms per
# chain event here), so the CPU cost of the calls is quadratic whatever is stored: 150 calls (a chain of ~450
# events) keep the test short; the stored bytes of the first and the last 30 calls are compared.
CALLS = 150
WINDOW = 30


def le64(raw: bytes) -> int:
    return int.from_bytes(raw, "little")


def stored_bytes(store: Store) -> int:
    """Every byte the store keeps for events and blobs."""
    events = sum(len(raw) for actor, _ in store.log.actors() for _, raw in store.log.raw_events(actor))
    return events + sum(store.blobs.size(digest) for digest in store.blobs)


def test_get_chain_hands_the_guest_its_committed_chain_and_records_a_reference(theater, manifest, events_of):
    actor = theater.start(manifest("reader", wat.actor_wat(request=wat.get_chain()), MSG))
    committed = len(theater.events(actor))
    assert le64(theater.request(actor, b"?")) == committed + 1  # with the wasm/call of this request
    (call,) = events_of(theater, actor, GET_CHAIN)
    assert "result" not in call.data
    head = theater.events(actor)[call.seq - 1]
    assert call.data[RESULT_REF] == {"chain": {"actor": uuid.UUID(actor).bytes, "to_seq": call.seq - 1,
                                               "head": head.hash}}


def test_get_chain_storage_per_call_stays_constant_as_the_chain_grows(theater, manifest, settle):
    actor = theater.start(manifest("reader", wat.actor_wat(send=wat.get_chain(), request=wat.get_chain()), MSG))
    sizes = {}
    for i in range(CALLS):
        if i in (0, WINDOW, CALLS - WINDOW):
            settle(theater, actor)
            sizes[i] = stored_bytes(theater.store)
        theater.send(actor, b"")
    settle(theater, actor)
    sizes[CALLS] = stored_bytes(theater.store)
    first = (sizes[WINDOW] - sizes[0]) / WINDOW
    last = (sizes[CALLS] - sizes[CALLS - WINDOW]) / WINDOW
    assert last < 1.5 * first, f"bytes per call grew from {first:.0f} to {last:.0f}"
    # The guest saw the chain grow by three events a call (wasm/call, get-chain, wasm/result).
    assert le64(theater.state(actor)) == len(theater.events(actor)) - 2
    report = Replayer(theater.store).replay(uuid.UUID(actor))
    assert report.ok, report.divergence
    assert report.host_calls == CALLS


def test_replay_refuses_a_chain_reference_whose_head_is_not_in_the_store(theater, manifest, tmp_path):
    actor = theater.start(manifest("reader", wat.actor_wat(request=wat.get_chain()), MSG))
    theater.request(actor, b"?")
    theater.stop(actor)

    def edit(drafts):
        (draft,) = [d for d in drafts if d.type == GET_CHAIN]
        draft.data[RESULT_REF]["chain"]["head"] = bytes(32)

    forged = forge(theater.store, uuid.UUID(actor), edit, tmp_path / "forged")
    with Store(forged.store_path) as store:
        report = Replayer(store).replay(forged.actor)
    assert not report.ok
    assert "the result of theater:simple/runtime/get-chain" in report.divergence.what
    assert report.divergence.expected == bytes(32)


def test_get_child_events_records_a_reference_to_the_childs_head(theater, manifest, settle, events_of):
    child = manifest("child", wat.echo_actor(), MSG)
    parent_wat = sw.supervisor_wat(request=sw.match_head({b"spawn": sw.spawn(), b"events": sw.get_child_events()}))
    parent = theater.start(manifest("parent", parent_wat, ["supervisor", *MSG]))
    child_id = theater.request(parent, b"spawn\0" + child.name.encode()).decode()
    assert theater.request(child_id, b"hi") == b"hi"
    settle(theater, child_id)
    count = le64(theater.request(parent, b"events\0" + child_id.encode()))
    child_events = theater.events(child_id)
    assert count == len(child_events)
    (call,) = events_of(theater, parent, GET_CHILD_EVENTS)
    assert call.data[RESULT_REF] == {"ok": {"chain": {"actor": uuid.UUID(child_id).bytes, "to_seq": count - 1,
                                                      "head": child_events[count - 1].hash}}}
    report = Replayer(theater.store).replay(uuid.UUID(parent))
    assert report.ok, report.divergence


def test_bundle_of_a_parent_that_read_its_childs_events_carries_the_child_chain_and_verifies(
    theater, manifest, settle, tmp_path
):
    child = manifest("child", wat.echo_actor(), MSG)
    parent_wat = sw.supervisor_wat(request=sw.match_head({b"spawn": sw.spawn(), b"events": sw.get_child_events()}))
    parent = theater.start(manifest("parent", parent_wat, ["supervisor", *MSG]))
    child_id = theater.request(parent, b"spawn\0" + child.name.encode()).decode()
    assert theater.request(child_id, b"hi") == b"hi"
    settle(theater, child_id)
    count = le64(theater.request(parent, b"events\0" + child_id.encode()))
    settle(theater, parent)

    data = export_bundle(theater.store, uuid.UUID(parent))
    chains = cbor2.loads(data)["chains"]
    assert list(chains) == [uuid.UUID(child_id).bytes]
    assert len(chains[uuid.UUID(child_id).bytes]) >= count  # the child's events 0..count-1, from genesis
    path = tmp_path / "parent.bundle"
    path.write_bytes(data)
    with opened_bundle(path) as (store, actor, _):
        assert actor == uuid.UUID(parent)
        report = Replayer(store).replay(actor)
    assert report.ok, report.divergence


def test_a_bundle_whose_referred_chain_was_changed_is_refused(theater, manifest, settle, tmp_path):
    child = manifest("child", wat.echo_actor(), MSG)
    parent_wat = sw.supervisor_wat(request=sw.match_head({b"spawn": sw.spawn(), b"events": sw.get_child_events()}))
    parent = theater.start(manifest("parent", parent_wat, ["supervisor", *MSG]))
    child_id = theater.request(parent, b"spawn\0" + child.name.encode()).decode()
    settle(theater, child_id)
    theater.request(parent, b"events\0" + child_id.encode())
    settle(theater, parent)
    bundle = cbor2.loads(export_bundle(theater.store, uuid.UUID(parent)))
    chain = bundle["chains"][uuid.UUID(child_id).bytes]
    chain[-1] = chain[-1][:-1] + bytes([chain[-1][-1] ^ 1])  # one flipped byte in the child's last event
    path = tmp_path / "forged.bundle"
    path.write_bytes(cbor2.dumps(bundle, canonical=True))
    with pytest.raises(CorruptRecordError, match=rf"chain of actor {child_id}: event \d+"):
        with opened_bundle(path):
            pass
