"""Theater's benchmarks: every figure is printed next to a floor measured in the same run.

    .venv/bin/python tools/bench.py                 # everything, with the 1,000,000-event chain
    .venv/bin/python tools/bench.py --events 200000 # a smaller chain for a quick look
    .venv/bin/python tools/bench.py --only store    # store | runtime | replay

Ratios hold on a noisy machine; absolute times do not. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import blake3
import cbor2
import lmdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from store import EMPTY, Head, Store, verify_chain  # noqa: E402
from store.codec import EVENT_DOMAIN  # noqa: E402


def line(name: str, value: float, unit: str, floor: float | None = None, floor_name: str = "", target: float | None = None) -> None:
    text = f"{name:<58} {value:>12,.1f} {unit}"
    if floor is not None:
        ratio = value / floor if floor else float("nan")
        text += f"   floor ({floor_name}) {floor:,.1f} {unit}   ratio {ratio:.2f}"
        if target is not None:
            text += f"   target >= {target}  {'MET' if ratio >= target else 'NOT MET'}"
    print(text, flush=True)


def event_data(i: int) -> dict:
    return {"params": [b"message %d" % i], "result": {"ok": None}}


# Store ---------------------------------------------------------------------------------------------------------


def bare_append_loop(path: Path, n: int, chains: list[uuid.UUID]) -> float:
    env = lmdb.open(str(path), map_size=1 << 34, max_dbs=2)
    db = env.open_db(b"events")
    start = time.perf_counter()
    parents: dict[uuid.UUID, bytes | None] = {c: None for c in chains}
    seqs = {c: 0 for c in chains}
    done = 0
    while done < n:
        with env.begin(write=True) as txn:
            for _ in range(min(10_000, n - done)):
                actor = chains[done % len(chains)]
                body = cbor2.dumps([1, actor.bytes, seqs[actor], parents[actor], 0, "theater:simple/timing/now",
                                    event_data(done)], canonical=True)
                digest = blake3.blake3(EVENT_DOMAIN + body).digest()
                txn.put(actor.bytes + seqs[actor].to_bytes(8, "big"), digest + body, db=db)
                parents[actor] = digest
                seqs[actor] += 1
                done += 1
    env.sync(True)
    elapsed = time.perf_counter() - start
    env.close()
    return n / elapsed


def group_commit_appends(path: Path, n: int, threads: int, chains: list[uuid.UUID], window: int = 512) -> float:
    store = Store(path)
    per_thread = [chains[i::threads] for i in range(threads)]
    count = n // threads

    def work(mine: list[uuid.UUID]) -> None:
        heads = {c: EMPTY for c in mine}
        inflight = []
        for i in range(count):
            actor = mine[i % len(mine)]
            pending = store.log.append_async(actor, "theater:simple/timing/now", event_data(i), expected=heads[actor])
            heads[actor] = Head(pending.event.seq, pending.event.hash)
            inflight.append(pending)
            if len(inflight) >= window:
                inflight[-1].wait()
                inflight.clear()
        for p in inflight:
            p.wait()

    start = time.perf_counter()
    workers = [threading.Thread(target=work, args=(mine,)) for mine in per_thread]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.close()  # inside the timing: closing merges what is left of the hash index's tail
    elapsed = time.perf_counter() - start
    return count * threads / elapsed


def build_chain(path: Path, n: int) -> tuple[Store, uuid.UUID]:
    store = Store(path, durability="buffered")
    actor = uuid.uuid4()
    head = EMPTY
    last = None
    for i in range(n):
        last = store.log.append_async(actor, "theater:simple/timing/now", event_data(i), expected=head)
        head = Head(last.event.seq, last.event.hash)
        if i % 50_000 == 49_999:
            last.wait()
    if last:
        last.wait()
    return store, actor


def build_actor_chain(path: Path, n: int) -> tuple[Store, uuid.UUID]:
    """A chain shaped like an actor's: wasm/call, a host call, wasm/result with a new state blob, repeated."""
    store = Store(path, durability="buffered")
    actor = uuid.uuid4()
    head = EMPTY
    last = None
    state_hash = None
    for i in range(n):
        kind = i % 3
        if kind == 0:
            data = {"export": "theater:simple/message-server-client.handle-send", "state": state_hash,
                    "params": [b"tick"]}
            type_ = "wasm/call"
        elif kind == 1:
            data, type_ = {"params": [], "result": 1_700_000_000_000 + i}, "theater:simple/timing/now"
        else:
            state_hash = store.blobs.put_async(i.to_bytes(8, "little")).value
            data = {"export": "theater:simple/message-server-client.handle-send", "state": state_hash,
                    "output": [], "fuel": 300}
            type_ = "wasm/result"
        last = store.log.append_async(actor, type_, data, expected=head)
        head = Head(last.event.seq, last.event.hash)
        if i % 50_000 == 49_999:
            last.wait()
    if last:
        last.wait()
    return store, actor


def bench_verify(store: Store, actor: uuid.UUID, events: int, shape: str) -> None:
    """``verify_chain`` at each setting. Without blob checks it measures pure hash-chain speed, and says so; the
    default checks every blob the chain names once (a host-call chain names none, an actor-shaped one a state
    per result)."""
    floor = bare_hash_loop(store, actor)
    cpus = min(os.cpu_count() or 1, 4)
    for indexes, blobs in ((False, False), (True, True)):
        for workers in sorted({1, cpus}):
            start = time.perf_counter()
            report = verify_chain(store, actor, indexes=indexes, workers=workers, blobs=blobs)
            rate = report.events / (time.perf_counter() - start)
            assert report.ok, report.problem
            what = "chain + hash index + named blobs" if indexes else "hashes, links, seqs; no blob checks"
            what += f", {workers} process" + ("" if workers == 1 else "es (the default)")
            line(f"verify events/s, {events:,}-event {shape} chain ({what})", rate, "ev/s", floor,
                 "bare hash recompute", 0.6)


def bench_actor_chain(tmp: Path, events: int) -> None:
    """On an actor-shaped chain: verification (with a state blob per result to check) and state at an event."""
    from replay import state_at

    store, actor = build_actor_chain(tmp / "actor", events)
    bench_verify(store, actor, events, "actor-shaped")
    probes = [events * i // 200 for i in range(200)]
    start = time.perf_counter()
    for seq in probes:
        state_at(store, actor, seq)
    per = (time.perf_counter() - start) / len(probes) * 1000
    line(f"state at a given event (state --at) in a {events:,}-event actor chain", per, "ms")
    store.close()


def bare_hash_loop(store: Store, actor: uuid.UUID) -> float:
    env, db = store.env.env, store.env.dbs["events"]
    start = time.perf_counter()
    n = 0
    with env.begin() as txn:
        cursor = txn.cursor(db=db)
        cursor.set_range(actor.bytes)
        for _key, value in cursor:
            blake3.blake3(EVENT_DOMAIN + value[32:]).digest()
            n += 1
    return n / (time.perf_counter() - start)


def bench_store(events: int, tmp: Path) -> None:
    print("== store ==")
    chains = [uuid.uuid4() for _ in range(100)]
    n = 200_000
    floor = bare_append_loop(tmp / "bare", n, chains)
    rate = group_commit_appends(tmp / "gc", n, 8, chains)
    line("durable appends/s, group commit, 8 threads x 100 chains", rate, "ev/s", floor, "bare encode+hash+put loop", 0.6)

    store, actor = build_chain(tmp / "big", events)
    bench_verify(store, actor, events, "host-call")

    probes = [int(x) for x in (events * i // 1000 for i in range(1000))]
    start = time.perf_counter()
    for seq in probes:
        store.log.at(actor, seq)
    per = (time.perf_counter() - start) / len(probes) * 1e6
    line(f"event at a given seq in a {events:,}-event chain", per, "us")
    store.close()

    bench_actor_chain(tmp, events)

    blobs = Store(tmp / "blobs")
    for size, label, reps in ((1024, "1 KB", 2000), (1 << 20, "1 MB", 50), (100 << 20, "100 MB", 2)):
        data = [os.urandom(size) for _ in range(min(reps, 4))]
        start = time.perf_counter()
        digests = [blobs.blobs.put(data[i % len(data)] + i.to_bytes(8, "big")) for i in range(reps)]
        put_rate = size * reps / (time.perf_counter() - start) / 1e6
        start = time.perf_counter()
        for d in digests:
            blobs.blobs.get(d)
        get_rate = size * reps / (time.perf_counter() - start) / 1e6
        line(f"blob put {label} (durable, one commit each)", put_rate, "MB/s")
        line(f"blob get {label} (hash-checked)", get_rate, "MB/s")
    blobs.close()


def current_rss_kib() -> float:
    """The process's resident set now, from /proc (ru_maxrss is a peak and hides later growth)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024


BARE_CALL_LOOP = """
import sys, time, wasmtime, wasmtime.component as wc
config = wasmtime.Config(); config.consume_fuel = True; config.epoch_interruption = True
config.cranelift_nan_canonicalization = True; config.wasm_relaxed_simd_deterministic = True
engine = wasmtime.Engine(config)
component = wc.Component(engine, open(sys.argv[1]).read())
store = wasmtime.Store(engine); store.set_fuel(1 << 40); store.set_epoch_deadline(1 << 40)
instance = wc.Linker(engine).instantiate(store, component)
iface = component.get_export_index("theater:simple/message-server-client")
func = instance.get_func(store, component.get_export_index("handle-request", iface))
n = int(sys.argv[2]); start = time.perf_counter()
if len(sys.argv) > 3:  # each call followed by one durable (fsynced) LMDB commit of its answer
    import lmdb
    env = lmdb.open(sys.argv[3], map_size=1 << 30)
    for i in range(n):
        func(store, None, ("id", b"ping"))
        with env.begin(write=True) as txn:
            txn.put(i.to_bytes(8, "big"), b"ping")
else:
    for _ in range(n):
        func(store, None, ("id", b"ping"))
print(n / (time.perf_counter() - start))
"""


def bare_call_rate(wat_file: Path, n: int, commit_to: Path | None = None) -> float:
    """The same export in a bare wasmtime-py loop, in a fresh process (no Theater code loaded); with ``commit_to``,
    each call followed by one durable LMDB commit (an fsynced transaction, LMDB's defaults) in that directory."""
    argv = [sys.executable, "-c", BARE_CALL_LOOP, str(wat_file), str(n)] + ([str(commit_to)] if commit_to else [])
    done = subprocess.run(argv, capture_output=True, text=True, check=True)
    return float(done.stdout)


# Runtime -------------------------------------------------------------------------------------------------------


def thread_cpu() -> dict[int, float]:
    """CPU seconds (user + system) of each live thread of this process, by native thread id, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    cpu = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            stat = Path(f"/proc/self/task/{tid}/stat").read_text()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        cpu[int(tid)] = (int(fields[11]) + int(fields[12])) / tick
    return cpu


def _switches(status: str) -> int:
    """Context switches (voluntary + involuntary) in the text of a /proc status file."""
    return sum(int(row.split()[1]) for row in status.splitlines()
               if row.startswith(("voluntary_ctxt_switches:", "nonvoluntary_ctxt_switches:")))


def thread_switches() -> dict[int, int]:
    """Context switches of each live thread of this process so far, by native thread id, from /proc."""
    switches = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            switches[int(tid)] = _switches(Path(f"/proc/self/task/{tid}/status").read_text())
        except OSError:  # the thread ended meanwhile
            continue
    return switches


def switch_shares(before: dict[int, int], after: dict[int, int], callers: int, requests: int) -> str:
    """Context switches per request by kind of thread, as a line to print: each one a thread put to sleep (a wait
    for work, for a reply, or for the GIL) or preempted, so they count wake-ups and GIL hand-offs."""
    names = {t.native_id: t.name.split(":")[0].removeprefix("theater-") for t in threading.enumerate()}
    spent: dict[str, int] = {"callers": callers}
    for tid, count in after.items():
        name = names.get(tid, "other")
        spent[name] = spent.get(name, 0) + count - before.get(tid, 0)
    parts = ", ".join(f"{name} {count / requests:.2f}" for name, count in sorted(spent.items(), key=lambda x: -x[1])
                      if count > 0)
    return f"{'':<58} {'':>12}      context switches per request: {parts}"


def cpu_shares(before: dict[int, float], after: dict[int, float], callers: set[int], total: float, requests: int,
               seconds: float) -> str:
    """The CPU each kind of thread spent per request, as a line to print (the callers' is the process total less
    the others': they have ended)."""
    names = {t.native_id: t.name.split(":")[0].removeprefix("theater-") for t in threading.enumerate()}
    spent: dict[str, float] = {}
    for tid, cpu in after.items():
        if tid not in callers:
            name = names.get(tid, "other")
            spent[name] = spent.get(name, 0.0) + cpu - before.get(tid, 0.0)
    spent["callers"] = max(0.0, total - sum(spent.values()))
    parts = ", ".join(f"{name} {cpu / requests * 1e6:.0f} us" for name, cpu in sorted(spent.items(), key=lambda x: -x[1])
                      if cpu > 0)
    return f"{'':<58} {'':>12}      CPU per request: {parts}; the process used {total / seconds:.0%} of one core"


def echo_callers(theater: object, actor: str, n: int, callers: int) -> tuple[float, str]:
    """Requests per second from ``callers`` threads, each sending ``n / callers`` requests one after another, and
    lines naming the CPU each kind of thread spent per request (``cpu_shares``) and its context switches
    (``switch_shares``)."""
    each = n // callers
    errors: list[BaseException] = []
    ids: set[int] = set()
    caller_switches: list[int] = []

    def caller() -> None:
        ids.add(threading.get_native_id())
        first = _switches(Path("/proc/thread-self/status").read_text())
        try:
            for _ in range(each):
                theater.request(actor, b"ping")  # type: ignore[attr-defined]
        except BaseException as exc:  # reported below: a failed request must not look fast
            errors.append(exc)
        caller_switches.append(_switches(Path("/proc/thread-self/status").read_text()) - first)

    threads = [threading.Thread(target=caller) for _ in range(callers)]
    before, times, switches = thread_cpu(), os.times(), thread_switches()
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.perf_counter() - start
    rate = each * callers / seconds
    if errors:
        raise errors[0]
    ended = os.times()
    total = ended.user + ended.system - times.user - times.system
    switched = switch_shares(switches, thread_switches(), sum(caller_switches), each * callers)
    return rate, cpu_shares(before, thread_cpu(), ids, total, each * callers, seconds) + "\n" + switched


def written_bytes() -> int:
    """Bytes this process has handed to write system calls so far (``wchar`` in /proc/self/io)."""
    for row in Path("/proc/self/io").read_text().splitlines():
        if row.startswith("wchar:"):
            return int(row.split()[1])
    return 0


def echo_commits(commits: list[tuple[float, int]], requests: int, floor: float, written: int) -> None:
    """What bounds the echo figure: 32 callers each wait for their commit before asking again, so a commit carries
    at most the requests of the callers not waiting on the one before it (two groups take turns). Prints the
    commits' latency, the requests each carried, the pages each wrote (``written`` bytes in all) and the rate that
    latency allows: 16 requests per commit."""
    if not commits:
        return
    times = sorted(seconds for seconds, _ in commits)
    median = times[len(times) // 2]
    print(f"{'':<58} {'':>12}      durable commits during it: {len(commits):,}, {requests / len(commits):.1f} requests "
          f"each, median {median * 1000:.2f} ms, {written / len(commits) / 4096:.1f} pages written each", flush=True)
    bound = 16 / median
    print(f"{'':<58} {'':>12}      bound by commit latency (16 requests per commit): {bound:,.0f} msg/s, "
          f"ratio {bound / floor:.2f} of the floor", flush=True)


def bench_runtime(tmp: Path) -> None:
    import bench_start  # tools/, this script's directory

    from tests.components import wat
    from theater.runtime import Theater

    print("== runtime ==")
    text = wat.echo_actor()
    (tmp / "echo.wat").write_text(text)
    (tmp / "echo.toml").write_text('name = "echo"\ncomponent = "echo.wat"\n')

    n = 5000
    floor = bare_call_rate(tmp / "echo.wat", n)

    with Theater(tmp / "home") as theater:
        actor = theater.start(tmp / "echo.toml")
        commits: list[tuple[float, int]] = []
        theater.store.add_commit_timing(lambda seconds, writes: commits.append((seconds, writes)))
        before = written_bytes()
        rate, shares = echo_callers(theater, actor, n, 32)
        written = written_bytes() - before
        line("echo requests/s (32 concurrent callers, every event durable)", rate, "msg/s", floor, "bare wasmtime-py call loop", 0.7)
        print(shares, flush=True)
        echo_commits(commits, n, floor, written)
        from concurrent.futures import ThreadPoolExecutor

        start = time.perf_counter()
        with ThreadPoolExecutor(32) as pool:  # the harness of earlier rounds: a future per request, made up front
            list(pool.map(lambda _: theater.request(actor, b"ping"), range(n)))
        pooled = n / (time.perf_counter() - start)
        line("  the same through ThreadPoolExecutor.map (earlier harness)", pooled, "msg/s", floor, "bare wasmtime-py call loop", 0.7)

        # The 32-caller runs left index entries to the hash index's tail; the writer merges it once idle for
        # store._commit.IDLE_MERGE_AFTER_S. Let it, so the one-caller commits write their index entries as a
        # one-caller workload's do (with a tail waiting they would skip them and look cheaper than they are).
        time.sleep(0.5)
        commits.clear()
        start = time.perf_counter()
        for _ in range(200):
            theater.request(actor, b"ping")
        seq_rate = 200 / (time.perf_counter() - start)
        line("echo requests/s (one caller at a time, fsync each)", seq_rate, "msg/s", floor, "bare wasmtime-py call loop")
        commit_floor = bare_call_rate(tmp / "echo.wat", 200, tmp / "floor-commit")
        line("  the same next to a bare call + 1 durable LMDB commit each", seq_rate, "msg/s", commit_floor,
             "call + 1 commit", 0.8)
        if commits:
            median = sorted(seconds for seconds, _ in commits)[len(commits) // 2]
            print(f"{'':<58} {'':>12}      durable commits during it: {len(commits):,} for 200 requests, median "
                  f"{median * 1000:.2f} ms; the rest of a request: {(1 / seq_rate - median) * 1e6:,.0f} us", flush=True)

        # Actor start: tools/bench_start.py's figures first (the same floor, a fresh home), then the same start in
        # this home after the echo runs. That one is slower next to the same floor: each start's one commit writes
        # into B-trees that hold tens of thousands of events (the hash index and the blob store take random keys),
        # so it writes more pages (printed) and its fsync takes longer; the code path is the same.
        print("== actor start ==")
        start_floor = bench_start.start_floor(tmp, 100, show_bytes=True)
        bench_start.sequential(tmp, 100, start_floor)
        events = theater.store.log.feed_end()
        rss_before = current_rss_kib()
        count = 200
        before = bench_start.written()
        start = time.perf_counter()
        for _ in range(count):
            theater.start(tmp / "echo.toml")
        per_start = (time.perf_counter() - start) / count * 1000
        rss_after = current_rss_kib()
        bench_start.written_line(f"written per start in a home of {events:,} events", before, count)
        bench_start.line(f"the same start in this home after the echo runs ({events:,} events)", per_start, "ms",
                         start_floor, "deserialize+instantiate+init+1 durable commit")
        line("actors started per second (one at a time, in this home)", 1000 / per_start, "actors/s")
        line("resident memory per idle actor (RSS growth / actors)", (rss_after - rss_before) / count, "KiB")


# Replay --------------------------------------------------------------------------------------------------------


def bench_replay(tmp: Path) -> None:
    from replay import Replayer
    from tests.components import wat
    from theater.runtime import Theater

    print("== replay ==")
    (tmp / "counter.wat").write_text(wat.counter_actor())
    (tmp / "counter.toml").write_text('name = "counter"\ncomponent = "counter.wat"\n')
    n = 2000
    with Theater(tmp / "rhome", durability="buffered") as theater:
        actor = theater.start(tmp / "counter.toml")
        start = time.perf_counter()
        for _ in range(n):
            theater.send(actor, b"tick")
        original = time.perf_counter() - start
        start = time.perf_counter()
        report = Replayer(theater.store).replay(uuid.UUID(actor))
        replayed = time.perf_counter() - start
        assert report.ok, report.divergence
    line(f"replay of {n} recorded sends (speed-up over the original run)", original / replayed, "x", 1.5, "target", None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the large chain (default 1,000,000)")
    parser.add_argument("--only", choices=["store", "runtime", "replay"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="theater-bench-"))
    try:
        if args.only in (None, "store"):
            bench_store(args.events, tmp)
        if args.only in (None, "runtime"):
            bench_runtime(tmp)
        if args.only in (None, "replay"):
            bench_replay(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
