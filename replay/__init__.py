"""Deterministic execution of recorded history.

The wasmtime engine settings that make execution deterministic (``engine``), the record/replay boundary
(``boundary``, with value conversion in ``values``), re-execution of a chain (``replayer``) and time travel
(``history``). Imports ``store`` and wasmtime only: it re-executes an actor from a chain and the blob store
alone, with no running runtime, no handlers and no network.
"""

from replay.boundary import Boundary, CallResult, Limits, export_functions, import_functions
from replay.engine import DETERMINISTIC, WASMTIME_VERSION, Engine, EngineSettings
from replay.errors import (
    ComponentError,
    Divergence,
    GuestFault,
    RecordIncomplete,
    ReplayError,
    SettingsMismatch,
    WasmError,
)
from replay.history import CallView, call_around, state_at, state_event_at
from replay.replayer import Replayer, ReplayReport

__all__ = [
    "DETERMINISTIC",
    "WASMTIME_VERSION",
    "Boundary",
    "CallResult",
    "CallView",
    "ComponentError",
    "Divergence",
    "Engine",
    "EngineSettings",
    "GuestFault",
    "Limits",
    "RecordIncomplete",
    "ReplayError",
    "ReplayReport",
    "Replayer",
    "SettingsMismatch",
    "WasmError",
    "call_around",
    "export_functions",
    "import_functions",
    "state_at",
    "state_event_at",
]
