"""The engine's memory settings suit many small instances: an idle instance costs neither gigabytes of address
space nor a memory mapping of its own, and a memory still grows far past its first page."""

from __future__ import annotations

import resource
from pathlib import Path

import wasmtime
import wasmtime.component as wc

from replay.engine import make_engine
from tests.components import wat

INSTANCES = 2000


def mapped() -> tuple[int, int]:
    """(memory mappings, bytes of address space) of this process now."""
    mappings = len(Path("/proc/self/maps").read_text().splitlines())
    return mappings, int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()


def test_many_small_instances_cost_neither_address_space_nor_a_mapping_each():
    engine = make_engine()
    component = wc.Component(engine, wat.counter_actor())
    linker = wc.Linker(engine)
    linker.define_unknown_imports_as_traps(component)

    def instance() -> tuple[wasmtime.Store, wc.Instance]:
        store = wasmtime.Store(engine)
        store.set_fuel(1 << 30)
        store.set_epoch_deadline(1 << 30)
        return store, linker.instantiate(store, component)

    kept = [instance() for _ in range(20)]
    mappings_before, space_before = mapped()
    kept += [instance() for _ in range(INSTANCES)]
    mappings_after, space_after = mapped()
    # wasmtime's defaults: two mappings and over 4 GiB of address space per instance (8,000 mappings here).
    assert mappings_after - mappings_before < INSTANCES // 10
    assert (space_after - space_before) / INSTANCES < 1 << 20
    assert len(kept) == INSTANCES + 20


def test_a_memory_grows_far_past_its_first_page():
    engine = make_engine()
    module = wasmtime.Module(engine, """
        (module (memory (export "memory") 1)
          (func (export "grow") (param $pages i32) (result i32)
            (drop (memory.grow (local.get $pages)))
            (i32.store (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 4)) (i32.const 7))
            (i32.load (i32.sub (i32.mul (memory.size) (i32.const 65536)) (i32.const 4)))))
    """)
    store = wasmtime.Store(engine)
    store.set_epoch_deadline(1 << 30)
    store.set_fuel(1 << 30)
    instance = wasmtime.Instance(store, module, [])
    grow = instance.exports(store)["grow"]
    memory = instance.exports(store)["memory"]
    for pages in (1, 15, 1024, 4096):  # the last: to 320 MiB, moved to a new mapping each time
        assert grow(store, pages) == 7
    assert memory.size(store) == 1 + 1 + 15 + 1024 + 4096
