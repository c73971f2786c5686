"""Passivated actors: what one costs in memory, and how fast any of them answers its next message.

    .venv/bin/python tools/bench_passivate.py                    # 100,000 passivated actors (about a minute)
    .venv/bin/python tools/bench_passivate.py --actors 1000000   # the issue's figure

The home is filled with passivated counter actors (examples/counter-wat): one is started and passivated through
the runtime, and its chain is the template of the others, written straight into the store as the runtime writes
them (``actor/created``, ``wasm/instantiate`` reason ``start``, ``actor/passivated``), since starting a million
actors one by one is not what is measured. A runtime then opens the home and, in the same run:

- a cached start (``Theater.start`` of the counter, compiled component cached, durable) is the floor;
- any passivated actor answering its next request (loaded from the home, a fresh instance, the call, durable) is
  measured against it (target: at most 2x);
- the runtime's own memory (anonymous resident set: LMDB's mapped pages are the OS's page cache) with every one of
  them passivated, per actor;
- a page of ``Theater.actors`` at the end of the id space, next to the first page.

Ratios hold on a noisy machine; absolute times do not. Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from replay.schema import ACTOR_CREATED, ACTOR_PASSIVATED, WASM_INSTANTIATE  # noqa: E402
from store import EMPTY, Head, new_actor_id  # noqa: E402
from theater.runtime import Theater  # noqa: E402

MANIFEST = ROOT / "examples" / "counter-wat" / "manifest.toml"
WINDOW = 2000  # chains queued for one group commit


def line(name: str, value: float, unit: str, floor: float | None = None, floor_name: str = "",
         target: float | None = None) -> None:
    """A figure, next to its floor and the ratio (lower is better here: the target is a ceiling)."""
    text = f"{name:<62} {value:>12,.2f} {unit}"
    if floor is not None:
        ratio = value / floor if floor else float("nan")
        text += f"   floor ({floor_name}) {floor:,.2f} {unit}   ratio {ratio:.2f}"
        if target is not None:
            text += f"   target <= {target}  {'MET' if ratio <= target else 'NOT MET'}"
    print(text, flush=True)


def anon_kib() -> int:
    """The process's anonymous resident memory (heap, stacks, wasm instances), without mapped files."""
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("RssAnon:"):
            return int(row.split()[1])
    raise RuntimeError("no RssAnon in /proc/self/status")


def template(theater: Theater) -> tuple[dict, dict, dict]:
    """Start a counter, passivate it, and return the data of its creation, start and passivation events."""
    actor = theater.start(MANIFEST, call_init=False)
    assert theater.passivate(actor)
    events = {e.type: e.data for e in theater.events(actor)}
    return events[ACTOR_CREATED], events[WASM_INSTANTIATE], events[ACTOR_PASSIVATED]


def write_chains(theater: Theater, count: int) -> list[uuid.UUID]:
    """``count`` passivated counters, written as the runtime writes them, a window of chains per group commit."""
    created, started, passivated = template(theater)
    log = theater.store.log
    ids: list[uuid.UUID] = []
    pending = []
    for n in range(count):
        actor = new_actor_id()
        ids.append(actor)
        head = EMPTY
        for type_, data in ((ACTOR_CREATED, {**created, "id": str(actor)}), (WASM_INSTANTIATE, started),
                            (ACTOR_PASSIVATED, passivated)):
            append = log.append_async(actor, type_, data, expected=head)
            head = Head(append.event.seq, append.event.hash)
        pending.append(append)
        if len(pending) == WINDOW or n == count - 1:
            for append in pending:
                append.wait()
            pending.clear()
        if (n + 1) % 100_000 == 0:
            print(f"  {n + 1:,} chains written", flush=True)
    return ids


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


def page_ms(theater: Theater, after: uuid.UUID | None) -> float:
    start = time.perf_counter()
    rows = theater.actors(after=after, limit=1000)
    assert len(rows) == 1000, len(rows)
    return (time.perf_counter() - start) * 1000


def write_home(home: Path, count: int, samples: int, durability: str) -> dict:
    """In a child process: fill the home; the write rate, a sample of ids and the id 1,001 from the end."""
    with Theater(home, durability=durability) as theater:
        start = time.perf_counter()
        ids = write_chains(theater, count)
        rate = count / (time.perf_counter() - start)
    ids.sort()
    picks = random.Random(7).sample(ids, min(samples + 1, len(ids)))
    return {"rate": rate, "picks": [str(i) for i in picks], "late": str(ids[-1001])}


def baseline(home: Path, durability: str) -> int:
    """In a child process: the anonymous RSS of a runtime on an empty home after one start and one request."""
    with Theater(home, durability=durability) as theater:
        actor = theater.start(MANIFEST)
        theater.request(actor, b"+")
        return anon_kib()


def child(mode: str, *args: str) -> dict:
    done = subprocess.run([sys.executable, __file__, "--child", mode, *args], capture_output=True, text=True,
                          check=True)
    sys.stdout.write("".join(row + "\n" for row in done.stdout.splitlines()[:-1]))
    return json.loads(done.stdout.splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actors", type=int, default=100_000, help="passivated actors in the home")
    parser.add_argument("--samples", type=int, default=40, help="starts and activations measured")
    parser.add_argument("--durability", choices=("sync", "buffered"), default="sync")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, home = args.child[0], Path(args.child[1])
        result = write_home(home, args.actors, args.samples, args.durability) if mode == "write" \
            else {"anon_kib": baseline(home, args.durability)}
        print(json.dumps(result))
        return

    with tempfile.TemporaryDirectory(prefix="theater-bench-passivate-") as tmp:
        home = Path(tmp) / "home"
        print(f"== passivation: {args.actors:,} passivated actors ({args.durability}) ==", flush=True)
        common = ["--actors", str(args.actors), "--samples", str(args.samples), "--durability", args.durability]
        written = child("write", str(home), *common)
        line("passivated chains written per second (3 events each)", written["rate"], "chains/s")
        empty = child("baseline", str(Path(tmp) / "empty"), *common)["anon_kib"]
        picks = [uuid.UUID(i) for i in written["picks"]]

        with Theater(home, durability=args.durability) as theater:
            theater.start(MANIFEST)  # warm every path once: a start, an activation
            theater.request(picks[0], b"+")
            loaded = anon_kib()
            line("runtime memory per passivated actor (anon RSS over an empty home's)",
                 max(0, loaded - empty) * 1024 / args.actors, "bytes")
            line("  anon RSS: runtime on this home / on an empty home", loaded / 1024, "MiB", empty / 1024,
                 "empty home")

            starts = [timed(theater.start, MANIFEST) for _ in range(args.samples)]
            activations = [timed(theater.request, actor, b"+") for actor in picks[1:]]
            cached_start = statistics.median(starts)
            line("cached start (Theater.start, durable), median", cached_start, "ms")
            line("passivated actor answering its next request, median", statistics.median(activations), "ms",
                 cached_start, "cached start", 2.0)
            line("  the same, slowest of the sample", max(activations), "ms", max(starts), "slowest cached start")

            first = page_ms(theater, None)
            line("Theater.actors: a page of 1,000 at the end of the id space", page_ms(theater, uuid.UUID(written["late"])),
                 "ms", first, "first page")
            counted = theater.request(picks[1], b"+")
            assert counted == (2).to_bytes(8, "little"), counted


if __name__ == "__main__":
    main()
