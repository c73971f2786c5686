"""Swapping the code an actor runs through the compile cache, and ``verify`` telling the truth about it.

The attack: put the compiled form of another component (``mallory``) where the engine looks for the compiled form
of the component a manifest names (``honest``). Before the fix the cache was an ordinary label any API client could
set; the new actor then ran mallory while its chain named honest, and replay loaded the same artifact, so verify
said ok. Now artifacts live in ``<store>/compiled`` and are loaded only with this home's seal.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import lmdb
import pytest

from replay import Replayer
from replay.engine import WASMTIME_VERSION, Engine
from store import ChecksumMismatch, ReservedLabelError, Store
from tests.cli.conftest import run_cli
from tests.components import wat
from theater.runtime import Theater

HONEST = wat.echo_actor()  # answers a request with the message
MALLORY = wat.counter_actor()  # answers a request with a count: unmistakably other code


def manifest(component: bytes) -> str:
    return f'name = "victim"\ncomponent = "{component.hex()}"\n'


def mallory_artifact() -> bytes:
    engine = Engine()
    try:
        return engine.compile(MALLORY).serialize()
    finally:
        engine.close()


def test_api_path_cannot_plant_an_artifact_under_the_old_cache_label(tmp_path: Path) -> None:
    with Theater(tmp_path / "home") as theater:
        honest = theater.store.blobs.put(HONEST.encode())
        old_label = f"compiled/{honest.hex()}/wasmtime-{WASMTIME_VERSION}/{theater.engine.settings.digest()}"
        planted = theater.store.blobs.put(mallory_artifact())  # any client may store a blob...

        with pytest.raises(ReservedLabelError):  # ...but not name it where the runtime looks
            theater.store.blobs.set_label(old_label, planted)

        actor = theater.start(manifest(honest))
        assert theater.request(actor, b"hello") == b"hello"  # honest code runs
        assert not [name for name, _ in theater.store.blobs.labels() if name.startswith("compiled/")]


def test_planted_artifact_is_not_run_and_verify_catches_swapped_code(tmp_path: Path, caplog) -> None:
    home = tmp_path / "home"
    with Theater(home) as theater:
        honest = theater.store.blobs.put(HONEST.encode())
        name = theater.engine.artifact_name(honest)
        # An artifact of mallory, written where the engine looks for honest's, without the home's key.
        theater.store.artifacts.put("warm-up", b"the home has its key")
        theater.store.artifacts.path(name).write_bytes(mallory_artifact())

        with caplog.at_level(logging.WARNING, logger="replay.engine"):
            actor = theater.start(manifest(honest))
        assert theater.request(actor, b"hello") == b"hello"  # the chain's component ran, not mallory
        assert "carries no seal; compiling the component from its blob instead" in caplog.text
        assert theater.store.artifacts.get(name) is not None  # replaced by a sealed compilation of honest

        # Now the chain of an actor that did run swapped code, as the old cache made happen: the engine is
        # handed mallory for honest's hash (its in-memory cache is the only way left to do that).
        theater.engine._components.clear()
        theater.engine._components[honest] = theater.engine.compile(MALLORY)
        swapped = theater.start(manifest(honest))
        assert theater.request(swapped, b"hello") == (1).to_bytes(8, "little")
    with Store(home / "store") as store:
        # And the planted artifact is back in the cache, unsealed, for verify to pick up.
        store.artifacts.path(name).write_bytes(mallory_artifact())
        replayer = Replayer(store)
        assert replayer.replay(uuid.UUID(actor)).ok
        report = replayer.replay(uuid.UUID(swapped))
    assert not report.ok  # verify re-executed honest, compiled from its blob, and the results differ
    assert report.divergence is not None and "result" in report.divergence.what


def test_an_artifact_sealed_by_another_home_is_compiled_again(tmp_path: Path, caplog) -> None:
    with Store(tmp_path / "elsewhere" / "store") as elsewhere, Theater(tmp_path / "home") as theater:
        honest = theater.store.blobs.put(HONEST.encode())
        name = theater.engine.artifact_name(honest)
        elsewhere.artifacts.put(name, mallory_artifact())  # sealed, but with another home's key
        theater.store.artifacts.put("warm-up", b"this home has its own key")
        theater.store.artifacts.path(name).write_bytes(elsewhere.artifacts.path(name).read_bytes())

        with caplog.at_level(logging.WARNING, logger="replay.engine"):
            actor = theater.start(manifest(honest))

        assert theater.request(actor, b"hello") == b"hello"
        assert "its seal was not made with this home's key" in caplog.text


def test_compiled_artifacts_stay_out_of_the_blob_store(tmp_path: Path) -> None:
    with Theater(tmp_path / "home") as theater:
        honest = theater.store.blobs.put(HONEST.encode())
        theater.start(manifest(honest))
        artifact = theater.store.artifacts.get(theater.engine.artifact_name(honest))

        assert artifact is not None
        assert theater.store.blobs.labels() == []
        assert all(theater.store.blobs.size(d) < 100_000 for d in theater.store.blobs)  # components and states only


def test_a_warm_start_loads_the_sealed_artifact_without_compiling(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    with Theater(home) as theater:
        honest = theater.store.blobs.put(HONEST.encode())
        theater.start(manifest(honest))

    def refuse(*_args, **_kwargs):
        raise AssertionError("compiled although a sealed artifact was cached")

    monkeypatch.setattr(Engine, "compile", refuse)
    with Theater(home) as theater:
        actor = theater.start(manifest(honest))
        assert theater.request(actor, b"warm") == b"warm"


def _corrupt_blob(store_path: Path, digest: bytes) -> None:
    env = lmdb.open(str(store_path), max_dbs=16)
    try:
        blobs = env.open_db(b"blobs")
        with env.begin(write=True) as txn:
            data = bytearray(txn.get(digest, db=blobs))
            data[len(data) // 2] ^= 0x01
            txn.put(digest, bytes(data), db=blobs)
    finally:
        env.close()


def test_a_corrupted_component_blob_is_never_compiled(tmp_path: Path) -> None:
    with Store(tmp_path / "store") as store:
        honest = store.blobs.put(HONEST.encode())
    _corrupt_blob(tmp_path / "store", honest)

    engine = Engine()
    try:
        with Store(tmp_path / "store") as store:
            with pytest.raises(ChecksumMismatch, match=f"^component checksum mismatch: stored under {honest.hex()}"):
                engine.load(store, honest)
            assert not store.artifacts.path(engine.artifact_name(honest)).exists()
    finally:
        engine.close()


def test_a_corrupted_component_blob_makes_verify_fail_with_a_clear_error(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Theater(home) as theater:
        honest = theater.store.blobs.put(HONEST.encode())
        actor = theater.start(manifest(honest))
        theater.send(actor, b"one")
        theater.stop(actor)
    for path in (home / "store" / "compiled").glob("*.bin"):
        path.unlink()  # no compiled form to fall back on: verify compiles the component blob
    _corrupt_blob(home / "store", honest)

    done = run_cli("verify", actor, home=home, check=False)

    assert done.returncode == 1
    assert "replay: ok" not in done.stdout
    # The integrity check reads every blob the chain names, so the damage is found before anything compiles.
    assert f"integrity: BROKEN: actor {actor} seq 0" in done.stdout
    assert f"blob checksum mismatch: component blob {honest.hex()} hashes to" in done.stdout
    assert "Traceback" not in done.stderr


def test_bundle_is_verified_from_its_own_component_blob(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with Theater(home) as theater:
        honest = theater.store.blobs.put(HONEST.encode())
        actor = theater.start(manifest(honest))
        theater.request(actor, b"hello")
        theater.stop(actor)
        name = theater.engine.artifact_name(honest)
        # The worst case for the verifying machine: its own cache holds mallory under honest's name, sealed.
        theater.store.artifacts.put(name, mallory_artifact())
    bundle = tmp_path / "victim.bundle"
    run_cli("chain", "export", actor, "-o", str(bundle), home=home)
    before = sorted((home / "store" / "compiled").iterdir())

    from_bundle = run_cli("verify", str(bundle), home=home, check=False)
    from_home = run_cli("verify", actor, home=home, check=False)

    assert from_bundle.returncode == 0 and "replay: ok" in from_bundle.stdout, from_bundle.stdout
    assert sorted((home / "store" / "compiled").iterdir()) == before  # the home's cache was not even touched
    # The same chain verified in the home does use the home's sealed cache (trusted like the home's files), so
    # the poisoned artifact shows: the bundle's result above came from its own component blob.
    assert from_home.returncode == 1 and "DIVERGED" in from_home.stdout
