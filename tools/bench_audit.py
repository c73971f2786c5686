"""The Merkle log's cost and its proofs' speed, each figure next to a floor measured in the same run.

    .venv/bin/python tools/bench_audit.py                    # 200,000 appends, a 1,000,000-leaf log
    .venv/bin/python tools/bench_audit.py --leaves 200000    # a smaller log for a quick look

1. Group-commit appends (8 threads x 100 chains, durable) with the Merkle log next to the same appends with the
   writer's Merkle step taken out (in this process, alternating runs, best of each): target ratio >= 0.95.
2. Inclusion proof of random leaves of the log: produce (from stored nodes, one read snapshot each) and verify
   (RFC 9162 2.1.3.2), next to one event read by seq as the floor: target under 1 ms each.
3. Consistency proof between random sizes, produce and verify.
4. Catching up the tree of a home written before the log (the whole feed in one commit), next to reading the feed.
5. A witness (``theater.witness``) verifying the echo benchmark's record: the echo load (one echo actor, 32
   concurrent callers, every event durable, as ``tools/bench.py``) appends at some rate; then a real ``theater
   server`` serves that home and a witness copies, checks (hashes, links, the signed root) and re-executes every
   event of its newest checkpoint, and co-signs it: witness events/s next to the append rate, target ratio >= 1.
   ``--witness-only`` runs this part alone.
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lmdb  # noqa: E402

import store._commit as commit  # noqa: E402
from store import EMPTY, Head, Store  # noqa: E402
from store.merkle import SIZE_KEY, TreeView, leaf_hash, verify_consistency, verify_inclusion  # noqa: E402

sys.path.insert(0, str(ROOT / "tools"))
from bench import echo_callers, group_commit_appends, line  # noqa: E402


def appends(tmp: Path, n: int, rounds: int) -> None:
    chains = [uuid.uuid4() for _ in range(100)]
    real = commit.extend_merkle
    with_log, without = [], []
    for r in range(rounds):
        for enabled in (True, False):
            commit.extend_merkle = real if enabled else (lambda *args: None)  # type: ignore[assignment]
            path = tmp / f"gc-{r}-{enabled}"
            rate = group_commit_appends(path, n, 8, chains)
            (with_log if enabled else without).append(rate)
            shutil.rmtree(path)
    commit.extend_merkle = real
    line("durable appends/s, group commit, with the Merkle log", max(with_log), "ev/s", max(without),
         "the same without it", 0.95)


def build(path: Path, leaves: int) -> Store:
    store = Store(path, durability="buffered")
    actors = [uuid.uuid4() for _ in range(1000)]
    heads = {a: EMPTY for a in actors}
    pending = []
    for i in range(leaves):
        actor = actors[i % len(actors)]
        p = store.log.append_async(actor, "bench", {"i": i}, expected=heads[actor], timestamp_ms=1)
        heads[actor] = Head(p.event.seq, p.event.hash)
        pending.append(p)
        if len(pending) >= 4096:
            pending[-1].wait()
            pending.clear()
    for p in pending:
        p.wait()
    return store


def proofs(store: Store, leaves: int, probes: int) -> None:
    rng = random.Random(7)
    indices = [rng.randrange(leaves) for _ in range(probes)]
    actor, head = store.log.actors()[0]
    start = time.perf_counter()
    for i in range(probes):
        store.log.at(actor, i % (head.seq + 1))
    floor = (time.perf_counter() - start) / probes * 1e6
    made = []
    start = time.perf_counter()
    for index in indices:
        with store.env.read() as txn:
            tree = TreeView(txn, store.env.dbs)
            made.append((index, tree.leaf(index), tree.inclusion(index, leaves)))
    produce = (time.perf_counter() - start) / probes * 1e6
    with store.env.read() as txn:
        root = TreeView(txn, store.env.dbs).root(leaves)
    start = time.perf_counter()
    for index, data, path in made:
        assert verify_inclusion(leaf_hash(data), index, leaves, path, root)
    verify = (time.perf_counter() - start) / probes * 1e6
    line(f"inclusion proof, produce, {leaves:,}-leaf log (target < 1,000 us)", produce, "us", floor,
         "one event read by seq")
    line(f"inclusion proof, verify, {leaves:,}-leaf log (target < 1,000 us)", verify, "us", floor,
         "one event read by seq")
    pairs = sorted((rng.randrange(1, leaves), rng.randrange(1, leaves)) for _ in range(probes))
    pairs = [(min(a, b), max(a, b)) for a, b in pairs]
    start = time.perf_counter()
    with store.env.read() as txn:
        tree = TreeView(txn, store.env.dbs)
        cons = [(m, n, tree.consistency(m, n), tree.root(m), tree.root(n)) for m, n in pairs]
    produce = (time.perf_counter() - start) / probes * 1e6
    start = time.perf_counter()
    for m, n, path, old, new in cons:
        assert verify_consistency(m, n, path, old, new)
    verify = (time.perf_counter() - start) / probes * 1e6
    line("consistency proof + both roots, produce", produce, "us", floor, "one event read by seq")
    line("consistency proof, verify", verify, "us", floor, "one event read by seq")


def catch_up(store: Store, leaves: int) -> None:
    path = store.path
    start = time.perf_counter()
    count = len(store.log.feed())
    read_feed = time.perf_counter() - start
    store.close()
    env = lmdb.open(str(path), max_dbs=16, map_size=1 << 34)
    with env.begin(write=True) as txn:
        txn.drop(env.open_db(b"merkle", txn=txn), delete=True)
        txn.delete(SIZE_KEY, db=env.open_db(b"meta", txn=txn))
    env.close()
    reopened = Store(path, durability="buffered")
    actor = uuid.uuid4()
    start = time.perf_counter()
    reopened.log.append(actor, "bench", {}, expected=EMPTY)  # the first commit builds the tree from the feed
    took = time.perf_counter() - start
    with reopened.env.read() as txn:
        assert TreeView(txn, reopened.env.dbs).size == count + 1
    reopened.close()
    line(f"tree of an old {leaves:,}-event home built by its first commit", took * 1e3, "ms", read_feed * 1e3,
         "reading the feed (FeedEntry list)")


def witness(tmp: Path, requests: int) -> None:
    import subprocess

    from tests.components import wat
    from theater.runtime import Theater
    from theater.witness import Witness, load_cosigner

    (tmp / "echo.wat").write_text(wat.echo_actor())
    (tmp / "echo.toml").write_text('name = "echo"\ncomponent = "echo.wat"\n')
    home = tmp / "echo-home"
    with Theater(home) as theater:
        actor = theater.start(tmp / "echo.toml")
        before = theater.store.log.feed_end()
        start = time.perf_counter()
        echo_callers(theater, actor, requests, 32)
        took = time.perf_counter() - start
        appended = theater.store.log.feed_end() - before
    append_rate = appended / took
    cosigner = load_cosigner(tmp / "w" / "key", None)
    cli = [sys.executable, "-c", "from theater.cli import main; main()"]
    server = subprocess.Popen([*cli, "--home", str(home), "server", "--address", "127.0.0.1:0", "--no-resume",
                               "--witness-key", cosigner.key.text], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert server.stdout is not None
        url = "http://" + server.stdout.readline().split("http://", 1)[1].split()[0]
        witness_store = Store(tmp / "w" / "store")
        found = Witness(url, witness_store, cosigner, tmp / "w" / "evidence")
        found.remote.json("POST", "/v1/audit/checkpoints", body={})
        start = time.perf_counter()
        done = found.round()
        took = time.perf_counter() - start
        witness_store.close()
    finally:
        server.terminate()
        server.wait(60)
    assert done.number is not None and done.events >= appended
    line(f"witness verified events/s ({done.events:,} events, {done.calls:,} calls)", done.events / took, "ev/s",
         append_rate, "echo load's append rate", 1.0)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--leaves", type=int, default=1_000_000)
    parser.add_argument("--probes", type=int, default=2_000)
    parser.add_argument("--requests", type=int, default=20_000, help="echo requests for the witness figure")
    parser.add_argument("--witness-only", action="store_true", help="only the witness figure")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="theater-bench-audit-"))
    try:
        print("== audit ==")
        witness(tmp, args.requests)
        if args.witness_only:
            return
        appends(tmp, args.appends, args.rounds)
        store = build(tmp / "big", args.leaves)
        proofs(store, args.leaves, args.probes)
        catch_up(store, args.leaves)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
