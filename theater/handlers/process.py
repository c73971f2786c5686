"""Handler ``process``: operating-system processes an actor starts, each of its outputs delivered as a recorded call.

Config (``[[handlers]] type = "process"``):

- ``allowed_programs``: the programs ``os-spawn`` may start (an absolute path, or a name looked up in the
  runtime's ``PATH``), matched exactly against ``process-config.program``; none by default;
- ``allowed_paths``: absolute directories a process may run in: ``cwd`` must lie inside one (no ``..``; symlinks
  resolved before the check); without ``cwd`` it runs in the first; with none listed nothing can be spawned;
- ``max_processes`` (default 4): processes running at once;
- ``max_output_buffer`` (default 1 MiB): the most output (stdout and stderr together) one process may deliver;
  past it, or past ``MAX_DELIVERIES`` output calls (10 000: short lines), the process is killed;
- ``execution_timeout`` (seconds, default 60): the longest a process runs (``process-config.execution-timeout``
  may ask for less); past it the process is killed.

A process runs without a shell (``program`` and ``args`` are an argument list: a ``;`` or ``$(...)`` is only text),
in its own session, with exactly the environment ``process-config.env`` gives (nothing of the runtime's).
Its stdout and stderr are delivered to the actor's ``theater:simple/process-handlers`` exports, in the output
mode asked for (``raw``: as read, at most ``buffer-size`` bytes a call; ``line-by-line`` and ``json``: one call per
line; ``chunked``: ``chunk-size`` bytes a call), then its exit (``handle-exit``: the exit code, or minus the
signal that ended it: ``-9`` when it was killed for its timeout, its output, ``os-kill`` or the actor ending).
Each delivery is an export call of the actor, recorded in its chain like a message, so replay re-executes it
from the record without any process. ``os-write-stdin``, ``os-status``, ``os-signal`` and ``os-kill`` are import
calls, recorded whole.

Processes an actor started die with it: when it stops, fails, is restarted or the runtime closes, every process
it still runs is killed (with the processes they started), and nothing more of them is delivered to that instance.
A new instance (a restart, a reopen after the runtime stopped) never inherits a process: its handler finds in the
chain every process spawned whose exit was never delivered and delivers ``handle-exit`` with ``-9`` for each.
"""

from __future__ import annotations

import errno
import fcntl
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO, Any, cast

from theater.errors import ManifestError
from theater.handlers._base import Handler, at_most, string_list
from theater.handlers._commands import kill_group
from theater.host import ActorHost, SupervisedActor

MAX_PROCESSES = 4
MAX_OUTPUT_BUFFER = 1024 * 1024
EXECUTION_TIMEOUT = 60
DEFAULT_CHUNK = 4096
MAX_READ = 1 << 16
MAX_DELIVERIES = 10_000  # output calls per process: one line per call must not flood the actor with calls
KEPT_ENDED = 256  # ended processes remembered for os-status

HANDLERS = "theater:simple/process-handlers"
HANDLE_STDOUT = f"{HANDLERS}.handle-stdout"
HANDLE_STDERR = f"{HANDLERS}.handle-stderr"
HANDLE_EXIT = f"{HANDLERS}.handle-exit"
SPAWN_EVENT = "theater:simple/process/os-spawn"
LOST_EXIT = -9  # the exit delivered for a process an earlier instance started and never saw end


class Refused(Exception):
    """A call this handler will not carry out; the message says why (answered as ``err``)."""


@dataclass(slots=True, kw_only=True)
class Running:
    """One process an actor started."""

    proc: subprocess.Popen[bytes]
    start_ms: int
    budget: int
    lock: threading.Lock = field(default_factory=threading.Lock)
    delivered: int = 0
    calls: int = 0
    killed: str | None = None  # why we killed it, if we did
    exit_code: int | None = None
    done: threading.Event = field(default_factory=threading.Event)


class ProcessHandler(Handler):
    """``os-spawn``, ``os-write-stdin``, ``os-status``, ``os-signal`` and ``os-kill`` (see the module)."""

    type = "process"
    interface = "theater:simple/process"
    config_keys = {"allowed_programs": list, "allowed_paths": list, "max_processes": int, "max_output_buffer": int,
                   "execution_timeout": int}
    reaches_host = True

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        super().__init__(actor, config)
        self.programs = tuple(config.get("allowed_programs", ()))
        self.paths = tuple(os.path.realpath(p) for p in config.get("allowed_paths", ()))
        self.max_processes = int(config.get("max_processes", MAX_PROCESSES))
        self.max_output = int(config.get("max_output_buffer", MAX_OUTPUT_BUFFER))
        self.timeout_s = int(config.get("execution_timeout", EXECUTION_TIMEOUT))
        self.processes: dict[int, Running] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._tell_lost()

    @classmethod
    def check_config(cls, source: str, config: dict[str, Any]) -> None:
        super().check_config(source, config)
        field_ = "handlers.process.config"
        string_list(source, cls.type, "allowed_programs", config.get("allowed_programs", []))
        for index, path in enumerate(string_list(source, cls.type, "allowed_paths", config.get("allowed_paths", []))):
            if not os.path.isabs(path):
                raise ManifestError(source, f"{field_}.allowed_paths[{index}]",
                                    f"expected an absolute path, got {path!r}")
        for key in ("max_processes", "max_output_buffer", "execution_timeout"):
            if key in config and config[key] < 1:
                raise ManifestError(source, f"{field_}.{key}", f"expected a positive integer, got {config[key]}")

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        extra = sorted(set(child_config.get("allowed_programs", ())) - set(parent_config.get("allowed_programs", ())))
        if extra:
            return (f"allowed_programs has {extra!r}, not among its parent's "
                    f"{sorted(parent_config.get('allowed_programs', ()))!r}")
        parents = [os.path.realpath(p) for p in parent_config.get("allowed_paths", ())]
        for path in child_config.get("allowed_paths", ()):
            real = os.path.realpath(path)
            if not any(os.path.commonpath([p, real]) == p for p in parents):
                return (f"allowed_paths has {path!r}, not inside any of its parent's "
                        f"{parent_config.get('allowed_paths', [])!r}")
        for key, default in (("max_processes", MAX_PROCESSES), ("max_output_buffer", MAX_OUTPUT_BUFFER),
                             ("execution_timeout", EXECUTION_TIMEOUT)):
            wider = at_most(key, parent_config.get(key, default), child_config.get(key, default))
            if wider:
                return wider
        return None

    def functions(self) -> dict[str, Callable[..., Any]]:
        table: dict[str, Callable[..., Any]] = {
                 "os-spawn": self.os_spawn, "os-write-stdin": self.os_write_stdin, "os-status": self.os_status,
                 "os-signal": self.os_signal, "os-kill": self.os_kill}
        return {name: self._guard(function) for name, function in table.items()}

    def holds_live(self) -> bool:
        """True while a process this actor started is running: putting the actor to sleep would lose it."""
        with self._lock:
            return any(r.proc.poll() is None for r in self.processes.values())

    def close(self) -> None:
        """Kill every process the actor still runs (it stopped, failed, was restarted, or the runtime closes)."""
        with self._lock:
            self._closed = True
            running = list(self.processes.values())
        for r in running:
            self._kill(r, "the actor ended")
        for r in running:
            try:
                r.proc.wait(5)  # reaped before the actor is reported ended: no process of it is left behind
            except subprocess.TimeoutExpired:
                pass

    def _tell_lost(self) -> None:
        """Deliver ``handle-exit`` with ``LOST_EXIT`` for every process an earlier instance of this actor started
        whose exit it was never told (it was killed when that instance ended, or the runtime stopped meanwhile):
        a new instance never inherits a process, and the actor learns so through a recorded call."""
        spawned: dict[int, None] = {}
        exited: set[int] = set()
        for event in self.actor.store.log.events(self.actor.id):
            data = event.data if isinstance(event.data, dict) else {}
            if event.type == SPAWN_EVENT:
                result = data.get("result")
                if isinstance(result, dict) and type(result.get("ok")) is int:
                    spawned[result["ok"]] = None
            elif event.type == "wasm/call" and data.get("export") == HANDLE_EXIT:
                pid = _first_int(data.get("params"))
                if pid is not None:
                    exited.add(pid)
        for pid in spawned:
            if pid not in exited:
                self._deliver(pid, HANDLE_EXIT, LOST_EXIT)

    @staticmethod
    def _guard(function: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any) -> dict[str, Any]:
            try:
                return {"ok": function(*args)}
            except Refused as exc:
                return {"err": str(exc)}

        return guarded

    # Spawning.

    def _cwd(self, cwd: dict[str, Any] | None) -> str:
        if not self.paths:
            raise Refused("no directory is granted to run processes in: the config lists no allowed_paths")
        if cwd is None:
            return self.paths[0]
        path = cwd["some"]
        if not os.path.isabs(path) or ".." in path.split("/") or "\0" in path:
            raise Refused(f"cwd {path!r} must be an absolute path without '..'")
        real = os.path.realpath(path)
        if not any(os.path.commonpath([p, real]) == p for p in self.paths):
            raise Refused(f"cwd {path!r} is not inside allowed_paths {list(self.paths)!r}")
        if not os.path.isdir(real):
            raise Refused(f"cwd {path!r} is not a directory")
        return real

    def os_spawn(self, config: dict[str, Any]) -> int:
        program = config["program"]
        if program not in self.programs:
            raise Refused(f"program {program!r} is not in allowed_programs {list(self.programs)!r}")
        found = program if os.path.isabs(program) else shutil.which(program)
        if found is None:
            raise Refused(f"program {program!r} is allowed but not found on the runtime's PATH")
        cwd = self._cwd(config.get("cwd"))
        env: dict[str, str] = {}
        for name, value in config["env"]:
            if not name or "=" in name or "\0" in name or "\0" in value:
                raise Refused(f"environment variable {name!r} is not a valid name and value")
            env[name] = value
        if any("\0" in a for a in config["args"]):
            raise Refused("an argument holds a NUL")
        wanted = config.get("execution-timeout")
        timeout = self.timeout_s if wanted is None else min(self.timeout_s, wanted["some"])
        with self._lock:
            if self._closed:
                raise Refused("the actor is ending")
            ended = [pid for pid, r in self.processes.items() if r.done.is_set()]
            for pid in ended[:max(0, len(ended) - KEPT_ENDED)]:
                del self.processes[pid]
            running = sum(1 for r in self.processes.values() if r.proc.poll() is None)
            if running >= self.max_processes:
                raise Refused(f"already {running} processes running, the most max_processes = {self.max_processes} "
                              "allows")
            try:
                proc = subprocess.Popen(
                    [found, *config["args"]], cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE, shell=False, start_new_session=True, close_fds=True,
                )
            except OSError as exc:
                raise Refused(f"program {program!r} could not be started: {exc.strerror or exc}") from None
            assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
            flags = fcntl.fcntl(proc.stdin.fileno(), fcntl.F_GETFL)
            fcntl.fcntl(proc.stdin.fileno(), fcntl.F_SETFL, flags | os.O_NONBLOCK)
            record = Running(proc=proc, start_ms=time.time_ns() // 1_000_000, budget=self.max_output)
            self.processes[proc.pid] = record
        size = max(1, min(int(config["buffer-size"] or MAX_READ), MAX_READ))
        chunk = config.get("chunk-size")
        chunk_size = max(1, min(DEFAULT_CHUNK if chunk is None else chunk["some"], MAX_READ))
        readers = [
            threading.Thread(target=self._pump, daemon=True, name=f"process:{proc.pid}:{which}",
                             args=(record, stream, export, _mode(mode), size, chunk_size))
            for which, stream, export, mode in (("out", proc.stdout, HANDLE_STDOUT, config["stdout-mode"]),
                                                ("err", proc.stderr, HANDLE_STDERR, config["stderr-mode"]))
        ]
        for reader in readers:
            reader.start()
        threading.Thread(target=self._watch, args=(record, readers, timeout), daemon=True,
                         name=f"process:{proc.pid}").start()
        return proc.pid

    def _pump(self, r: Running, stream: IO[bytes], export: str, mode: str, size: int, chunk_size: int) -> None:
        """Read one output stream to its end and deliver it in ``mode``."""
        pending = b""
        with stream:
            while True:
                data = stream.read1(size if mode == "raw" else MAX_READ)  # type: ignore[attr-defined]
                if not data:
                    break
                with r.lock:
                    allowed = max(0, r.budget - r.delivered)
                    r.delivered += len(data)
                if len(data) > allowed:
                    data = data[:allowed]
                    self._kill(r, f"it wrote more than max_output_buffer = {self.max_output} bytes")
                if mode == "raw":
                    self._output(r, export, data)
                else:
                    pending += data
                    pending = self._split(r, export, mode, pending, chunk_size)
                if r.killed:
                    break
        if pending:
            self._output(r, export, pending)

    def _output(self, r: Running, export: str, data: bytes) -> None:
        """Deliver one piece of output, unless the process already had its ``MAX_DELIVERIES`` (then kill it)."""
        with r.lock:
            r.calls += 1
            over = r.calls > MAX_DELIVERIES
        if over:
            self._kill(r, f"it produced more than {MAX_DELIVERIES} output calls")
            return
        self._deliver(r.proc.pid, export, data)

    def _split(self, r: Running, export: str, mode: str, pending: bytes, chunk_size: int) -> bytes:
        if mode == "chunked":
            while len(pending) >= chunk_size:
                self._output(r, export, pending[:chunk_size])
                pending = pending[chunk_size:]
            return pending
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            self._output(r, export, line)
        return pending

    def _watch(self, r: Running, readers: list[threading.Thread], timeout: float) -> None:
        """Kill the process at its timeout; once it and its streams are done, deliver its exit."""
        try:
            r.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._kill(r, f"it ran longer than its timeout of {timeout:g} s")
            r.proc.wait()
        for reader in readers:
            reader.join()
        if r.proc.stdin is not None:
            try:
                r.proc.stdin.close()
            except OSError:
                pass
        r.exit_code = r.proc.returncode
        r.done.set()
        self._deliver(r.proc.pid, HANDLE_EXIT, r.exit_code)

    def _deliver(self, pid: int, export: str, value: Any) -> None:
        """Call the actor's export with (pid, value) on its thread: a recorded call, like a message. Once this
        handler is closed nothing more is delivered (the next instance's handler tells what was lost)."""
        actor = cast(SupervisedActor, self.actor)  # the runtime's actor: it runs control operations and calls

        def call() -> None:
            if not self._closed and actor.has_export(export):
                actor.call(export, [pid, value])  # the export's params tuple

        actor.control(call)  # an ended actor refuses it (its future fails): nobody to deliver to

    def _kill(self, r: Running, why: str) -> None:
        with r.lock:
            if r.killed is None and r.proc.poll() is None:
                r.killed = why
                kill_group(r.proc)

    # The other functions.

    def _ours(self, pid: int) -> Running:
        with self._lock:
            found = self.processes.get(pid)
        if found is None:
            raise Refused(f"pid {pid} is not a process this actor started")
        return found

    def os_write_stdin(self, pid: int, data: bytes) -> int:
        r = self._ours(pid)
        if r.proc.poll() is not None or r.proc.stdin is None:
            raise Refused(f"process {pid} has ended")
        try:
            written = os.write(r.proc.stdin.fileno(), data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno in (errno.EPIPE, errno.EBADF):
                raise Refused(f"process {pid} closed its stdin") from None
            raise Refused(f"writing to process {pid}: {exc.strerror}") from None
        return written

    def os_status(self, pid: int) -> dict[str, Any]:
        r = self._ours(pid)
        code = r.proc.poll()
        return {"pid": pid, "running": code is None, "exit-code": None if code is None else {"some": code},
                "start-time": r.start_ms}

    def os_signal(self, pid: int, signal: int) -> None:
        r = self._ours(pid)
        if not 1 <= signal <= 64:
            raise Refused(f"signal {signal} is not a signal number (1 to 64)")
        if r.proc.poll() is not None:
            raise Refused(f"process {pid} has ended")
        try:
            os.kill(pid, signal)
        except (ProcessLookupError, PermissionError, OSError) as exc:
            raise Refused(f"signal {signal} to process {pid}: {exc}") from None

    def os_kill(self, pid: int) -> None:
        r = self._ours(pid)
        if r.proc.poll() is not None:
            raise Refused(f"process {pid} has ended")
        self._kill(r, "os-kill")


def _first_int(params: Any) -> int | None:
    """The pid of a recorded ``handle-exit`` call's params (``[pid, code]``, or that pair inside a list)."""
    while isinstance(params, list) and params:
        if type(params[0]) is int:
            return params[0]
        params = params[0]
    return None


def _mode(mode: Any) -> str:
    """The output mode's case name (recorded variants are ``{case: None}``; an enum-like string is accepted)."""
    if isinstance(mode, dict):
        return next(iter(mode))
    return str(mode)
