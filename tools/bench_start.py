"""Actor start: one at a time, 32 concurrent starters, and a supervisor guest spawning children; every figure next
to its floor or target, measured in the same run.

    .venv/bin/python tools/bench_start.py              # 300 sequential starts, 2,000 concurrent, 1,000 spawned
    .venv/bin/python tools/bench_start.py --quick      # a tenth of each

The component is the WAT kit's echo actor (``init`` keeps its state), compiled once and cached: a start reads the
manifest, records the creation, instantiates, runs ``init`` and returns once its events are durable (sync mode).
The floor of one start is what it cannot do without: deserialize the compiled component, instantiate it with
wasmtime-py, call ``init``, and one durable LMDB commit (sync) of a record about the creation event's size.
Ratios hold on a noisy machine; absolute times do not. Nothing here is asserted by the tests.

The CPU time of a start (every thread's: the writer's too) is printed next to the floor's, which moves less than
wall time when other processes load the machine and the disk. The bytes each start and each floor commit write (Linux only) are printed too: a start's one commit writes its
four events, two blobs and their index and feed entries, about a dozen LMDB pages in a fresh home and more in a
home holding many events (larger B-trees), where the floor writes one record; on a disk whose fsync grows with
what it writes, that is most of the distance between a start and its floor. ``tools/bench.py --only runtime``
prints these figures too, then the same start in its home after the echo runs.

Under each figure: how many commits the starts took (and how many writes each commit held), the wall time the
cyclic garbage collector ran per start, and in the 32-starter and supervisor runs the CPU per start (for the
starters, their own threads' CPU apart from the writer's and the other threads'): where a start's time goes.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import lmdb
import wasmtime
import wasmtime.component as wc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from replay.engine import Engine  # noqa: E402
from tests.components import supervisor_wat as sw  # noqa: E402
from tests.components import wat  # noqa: E402
from theater.manifest import load_manifest  # noqa: E402
from theater.runtime import Theater  # noqa: E402

TARGET_START_RATIO = 1.5  # a start at most 1.5x its floor
TARGET_STARTS_PER_S = 5000  # concurrent starters and a spawning supervisor


def line(name: str, value: float, unit: str, floor: float | None = None, floor_name: str = "",
         target: str | None = None, met: bool | None = None) -> None:
    text = f"{name:<62} {value:>10,.2f} {unit}"
    if floor is not None:
        text += f"   floor ({floor_name}) {floor:,.2f} {unit}   ratio {value / floor:.2f}"
    if target is not None:
        text += f"   target {target}  {'MET' if met else 'NOT MET'}"
    print(text, flush=True)


def written() -> int | None:
    """Bytes this process has written so far (``wchar`` of ``/proc/self/io``); None where there is no such file."""
    try:
        with open("/proc/self/io") as io:
            return next(int(row.split()[1]) for row in io if row.startswith("wchar:"))
    except (OSError, StopIteration, ValueError):
        return None


def written_line(name: str, before: int | None, n: int) -> None:
    after = written()
    if before is not None and after is not None:
        print(f"  {name:<60} {(after - before) / n / 1024:>10,.1f} KiB", flush=True)


FLOOR_CPU: list[float] = []  # the CPU ms (all threads) of one floor iteration, once ``start_floor`` ran


def start_floor(tmp: Path, n: int, *, show_bytes: bool = False) -> float:
    """ms per bare deserialize + instantiate + init + one durable LMDB commit (its CPU ms go to ``FLOOR_CPU``)."""
    engine = Engine()
    serialized = engine.compile(wat.echo_actor()).serialize()
    env = lmdb.open(str(tmp / "floor"), map_size=1 << 30)  # sync: every commit is fsynced
    record = os.urandom(400)  # about a creation event with its manifest and engine settings
    before = written()
    cpu = time.process_time()
    start = time.perf_counter()
    for i in range(n):
        component = wc.Component.deserialize(engine.wasmtime, serialized)
        store = wasmtime.Store(engine.wasmtime)
        store.set_fuel(1 << 30)
        store.set_epoch_deadline(1 << 30)
        instance = wc.Linker(engine.wasmtime).instantiate(store, component)
        init = instance.get_func(store, component.get_export_index(
            "init", component.get_export_index("theater:simple/actor")))
        assert init is not None
        init(store, None, (str(i),))
        with env.begin(write=True) as txn:
            txn.put(i.to_bytes(8, "big"), record)
    elapsed = time.perf_counter() - start
    FLOOR_CPU[:] = [(time.process_time() - cpu) / n * 1000]
    if show_bytes:
        written_line("written per floor commit (one record)", before, n)
    env.close()
    return elapsed / n * 1000


class Commits:
    """Counts a store's commits and the writes they held (``Store.add_commit_timing``), and the seconds the
    cyclic garbage collector ran (``gc.callbacks``), while ``counting``."""

    def __init__(self, theater: Theater) -> None:
        self.counting = False
        self.commits = 0
        self.writes = 0
        self.gc_seconds = 0.0
        self._gc_began = 0.0
        theater.store.add_commit_timing(self._committed)
        gc.callbacks.append(self._collecting)

    def _collecting(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_began = time.perf_counter()
        elif self.counting:
            self.gc_seconds += time.perf_counter() - self._gc_began

    def _committed(self, seconds: float, writes: int) -> None:
        if self.counting:
            self.commits += 1
            self.writes += writes

    def line(self, starts: int) -> None:
        gc.callbacks.remove(self._collecting)
        if self.commits:
            print(f"  {'commits per start (writes per commit)':<60} {self.commits / starts:>10,.3f}   "
                  f"({self.writes / self.commits:,.1f})", flush=True)
        print(f"  {'garbage collection per start (wall, all threads)':<60} {self.gc_seconds / starts * 1000:>10,.2f} ms",
              flush=True)


def sequential(tmp: Path, n: int, floor: float) -> None:
    manifest_path = tmp / "echo.toml"
    with Theater(tmp / "seq") as theater:
        theater.start(manifest_path)  # compiles and caches the component
        commits = Commits(theater)
        commits.counting = True
        before = written()
        cpu = time.process_time()
        start = time.perf_counter()
        for _ in range(n):
            theater.start(manifest_path)
        per_path = (time.perf_counter() - start) / n * 1000
        cpu_path = (time.process_time() - cpu) / n * 1000
        commits.counting = False
        written_line("written per start (its one commit, a fresh home)", before, n)
        commits.line(n)
        manifest = load_manifest(manifest_path)
        start = time.perf_counter()
        for _ in range(n):
            theater.start(manifest)
        per_parsed = (time.perf_counter() - start) / n * 1000
    target = f"<= {TARGET_START_RATIO}x"
    line("actor start from a manifest file (cached component, init, durable)", per_path, "ms", floor,
         "deserialize+instantiate+init+1 durable commit", target, per_path / floor <= TARGET_START_RATIO)
    line("actor start from a parsed manifest (the same, without the file)", per_parsed, "ms", floor,
         "deserialize+instantiate+init+1 durable commit", target, per_parsed / floor <= TARGET_START_RATIO)
    if FLOOR_CPU:  # CPU time, every thread's (no fsync wait in it): steadier than wall time on a loaded machine
        line("  CPU per start from a manifest file (every thread)", cpu_path, "ms", FLOOR_CPU[0], "floor's CPU")


def concurrent(tmp: Path, n: int, floor: float, threads: int = 32) -> None:
    manifest = load_manifest(tmp / "echo.toml")
    with Theater(tmp / "conc") as theater:
        theater.start(manifest)
        count = n // threads
        errors: list[BaseException] = []
        starters_cpu: list[float] = []  # each starter thread's own CPU seconds

        def starter() -> None:
            cpu = time.thread_time()
            try:
                for _ in range(count):
                    theater.start(manifest)
            except BaseException as exc:  # reported below: a failed start must not look fast
                errors.append(exc)
            starters_cpu.append(time.thread_time() - cpu)

        workers = [threading.Thread(target=starter) for _ in range(threads)]
        commits = Commits(theater)
        commits.counting = True
        before = written()
        cpu = time.process_time()
        start = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        rate = count * threads / (time.perf_counter() - start)
        cpu_all = (time.process_time() - cpu) / (count * threads) * 1000
        commits.counting = False
        if errors:
            raise errors[0]
        written_line("written per start (shared commits)", before, count * threads)
        commits.line(count * threads)
        cpu_starters = sum(starters_cpu) / (count * threads) * 1000
        print(f"  {'CPU per start: every thread (starters; writer and others)':<60} {cpu_all:>10,.2f} ms   "
              f"({cpu_starters:,.2f}; {cpu_all - cpu_starters:,.2f})", flush=True)
    line(f"actors started per second, {threads} concurrent starters (durable)", rate, "actors/s", 1000 / floor,
         "1 / sequential floor", f">= {TARGET_STARTS_PER_S:,}/s", rate >= TARGET_STARTS_PER_S)


def spawn_many(times: int) -> wat.Behaviour:
    """``spawn(tail)`` ``times`` times in one call; R = the last child's id."""
    code = f"""
    (local.set $i (i32.const {times}))
    (block $done (loop $again
      (br_if $done (i32.eqz (local.get $i)))
      (call {{c0}})
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br $again)))
    """
    return wat.Behaviour("spawn_many", (times,), code, locals=(("i", "i32"),), children=(sw.spawn(wat.TAIL),))


def supervisor(tmp: Path, n: int, floor: float) -> None:
    (tmp / "sup.wat").write_text(sw.supervisor_wat(request=spawn_many(n)))
    (tmp / "sup.toml").write_text(
        'name = "sup"\ncomponent = "sup.wat"\n\n[limits]\ndeadline_ms = 600000\n\n'
        '[[handlers]]\ntype = "message-server"\n\n[[handlers]]\ntype = "supervisor"\n'
    )
    with Theater(tmp / "sup") as theater:
        parent = theater.start(tmp / "sup.toml")
        theater.start(tmp / "echo.toml")  # compiles and caches the child's component
        commits = Commits(theater)
        commits.counting = True
        cpu = time.process_time()
        start = time.perf_counter()
        answer = theater.request(parent, b"\0echo.toml", timeout=600)
        rate = n / (time.perf_counter() - start)
        cpu_child = (time.process_time() - cpu) / n * 1000
        commits.counting = False
        commits.line(n)
        print(f"  {'CPU per child (every thread)':<60} {cpu_child:>10,.2f} ms", flush=True)
        assert not answer.startswith(wat.ERR_MARKER), answer
        spawned = len(theater.actors()) - 2
        assert spawned == n, f"{spawned} children, expected {n}"
    line(f"actors started per second, one supervisor guest spawning {n:,}", rate, "actors/s", 1000 / floor,
         "1 / sequential floor", f">= {TARGET_STARTS_PER_S:,}/s", rate >= TARGET_STARTS_PER_S)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a tenth of the starts")
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    tmp = Path(tempfile.mkdtemp(prefix="theater-bench-start-"))
    try:
        (tmp / "echo.wat").write_text(wat.echo_actor())
        (tmp / "echo.toml").write_text('name = "echo"\ncomponent = "echo.wat"\n')
        print("== actor start ==")
        floor = start_floor(tmp, 300 // scale, show_bytes=True)
        sequential(tmp, 300 // scale, floor)
        concurrent(tmp, 2048 // scale, floor)
        supervisor(tmp, 1000 // scale, floor)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
