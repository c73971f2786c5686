"""What a start derives from its manifest once (parse, ``actor/created``'s fields) records what it always did."""

from __future__ import annotations

import uuid

import pytest

from replay.schema import ActorCreated
from store.blobs import blob_digest
from store.codec import DEFAULT_SPILL_THRESHOLD, encode_fields
from tests.components import wat
from theater.errors import ManifestError
from theater.manifest import Maximums, load_manifest, start_state
from theater.runtime import CREATION_TEXT_BYTES, canonical_order, recorded_grants

MSG = ["message-server"]


def _created(theater, actor_id: str) -> dict:
    data = dict(theater.events(actor_id)[0].data)
    del data["id"]
    return data


def test_starts_from_one_manifest_record_the_same_creation_however_it_is_given(theaters, manifest):
    theater = theaters()
    path = manifest("echo", wat.echo_actor(), MSG, limits={"fuel_per_call": 10**8}, init_state='{"a": 1}')
    parsed = load_manifest(path)
    ids = [theater.start(path), theater.start(path), theater.start(parsed), theater.start(parsed)]
    first = _created(theater, ids[0])
    assert first["grants"][0] == {"type": "runtime", "config": {}}
    assert all(_created(theater, actor) == first for actor in ids[1:])
    assert all(theater.request(actor, b"hi") == b"hi" for actor in ids)


def test_a_manifest_over_the_runtimes_maximums_is_refused_on_every_start(theaters, manifest):
    theater = theaters(maximums=Maximums(fuel_per_call=1000))
    path = manifest("greedy", wat.echo_actor(), MSG, limits={"fuel_per_call": 10**6})
    parsed = load_manifest(path)
    for given in (path, path, parsed, parsed):
        with pytest.raises(ManifestError, match=r"limits.fuel_per_call: 1000000 is more than this runtime's maximum"):
            theater.start(given)
    assert theater.actors() == []


def test_a_flood_of_large_manifests_is_not_kept(theaters, manifest):
    theater = theaters()
    text = manifest.text("echo", wat.echo_actor(), MSG).replace(
        'name = "echo"', f'name = "echo"\ndescription = "{"d" * CREATION_TEXT_BYTES}"', 1)
    assert len(text) > CREATION_TEXT_BYTES
    big = manifest.directory / "big.toml"
    big.write_text(text)
    actor = theater.start(big)
    assert theater.request(actor, b"big") == b"big"
    assert all(len(kept.text) <= CREATION_TEXT_BYTES for kept in theater._creations.values())


def _schema_creation(theater, actor_id: str, parent: str | None, caller_state: bytes | None = None) -> dict:
    """``actor/created``'s data as ``ActorCreated`` encodes it for this start, built from what the start used."""
    actor = theater.actor(actor_id)
    manifest = actor.manifest
    state = start_state(manifest, caller_state, True)
    return ActorCreated(
        id=actor_id, name=manifest.name, component=actor.component_hash,
        manifest=blob_digest(manifest.source_text.encode()), engine=theater.engine.settings.record(), parent=parent,
        init_state=None if state is None else blob_digest(state), limits=manifest.limits.per_call(),
        on_err=manifest.on_err, grants=recorded_grants(manifest),
    ).encode()


def test_a_starts_creation_is_the_schema_encoding_byte_for_byte(theaters, manifest):
    theater = theaters()
    path = manifest("echo", wat.echo_actor(), [*MSG, "timing"], config={"timing": {"max_sleep_ms": 5}},
                    limits={"fuel_per_call": 10**8}, init_state='{"b": 2, "a": 1}')
    first = theater.start(path)
    again = theater.start(load_manifest(path))  # a second start from one creation: only the per-start fields differ
    child = theater.start(path, parent=first, init_state=b'{"c": 3}')
    for actor_id, parent, caller_state in ((first, None, None), (again, None, None), (child, first, b'{"c": 3}')):
        expected = _schema_creation(theater, actor_id, parent, caller_state)
        event = theater.events(actor_id)[0]
        assert event.data == expected
        [(seq, stored)] = theater.store.log.raw_events(uuid.UUID(actor_id), 0, 1)
        body = encode_fields(uuid.UUID(actor_id).bytes, 0, None, event.timestamp_ms, event.type, expected,
                             DEFAULT_SPILL_THRESHOLD).body
        assert (seq, stored[32:]) == (0, body)
    assert theater.events(child)[0].data["init_state"] != theater.events(first)[0].data["init_state"]
    assert all(theater.request(actor, b"hi") == b"hi" for actor in (first, again, child))


def test_canonical_order_keeps_the_value_and_sorts_every_map_shorter_keys_first():
    value = {"parent": None, "id": "x", "engine": {"zz": 1, "b": [{"type": "t", "config": {"ab": 1, "b": 2}}]}}
    ordered = canonical_order(value)
    assert ordered == value
    assert list(ordered) == ["id", "engine", "parent"]
    assert list(ordered["engine"]) == ["b", "zz"]
    assert list(ordered["engine"]["b"][0]) == ["type", "config"] and list(ordered["engine"]["b"][0]["config"]) == [
        "b", "ab"]
    odd = {2: "int key", "a": 1}
    assert canonical_order(odd) is odd  # left to the codec, which encodes (or refuses) it as before
