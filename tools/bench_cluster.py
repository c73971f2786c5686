"""Benchmarks of a Theater cluster on NATS JetStream: every figure is printed next to a floor measured in the same
run, on a three-server NATS cluster and real ``theater server --cluster`` processes on 127.0.0.1.

    .venv/bin/python tools/bench_cluster.py                 # 2,000 requests each way
    .venv/bin/python tools/bench_cluster.py --requests 300  # a quick look

* cross-node request/s (a counter on node a, asked through node b) next to same-node request/s (asked through a),
  both from 8 client threads;
* appends/s to a replicated store (replication 3, 8 chains from 8 threads, 4 events an operation) next to the
  same workload on a local home;
* actor starts/s through node a placed by least-loaded placement (two of three go to another node) next to starts
  on node a itself (``"node": "a"``), one after the other;
* time from the SIGKILL of the node running an actor to the actor answering through another node (target < 5 s
  with the default 3 s lease TTL).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store import EMPTY, Head, Store  # noqa: E402
from store.replicated import ReplicatedStore  # noqa: E402
from tests.cluster._nats import NatsCluster  # noqa: E402
from tests.components import wat  # noqa: E402
from tests.server._harness import Http, ServerProcess, start_body  # noqa: E402
from theater.cluster.config import ClusterConfig  # noqa: E402
from theater.cluster.link import Link  # noqa: E402
from theater.cluster.replicator import JetStreamReplicator  # noqa: E402

THREADS = 8


def requests_per_s(http: Http, actor: str, n: int) -> float:
    def one(_: int) -> None:
        reply = http.request("POST", f"/v1/actors/{actor}/request", {"message": {"text": "+"}})
        assert reply.status == 200, reply.body

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one, range(n)))
    return n / (time.perf_counter() - started)


def starts_per_s(http: Http, body: dict[str, Any], n: int) -> float:
    """Actor starts one after the other (each placement sees the last one's lease)."""
    started = time.perf_counter()
    for _ in range(n):
        http.ok("POST", "/v1/actors", body, status=201)
    return n / (time.perf_counter() - started)


def appends_per_s(store: Store, ops: int) -> float:
    """8 chains from 8 threads, each operation 4 events submitted together (as the record tape does)."""
    def chain(_: int) -> None:
        actor, head = uuid.uuid4(), EMPTY
        for _ in range(ops // THREADS):
            writes = []
            for i in range(4):
                pending = store.log.prepare(actor, "bench/event", {"i": i, "payload": b"x" * 64}, expected=head)
                head = Head(pending.event.seq, pending.event.hash)
                writes.append(pending)
            store.submit(writes)
            writes[-1].wait(30)

    started = time.perf_counter()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(chain, range(THREADS)))
    return ops // THREADS * THREADS * 4 / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--ops", type=int, default=2000, help="operations of 4 events for the append figure")
    parser.add_argument("--lease-ttl", type=float, default=3.0)
    parser.add_argument("--starts", type=int, default=60, help="actor starts for the placement figure")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    nats = NatsCluster(root / "nats").start()
    nodes: list[ServerProcess] = []
    try:
        for name in ("a", "b", "c"):
            nodes.append(ServerProcess(root / name, args=("--cluster", nats.urls, "--node", name,
                                                          "--lease-ttl", str(args.lease_ttl))).start())
        a, b, c = (n.http() for n in nodes)
        body = start_body("counter", wat.counter_actor())
        actor = a.ok("POST", "/v1/actors", {**body, "node": "a"}, status=201)["id"]
        requests_per_s(b, actor, 50)  # warm up both paths
        same = requests_per_s(a, actor, args.requests)
        cross = requests_per_s(b, actor, args.requests)
        print(f"request/s, same node:   {same:10.0f}")
        print(f"request/s, cross node:  {cross:10.0f}   ({cross / same:.2f} of same-node)")

        link = Link(ClusterConfig.parse(nats.urls, "bench")).open()
        replicator = JetStreamReplicator(link)
        replicated = ReplicatedStore(root / "replicated", replicator=replicator)
        replicator.store = replicated
        local = Store(root / "local")
        try:
            floor = appends_per_s(local, args.ops)
            rate = appends_per_s(replicated, args.ops)
        finally:
            replicated.close()
            local.close()
            link.close()
        print(f"appends/s, local home:  {floor:10.0f}")
        print(f"appends/s, replicas 3:  {rate:10.0f}   ({rate / floor:.2f} of the local home)")

        for name in ("b", "c"):  # each node compiles the component once: not part of the figure
            a.ok("POST", "/v1/actors", {**body, "node": name}, status=201)
        here = starts_per_s(a, {**body, "node": "a"}, args.starts)
        placed = starts_per_s(a, body, args.starts)
        print(f"starts/s, on the node asked:   {here:8.1f}")
        print(f"starts/s, least-loaded placed: {placed:8.1f}   ({placed / here:.2f} of the node asked; "
              "2 of 3 started on another node)")

        victim = b.ok("POST", "/v1/actors", {**start_body("victim", wat.counter_actor()), "node": "b"},
                      status=201)["id"]
        assert b.ok("POST", f"/v1/actors/{victim}/request", {"message": {"text": "+"}})
        nodes[1].process.send_signal(signal.SIGKILL)  # type: ignore[union-attr]
        killed = time.perf_counter()
        while True:
            reply = c.request("POST", f"/v1/actors/{victim}/request", {"message": {"text": "+"}}, timeout=10)
            if reply.status == 200:
                break
            threading.Event().wait(0.02)
        took = time.perf_counter() - killed
        print(f"SIGKILL to answering elsewhere: {took:6.2f} s   (lease TTL {args.lease_ttl:g} s; target < 5 s)")
    finally:
        for node in nodes:
            if node.alive():
                node.kill()
        nats.close()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
