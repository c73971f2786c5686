"""Python actors: start time, messages per second, size and memory, each next to a floor measured in the same run.

    .venv/bin/python tools/bench_python.py                  # everything
    .venv/bin/python tools/bench_python.py --messages 300 --actors 10

The actor is examples/counter (built once, cached under .cache/theater-build/). The floors are bare wasmtime-py
on the same component with no Theater around it: deserialize + instantiate (+ init), a direct export call, the
resident memory of a bare instance; the size floor is componentize-py's own minimal component for the same world
(a module with two empty export classes, no SDK). Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import wasmtime  # noqa: E402
import wasmtime.component as wc  # noqa: E402

from replay import _wasmtime  # noqa: E402
from replay.engine import Engine  # noqa: E402
from theater.build import SDK_DIR, build_project, package_wit, tool_command  # noqa: E402
from theater.runtime import Theater  # noqa: E402

CACHE = ROOT / ".cache" / "theater-build"
COUNTER = ROOT / "examples" / "counter"
BARE_APP = '''
class Actor:
    def init(self, state, params):
        return (state,)

class MessageServerClient:
    def handle_send(self, state, params):
        return (state,)
    def handle_request(self, state, params):
        return (state, (b"",))
    def handle_channel_open(self, state, params):
        raise NotImplementedError
    def handle_channel_message(self, state, params):
        return (state,)
    def handle_channel_close(self, state, params):
        return (state,)
'''


def line(name: str, value: float, unit: str, floor: float | None = None, floor_name: str = "",
         target: str | None = None, met: bool | None = None) -> None:
    text = f"{name:<52} {value:>10,.1f} {unit:<6}"
    if floor is not None:
        ratio = value / floor if floor else float("nan")
        text += f"  floor ({floor_name}) {floor:,.1f} {unit}  x{ratio:.2f}"
    if target is not None:
        text += f"  target {target}  {'MET' if met else 'NOT MET'}"
    print(text, flush=True)


def rss_mb() -> float:
    for row in Path("/proc/self/status").read_text().splitlines():
        if row.startswith("VmRSS:"):
            return int(row.split()[1]) / 1024
    return float("nan")


def median_ms(samples: list[float]) -> float:
    return statistics.median(samples) * 1000


# The component and its floor ------------------------------------------------------------------------------------


def bare_component(work: Path) -> bytes:
    """componentize-py's minimal component for the counter's world (no SDK), cached by the tool version."""
    _, version = tool_command()
    cached = CACHE / f"bench-bare-{version}.wasm"
    if cached.is_file():
        return cached.read_bytes()
    app = work / "bare"
    (app / "wit" / "deps" / "theater-simple").mkdir(parents=True)
    shutil.copy(COUNTER / "wit" / "world.wit", app / "wit" / "world.wit")
    for wit in package_wit().glob("*.wit"):
        shutil.copy(wit, app / "wit" / "deps" / "theater-simple" / wit.name)
    (app / "bare_app.py").write_text(BARE_APP)
    command, _ = tool_command()
    subprocess.run([*command, "-q", "-d", str(app / "wit"), "componentize", "bare_app", "-p", str(app), "-o",
                    str(cached), "--stub-wasi"], check=True)
    return cached.read_bytes()


# Floors: bare wasmtime-py ---------------------------------------------------------------------------------------


class Bare:
    """One instance of the component with a no-op ``runtime.log`` and every other import trapping."""

    def __init__(self, engine: wasmtime.Engine, component: wc.Component) -> None:
        linker = wc.Linker(engine)
        with linker.root() as root:
            with root.add_instance("theater:simple/runtime") as runtime:
                runtime.add_func("log", lambda store, msg: None)
        linker.define_unknown_imports_as_traps(component)
        self.store = wasmtime.Store(engine)
        self.store.set_fuel(10**12)
        self.store.set_epoch_deadline(10**9)
        self.instance = linker.instantiate(self.store, component)
        self.component = component

    def func(self, interface: str, name: str) -> Any:
        parent = self.component.get_export_index(interface)
        return self.instance.get_func(self.store, self.component.get_export_index(name, parent))


def bare_start(engine: wasmtime.Engine, artifact: bytes, runs: int, *, copy: bool = True) -> tuple[float, float]:
    """Median seconds of deserialize + instantiate, and of that plus the init call (``copy``: wasmtime-py's own
    deserialize, which copies the bytes first; else Theater's, which does not)."""
    plain, with_init = [], []
    deserialize = wc.Component.deserialize if copy else _wasmtime.deserialize
    for _ in range(runs):
        started = time.perf_counter()
        component = deserialize(engine, artifact)
        bare = Bare(engine, component)
        plain.append(time.perf_counter() - started)
        bare.func("theater:simple/actor", "init")(bare.store, None, ("bench",))
        with_init.append(time.perf_counter() - started)
    return statistics.median(plain), statistics.median(with_init)


def _instantiate_only(engine: wasmtime.Engine, artifact: bytes, runs: int) -> float:
    """Median seconds of instantiating an already deserialized component."""
    component = wc.Component.deserialize(engine, artifact)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        Bare(engine, component)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def bare_sends(engine: wasmtime.Engine, component: wc.Component, n: int, init_state: bytes | None = None) -> float:
    """Direct handle-send calls per second, the state passed along as the runtime would."""
    bare = Bare(engine, component)
    (state,) = bare.func("theater:simple/actor", "init")(bare.store, init_state, ("bench",))
    send = bare.func("theater:simple/message-server-client", "handle-send")
    state = state.value if hasattr(state, "value") else state
    started = time.perf_counter()
    for _ in range(n):
        result = send(bare.store, state, (b"+1",))
        result = result.value if hasattr(result, "value") else result
        state = result[0]
    return n / (time.perf_counter() - started)


def bare_sends_fsync(engine: wasmtime.Engine, component: wc.Component, n: int, path: Path) -> float:
    """Direct handle-send calls per second, each followed by one durable (fsynced) LMDB commit of its state."""
    import lmdb

    env = lmdb.open(str(path), map_size=1 << 30)
    bare = Bare(engine, component)
    (state,) = bare.func("theater:simple/actor", "init")(bare.store, None, ("bench",))
    send = bare.func("theater:simple/message-server-client", "handle-send")
    state = state.value if hasattr(state, "value") else state
    started = time.perf_counter()
    for i in range(n):
        result = send(bare.store, state, (b"+1",))
        result = result.value if hasattr(result, "value") else result
        state = result[0]
        with env.begin(write=True) as txn:
            txn.put(i.to_bytes(8, "big"), state or b"")
    rate = n / (time.perf_counter() - started)
    env.close()
    return rate


# Theater ----------------------------------------------------------------------------------------------------------


def theater_start(home: Path, runs: int) -> tuple[float, float]:
    """Median seconds of a start in a fresh runtime (compiled form read from the store) and in a warm one."""
    fresh, warm = [], []
    with Theater(home) as theater:
        theater.start(COUNTER / "manifest.toml")  # compile once, cached in the home
    for _ in range(runs):
        with Theater(home) as theater:  # a fresh runtime: the compiled form comes from the store
            started = time.perf_counter()
            theater.start(COUNTER / "manifest.toml")
            fresh.append(time.perf_counter() - started)
            started = time.perf_counter()
            theater.start(COUNTER / "manifest.toml")
            warm.append(time.perf_counter() - started)
    return statistics.median(fresh), statistics.median(warm)


def theater_sends(home: Path, n: int, durability: str, pipelined: bool, init_state: bytes | None = None) -> float:
    with Theater(home, durability=durability) as theater:
        actor = theater.start(COUNTER / "manifest.toml", init_state=init_state)
        started = time.perf_counter()
        if pipelined:
            target = theater.actor(actor)
            for future in [theater.router.deliver_send(target, b"+1") for _ in range(n)]:
                future.result()
        else:
            for _ in range(n):
                theater.send(actor, b"+1")
        return n / (time.perf_counter() - started)


def theater_rss(home: Path, actors: int) -> float:
    with Theater(home) as theater:
        theater.start(COUNTER / "manifest.toml")
        before = rss_mb()
        for _ in range(actors):
            theater.start(COUNTER / "manifest.toml")
        return (rss_mb() - before) / actors


def bare_rss(engine: wasmtime.Engine, component: wc.Component, actors: int) -> float:
    keep = [Bare(engine, component)]
    keep[0].func("theater:simple/actor", "init")(keep[0].store, None, ("bench",))
    before = rss_mb()
    for _ in range(actors):
        bare = Bare(engine, component)
        bare.func("theater:simple/actor", "init")(bare.store, None, ("bench",))
        keep.append(bare)
    return (rss_mb() - before) / actors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--actors", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5, help="starts to take the median of")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="theater-bench-python-"))
    try:
        result = build_project(COUNTER, cache_dir=CACHE)
        wasm = result.wasm.read_bytes()
        print(f"counter: {result.how}; componentize-py {result.tool_version}; SDK {SDK_DIR}", flush=True)
        engine = Engine()
        compile_started = time.perf_counter()
        component = engine.compile(wasm)
        compile_s = time.perf_counter() - compile_started
        artifact = component.serialize()
        bare = bare_component(work)

        print("\nsize")
        line("component (counter + SDK)", len(wasm) / 1e6, "MB", len(bare) / 1e6, "componentize-py minimal")
        line("compiled artifact (cached per machine)", len(artifact) / 1e6, "MB")
        line("compile once (wasmtime, cranelift)", compile_s, "s")

        print("\nstart (compiled form cached)")
        plain_s, init_s = bare_start(engine.wasmtime, artifact, args.runs)
        fresh_s, warm_s = theater_start(work / "h-start", args.runs)
        line("Theater.start, fresh runtime (artifact from store)", fresh_s * 1000, "ms", init_s * 1000,
             "deserialize+instantiate+init", "<= x1.2", fresh_s / init_s <= 1.2)
        _, nocopy_s = bare_start(engine.wasmtime, artifact, args.runs, copy=False)
        line("  the same next to a deserialize without wasmtime-py's copy", fresh_s * 1000, "ms", nocopy_s * 1000,
             "the same, no copy of the artifact")
        warm_floor = (init_s - plain_s) + _instantiate_only(engine.wasmtime, artifact, args.runs)
        line("Theater.start, warm runtime (artifact in memory)", warm_s * 1000, "ms", warm_floor * 1000,
             "instantiate+init", "<= x1.5", warm_s / warm_floor <= 1.5)
        line("  (floor: deserialize+instantiate, no init)", plain_s * 1000, "ms")

        print(f"\nmessages through the counter ({args.messages}, one runtime/log host call each)")
        floor = bare_sends(engine.wasmtime, component, args.messages)
        fsync_floor = bare_sends_fsync(engine.wasmtime, component, args.messages // 2, work / "floor-fsync")
        for durability, pipelined in (("sync", False), ("buffered", False), ("sync", True)):
            rate = theater_sends(work / f"h-{durability}-{pipelined}", args.messages, durability, pipelined)
            name = f"Theater.send, {durability}" + (", pipelined" if pipelined else ", one at a time")
            if durability == "sync" and not pipelined:
                line(name, rate, "msg/s", fsync_floor, "direct export call + 1 fsync", ">= x0.8",
                     rate / fsync_floor >= 0.8)
            elif pipelined:
                line(name, rate, "msg/s", floor, "direct export calls", ">= x0.8", rate / floor >= 0.8)
            else:
                line(name, rate, "msg/s", floor, "direct export calls")
        big = json.dumps({"count": 0, "pad": "x" * 100_000}).encode()
        rate = theater_sends(work / "h-big", max(args.messages // 3, 50), "sync", True, init_state=big)
        big_floor = bare_sends(engine.wasmtime, component, max(args.messages // 3, 50), init_state=big)
        line(f"Theater.send, sync, pipelined, {len(big) // 1000} KB JSON state", rate, "msg/s", big_floor,
             "direct export calls, same state", ">= 200 msg/s", rate >= 200)

        print(f"\nresident memory per actor ({args.actors} actors)")
        line("Theater actor (instance, thread, mailbox)", theater_rss(work / "h-rss", args.actors), "MB",
             bare_rss(engine.wasmtime, component, args.actors), "bare instance")
        (work / "counter.cwasm").write_bytes(artifact)  # the compiled image as a file, mapped by wasmtime
        mapped = wc.Component.deserialize_file(engine.wasmtime, str(work / "counter.cwasm"))
        line("bare instance, compiled image mapped from a file", bare_rss(engine.wasmtime, mapped, args.actors),
             "MB", bare_rss(engine.wasmtime, component, args.actors), "bare instance, image deserialized from bytes")
        engine.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nrss of this process at the end: {rss_mb():,.0f} MB (pid {os.getpid()})")


if __name__ == "__main__":
    main()
