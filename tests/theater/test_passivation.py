"""Passivation: an idle actor drops its instance (``actor/passivated``) and its next operation brings it back from
its last state (``wasm/instantiate`` with reason ``activate``); top-level actors also leave memory and are loaded
again by id. Every chain these tests leave is verified and replayed by the ``theaters`` fixture's teardown."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from replay import Replayer
from replay.bundle import export_bundle
from store.errors import InvalidInputError
from tests.components import wat
from tests.theater.test_messaging import le64, to
from theater.errors import ActorNotFound
from theater.porcelain import actor_rows
from theater.porcelain.resume import import_chain, resume_actors
from theater.runtime import Theater
from theater.status import ActorStatus

MSG = ["message-server"]
WAIT = 10.0


def reasons(theater, actor: str) -> list[str]:
    return [e.data["reason"] for e in theater.events(actor) if e.type == "wasm/instantiate"]


def types(theater, actor: str) -> list[str]:
    return [e.type for e in theater.events(actor)]


@pytest.fixture
def counter(theater, manifest):
    """``counter(name="counter", **manifest options)``: start a counter actor, return its id."""
    return lambda name="counter", **options: theater.start(manifest(name, wat.counter_actor(), MSG, **options))


def test_an_idle_actor_is_passivated_and_its_next_message_answers_from_its_last_state(theaters, manifest):
    theater = theaters(passivate_after=0.05)
    actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
    for _ in range(3):
        theater.send(actor, b"+")
    assert theater.passivation.wait(passivated=1, evicted=1, timeout=WAIT)
    assert theater.router.find(uuid.UUID(actor)) is None
    assert theater.status(actor) == ActorStatus.PASSIVATED  # addressing it brought it back, without an instance
    assert theater.request(actor, b"+") == le64(4)
    # The sweeper may have passivated it between messages too: each passivation is followed by an activation.
    found = reasons(theater, actor)
    assert found[0] == "start" and set(found[1:]) == {"activate"}
    assert types(theater, actor).count("actor/passivated") in (len(found) - 1, len(found))


def test_a_passivated_actor_leaves_the_router_and_comes_back_by_id(theater, counter):
    actor = counter()
    theater.send(actor, b"+")
    assert theater.passivate(actor)
    assert theater.passivation.evicted == 1 and theater.router.find(uuid.UUID(actor)) is None
    rows = {row["id"]: row for row in theater.actors()}
    assert rows[actor]["status"] == ActorStatus.PASSIVATED
    assert theater.request(actor, b"+") == le64(2)
    assert theater.status(actor) == ActorStatus.RUNNING
    assert reasons(theater, actor) == ["start", "activate"]


def test_a_passivation_records_the_state_it_holds(theater, counter):
    actor = counter()
    theater.send(actor, b"+")
    theater.passivate(actor)
    passivated = theater.events(actor)[-1]
    assert passivated.type == "actor/passivated"
    assert theater.store.blobs.get(passivated.data["state"]) == le64(1)


def test_an_actor_that_ran_recently_is_not_passivated(theater, counter):
    actor = counter()
    theater.send(actor, b"+")
    assert not theater.passivate(actor, idle_for=3600)
    assert "actor/passivated" not in types(theater, actor)


def test_an_actor_with_an_outstanding_request_is_not_passivated(theater, manifest):
    deferred = theater.start(manifest("deferred", wat.deferred_actor(), MSG))
    reply = theater.router.deliver_request(theater.actor(deferred), b"question")
    theater.actor(deferred).submit(lambda: None).result(WAIT)  # the request was handled: it is outstanding
    assert not theater.passivate(deferred)
    assert "actor/passivated" not in types(theater, deferred)
    theater.send(deferred, b"answer")  # responds to the request held in its state
    assert reply.result(WAIT) == b"answer"
    assert theater.passivate(deferred)


def test_an_actor_with_an_open_channel_is_not_passivated(theater, manifest):
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    channel = theater.open_channel(echo, b"hello")
    assert not theater.passivate(echo)
    channel.close()
    assert theater.passivate(echo)


def test_an_actor_with_children_is_not_passivated(theater, manifest):
    parent = theater.start(manifest("parent", wat.counter_actor(), [*MSG, "supervisor"]))
    child = theater.start(manifest("child", wat.counter_actor(), MSG), parent=parent)
    assert not theater.passivate(parent)
    assert theater.passivate(child)  # a child is passivated but stays in memory, under its supervisor
    assert theater.router.find(uuid.UUID(child)) is not None
    assert theater.status(child) == ActorStatus.PASSIVATED
    assert theater.request(child, b"+") == le64(1)
    assert reasons(theater, child) == ["start", "activate"]


def test_a_handler_that_holds_something_live_keeps_its_actor_from_passivation(theater, counter, monkeypatch):
    from theater.handlers.message_server import MessageServerHandler

    actor = counter()
    monkeypatch.setattr(MessageServerHandler, "holds_live", lambda self: True)
    assert not theater.passivate(actor)


def test_concurrent_first_messages_to_an_evicted_actor_activate_it_once(theater, counter):
    actor = counter()
    assert theater.passivate(actor)
    start = threading.Barrier(8)

    def send() -> None:
        start.wait(WAIT)
        theater.send(actor, b"+")

    with ThreadPoolExecutor(8) as pool:
        for done in [pool.submit(send) for _ in range(8)]:
            done.result(WAIT)
    assert theater.request(actor, b"+") == le64(9)
    assert reasons(theater, actor) == ["start", "activate"]


def test_messages_from_another_actor_bring_an_evicted_actor_back(theater, manifest, counter):
    target = counter("target")
    forwarder = theater.start(manifest("forwarder", wat.forwarder_actor(), MSG))
    assert theater.passivate(target)
    assert theater.request(forwarder, to(target, b"+")) == le64(1)
    assert reasons(theater, target) == ["start", "activate"]


def test_a_passivated_actor_can_be_stopped(theater, counter):
    actor = counter()
    assert theater.passivate(actor)
    theater.stop(actor)
    assert theater.status(actor) == ActorStatus.STOPPED
    assert types(theater, actor)[-2:] == ["actor/passivated", "actor/stop"]


def test_passivated_actors_come_back_in_a_new_runtime_on_the_same_home(tmp_path, theaters, manifest):
    with Theater(tmp_path / "home", durability="buffered") as first:
        actor = first.start(manifest("counter", wat.counter_actor(), MSG))
        first.send(actor, b"+")
        assert first.passivate(actor)
    second = theaters(home=tmp_path / "home")
    assert second.request(actor, b"+") == le64(2)
    assert reasons(second, actor) == ["start", "activate"]


def test_an_interrupted_chain_is_not_loaded_without_lazy_resume(tmp_path, theaters, manifest):
    with Theater(tmp_path / "home", durability="buffered") as first:
        actor = first.start(manifest("counter", wat.counter_actor(), MSG))
    second = theaters(home=tmp_path / "home")
    with pytest.raises(ActorNotFound):
        second.send(actor, b"+")


def test_a_non_durable_actor_is_passivated_but_stays_in_memory(theater, manifest):
    path = manifest("volatile", wat.counter_actor(), MSG)
    path.write_text("durable = false\n" + path.read_text())
    actor = theater.start(path)
    assert theater.passivate(actor)
    assert theater.router.find(uuid.UUID(actor)) is not None
    assert theater.request(actor, b"+") == le64(1)


def test_a_passivated_chain_replays_bit_for_bit(theater, counter):
    actor = counter()
    for round_ in range(3):
        theater.send(actor, b"+")
        assert theater.passivate(actor), round_
    assert theater.request(actor, b"+") == le64(4)
    assert reasons(theater, actor) == ["start", "activate", "activate", "activate"]
    report = Replayer(theater.store).replay(uuid.UUID(actor))
    assert report.ok, report


def test_listing_pages_through_actors_in_id_order(theater, counter):
    actors = sorted(counter(f"c{i}") for i in range(5))
    for actor in actors[:3]:
        assert theater.passivate(actor)
    first = theater.actors(limit=2)
    second = theater.actors(after=first[-1]["id"], limit=2)
    third = theater.actors(after=second[-1]["id"], limit=2)
    assert [r["id"] for r in first + second + third] == actors
    statuses = {r["id"]: r["status"] for r in first + second + third}
    assert [statuses[a] for a in actors] == ["passivated"] * 3 + ["running"] * 2
    assert all(r["idle_ms"] is not None for r in first + second + third if r["status"] == "running")


def test_an_imported_passivated_chain_is_never_loaded(tmp_path, theaters, manifest):
    with Theater(tmp_path / "origin", durability="buffered") as origin:
        actor = origin.start(manifest("counter", wat.counter_actor(), MSG))
        assert origin.passivate(actor)
        data = export_bundle(origin.store, uuid.UUID(actor))
    victim = theaters(home=tmp_path / "victim", passivate_after=300)
    import_chain(victim.store, data, source="hostile.bundle")
    victim.passivation.lazy_resume = True
    with pytest.raises(ActorNotFound):
        victim.send(actor, b"+")
    assert victim.actors() == []


def test_lazy_resume_reopens_trees_at_start_and_leaves_lone_actors_for_later(tmp_path, theaters, manifest):
    with Theater(tmp_path / "home", durability="buffered") as first:
        parent = first.start(manifest("parent", wat.counter_actor(), [*MSG, "supervisor"]))
        child = first.start(manifest("child", wat.counter_actor(), MSG), parent=parent)
        lone = first.start(manifest("lone", wat.counter_actor(), MSG))
        first.send(lone, b"+")
    second = theaters(home=tmp_path / "home", passivate_after=300)
    outcomes = {r.actor: r.outcome for r in resume_actors(second)}
    assert outcomes == {parent: "resumed", child: "resumed", lone: "lazy"}
    assert second.router.find(uuid.UUID(lone)) is None
    assert {r["id"]: r["status"] for r in second.actors()}[lone] == ActorStatus.PASSIVATED
    assert second.request(lone, b"+") == le64(2)
    assert reasons(second, lone) == ["start", "resume"]
    assert second.actors(after=None, limit=10)[0]["id"] == min(parent, child, lone)


def test_lazy_resume_still_reopens_an_actor_granted_http_framework_at_start(tmp_path, theaters, manifest):
    # Nothing could address it while its servers are closed: it must be back (and listening) at start.
    with Theater(tmp_path / "home", durability="buffered") as first:
        server = first.start(manifest("server", wat.counter_actor(), [*MSG, "http-framework"]))
        lone = first.start(manifest("lone", wat.counter_actor(), MSG))
    second = theaters(home=tmp_path / "home", passivate_after=300)
    outcomes = {r.actor: r.outcome for r in resume_actors(second)}
    assert outcomes == {server: "resumed", lone: "lazy"}
    assert second.router.find(uuid.UUID(server)) is not None


def test_without_passivation_resume_reopens_every_actor_at_start(tmp_path, theaters, manifest):
    with Theater(tmp_path / "home", durability="buffered") as first:
        lone = first.start(manifest("lone", wat.counter_actor(), MSG))
    second = theaters(home=tmp_path / "home")
    assert [(r.actor, r.outcome) for r in resume_actors(second)] == [(lone, "resumed")]
    assert second.status(lone) == ActorStatus.RUNNING


def test_a_manifest_may_ask_to_be_passivated_sooner_than_the_runtime(theaters, manifest):
    theater = theaters(passivate_after=3600)
    path = manifest("eager", wat.counter_actor(), MSG)
    path.write_text("passivate_after_ms = 0\n" + path.read_text())
    eager = theater.start(path)
    lazy = theater.start(manifest("lazy", wat.counter_actor(), MSG))
    assert theater.passivation.wait(passivated=1, timeout=WAIT)
    assert theater.status(eager) == ActorStatus.PASSIVATED
    assert theater.status(lazy) == ActorStatus.RUNNING


def test_a_manifest_cannot_keep_its_actor_from_passivation(theaters, manifest):
    theater = theaters(passivate_after=0)
    path = manifest("clingy", wat.counter_actor(), MSG)
    path.write_text("passivate_after_ms = 86400000\n" + path.read_text())
    clingy = theater.start(path)
    assert theater.passivation.wait(passivated=1, timeout=WAIT)
    assert theater.status(clingy) == ActorStatus.PASSIVATED


def test_a_negative_passivate_after_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="passivate_after"):
        Theater(tmp_path / "home", passivate_after=-1)


def test_a_passivated_child_comes_back_only_with_its_tree(tmp_path, theaters, manifest):
    with Theater(tmp_path / "home", durability="buffered") as first:
        parent = first.start(manifest("parent", wat.counter_actor(), [*MSG, "supervisor"]))
        child = first.start(manifest("child", wat.counter_actor(), MSG), parent=parent)
        assert first.passivate(child)
    second = theaters(home=tmp_path / "home")
    with pytest.raises(ActorNotFound):
        second.send(child, b"+")  # not loaded alone: its supervisor would not know it
    second.reopen(parent)
    second.reopen(child)
    assert second.request(child, b"+") == le64(1)
    assert reasons(second, child) == ["start", "activate"]


def test_the_home_listing_without_a_runtime_reads_passivated_from_the_chain(tmp_path, manifest):
    with Theater(tmp_path / "home", durability="buffered") as theater:
        actor = theater.start(manifest("counter", wat.counter_actor(), MSG))
        assert theater.passivate(actor)
        other = theater.start(manifest("other", wat.counter_actor(), MSG))
        store = theater.store
        rows = {row["id"]: row["status"] for row in actor_rows(store)}
        assert rows == {actor: ActorStatus.PASSIVATED, other: ActorStatus.INTERRUPTED}
        [page] = actor_rows(store, after=uuid.UUID(min(actor, other)), limit=5)
        assert page["id"] == max(actor, other)
