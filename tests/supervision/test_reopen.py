"""A supervision tree survives a restart of the runtime: reopened children are supervised again."""

import uuid

import pytest

from replay.errors import GuestFault
from replay.replayer import Replayer
from store import verify_store
from tests._chains import CommitWaiter
from tests._fixtures import WAIT
from tests.components import wat
from theater.runtime import Theater


def _write(tmp_path, name, text, extra=""):
    (tmp_path / f"{name}.wat").write_text(text)
    manifest = tmp_path / f"{name}.toml"
    manifest.write_text(f'name = "{name}"\ncomponent = "{name}.wat"\n[[handlers]]\ntype = "message-server"\n{extra}')
    return manifest


@pytest.mark.parametrize("parent_first", [True, False], ids=["parent-first", "child-first"])
def test_reopened_child_is_restarted_by_its_reopened_parent(tmp_path, parent_first):
    parent_manifest = _write(tmp_path, "boss", wat.echo_actor(),
                             '[[handlers]]\ntype = "supervisor"\n[supervision]\nintensity = 5\nperiod_s = 60\n')
    child_manifest = _write(tmp_path, "worker", wat.faulty_actor())
    home = tmp_path / "home"
    with Theater(home, durability="buffered") as theater:
        parent = theater.start(parent_manifest)
        child = theater.start(child_manifest, parent=parent)
        theater.send(child, b"one")

    with Theater(home, durability="buffered") as theater:
        for actor in ([parent, child] if parent_first else [child, parent]):
            theater.reopen(actor)
        assert [str(c) for c in theater.supervision.children(uuid.UUID(parent))] == [child]
        with pytest.raises(GuestFault):
            theater.send(child, b"trap")
        restarted = _wait_for(theater, child, "wasm/instantiate", reason="restart")
        assert restarted.data["reason"] == "restart"
        # Queued behind the restart on the child's mailbox: answered by the new instance.
        assert theater.request(child, b"after") == b"after"
        assert theater.status(child) == "running"
        restarts = [e for e in theater.events(parent) if e.type == "supervisor/restart"]
        assert [e.data["child"] for e in restarts] == [child]
        store = theater.store
        assert verify_store(store).ok
        for actor in (parent, child):
            assert Replayer(store).replay(uuid.UUID(actor)).ok


def _wait_for(theater, actor, type_, **fields):
    """The actor's latest event of that type with those fields, waiting on commits until it is in the chain."""
    def found():
        return next((event for event in reversed(theater.events(actor))
                     if event.type == type_ and all(event.data.get(k) == v for k, v in fields.items())), None)

    return CommitWaiter(theater.store, WAIT).until(found, f"{type_} {fields} in {actor}'s chain")


def test_per_child_options_in_the_supervisors_manifest_apply_to_children_of_that_name(tmp_path):
    parent_manifest = _write(
        tmp_path, "boss", wat.echo_actor(),
        '[[handlers]]\ntype = "supervisor"\n[supervision]\nrestart = "permanent"\n'
        '[supervision.children.worker]\nrestart = "temporary"\nrestart_from = "last_state"\n',
    )
    worker = _write(tmp_path, "worker", wat.faulty_actor())
    other = _write(tmp_path, "other", wat.faulty_actor())
    with Theater(tmp_path / "home", durability="buffered") as theater:
        parent = theater.start(parent_manifest)
        first = theater.start(worker, parent=parent)
        second = theater.start(other, parent=parent)
        spawns = {e.data["child"]: e.data for e in theater.events(parent) if e.type == "supervisor/spawn"}
        assert (spawns[first]["restart"], spawns[first]["restart_from"]) == ("temporary", "last_state")
        assert (spawns[second]["restart"], spawns[second]["restart_from"]) == ("permanent", "init")


def test_per_child_options_reject_unknown_keys(tmp_path):
    from theater.errors import ManifestError
    from theater.manifest import parse_manifest

    expected = r"supervision\.children\.worker\.retry: unknown key 'retry'; allowed keys: restart, restart_from$"
    with pytest.raises(ManifestError, match=expected):
        parse_manifest('name = "b"\ncomponent = "b.wat"\n[supervision.children.worker]\nretry = 3\n')
