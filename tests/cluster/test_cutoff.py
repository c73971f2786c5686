"""A node really cut off from the cluster: a TCP proxy (``tests.cluster._proxy``) stands between node ``a`` and every
NATS server, and the test severs only a's connections while a's process keeps running and answering HTTP.

The cut-off node stops running its actors and refuses what it is asked about them (it never answers from a lease
it can no longer refresh), another node takes them over from the replicated chains, every acknowledged message is
in the chains, and when the link comes back a rejoins without writing anything stale: the fence holds, and the
new owner is never fenced out by it."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cluster._nats import NatsCluster
from tests.cluster._proxy import Proxies
from tests.cluster.test_cluster import (
    FAILOVER_WAIT,
    Load,
    _wait_until,
    answered_within,
    ask,
    assert_every_chain_holds_together,
    cluster_status,
    start_counter,
)
from tests.components import wat
from tests.server._harness import CLI, ROOT, cli_env, start_body

# The proxy and (in the last test) a NATS client run in this process. A socket of theirs is now and then left to the
# garbage collector after a cut (nats-py replaces a failed reconnection attempt's StreamWriter without closing it; a
# proxy socket leaks on rare interleavings not tracked down yet): reported as unraisable ResourceWarnings, not
# failures of what these tests check.
pytestmark = [pytest.mark.slow, pytest.mark.cluster,
              pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")]


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """The servers tell clients no other server's address: a node given the proxies' URLs reaches the cluster only
    through them (a client otherwise adds the addresses it learns to its list, and would reconnect around a cut)."""
    cluster = NatsCluster(tmp_path / "nats", advertise=False).start()
    yield cluster
    cluster.close()


@pytest.fixture
def proxies(nats_cluster: NatsCluster) -> Iterator[Proxies]:
    opened = Proxies([server.port for server in nats_cluster.servers]).start()
    yield opened
    opened.close()


def local_chain(home: Path, actor: str) -> list[tuple[int, str]]:
    """(seq, hash) of each event of ``actor`` in the home of a stopped node, read with the CLI."""
    done = subprocess.run([*CLI, "--home", str(home), "events", actor, "--json", "--limit", "100000"],
                          capture_output=True, text=True, timeout=120, cwd=ROOT, env=cli_env())
    assert done.returncode == 0, done.stderr
    return [(e["seq"], e["hash"]) for e in json.loads(done.stdout)]


def test_a_node_cut_off_by_the_network_stops_its_actors_and_rejoins_without_a_stale_write(nodes, nats_cluster,
                                                                                         proxies):
    a, b = nodes("a", servers=proxies.urls), nodes("b")

    def owners() -> dict[str, str]:
        return cluster_status(nats_cluster.urls)["leases"]

    actors = [start_counter(a.http(), f"on-a-{i}") for i in range(2)] + [start_counter(b.http(), "on-b")]
    load = Load({"a": a.http(), "b": b.http()}, actors).start()
    try:
        _wait_until(lambda: all(len(v) >= 3 for v in load.acked.values()), "every actor answered under load")
        proxies.cut()
        # a runs on, cut off: it stops running its actors within the lease's TTL, and refuses what it is asked
        # about them rather than answer from its old lease.
        _wait_until(lambda: a.http().ok("GET", "/v1/server")["running"] == 0, "the cut-off node stops its actors")
        for actor in actors:
            status, body = ask(a.http(), actor, timeout=10)
            assert status == 503, (status, body)
        for actor in actors[:2]:  # b takes a's actors over from the replicated chains
            answered_within(b.http(), actor)
        _wait_until(lambda: all(owners().get(x) == "b" for x in actors), "b holds every actor")
        marks = {actor: len(load.acked[actor]) for actor in actors}
        _wait_until(lambda: all(len(load.acked[x]) >= marks[x] + 3 for x in actors), "b answers under load")
        accepted = proxies.accepted()
        proxies.restore()
        _wait_until(lambda: proxies.accepted() > accepted and "a" in cluster_status(nats_cluster.urls)["nodes"],
                    "the cut-off node rejoins")
        for actor in actors:  # a forwards to the owner now
            answered_within(a.http(), actor)
        marks = {actor: len(load.acked[actor]) for actor in actors}
        _wait_until(lambda: all(len(load.acked[x]) >= marks[x] + 3 for x in actors), "the load goes on through a")
    finally:
        load.stop()
    final = {actor: answered_within(b.http(), actor) for actor in actors}
    _wait_until(lambda: set(actors) <= set(owners()), "every actor has an owner")
    for actor, counts in load.acked.items():
        # A lost acknowledged increment would make the count go back and answer some value twice.
        assert len(counts) == len(set(counts)), (actor, sorted(counts))
        assert max(counts) < final[actor]
    assert_every_chain_holds_together(nats_cluster.urls, actors)
    owner_of = owners()
    for actor in actors:
        owner = {"a": a, "b": b}[owner_of[actor]]  # b, unless a loaded machine moved a lease since (a failover)
        events = owner.http().ok("GET", f"/v1/actors/{actor}/events?type=wasm/instantiate&limit=100")["events"]
        reasons = [e["data"]["reason"] for e in events]
        assert reasons[0] == "start" and (actor not in actors[:2] or "resume" in reasons), (actor, reasons)
        assert owner.http().ok("POST", f"/v1/actors/{actor}/verify")["ok"]
    # No node was fenced out: nothing stale of a's reached a chain after b took it over. (Unless a loaded machine
    # moved a lease back to a since, a failover that may refuse an append of b's in flight: then this says nothing.)
    if set(owner_of[actor] for actor in actors) == {"b"}:
        for node in (a, b):
            assert "another node extended the chain" not in node.stderr()
    # a's home holds nothing the replicated record does not: its chains and b's agree on every seq both hold.
    assert a.stop() == 0 and b.stop() == 0
    for actor in actors[:2]:
        mine, theirs = local_chain(a.home, actor), local_chain(b.home, actor)
        common = min(len(mine), len(theirs))
        assert common > 0 and mine[:common] == theirs[:common]


def test_a_cut_off_node_refuses_a_start_it_cannot_replicate(nodes, proxies):
    a = nodes("a", servers=proxies.urls)
    nodes("b")
    proxies.cut()
    refused = a.http().post("/v1/actors", start_body("orphan", wat.counter_actor()))
    assert refused.status == 503, (refused.status, refused.body)
    assert a.http().ok("GET", "/v1/server")["running"] == 0
    proxies.restore()
    _wait_until(lambda: a.http().post("/v1/actors", start_body("later", wat.counter_actor())).status == 201,
                "a starts actors again once it is back", FAILOVER_WAIT)


def test_an_append_refused_while_cut_off_is_not_sent_after_the_reconnection(tmp_path, nats_cluster, proxies):
    """The writer is told its append failed; it must not land in the stream later. (The NATS client used to buffer a
    publish made while it reconnects and send it once reconnected: an append its writer had given up, written
    after the fact, when another node may own the chain.)"""
    import uuid

    from store import EMPTY, Head
    from store.replicated import ReplicatedStore, ReplicationError
    from theater.cluster.chains import check_chain, read_chain
    from theater.cluster.config import ClusterConfig
    from theater.cluster.link import Link
    from theater.cluster.replicator import JetStreamReplicator

    cut_off = Link(ClusterConfig.parse(proxies.urls, "w")).open()
    direct = Link(ClusterConfig.parse(nats_cluster.urls, "reader")).open()
    replicator = JetStreamReplicator(cut_off)
    store = ReplicatedStore(tmp_path / "w", replicator=replicator)
    replicator.store = store
    try:
        actor, head = uuid.uuid4(), EMPTY

        def append() -> Head:
            pending = store.log.prepare(actor, "test/event", {"n": head.seq + 1}, expected=head)
            store.submit([pending])
            pending.wait(30)
            return Head(pending.event.seq, pending.event.hash)

        head = append()
        proxies.cut()
        _wait_until(lambda: not cut_off.nc.is_connected, "the client sees its connection gone")
        with pytest.raises(ReplicationError, match="not stored in time"):
            append()
        accepted = proxies.accepted()
        proxies.restore()
        _wait_until(lambda: proxies.accepted() > accepted and cut_off.nc.is_connected, "the client reconnects")
        cut_off.call(cut_off.nc.flush(10))  # whatever it held back is sent by now
        assert check_chain(direct.call(read_chain(direct, actor)), actor) == 1  # the refused append is not there
        assert store.log.head(actor) == head
    finally:
        store.close()
        cut_off.close()
        direct.close()
