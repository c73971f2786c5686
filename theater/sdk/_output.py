"""``print`` and ``logging`` inside an actor go to the host's ``runtime.log``, one call per line.

Each line is a host call, so it is recorded in the actor's chain (``theater:simple/runtime/log``) and replayed like
any other input. A partial line (``print(..., end="")``) is written when the export call ends. At build time
(while the module is imported by componentize-py) output goes to the build's own stdout and stderr.
"""

import io
import logging
import sys
from typing import Any

from . import _sandbox
from ._host import BINDINGS

LOG_FORMAT = "%(levelname)s %(name)s: %(message)s"


class LogStream(io.TextIOBase):
    """A text stream whose complete lines become ``runtime.log`` calls.

    Args:
        fallback: where text goes before the component runs (at build time).
    """

    def __init__(self, fallback: Any) -> None:
        super().__init__()
        self._fallback = fallback
        self._pending: list[str] = []

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if not _sandbox.live():
            return self._fallback.write(text) if self._fallback is not None else len(text)
        self._pending.append(text)
        if "\n" in text:
            joined = "".join(self._pending)
            complete, _, rest = joined.rpartition("\n")
            self._pending = [rest] if rest else []
            for line in complete.split("\n"):
                _log(line)
        return len(text)

    def flush(self) -> None:
        if not _sandbox.live():
            if self._fallback is not None:
                self._fallback.flush()
            return
        if self._pending:
            text = "".join(self._pending)
            self._pending = []
            _log(text)


class RuntimeLogHandler(logging.Handler):
    """A ``logging`` handler that sends each formatted record to ``runtime.log``."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
        except Exception:
            self.handleError(record)
            return
        if not _sandbox.live():
            if sys.__stderr__ is not None:
                sys.__stderr__.write(message + "\n")
            return
        flush()
        _log(message)


def _log(line: str) -> None:
    runtime = BINDINGS.get("runtime")
    if runtime is not None:
        runtime.log(line)


_streams: list[LogStream] = []


def install() -> None:
    """Route ``sys.stdout``, ``sys.stderr`` and the root logger (level INFO) to ``runtime.log``."""
    if _streams:
        return
    _streams.append(LogStream(sys.stdout))
    _streams.append(LogStream(sys.stderr))
    sys.stdout, sys.stderr = _streams
    handler = RuntimeLogHandler()
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


def flush() -> None:
    """Write out partial lines (called when an export call ends)."""
    for stream in _streams:
        stream.flush()
