"""A bundle is anyone's: importing one must not make the home's next server run it (durable resume)."""

from __future__ import annotations

import uuid

from replay.bundle import export_bundle
from tests.components import wat
from theater.porcelain.resume import IMPORTED_LABEL, import_chain, interrupted_actors, resume_actors
from theater.runtime import Theater

MSG = ["message-server"]


def running_actor_bundle(tmp_path, manifest) -> tuple[str, bytes]:
    """An actor left running when its runtime closed (so its chain looks interrupted), as a bundle."""
    with Theater(tmp_path / "origin") as theater:
        actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
        theater.send(actor, b"x")
        return actor, export_bundle(theater.store, uuid.UUID(actor))


def test_an_imported_bundle_is_never_resumed_by_a_server(tmp_path, manifest):
    actor, data = running_actor_bundle(tmp_path, manifest)
    with Theater(tmp_path / "victim") as theater:
        assert import_chain(theater.store, data, source="hostile.bundle") == uuid.UUID(actor)
        assert [name for name, _ in theater.store.blobs.labels(IMPORTED_LABEL)] == [f"{IMPORTED_LABEL}{actor}"]
        assert interrupted_actors(theater.store) == []
        assert resume_actors(theater) == []
        assert theater.actors() == []


def test_a_homes_own_chain_imported_back_stays_resumable(tmp_path, manifest):
    actor, data = running_actor_bundle(tmp_path, manifest)
    with Theater(tmp_path / "origin") as theater:
        import_chain(theater.store, data, source="own.bundle")  # the chain is already here: nothing changes
        assert theater.store.blobs.labels(IMPORTED_LABEL) == []
        assert interrupted_actors(theater.store) == [uuid.UUID(actor)]
        [resumed] = resume_actors(theater)
        assert (resumed.actor, resumed.outcome) == (actor, "resumed")
