"""What a start derives from its manifest once (parse, ``actor/created``'s fields) records what it always did."""

from __future__ import annotations

import pytest

from tests.components import wat
from theater.errors import ManifestError
from theater.manifest import Maximums, load_manifest
from theater.runtime import CREATION_TEXT_BYTES

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
