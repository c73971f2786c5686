"""The wasmtime engine settings that make execution deterministic, the compile cache, and error mapping.

Determinism: NaN canonicalization on, deterministic relaxed SIMD, no wasm threads, fuel metering on (the fuel an
export call consumes is recorded and compared on replay). Epoch interruption gives wall-clock deadlines and lets
a ``stop`` end a running call; neither is deterministic, so either is recorded only as a ``deadline`` or
``stopped`` fault with the fuel wasmtime reports in its epoch callback, and replay runs that call with that much
fuel (in a tight loop without calls wasmtime has not written its counter back, so the figure can be lower than
what was burned: docs/design.md).

Host-call data: wasmtime lifts every value a guest hands out (an export's result, an import's arguments) into a
generic value of ``VAL_BYTES`` bytes per element, ``list<u8>`` included, and refuses to lift more than
``HOSTCALL_FUEL_BYTES`` per crossing. wasmtime-py 50's C API has no way to raise that budget, so at most
``MAX_LIFTED_ELEMENTS`` elements can leave a guest in one crossing; ``MAX_MESSAGE_BYTES`` is the largest message
the runtime lets an actor accept, with room for the rest of a result. The budget is fixed by the wasmtime version,
which every chain records, so it is the same on replay.

Compiled components are cached in the home's artifact cache (``store.artifacts``), never in the blob store or under
a label: a compiled artifact is native code, and only an artifact sealed with the home's key (so compiled by this
home's engine from the component blob) is ever deserialized. Its name holds the component hash, the wasmtime version
and the settings digest, so a component compiles once per home and engine configuration. An artifact without a
valid seal is logged, ignored and replaced by a fresh compilation from the component blob.
"""

from __future__ import annotations

import importlib.metadata
import logging
import threading
import weakref
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

import blake3
import cbor2
import wasmtime
import wasmtime.component as wc

from replay import _wasmtime
from replay.errors import ComponentError, FaultKind, GuestFault, SettingsMismatch
from store import Store
from store.errors import ArtifactRejected, ChecksumMismatch, StoreWriteError

WASMTIME_VERSION = importlib.metadata.version("wasmtime")
EPOCH_TICK_S = 0.01
HOSTCALL_FUEL_BYTES = 128 * 1024 * 1024  # wasmtime's default hostcall fuel per crossing (not settable in 50.x)
VAL_BYTES = 48  # what wasmtime charges for each lifted element (``size_of::<component::Val>()``)
MAX_LIFTED_ELEMENTS = HOSTCALL_FUEL_BYTES // VAL_BYTES  # 2,796,202
MAX_MESSAGE_BYTES = 5 * 512 * 1024  # 2.5 MiB: one message, its state or response, fits in one crossing
MEMORY_GROWTH_RESERVE = 0  # bytes reserved beyond a linear memory's size when it grows (see ``make_engine``)
_HOSTCALL_FUEL_TEXT = "too much data is being copied between the host and the guest"

log = logging.getLogger("replay.engine")

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineSettings:
    """Everything about the engine that can change what a guest computes or how much fuel it burns."""

    nan_canonicalization: bool = True
    relaxed_simd_deterministic: bool = True
    wasm_threads: bool = False
    consume_fuel: bool = True
    cranelift_opt_level: str = "speed"

    def record(self) -> dict[str, Any]:
        """The settings as recorded in an actor's creation event, with the wasmtime version."""
        return {**asdict(self), "wasmtime": WASMTIME_VERSION}

    def digest(self) -> str:
        """A short hex digest of the recorded settings, for cache keys."""
        return blake3.blake3(cbor2.dumps(self.record(), canonical=True)).hexdigest()[:16]


DETERMINISTIC = EngineSettings()


def check_recorded(recorded: dict[str, Any]) -> EngineSettings:
    """The settings to replay a chain recorded with ``recorded``.

    Raises:
        SettingsMismatch: a setting this build cannot honour, or another wasmtime version (fuel accounting and
            code generation may differ between versions).
    """
    if recorded.get("wasmtime") != WASMTIME_VERSION:
        raise SettingsMismatch("wasmtime version", recorded.get("wasmtime"), WASMTIME_VERSION)
    known = set(asdict(DETERMINISTIC))
    for key in recorded:
        if key != "wasmtime" and key not in known:
            raise SettingsMismatch(key, recorded[key], "unknown to this build")
    fields = {k: v for k, v in recorded.items() if k != "wasmtime"}
    if not fields.get("consume_fuel", False) or fields.get("wasm_threads", False):
        raise SettingsMismatch("consume_fuel/wasm_threads", fields, "fuel on, threads off")
    return EngineSettings(**fields)


def make_engine(settings: EngineSettings = DETERMINISTIC) -> wasmtime.Engine:
    """A wasmtime engine configured by ``settings``, with epoch interruption for deadlines.

    Installs Theater's patches to wasmtime-py first (``replay._wasmtime``), so every component this engine runs
    converts values the way ``replay.values`` expects.

    Raises:
        UnsupportedWasmtime: the installed wasmtime-py is not the version the patches are for.
    """
    _wasmtime.install()
    config = wasmtime.Config()
    config.wasm_component_model = True
    config.cranelift_nan_canonicalization = settings.nan_canonicalization
    config.wasm_relaxed_simd_deterministic = settings.relaxed_simd_deterministic
    config.wasm_threads = settings.wasm_threads
    config.consume_fuel = settings.consume_fuel
    config.cranelift_opt_level = settings.cranelift_opt_level
    config.epoch_interruption = True
    # Memory for many small instances as well as a few large ones: each linear memory is mapped at its size, with
    # no reservation beyond it and no guard pages, so an idle instance costs the pages it touched, not gigabytes of
    # address space (by default 4 GiB + guards each: ``Cannot allocate memory`` after ~30,000 instances), and its
    # mapping can merge with its neighbours' (the system allows 65,530 mappings per process). Bounds are checked
    # by the compiled code instead of guard pages; a memory that grows moves, ``MEMORY_GROWTH_RESERVE`` at a time
    # beyond what it asked for. Neither changes what a guest computes or the fuel it burns, so they are not part of
    # the recorded ``EngineSettings``; wasmtime refuses an artifact compiled with other memory settings, and the
    # cache then compiles it again (``Engine._from_cache``).
    config.memory_reservation = 0
    config.memory_guard_size = 0
    config.memory_reservation_for_growth = MEMORY_GROWTH_RESERVE
    return wasmtime.Engine(config)


class Engine:
    """A wasmtime engine, its settings, its epoch ticker and its compile cache over a store."""

    def __init__(self, settings: EngineSettings = DETERMINISTIC) -> None:
        self.settings = settings
        self.wasmtime = make_engine(settings)
        self._components: dict[bytes, wc.Component] = {}
        # What callers derive from a compiled component once (its types, a linker: ``replay.boundary.shape``),
        # kept as long as the component object lives.
        self._derived: weakref.WeakKeyDictionary[wc.Component, dict[str, Any]] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    def start_ticker(self) -> None:
        """Start the thread that advances the epoch every 10 ms (deadlines are counted in ticks)."""
        with self._lock:
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="theater-epoch", daemon=True)
                self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(EPOCH_TICK_S):
            self.wasmtime.increment_epoch()

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()

    def derived(self, component: wc.Component, what: str, make: Callable[[], _T]) -> _T:
        """The value ``make()`` derives from ``component`` under the name ``what``, made on first use and kept as
        long as the component; ``make`` must not keep a reference to the component. Any thread may call it."""
        with self._lock:
            found = self._derived.get(component, {}).get(what)
        if found is not None:
            return found  # type: ignore[no-any-return]
        value = make()  # outside the lock: two threads may both make it; the first one kept wins
        with self._lock:
            return self._derived.setdefault(component, {}).setdefault(what, value)  # type: ignore[no-any-return]

    def artifact_name(self, component_hash: bytes) -> str:
        """The name under which the compiled form of a component is cached (component, wasmtime, settings)."""
        return f"{component_hash.hex()}.wasmtime-{WASMTIME_VERSION}.{self.settings.digest()}"

    def load(self, store: Store, component_hash: bytes, *, wasm: bytes | None = None) -> wc.Component:
        """The compiled component with this hash: from memory, else the home's sealed cache, else compiled now.

        Compiling reads the component blob, checked against its hash; the result is sealed into the cache
        (unless the store is read-only). Nothing else is ever deserialized. ``wasm`` gives the component's bytes
        when they are not stored yet (the caller stores them once they compile); they must hash to
        ``component_hash``.

        Raises:
            NotFoundError: the component is not in the store.
            ChecksumMismatch: the stored component's bytes do not hash to its hash.
            ComponentError: the bytes are not a valid component.
        """
        cached = self._components.get(component_hash)
        if cached is not None:
            return cached
        name = self.artifact_name(component_hash)
        component = self._from_cache(store, name)
        if component is None:
            if wasm is not None and (actual := blake3.blake3(wasm).digest()) != component_hash:
                raise ChecksumMismatch("component", component_hash, actual)
            component = self.compile(wasm if wasm is not None else _component_bytes(store, component_hash),
                                     what=f"component {component_hash.hex()[:16]}")
            self._keep(store, name, component)
        self._components[component_hash] = component
        return component

    def _from_cache(self, store: Store, name: str) -> wc.Component | None:
        """The cached compiled component, only when its seal proves this home's engine made it; else None."""
        try:
            artifact = store.artifacts.get(name)
        except ArtifactRejected as exc:
            log.warning("%s; compiling the component from its blob instead", exc)
            return None
        if artifact is None:
            return None
        try:
            component: wc.Component = _wasmtime.deserialize(self.wasmtime, artifact)
            return component
        except wasmtime.WasmtimeError as exc:
            log.warning("the compiled artifact %s is stale (%s); compiling again", name, _first_line(str(exc)))
            return None

    def _keep(self, store: Store, name: str, component: wc.Component) -> None:
        """Seal a freshly compiled component into the cache; a cache that cannot be written is not an error."""
        try:
            store.artifacts.put(name, component.serialize())
        except StoreWriteError as exc:
            log.warning("%s; the component will be compiled again next time", exc)

    def compile(self, wasm: bytes, *, what: str = "component") -> wc.Component:
        """Compile component bytes (binary or text).

        Raises:
            ComponentError: they are not a valid component for this engine.
        """
        try:
            return wc.Component(self.wasmtime, wasm)
        except wasmtime.WasmtimeError as exc:
            raise ComponentError(what, _first_line(str(exc))) from None


def _component_bytes(store: Store, component_hash: bytes) -> bytes:
    """The component blob, checked against its hash (by the blob store) before anything compiles it.

    Raises:
        NotFoundError: it is not stored. ChecksumMismatch: its bytes do not hash to ``component_hash``.
    """
    try:
        return store.blobs.get(component_hash)
    except ChecksumMismatch as exc:
        raise ChecksumMismatch("component", exc.expected, exc.actual) from None


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return "; ".join(lines[:4]) if lines else "unknown error"


def _cause(text: str) -> str:
    """The ``Caused by`` part of a wasmtime error (the trap reason), else its first lines."""
    head, sep, cause = text.partition("Caused by:")
    if sep:
        return _first_line(cause)
    return _first_line(head)


def map_wasm_error(exc: BaseException, export: str, *, fuel_left: int | None) -> GuestFault:
    """Turn what wasmtime raised from an export call into a ``GuestFault`` (the one choke point)."""
    text = _cause(str(exc))
    low = text.lower()
    if _HOSTCALL_FUEL_TEXT in low:
        return GuestFault(FaultKind.TRAP, export, "handed more data to the host in one call than wasmtime can take: "
                          f"at most {MAX_LIFTED_ELEMENTS} list elements (bytes) per call ({text})")
    if fuel_left == 0 or "all fuel consumed" in low or "out of fuel" in low:
        return GuestFault(FaultKind.FUEL, export, "ran out of fuel")
    if "interrupt" in low or "epoch" in low:
        return GuestFault(FaultKind.DEADLINE, export, "passed its wall-clock deadline")
    if "memory" in low and ("limit" in low or "grow" in low or "maximum" in low):
        return GuestFault(FaultKind.MEMORY, export, text)
    return GuestFault(FaultKind.TRAP, export, text or type(exc).__name__)
