"""Life inside a component built with ``--stub-wasi``: what the SDK changes so mistakes raise instead of trapping.

Such a component has no operating system: every WASI import is a stub that traps, and a trap poisons the
instance. The actor module is imported at build time (componentize-py pre-initialises the component), where files
can still be read; from the first export call on (``seal``) the SDK:

- makes the clock, sleeping, entropy and ``open`` raise ``SandboxError`` naming the host capability to use;
- refuses imports of modules that were not imported at build time (they would have to be read from files);
- serves ``linecache`` from sources read at build time (``preload_sources``), so tracebacks keep their lines,
  and formats traceback frames plainly (CPython's caret highlighting traps in the component);
- gives ``logging`` a fixed clock (a log record's timestamp is not an input of the actor).

Nothing is changed on a host (``sys.platform`` is not ``wasi``): the SDK's own tests run in CPython.
"""

import builtins
import linecache
import logging
import os
import re
import sys
import time
import traceback
from typing import Any

from ._host import SandboxError

_USER_FILE = re.compile(r"^/\d+/")
_flags = {"live": False}

_CLOCK_HINT = "use theater_sdk.timing.now() (milliseconds since the epoch; grant the timing handler)"
_BLOCKED = (
    (time, "time", "time.time", _CLOCK_HINT),
    (time, "time_ns", "time.time_ns", _CLOCK_HINT),
    (time, "monotonic", "time.monotonic", _CLOCK_HINT),
    (time, "monotonic_ns", "time.monotonic_ns", _CLOCK_HINT),
    (time, "perf_counter", "time.perf_counter", _CLOCK_HINT),
    (time, "perf_counter_ns", "time.perf_counter_ns", _CLOCK_HINT),
    (time, "process_time", "time.process_time", _CLOCK_HINT),
    (time, "process_time_ns", "time.process_time_ns", _CLOCK_HINT),
    (time, "sleep", "time.sleep", "use theater_sdk.timing.sleep(ms) (grant the timing handler)"),
    (os, "urandom", "os.urandom", "use theater_sdk.random.random_bytes(n) (grant the random handler)"),
    (builtins, "open", "open", "an actor has no file system; files read while the module is imported at build "
     "time are part of the component"),
)


def live() -> bool:
    """True once the component is running (the first export call has begun), False at build time."""
    return _flags["live"]


def seal() -> None:
    """Mark the component as running; inside a component, install the guards (once)."""
    if _flags["live"]:
        return
    _flags["live"] = True
    if sys.platform != "wasi":
        return
    for owner, name, shown, hint in _BLOCKED:
        setattr(owner, name, _refuse(f"{shown}()", hint))
    linecache.checkcache = _no_checkcache
    linecache.updatecache = _no_updatecache
    traceback.StackSummary.format_frame_summary = _plain_frame  # type: ignore[method-assign]
    logging.time = _FixedClock()  # type: ignore[attr-defined]
    sys.meta_path.insert(0, _BuildTimeImportsOnly())


def preload_sources() -> None:
    """Read the source of every module imported from the project or the SDK into ``linecache`` (build time)."""
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and _USER_FILE.match(path):
            linecache.getlines(path)


def _refuse(what: str, hint: str) -> Any:
    def refused(*args: Any, **kwargs: Any) -> Any:
        raise SandboxError(f"{what} is not available inside an actor: {hint}")

    return refused


def _no_checkcache(filename: str | None = None) -> None:
    """Keep the sources read at build time: checking them would need the file system."""


def _no_updatecache(filename: str, module_globals: Any = None) -> list[str]:
    return []


def _plain_frame(self: traceback.StackSummary, frame: traceback.FrameSummary, **kwargs: Any) -> str:
    """One traceback frame: where, and its source line when it was read at build time; the sandbox's own frames
    (the guards raising) are left out, and so is the ``/N/`` prefix of the file name."""
    if frame.filename == __file__:
        return ""
    row = f'  File "{_USER_FILE.sub("", frame.filename)}", line {frame.lineno}, in {frame.name}\n'
    line = linecache.getline(frame.filename, frame.lineno or 0).strip()
    return row + (f"    {line}\n" if line else "")


class _FixedClock:
    """What ``logging`` sees as ``time``: a clock stopped at 0, everything else from the real module."""

    def time(self) -> float:
        return 0.0

    def time_ns(self) -> int:
        return 0

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


class _BuildTimeImportsOnly:
    """A meta path finder that refuses every import not already done at build time."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        raise ImportError(
            f"module {name!r} was not imported when the actor was built, and a running actor cannot read files: "
            "import it at the top of your module",
            name=name,
        )
