"""Bytes across the sandbox boundary: MB/s of ``list<u8>`` and ``string`` each way next to a plain memmove of the
same bytes, and the cost of an echo request by payload size next to a 64-byte one.

    .venv/bin/python tools/bench_bytes.py              # Theater's bulk list<u8> path (replay._wasmtime)
    .venv/bin/python tools/bench_bytes.py --unpatched  # wasmtime-py's own per-element conversion, for comparison

"into guest" lowers the value as an export's parameter (the guest answers its length); "out of guest" lifts it
as an export's result (the guest hands out that many bytes of its memory); "echo" does both in one call. Calls go
through ``FastFunc``, the runtime's export path. "wasmtime's share alone" times the same call with the values
already converted: wasmtime converts a list to and from its own ``Val`` one element at a time, and that share is
the ceiling of anything done on the Python side. The request figures go through the embedded runtime
(``Theater.request`` on the echo actor, every event durable), each with the page faults of the process per request
(fresh pages the kernel had to zero: wasmtime's per-call arrays when the allocator gives their pages back, see
``replay._wasmtime.tune_allocator``). Ratios and page faults hold on a noisy machine; times do not.
Nothing here is asserted by the tests.
"""

from __future__ import annotations

import argparse
import ctypes
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import wasmtime  # noqa: E402
import wasmtime.component as wc  # noqa: E402

from replay import _wasmtime  # noqa: E402
from replay._wasmtime import FastFunc  # noqa: E402
from replay.engine import Engine  # noqa: E402
from tests.components import wat  # noqa: E402

SIZES = [("64 B", 64), ("4 KiB", 4096), ("64 KiB", 65536), ("1 MiB", 1 << 20)]
TARGET_MB_S = 200.0
TARGET_64K_OVER_64B = 3.0


def best_per_call(fn: Callable[[], object], budget: float = 0.4, at_least: int = 3) -> float:
    """The fastest of repeated calls of ``fn`` (seconds): the floor a call can reach, not its average."""
    best = float("inf")
    spent = 0.0
    runs = 0
    while runs < at_least or spent < budget:
        start = time.perf_counter()
        fn()
        took = time.perf_counter() - start
        best = min(best, took)
        spent += took
        runs += 1
    return best


def memmove_seconds(n: int) -> float:
    source = bytes(n)
    target = ctypes.create_string_buffer(n)
    return best_per_call(lambda: ctypes.memmove(target, source, n))


def mb_s(n: int, seconds: float) -> float:
    return n / seconds / 1e6


def report(name: str, n: int, seconds: float, floor: float) -> None:
    rate = mb_s(n, seconds)
    met = "MET" if rate >= TARGET_MB_S else "NOT MET"
    print(f"{name:<34} {rate:>10,.1f} MB/s   floor (memmove) {mb_s(n, floor):>10,.1f} MB/s   "
          f"ratio {rate / mb_s(n, floor):.4f}   target >= {TARGET_MB_S:.0f} MB/s  {met}", flush=True)


def wasmtime_alone(func: wc.Func, store: wasmtime.Store, value: object) -> float:
    """Seconds for one call of ``func(value)`` with its parameter already in C form and its result freed, not
    converted: wasmtime's own share (its per-element ``Val`` conversion and the guest), which no Python-side path
    can go below."""
    from ctypes import byref, pointer

    ffi = _wasmtime.ffi
    fty = func.type(store)
    params = (ffi.wasmtime_component_val_t * 1)()
    fty.params[0][1].convert_to_c(store, value, pointer(params[0]))
    result = ffi.wasmtime_component_val_t()

    def call() -> None:
        _wasmtime.enter_wasm(lambda: ffi.wasmtime_component_func_call(
            byref(func._func), store._context(), params, 1, byref(result), 1))
        ffi.wasmtime_component_val_delete(byref(result))

    try:
        return best_per_call(call)
    finally:
        ffi.wasmtime_component_val_delete(byref(params[0]))


def boundary(engine: Engine) -> None:
    component = engine.compile(wat.echo_component({"echo": ("(list u8)", 2), "echo-string": ("string", 2)}))
    store = wasmtime.Store(engine.wasmtime)
    store.set_fuel(1 << 60)
    store.set_epoch_deadline(1 << 60)
    instance = wc.Linker(engine.wasmtime).instantiate(store, component)

    def export(name: str) -> FastFunc:
        func = instance.get_func(store, name)
        assert func is not None
        return FastFunc(func, store)

    echo, echo_string, take, give = (export(n) for n in ("echo", "echo-string", "take", "give"))
    funcs = {name: instance.get_func(store, name) for name in ("echo", "take", "give")}
    print("== list<u8> and string across the boundary ==")
    for label, n in SIZES[1:]:
        data = bytes(range(256)) * (n // 256)
        text = "a" * n
        floor = memmove_seconds(n)
        assert take(data) == n and len(give(n)) == n and echo(data) == data and echo_string(text) == text
        report(f"list<u8> into guest, {label}", n, best_per_call(lambda data=data: take(data)), floor)
        report(f"list<u8> out of guest, {label}", n, best_per_call(lambda n=n: give(n)), floor)
        report(f"list<u8> echo (in + out), {label}", 2 * n, best_per_call(lambda data=data: echo(data)), floor * 2)
        report(f"string echo (in + out), {label}", 2 * n, best_per_call(lambda text=text: echo_string(text)), floor * 2)
        for name, arg, moved in (("take", data, n), ("give", n, n), ("echo", data, 2 * n)):
            alone = wasmtime_alone(funcs[name], store, arg)  # type: ignore[arg-type]
            print(f"  wasmtime's share alone, {name} {label:<7} {mb_s(moved, alone):>10,.1f} MB/s "
                  "(the ceiling of any host-side conversion)", flush=True)


def unpatch() -> None:
    """Put wasmtime-py's own list conversion back (``install()`` patches it again, so call this after it)."""
    for name, method in _wasmtime.list_conversions_unpatched().items():
        setattr(_wasmtime._types.ListType, name, method)


def requests(tmp: Path, unpatched: bool) -> None:
    from theater.runtime import Theater

    print("== echo request through the runtime (Theater.request, every event durable) ==")
    (tmp / "echo.wat").write_text(wat.echo_actor())
    (tmp / "echo.toml").write_text('name = "echo"\ncomponent = "echo.wat"\n')
    with Theater(tmp / "home") as theater:
        if unpatched:
            unpatch()
        actor = theater.start(tmp / "echo.toml")
        costs, faults = {}, {}
        for label, n in SIZES:
            payload = b"x" * n
            assert theater.request(actor, payload) == payload
            calls = [0]

            def request(payload: bytes = payload, calls: list[int] = calls) -> None:
                theater.request(actor, payload)
                calls[0] += 1

            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            costs[label] = best_per_call(request, budget=1.0)
            faults[label] = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / calls[0]
        base = costs["64 B"]
        for label, _ in SIZES:
            ratio = costs[label] / base
            text = f"echo request, {label:<7} {costs[label] * 1000:>10,.2f} ms   floor (64 B request) {base * 1000:,.2f} ms"
            text += f"   ratio {ratio:.2f}"
            if label == "64 KiB":
                text += f"   target <= {TARGET_64K_OVER_64B:.0f}  {'MET' if ratio <= TARGET_64K_OVER_64B else 'NOT MET'}"
            text += f"   ({faults[label]:,.0f} page faults per request)"
            print(text, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--unpatched", action="store_true", help="use wasmtime-py's own list conversion")
    parser.add_argument("--only", choices=["boundary", "requests"])
    args = parser.parse_args()
    engine = Engine()
    if args.unpatched:
        unpatch()
        print("(wasmtime-py's own per-element list conversion)")
    if args.only in (None, "boundary"):
        boundary(engine)
    if args.only in (None, "requests"):
        with tempfile.TemporaryDirectory() as tmp:
            requests(Path(tmp), args.unpatched)


if __name__ == "__main__":
    main()
