"""Deterministic execution of recorded history.

The wasmtime engine settings that make execution deterministic (``engine``), the record/replay boundary
(``boundary``, with value conversion in ``values``), re-execution of a chain (``replayer``; ``live`` for a chain
followed while it grows; ``upgrade`` and ``whatif`` for a chain run against another build or other host results,
all on the shared base in ``_reexecution``) and time travel (``history``), with the record read through
``schema`` (every field checked) and checked to fit together by ``continuity``. Imports ``store`` and wasmtime
only: it re-executes an actor from a chain and the blob store alone, with no running runtime, no handlers and no
network.
"""

from replay.boundary import Boundary, CallResult, export_functions, import_functions
from replay.engine import DETERMINISTIC, WASMTIME_VERSION, Engine, EngineSettings
from replay.continuity import Continuity, InterruptedCall, check_continuity
from replay.errors import (
    ComponentError,
    ContinuityBreak,
    Divergence,
    FaultKind,
    GuestFault,
    LimitRefused,
    MalformedRecord,
    RecordIncomplete,
    ReplayError,
    ReplayTimeout,
    SettingsMismatch,
    UnsupportedWasmtime,
    WasmError,
)
from replay.history import CallView, call_around, state_at, state_event_at
from replay.live import LiveReplay
from replay.replayer import Replayer, ReplayLimits, ReplayReport
from replay.schema import Limits

__all__ = [
    "DETERMINISTIC",
    "WASMTIME_VERSION",
    "Boundary",
    "CallResult",
    "CallView",
    "ComponentError",
    "Continuity",
    "ContinuityBreak",
    "Divergence",
    "Engine",
    "EngineSettings",
    "FaultKind",
    "GuestFault",
    "InterruptedCall",
    "LimitRefused",
    "LiveReplay",
    "Limits",
    "MalformedRecord",
    "RecordIncomplete",
    "ReplayError",
    "ReplayLimits",
    "ReplayReport",
    "ReplayTimeout",
    "Replayer",
    "SettingsMismatch",
    "UnsupportedWasmtime",
    "WasmError",
    "call_around",
    "check_continuity",
    "export_functions",
    "import_functions",
    "state_at",
    "state_event_at",
]
