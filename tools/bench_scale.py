"""Scale on one machine: many live actors in one embedded Theater (issue 14's figures).

    .venv/bin/python tools/bench_scale.py                    # 10,000 actors: about a minute
    .venv/bin/python tools/bench_scale.py --actors 100000    # the issue's figure

Starts N component-text counters (examples/counter-wat) in one ``Theater`` and prints, each next to its target:
resident memory per live idle actor (and where it goes), the cost of the last starts against the 100th, every actor
answering one message, and R actors each sending a request to another actor at the same moment (every request
answered, no deadlock; the threads the scheduler needed for it). Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from concurrent.futures import Future, wait
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.components import wat  # noqa: E402
from theater.manifest import load_manifest  # noqa: E402
from theater.runtime import Theater  # noqa: E402

COUNTER = ROOT / "examples" / "counter-wat" / "manifest.toml"
WINDOW = 100  # starts averaged for "the 100th start" (starts 50..149) and for "the last start"


def line(name: str, value: float, unit: str, target: str = "", met: bool | None = None) -> None:
    text = f"{name:<66} {value:>12,.1f} {unit}"
    if target:
        text += f"   target {target}"
        if met is not None:
            text += f"  {'MET' if met else 'NOT MET'}"
    print(text, flush=True)


def rss_kib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 1024


def maps() -> int:
    return len(Path("/proc/self/maps").read_text().splitlines())


BARE_INSTANCES = """
import sys, wasmtime, wasmtime.component as wc
sys.path.insert(0, sys.argv[1])
from replay.engine import make_engine
engine = make_engine()
component = wc.Component(engine, open(sys.argv[2]).read())
linker = wc.Linker(engine)
linker.define_unknown_imports_as_traps(component)
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * 4
keep = []
def one():
    store = wasmtime.Store(engine); store.set_fuel(1 << 30); store.set_epoch_deadline(1 << 30)
    keep.append((store, linker.instantiate(store, component)))
for _ in range(50):
    one()
n = int(sys.argv[3]); before = rss()
for _ in range(n):
    one()
print((rss() - before) / n)
"""


def bare_instance_kib(n: int) -> float:
    """RSS per bare wasmtime store + instance of the counter, with Theater's engine settings, in a fresh process."""
    done = subprocess.run([sys.executable, "-c", BARE_INSTANCES, str(ROOT), str(COUNTER.parent / "counter.wat"),
                           str(n)], capture_output=True, text=True, check=True)
    return float(done.stdout)


def python_heap_per_actor(home: Path, n: int) -> float:
    """Python-heap bytes each started actor keeps (tracemalloc over ``n`` starts, in a runtime of its own)."""
    manifest = load_manifest(COUNTER)
    with Theater(home, durability="buffered") as theater:
        for _ in range(20):
            theater.start(manifest)
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(n):
            theater.start(manifest)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    return (after - before) / n


def start_many(theater: Theater, n: int) -> tuple[list[str], list[float]]:
    manifest = load_manifest(COUNTER)
    ids: list[str] = []
    costs: list[float] = []
    report_every = max(1, n // 10)
    for i in range(n):
        started = time.perf_counter()
        ids.append(theater.start(manifest))
        costs.append(time.perf_counter() - started)
        if (i + 1) % report_every == 0:
            print(f"  {i + 1:,} started, {rss_kib() / 1024:,.0f} MiB resident, "
                  f"{theater.scheduler.threads} worker threads", flush=True)
    return ids, costs


def median_ms(values: list[float]) -> float:
    """The median, in ms: a start that a full garbage collection happened to land on does not move it."""
    return statistics.median(values) * 1000


def answer_one_each(theater: Theater, ids: list[str]) -> tuple[int, float]:
    """One request to every actor, all queued at once; (answered, seconds)."""
    started = time.perf_counter()
    replies = [theater.router.deliver_request(theater.actor(a), b"ping") for a in ids]
    done, _ = wait(replies, timeout=600)
    answered = sum(1 for r in done if r.exception() is None and len(r.result()) == 8)
    return answered, time.perf_counter() - started


class MapsSampler:
    """The most memory mappings the process had at once while it ran (sampled twice a second)."""

    def __init__(self) -> None:
        self.most = maps()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            self.most = max(self.most, maps())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return max(self.most, maps())


def request_storm(theater: Theater, manifests: Path, targets: list[str]) -> tuple[int, float, int, int]:
    """Start one forwarder per target, then have every forwarder request its target at the same moment."""
    (manifests / "forwarder.wat").write_text(wat.forwarder_actor())
    (manifests / "forwarder.toml").write_text(
        'name = "forwarder"\ncomponent = "forwarder.wat"\n\n[[handlers]]\ntype = "message-server"\n')
    manifest = load_manifest(manifests / "forwarder.toml")
    forwarders = [theater.start(manifest) for _ in targets]
    peak_before = theater.scheduler.peak_threads
    sampler = MapsSampler()
    started = time.perf_counter()
    replies: list[Future[bytes]] = [
        theater.router.deliver_request(theater.actor(f), t.encode() + b"\0ping") for f, t in zip(forwarders, targets)
    ]
    done, _ = wait(replies, timeout=600)
    elapsed = time.perf_counter() - started
    most_maps = sampler.stop()
    answered = sum(1 for r in done if r.exception() is None and len(r.result()) == 8)
    return answered, elapsed, max(peak_before, theater.scheduler.peak_threads), most_maps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--actors", type=int, default=10_000, help="live idle actors to start (default 10,000)")
    parser.add_argument("--requesters", type=int, default=None,
                        help="actors that each request another at once (default: min(actors, 10,000))")
    parser.add_argument("--durability", choices=["sync", "buffered"], default="sync")
    args = parser.parse_args()
    n = max(args.actors, 2 * WINDOW)
    requesters = min(n, args.requesters if args.requesters is not None else 10_000)
    tmp = Path(tempfile.mkdtemp(prefix="theater-scale-"))
    try:
        print(f"== scale: {n:,} counter actors (examples/counter-wat), durability {args.durability} ==")
        with Theater(tmp / "home", durability=args.durability) as theater:
            theater.start(load_manifest(COUNTER))  # the component compiled and cached before measuring
            gc.collect()
            rss_before, maps_before = rss_kib(), maps()
            ids, costs = start_many(theater, n)
            gc.collect()
            per_actor = (rss_kib() - rss_before) / n
            line(f"resident memory per live idle actor ({n:,} actors)", per_actor, "KiB", "<= 24 KiB", per_actor <= 24)
            line("  memory mappings per actor (the system allows 65,530 in all)", (maps() - maps_before) / n, "maps")
            line("  worker threads with every actor idle", theater.scheduler.threads, "threads")
            hundredth = median_ms(costs[WINDOW // 2:WINDOW // 2 + WINDOW])
            last = median_ms(costs[-WINDOW:])
            line("start of the 100th actor (median of starts 50..149)", hundredth, "ms")
            line(f"start of the last actors (median of the last {WINDOW})", last, "ms")
            line("  last start / 100th start", last / hundredth, "x", "<= 1.2", last / hundredth <= 1.2)
            answered, seconds = answer_one_each(theater, ids)
            line(f"actors answering one request each ({n:,} queued at once)", answered, "answered", f"= {n:,}",
                 answered == n)
            line("  requests/s while doing so", answered / seconds, "msg/s")
            manifests = tmp / "manifests"
            manifests.mkdir()
            answered, seconds, peak, most_maps = request_storm(theater, manifests, ids[:requesters])
            line(f"{requesters:,} actors each requesting another at once: answered", answered, "answered",
                 f"= {requesters:,}", answered == requesters)
            line("  seconds until every one was answered", seconds, "s")
            line("  most worker threads at once (one per actor waiting in a request)", peak, "threads")
            line("  most memory mappings at once meanwhile (the system allows 65,530)", most_maps, "maps")
        print("== where an idle actor's memory goes ==")
        bare = bare_instance_kib(2000)
        heap = python_heap_per_actor(tmp / "heap-home", 1000) / 1024
        line("  bare wasmtime store + instance of the counter (engine settings as Theater's)", bare, "KiB")
        line("  Python objects of one actor (tracemalloc)", heap, "KiB")
        line("  the rest (allocator slack, LMDB pages, chain index)", per_actor - bare - heap, "KiB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
