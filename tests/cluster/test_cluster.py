"""A Theater cluster on real processes: three NATS servers with JetStream and three ``theater server --cluster``
nodes on 127.0.0.1. Messages reach actors by id from any node, a SIGKILLed node's actors answer again from the
others with every acknowledged message kept, a NATS server's loss does not stop the service, and a node that was
cut off stops running its actors while no chain ever gets two events at one seq."""

from __future__ import annotations

import base64
import json
import random
import signal
import subprocess
import threading
import time
import uuid
from typing import Any

import pytest

from tests.components import wat
from tests.server._harness import CLI, ROOT, WAIT, Http, ServerProcess, channel_component, cli_env, start_body

pytestmark = [pytest.mark.slow, pytest.mark.cluster]

FAILOVER_WAIT = 30.0  # seconds a failover may take before the test fails (the lease TTL is 2 s here)


def start_counter(http: Http, name: str = "counter") -> str:
    return http.ok("POST", "/v1/actors", start_body(name, wat.counter_actor()), status=201)["id"]


def count_of(reply: Any) -> int:
    return int.from_bytes(base64.b64decode(reply["response"]["base64"]), "little")


def ask(http: Http, actor: str, timeout: float = WAIT) -> tuple[int, Any]:
    """(status, body) of a request ``+`` to a counter; status 0 when the node cannot be reached."""
    try:
        reply = http.request("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}}, timeout=timeout)
    except OSError:
        return 0, None
    return reply.status, reply.json if reply.status == 200 else reply.body


def answered_within(http: Http, actor: str, wait: float = FAILOVER_WAIT) -> int:
    """The count a request answers once the actor answers again (through ``http``'s node), within ``wait`` s."""
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        status, body = ask(http, actor, timeout=5)
        if status == 200:
            return count_of(body)
        time.sleep(0.1)  # the failover takes a lease TTL; nothing to wait on from outside but the answer
    raise AssertionError(f"actor {actor} did not answer within {wait} s")


def cluster_status(servers: str, *, check: bool = False) -> dict[str, Any]:
    done = subprocess.run([*CLI, "cluster", "status", "--cluster", servers, "--json", *(["--check"] if check else [])],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=cli_env())
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def assert_every_chain_holds_together(servers: str, actors: list[str]) -> None:
    """Every chain on the stream checks out: hashes, links, one event per seq and none missing."""
    chains = cluster_status(servers, check=True)["chains"]
    assert set(actors) <= set(chains)
    broken = {actor: result for actor, result in chains.items() if "error" in result}
    assert not broken


class Load:
    """Requests ``+`` to counters through every live node, from a few threads, until stopped; keeps each
    acknowledged answer (the count it returned) per actor."""

    def __init__(self, entries: dict[str, Http], actors: list[str]) -> None:
        self.entries = entries
        self.actors = actors
        self.acked: dict[str, list[int]] = {a: [] for a in actors}
        self.refused = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(4)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, index: int) -> None:
        rng = random.Random(index)
        while not self._stop.is_set():
            actor = rng.choice(self.actors)
            entry = rng.choice(list(self.entries.values()))
            status, body = ask(entry, actor, timeout=10)
            with self._lock:
                if status == 200:
                    self.acked[actor].append(count_of(body))
                else:
                    self.refused += 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(WAIT)


def test_send_and_request_reach_an_actor_on_another_node_in_order(nodes):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    actor = start_counter(a.http())
    for _ in range(5):  # one sender, one actor: the order is kept, each send handled before the next is answered
        assert b.http().ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "+"}}) == {"delivered": True}
    assert count_of(b.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 6
    assert count_of(a.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 7
    unknown = b.http().post("/v1/actors/00000000-0000-4000-8000-000000000000/request", {"message": {"text": "+"}})
    assert unknown.status == 404


def test_an_actor_started_through_one_node_runs_on_the_node_it_names(nodes, nats_cluster, tmp_path):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    project = tmp_path / "project"
    project.mkdir()
    (project / "counter.wat").write_text(wat.counter_actor())
    (project / "manifest.toml").write_text('name = "placed"\ncomponent = "counter.wat"\n')
    started = a.cli("start", str(project / "manifest.toml"), "--node", "b", "--json")
    actor = json.loads(started.stdout)["id"]
    assert cluster_status(nats_cluster.urls)["leases"][actor] == "b"
    assert b.http().ok("GET", f"/v1/actors/{actor}")["status"] == "running"  # b has its component: it runs it
    assert count_of(a.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 1
    nowhere = a.http().post("/v1/actors", {**start_body("x", wat.counter_actor()), "node": "nobody"})
    assert nowhere.status == 503 and "no node 'nobody'" in nowhere.json["message"]


def test_a_start_that_names_no_node_goes_to_the_least_loaded_node(nodes, nats_cluster):
    a = nodes("a", lease_ttl=10, placement="least-loaded")
    b = nodes("b", lease_ttl=10)
    nodes("c", lease_ttl=10)
    busy = [start_counter(b.http()) for _ in range(2)]  # b places nothing elsewhere: b runs two
    placed = [start_counter(a.http(), f"placed{i}") for i in range(4)]  # then a0 b2 c0 -> a, c, a, c
    leases = cluster_status(nats_cluster.urls)["leases"]
    assert [leases[actor] for actor in busy] == ["b", "b"]
    assert sorted(leases[actor] for actor in placed) == ["a", "a", "c", "c"]
    for actor in placed:  # each answers by id through the node it was started through
        assert count_of(a.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 1
    chosen = a.http().ok("POST", "/v1/actors", {**start_body("chosen", wat.counter_actor()), "node": "b"}, status=201)
    boss_body = start_body("boss", wat.echo_actor(), handlers=("message-server", "supervisor"))
    boss = b.http().ok("POST", "/v1/actors", boss_body, status=201)["id"]
    child_body = {**start_body("child", wat.echo_actor(), handlers=("message-server",)), "parent": boss}
    child = a.http().ok("POST", "/v1/actors", child_body, status=201)["id"]  # b is the most loaded now
    leases = cluster_status(nats_cluster.urls)["leases"]
    assert leases[chosen["id"]] == "b"  # a named node is kept
    assert leases[child] == "b"  # a child starts where its parent runs: its supervisor is there
    assert b.http().ok("GET", f"/v1/actors/{boss}")["children"] == [child]


def test_a_start_naming_a_malformed_node_is_refused(nodes):
    a = nodes("a", lease_ttl=10, placement="least-loaded")
    for name in ("b.rpc", "*", ">", "", 7, ["a"]):  # no subject of another's can be reached through the name
        refused = a.http().post("/v1/actors", {**start_body("x", wat.counter_actor()), "node": name})
        assert refused.status == 400 and "not a node name" in refused.json["message"], name


def test_a_subscription_through_a_node_that_does_not_run_the_actor_follows_it_across_a_failover(nodes):
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    actor = start_counter(a.http())
    for _ in range(3):
        ask(a.http(), actor)
    owned = a.http().ok("GET", f"/v1/actors/{actor}/events")["events"]
    stream = c.http().sse(f"/v1/actors/{actor}/subscribe?history=true")
    kind, ready = next(stream)
    assert kind == "ready" and ready == {"actor": actor, "from": 0, "head": owned[-1]["seq"]}
    seen = [next(stream) for _ in owned]
    assert seen == [("event", event) for event in owned]  # the owner's events, byte for byte as it shows them

    a.kill()  # the stream is read from the replicated record: it goes on while the actor moves
    assert answered_within(b.http(), actor) == 4
    after = []
    while not any(event["type"] == "wasm/call" for event in after):
        kind, event = next(stream)
        assert kind == "event"
        after.append(event)
    assert [event["seq"] for event in after] == list(range(len(owned), len(owned) + len(after)))
    assert {"wasm/instantiate"} <= {event["type"] for event in after}
    owner = {"b": b, "c": c}[cluster_status(nodes.nats.urls)["leases"][actor]]
    now = owner.http().ok("GET", f"/v1/actors/{actor}/events?from={len(owned)}")["events"]
    assert after == now[: len(after)]


def test_a_subscription_to_an_actor_no_node_knows_is_refused(nodes):
    b = nodes("b")
    unknown = b.http().request("GET", "/v1/actors/00000000-0000-4000-8000-000000000000/subscribe")
    assert unknown.status == 404


def test_the_api_answers_by_id_from_any_node(nodes):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    actor = start_counter(a.http())
    b.http().ok("POST", f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    state = b.http().ok("GET", f"/v1/actors/{actor}/state")["state"]
    assert base64.b64decode(state["base64"]) == (1).to_bytes(8, "little")
    here, there = (http.ok("GET", f"/v1/actors/{actor}/events?limit=100")["events"] for http in (a.http(), b.http()))
    assert there == here and [e["seq"] for e in there] == list(range(len(here)))
    assert b.http().ok("GET", f"/v1/actors/{actor}")["status"] == "running"
    assert b.http().ok("POST", f"/v1/actors/{actor}/verify")["ok"]
    b.http().ok("POST", f"/v1/actors/{actor}/stop")
    assert a.http().ok("GET", f"/v1/actors/{actor}")["status"] == "stopped"
    refused = b.http().post(f"/v1/actors/{actor}/send", {"message": {"text": "+"}})
    assert refused.status in (404, 409)  # its chain ended: no node lists it any more


def test_an_actor_sends_and_requests_to_an_actor_on_another_node(nodes):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    counter = start_counter(b.http())
    body = start_body("forwarder", wat.forwarder_actor(), handlers=("message-server",))
    forwarder = a.http().ok("POST", "/v1/actors", body, status=201)["id"]
    via = {"text": f"{counter}\u0000+"}
    for _ in range(3):  # sends from one actor to another keep their order, and each is delivered
        a.http().ok("POST", f"/v1/actors/{forwarder}/send", {"message": via})
    reply = a.http().ok("POST", f"/v1/actors/{forwarder}/request", {"message": via})
    assert reply["response"]["base64"] == base64.b64encode((4).to_bytes(8, "little")).decode()
    missing = a.http().ok("POST", f"/v1/actors/{forwarder}/request",
                          {"message": {"text": "00000000-0000-4000-8000-000000000000\u0000+"}})
    assert base64.b64decode(missing["response"]["base64"]).startswith(wat.ERR_MARKER + b"no actor")
    assert a.http().ok("POST", f"/v1/actors/{forwarder}/verify")["ok"]  # the answers from b replay from the record


def test_a_channel_between_actors_on_two_nodes_carries_messages_both_ways_and_closes(nodes):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    acceptor = b.http().ok("POST", "/v1/actors", start_body("acceptor", channel_component(b"hi"),
                                                             handlers=("message-server",)), status=201)["id"]
    opener_wat = wat.actor_wat(request=wat.open_channel_to(), send=wat.send_on_channel(),
                               channel_message=wat.store_msg(), channel_close=wat.set_state(b"closed"))
    opener = a.http().ok("POST", "/v1/actors", start_body("opener", opener_wat, handlers=("message-server",)),
                         status=201)["id"]

    def state(node: ServerProcess, actor: str) -> str | None:
        return node.http().ok("GET", f"/v1/actors/{actor}/state")["state"]["text"]

    reply = a.http().ok("POST", f"/v1/actors/{opener}/request", {"message": {"text": f"{acceptor}\u0000hello"}})
    channel = base64.b64decode(reply["response"]["base64"]).decode()
    assert uuid.UUID(channel) and state(b, acceptor) == "hello"  # b's actor accepted what a's actor opened
    a.http().ok("POST", f"/v1/actors/{opener}/send", {"message": {"text": f"{channel}\u0000ping"}})
    _wait_until(lambda: state(a, opener) == "ping", "the echo comes back across the nodes")
    assert state(b, acceptor) == "ping"
    a.http().ok("POST", f"/v1/actors/{opener}/send", {"message": {"text": f"{channel}\u0000bye"}})
    _wait_until(lambda: state(a, opener) == "closed", "the close by b's actor reaches a's")
    exports = [e["data"]["export"].rsplit(".", 1)[1] for e in b.http().ok(
        "GET", f"/v1/actors/{acceptor}/events?type=wasm/call")["events"]]
    assert exports == ["init", "handle-channel-open", "handle-channel-message", "handle-channel-message"]
    for node, actor in ((a, opener), (b, acceptor)):  # each side's chain replays on its own
        assert node.http().ok("POST", f"/v1/actors/{actor}/verify")["ok"]


def test_a_channel_is_closed_on_one_node_when_its_actor_on_the_other_stops_or_that_node_dies(nodes):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    accepting = start_body("acceptor", channel_component(), handlers=("message-server",))
    stopped, killed = (b.http().ok("POST", "/v1/actors", accepting, status=201)["id"] for _ in range(2))
    opener_wat = wat.actor_wat(request=wat.open_channel_to(), send=wat.send_on_channel(),
                               channel_close=wat.set_state(b"closed"))
    opening = start_body("opener", opener_wat, handlers=("message-server",))
    first, second = (a.http().ok("POST", "/v1/actors", opening, status=201)["id"] for _ in range(2))

    def open_to(opener: str, acceptor: str) -> str:
        reply = a.http().ok("POST", f"/v1/actors/{opener}/request", {"message": {"text": f"{acceptor}\u0000hi"}})
        return base64.b64decode(reply["response"]["base64"]).decode()

    def closed(opener: str) -> bool:
        return a.http().ok("GET", f"/v1/actors/{opener}/state")["state"]["text"] == "closed"

    open_to(first, stopped)
    channel = open_to(second, killed)
    b.http().ok("POST", f"/v1/actors/{stopped}/stop")  # b's end goes with its actor: a's actor hears the close
    _wait_until(lambda: closed(first), "the opener hears its channel closed")
    b.kill()  # nobody takes the next message: the channel is closed on a
    a.http().ok("POST", f"/v1/actors/{second}/send", {"message": {"text": f"{channel}\u0000late"}})
    _wait_until(lambda: closed(second), "a message its far node cannot take closes the channel")
    for opener in (first, second):
        assert a.http().ok("GET", f"/v1/actors/{opener}")["status"] == "running"
        assert a.http().ok("POST", f"/v1/actors/{opener}/verify")["ok"]


def test_sigkill_of_a_node_under_load_keeps_every_acknowledged_message(nodes, nats_cluster):
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    actors = [start_counter(node.http(), f"counter-{node.home.name}-{i}") for node in (a, b, c) for i in range(2)]
    entries = {"a": a.http(), "b": b.http(), "c": c.http()}
    load = Load(entries, actors).start()
    try:
        _wait_until(lambda: all(len(v) >= 3 for v in load.acked.values()), "every actor answered under load")
        owners = cluster_status(nats_cluster.urls)["leases"]
        on_a = [actor for actor in actors if owners.get(actor) == "a"]
        assert len(on_a) == 2
        del entries["a"]  # the load goes on through the other nodes
        a.kill()
        for actor in on_a:
            answered_within(b.http(), actor)
        marks = {actor: len(load.acked[actor]) for actor in actors}
        _wait_until(lambda: all(len(load.acked[x]) >= marks[x] + 3 for x in actors), "every actor answers again")
    finally:
        load.stop()
    assert load.refused > 0  # the load ran through the failover: asks to a's actors were refused meanwhile
    final = {actor: answered_within(c.http(), actor) for actor in actors}
    for actor, counts in load.acked.items():
        # A lost acknowledged increment would make the count go back and answer some value twice.
        assert len(counts) == len(set(counts)), (actor, sorted(counts))
        assert max(counts) < final[actor]
    owners = cluster_status(nats_cluster.urls)["leases"]
    assert set(owners[actor] for actor in on_a) <= {"b", "c"}
    assert_every_chain_holds_together(nats_cluster.urls, actors)
    for actor in on_a:  # the new owner re-executes the whole chain from its home, pulled from the stream
        owner = {"b": b, "c": c}[owners[actor]]
        assert owner.http().ok("POST", f"/v1/actors/{actor}/verify")["ok"]
    # And any machine can: a home of its own pulls the chains from the stream and verifies them.
    auditor = a.home.parent / "auditor"
    run = [*CLI, "--home", str(auditor)]
    pulled = subprocess.run([*run, "cluster", "pull", *actors, "--cluster", nats_cluster.urls, "--json"],
                            capture_output=True, text=True, timeout=120, cwd=ROOT, env=cli_env())
    assert pulled.returncode == 0, pulled.stderr
    assert all(json.loads(pulled.stdout)[actor]["events"] > 0 for actor in actors)
    for actor in actors:
        verified = subprocess.run([*run, "verify", actor, "--json"], capture_output=True, text=True, timeout=300,
                                  cwd=ROOT, env=cli_env())
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_sigkill_of_a_nats_server_keeps_the_service_going(nodes, nats_cluster):
    first, second, third = nats_cluster.servers
    # Each node knows two servers of the cluster, so losing one leaves each a way in.
    a = nodes("a", servers=f"{second.url},{first.url}")
    b = nodes("b", servers=f"{third.url},{first.url}")
    actor = start_counter(a.http())
    assert count_of(b.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 1
    first.kill()
    counts = [answered_within(http, actor) for http in (a.http(), b.http(), a.http())]
    assert counts == [2, 3, 4]
    # a keeps the lease unless its reconnection to another server took longer than the lease (a loaded machine):
    # then b took the actor over, which is failover working, not a fault. Either way one node holds it.
    assert cluster_status(f"{second.url},{third.url}")["leases"][actor] in ("a", "b")
    assert_every_chain_holds_together(f"{second.url},{third.url}", [actor])


def test_a_node_cut_off_stops_running_its_actors_and_no_seq_is_written_twice(nodes, nats_cluster):
    a, b = nodes("a"), nodes("b")
    actor = start_counter(a.http())
    assert count_of(a.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 1
    a.process.send_signal(signal.SIGSTOP)  # cut off: no heartbeat, no lease refresh, nothing from a
    try:
        assert answered_within(b.http(), actor) == 2
        assert cluster_status(nats_cluster.urls)["leases"][actor] == "b"
    finally:
        a.process.send_signal(signal.SIGCONT)
    # Back, a still holds the actor in memory with its old head until it notices: whatever it is asked, the fence
    # keeps it from extending the chain, and it stops running the actor.
    stale = ask(a.http(), actor, timeout=10)
    _wait_until(lambda: a.http().ok("GET", "/v1/server")["running"] == 0, "the cut-off node stops its actor")
    after = answered_within(b.http(), actor)
    if stale[0] == 200:  # answered: by the new owner (forwarded), never from a's stale state
        assert count_of(stale[1]) == 3 and after == 4
    else:
        assert after == 3
    assert answered_within(a.http(), actor) == after + 1  # a forwards to the owner now
    assert_every_chain_holds_together(nats_cluster.urls, [actor])


def test_a_supervision_tree_fails_over_whole_and_its_parent_restarts_a_failed_child(nodes, nats_cluster):
    a, b, c = nodes("a"), nodes("b"), nodes("c")
    boss_body = start_body("boss", wat.echo_actor(), handlers=("message-server", "supervisor"),
                           extra="[supervision]\nintensity = 5\nperiod_s = 60")
    boss = a.http().ok("POST", "/v1/actors", boss_body, status=201)["id"]
    worker_body = {**start_body("worker", wat.faulty_actor(), handlers=("message-server",)), "parent": boss}
    workers = [a.http().ok("POST", "/v1/actors", worker_body, status=201)["id"] for _ in range(3)]
    a.kill()
    _wait_until(lambda: _echoes(b.http(), workers[0], "back"), "the worker answers from another node")
    leases = cluster_status(nats_cluster.urls)["leases"]
    assert len({leases[x] for x in [boss, *workers]}) == 1  # the whole tree on one node
    owner = {"b": b, "c": c}[leases[boss]]
    assert sorted(owner.http().ok("GET", f"/v1/actors/{boss}")["children"]) == sorted(workers)
    trapped = b.http().post(f"/v1/actors/{workers[0]}/request", {"message": {"text": "trap"}})
    assert trapped.status == 422
    _wait_until(lambda: _echoes(c.http(), workers[0], "restarted"), "the parent restarts its failed child")
    events = owner.http().ok("GET", f"/v1/actors/{workers[0]}/events?limit=1000")["events"]
    reasons = [e["data"]["reason"] for e in events if e["type"] == "wasm/instantiate"]
    assert reasons == ["start", "resume", "restart"]


def _echoes(http: Http, actor: str, text: str) -> bool:
    reply = http.post(f"/v1/actors/{actor}/request", {"message": {"text": text}})
    return reply.status == 200 and reply.json["response"]["text"] == text


def test_a_clean_stop_of_a_node_hands_its_actors_over(nodes, nats_cluster):
    a, b = nodes("a", lease_ttl=120), nodes("b", lease_ttl=120)  # left to expire, the lease would outlast the test
    actor = start_counter(a.http())
    assert count_of(b.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 1
    assert a.stop() == 0
    assert cluster_status(nats_cluster.urls)["leases"].get(actor) != "a"  # given back, not left to expire
    assert answered_within(b.http(), actor) == 2
    types = [e["type"] for e in b.http().ok("GET", f"/v1/actors/{actor}/events?limit=100")["events"]]
    assert "actor/stop" not in types and types.count("wasm/instantiate") == 2


def test_a_node_restarted_under_its_name_takes_its_actors_back_before_the_lease_ends(nodes, nats_cluster):
    a = nodes("a", lease_ttl=120)  # nobody else could take the actor before the test ends
    actor = start_counter(a.http())
    assert count_of(a.http().ok("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})) == 1
    a.kill()
    a.start()
    assert answered_within(a.http(), actor) == 2
    assert cluster_status(nats_cluster.urls)["leases"][actor] == "a"
    assert_every_chain_holds_together(nats_cluster.urls, [actor])


def test_cluster_status_shows_nodes_leases_and_replication(nodes, nats_cluster):
    a, b = nodes("a", lease_ttl=10), nodes("b", lease_ttl=10)
    first, second = start_counter(a.http()), start_counter(b.http())
    _wait_until(lambda: set(cluster_status(nats_cluster.urls)["nodes"]) == {"a", "b"}, "both nodes' heartbeats")
    report = cluster_status(nats_cluster.urls)
    assert report["leases"] == {first: "a", second: "b"}
    assert report["nodes"]["a"]["leases"] == 1 and report["nodes"]["b"]["leases"] == 1
    assert report["stream"]["replicas"] == 3
    _wait_until(lambda: len(cluster_status(nats_cluster.urls)["stream"]["peers"]) == 3,
                "the stream's leader and two replicas are listed")  # a replica is listed once it reports in
    assert report["unowned"] == []
    assert a.http().ok("POST", f"/v1/actors/{first}/stop") is not None
    _wait_until(lambda: first not in cluster_status(nats_cluster.urls)["leases"], "a stopped actor's lease is freed")
    assert cluster_status(nats_cluster.urls)["actors"] == 1


def test_a_forwarded_request_for_another_path_or_actor_is_refused(nodes, nats_cluster):
    import asyncio

    import cbor2
    import nats

    a = nodes("a")
    actor = start_counter(a.http())
    other = "00000000-0000-4000-8000-000000000000"
    asks = [
        {"op": "http", "actor": uuid.UUID(actor).bytes, "body": b'{"method":"POST","path":"/v1/actors"}\n{}'},
        {"op": "http", "actor": uuid.UUID(actor).bytes,
         "body": f'{{"method":"POST","path":"/v1/actors/{other}/stop"}}\n'.encode()},
        {"op": "http", "actor": uuid.UUID(actor).bytes,
         "body": f'{{"method":"DELETE","path":"/v1/actors/{actor}"}}\n'.encode()},
        {"op": "http", "actor": uuid.UUID(actor).bytes, "body": b"not json\n"},
    ]

    async def ask_all() -> list[int]:
        nc = await nats.connect(nats_cluster.urls.split(","))
        try:
            statuses = [cbor2.loads((await nc.request("theater.node.a.rpc", cbor2.dumps(m), timeout=10)).data)["status"]
                        for m in asks]
            garbage = cbor2.loads((await nc.request("theater.node.a.rpc", b"\xff", timeout=10)).data)["status"]
            return [*statuses, garbage]
        finally:
            await nc.close()

    assert asyncio.run(ask_all()) == [400, 400, 400, 400, 400]
    assert a.http().ok("GET", f"/v1/actors/{actor}")["status"] == "running"


def test_a_server_that_cannot_reach_its_cluster_says_so(tmp_path):
    from tests.cluster._nats import free_port

    url = f"nats://127.0.0.1:{free_port()}"
    done = subprocess.run([*CLI, "--home", str(tmp_path / "home"), "server", "--address", "127.0.0.1:0",
                           "--cluster", url, "--node", "a"], capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env=cli_env())
    assert done.returncode == 1
    assert f"ClusterError: cannot join the cluster at {url}: no server answered" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_node_option_without_a_cluster_is_refused(tmp_path):
    node = ServerProcess(tmp_path / "home", args=("--node", "a"))
    done = subprocess.run([*CLI, "--home", str(node.home), "server", "--address", "127.0.0.1:0", "--node", "a"],
                          capture_output=True, text=True, timeout=WAIT, cwd=ROOT, env=cli_env())
    assert done.returncode != 0 and "--node needs --cluster" in done.stderr


def _wait_until(condition: Any, what: str, wait: float = FAILOVER_WAIT) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)  # watching other processes: polled, bounded by the deadline
    raise AssertionError(f"not within {wait} s: {what}")
