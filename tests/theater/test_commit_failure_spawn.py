"""A spawn whose child's start is durable but whose record in the parent's chain is refused by a full disk.

The failure: the child's start (its own chain) commits, the parent's ``supervisor/spawn`` (and the rest of the
operation that spawned it) does not. Before, the child ran on, still in its parent's supervisor memory: supervised
and restartable by a parent whose chain does not know it, so the parent's record and what happened parted. Now the
spawning operation fails as any failed commit does, the supervisor forgets the child as its chain does, and the
child is failed, its chain saying why. The same holds when the runtime stopped between the two commits: a
resumed child whose spawn its parent's chain does not record is failed, not adopted. Every chain still verifies and
replays (the ``theaters`` fixture).

The disk is really full (a small tmpfs, ``tests._full_disk``), as in ``test_commit_failure.py``.
"""

from __future__ import annotations

import contextlib
import uuid

import pytest

from replay.schema import SupervisorSpawn
from store.errors import StoreError, StoreFullError
from tests.components import supervisor_wat as sw
from tests.components import wat
from theater.record import HOLD_BYTES
from theater.manifest import load_manifest
from theater.porcelain.resume import resume_actors
from theater.runtime import Theater

MSG = ["message-server"]
BIG = 300_000  # bytes: an event this large makes a commit grow the store's file (it cannot fit in free pages)
ROOM = 128 << 10  # bytes of disk left free: room for a child's start (a few pages), not for a BIG event
WAIT = 10.0  # seconds any single wait may take before the test gives up
UNRECORDED = "its parent's record of its spawn could not be committed (StoreFullError"
NEVER_RECORDED = "its parent's record of its spawn was never committed"


@pytest.fixture
def theater(full_disk, theaters):
    """A ``Theater`` whose home is on the tmpfs (its chains are checked after the test)."""
    return theaters(home=full_disk.path / "home", request_timeout=WAIT)


def spawned(theater, parent: str) -> list[str]:
    return [event.data["child"] for event in theater.events(parent) if event.type == SupervisorSpawn.TYPE]


def ended(handle) -> None:
    """Wait until the actor's mailbox has ended and what it recorded last is committed or refused."""
    assert handle.wait_ended(WAIT)
    with contextlib.suppress(StoreError):  # the full disk refused it: ``Theater.stop`` records it again
        handle.tape.wait_durable(WAIT)


def test_spawn_record_lost_to_a_full_disk_leaves_no_unrecorded_child_running(theater, full_disk, manifest):
    child = manifest("child", wat.counter_actor(), MSG)
    parent_id = theater.start(manifest("parent", sw.supervisor_wat(request=sw.spawn()), ["supervisor", *MSG]))
    kept = theater.request(parent_id, b"\0" + child.name.encode()).decode()  # its component and manifest are stored
    parent = theater.actor(parent_id)
    full_disk.fill(leave=ROOM)

    started: list[str] = []

    def lose_then_spawn() -> None:
        # The operation's earlier events are refused (they need more room than is left); the child's start, a
        # known manifest, fits and commits; the spawn record chains on what was refused, so it is refused too.
        parent.tape.append("test/lost", {"payload": b"." * BIG})
        with pytest.raises(StoreFullError):
            parent.tape.wait_durable()
        started.append(theater.start(child, parent=parent_id))
        theater.actor(started[0]).tape.wait_durable()  # the child's start is durable

    with pytest.raises(StoreFullError):  # the spawning operation fails as any failed commit does
        parent.submit(lose_then_spawn).result(WAIT)
    [orphan] = started
    assert theater.events(orphan)[0].type == "actor/created"
    # The supervisor forgot it before the operation's failure was reported: it knows what its chain names.
    assert [str(c) for c in theater.supervision.children(uuid.UUID(parent_id))] == [kept]
    handle = theater.actor(orphan)
    ended(handle)
    assert theater.status(orphan) == "failed"
    assert UNRECORDED in handle.failure.detail

    full_disk.free()
    theater.stop(orphan)  # records its failure, if the full disk refused that too
    last = theater.events(orphan)[-1]
    assert last.type == "actor/failed" and UNRECORDED in last.data["reason"]
    assert spawned(theater, parent_id) == [kept]  # the parent's chain never named it
    again = theater.request(parent_id, b"\0" + child.name.encode(), timeout=WAIT).decode()  # the parent goes on
    assert spawned(theater, parent_id) == [kept, again]
    assert [str(c) for c in theater.supervision.children(uuid.UUID(parent_id))] == [kept, again]
    assert theater.request(kept, b"+") == (1).to_bytes(8, "little")  # its recorded child was left alone


def test_child_whose_spawn_record_a_stopped_runtime_lost_is_not_adopted_on_resume(tmp_path, theaters, manifest):
    # What a runtime stopped between the child's commit and its parent's leaves: the child's chain names its parent,
    # the parent's chain does not name the child (forged by starting the child with a parent but without the
    # supervision that records the spawn).
    home = tmp_path / "home"
    child = manifest("child", wat.counter_actor(), MSG)
    with Theater(home, durability="buffered") as first:
        parent = first.start(manifest("parent", sw.supervisor_wat(request=sw.spawn()), ["supervisor", *MSG]))
        kept = first.request(parent, b"\0" + child.name.encode()).decode()
        orphan = str(first._launch(load_manifest(child), init_state=None, parent=uuid.UUID(parent), call_init=True).id)
        first.send(kept, b"+")

    theater = theaters(home=home)
    outcomes = {r.actor: r.outcome for r in resume_actors(theater)}
    assert outcomes == {parent: "resumed", kept: "resumed", orphan: "resumed"}
    assert [str(c) for c in theater.supervision.children(uuid.UUID(parent))] == [kept]  # what its chain names
    ended(theater.actor(orphan))
    assert theater.status(orphan) == "failed"
    last = theater.events(orphan)[-1]
    assert last.type == "actor/failed" and NEVER_RECORDED in last.data["reason"]
    assert theater.request(kept, b"+") == (2).to_bytes(8, "little")  # the recorded child is supervised as before
    assert theater.status(parent) == "running"


def test_spawn_in_a_guest_call_a_full_disk_lost_leaves_no_child_running(theater, full_disk, manifest):
    # The guest's own spawn, in a call whose first event (a request larger than the tape holds back, HOLD_BYTES) is
    # handed to the store before the spawn and refused by the full disk. The child's start then commits on its own
    # (the failure under test) or is lost with the parent's write (the lost-start case): either way no child may
    # run on that the parent's chain does not name.
    child = manifest("child", wat.counter_actor(), MSG)
    supervisor = sw.supervisor_wat(request=sw.spawn())
    limits = {"max_message_bytes": 2 * HOLD_BYTES}
    parent_id = theater.start(manifest("parent", supervisor, ["supervisor", *MSG], limits=limits))
    kept = theater.request(parent_id, b"\0" + child.name.encode()).decode()
    full_disk.fill(leave=ROOM)

    with pytest.raises(StoreFullError):
        theater.request(parent_id, b"." * HOLD_BYTES + b"\0" + child.name.encode(), timeout=WAIT)
    [orphan] = [a["id"] for a in theater.actors() if a["id"] not in (parent_id, kept)]
    assert [str(c) for c in theater.supervision.children(uuid.UUID(parent_id))] == [kept]
    handle = theater.actor(orphan)
    ended(handle)
    assert theater.status(orphan) == "failed"
    assert "could not be committed" in handle.failure.detail

    full_disk.free()
    theater.stop(orphan)
    events = theater.events(orphan)
    assert events == [] or events[-1].type == "actor/failed"
    assert spawned(theater, parent_id) == [kept]
    assert theater.request(kept, b"+") == (1).to_bytes(8, "little")
