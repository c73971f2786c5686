"""Running a program for a handler: no shell, bounded output, a timeout, and a stop of the actor ends it.

Shared by ``filesystem.execute-command``; the program is started with an argument list (never through a shell, so
``;``, ``|``, ``$(...)`` or ``*`` in an argument are just characters), stdin closed, and the environment it is given.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from dataclasses import dataclass
from typing import IO

_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True, kw_only=True)
class Outcome:
    """How a program ended.

    Attributes:
        stdout, stderr: what it wrote, at most the limit each.
        exit_code: its exit status (negative: the signal that ended it), None when it was killed by us.
        problem: why it was killed (timeout, too much output, the actor stopping), else None.
    """

    stdout: bytes
    stderr: bytes
    exit_code: int | None
    problem: str | None


def run_program(
    argv: list[str], *, cwd: str, env: dict[str, str], timeout_s: float, max_output: int, stop: threading.Event,
    pass_fds: tuple[int, ...] = (),
) -> Outcome:
    """Run ``argv`` to its end, or kill it (and its process group) at ``timeout_s``, when either stream passes
    ``max_output`` bytes, or when ``stop`` is set.

    Raises:
        OSError: it could not be started (no such program, not executable).
    """
    proc = subprocess.Popen(
        argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        shell=False, start_new_session=True, close_fds=True, pass_fds=pass_fds,
    )
    over = threading.Event()
    done = threading.Event()
    outputs: list[bytearray] = [bytearray(), bytearray()]
    assert proc.stdout is not None and proc.stderr is not None
    readers = [threading.Thread(target=_drain, args=(stream, buffer, max_output, over, done), daemon=True)
               for stream, buffer in zip((proc.stdout, proc.stderr), outputs)]
    for reader in readers:
        reader.start()
    def wait_end() -> None:
        proc.wait()
        done.set()

    waiter = threading.Thread(target=wait_end, daemon=True)
    waiter.start()
    problem = None
    # One wait for whichever comes first: the end, too much output, a stop (each sets ``done``), or the timeout.
    watch = threading.Thread(target=_relay, args=((over, stop), done), daemon=True)
    watch.start()
    if not done.wait(timeout_s):
        problem = f"it ran longer than its timeout of {timeout_s:g} s and was killed"
    elif over.is_set():
        problem = f"it wrote more than the limit of {max_output} bytes of output and was killed"
    elif stop.is_set() and proc.poll() is None:
        problem = "the actor is stopping: it was killed"
    if problem is not None or proc.poll() is None:
        kill_group(proc)
    proc.wait()
    for reader in readers:
        reader.join()
    done.set()  # ends the relay
    if problem is None and over.is_set():
        problem = f"it wrote more than the limit of {max_output} bytes of output and was killed"
    code = None if problem is not None else proc.returncode
    return Outcome(stdout=bytes(outputs[0][:max_output]), stderr=bytes(outputs[1][:max_output]), exit_code=code,
                   problem=problem)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a program started in its own session, with everything it started."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            proc.kill()
        except ProcessLookupError:
            pass


def _drain(stream: IO[bytes], buffer: bytearray, limit: int, over: threading.Event, done: threading.Event) -> None:
    with stream:
        while True:
            chunk = stream.read1(_CHUNK)  # type: ignore[attr-defined]
            if not chunk:
                return
            buffer += chunk
            if len(buffer) > limit:
                over.set()
                done.set()
                return


def _relay(events: tuple[threading.Event, ...], done: threading.Event) -> None:
    """Set ``done`` as soon as any of ``events`` is set (or return once ``done`` is)."""
    while not done.is_set():
        for event in events:
            if event.wait(0.05):
                done.set()
                return
