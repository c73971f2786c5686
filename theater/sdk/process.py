"""The ``process`` interface (handler ``process``): programs the manifest lists in ``allowed_programs``.

``run`` starts one (no shell: ``args`` are passed as they are) and returns its pid. Its output and exit arrive as
calls of the actor's ``on_process_stdout(pid, data)``, ``on_process_stderr(pid, data)`` and
``on_process_exit(pid, code)`` when the actor's world exports ``theater:simple/process-handlers``; each is recorded
in the chain. A process dies with the actor.
"""

from collections.abc import Mapping, Sequence

from ._host import binding, call

MODES = ("raw", "line-by-line", "json", "chunked")


def _mode(name: str) -> object:
    if name not in MODES:
        raise ValueError(f"output mode must be one of {MODES}, got {name!r}")
    module = binding("process")
    return getattr(module, "OutputMode_" + "".join(part.capitalize() for part in name.split("-")))()


def run(
    program: str,
    args: Sequence[str] = (),
    *,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
    stdout: str = "line-by-line",
    stderr: str = "line-by-line",
    chunk_size: int | None = None,
    timeout_s: int | None = None,
    buffer_size: int = 4096,
) -> int:
    """Start ``program`` with ``args``; returns its pid.

    Raises:
        HostError: the program or the directory is not granted, or too many processes run.
    """
    module = binding("process")
    config = module.ProcessConfig(
        program=program, args=[str(a) for a in args], cwd=cwd, env=sorted((env or {}).items()),
        buffer_size=buffer_size, stdout_mode=_mode(stdout), stderr_mode=_mode(stderr), chunk_size=chunk_size,
        execution_timeout=timeout_s,
    )
    return call("process", "os_spawn", config)


def write_stdin(pid: int, data: bytes) -> int:
    """Write to the process's stdin; returns how many bytes it took (0 when its pipe is full)."""
    return call("process", "os_write_stdin", pid, bytes(data))


def running(pid: int) -> bool:
    """Whether the process still runs."""
    return bool(call("process", "os_status", pid).running)


def signal(pid: int, number: int) -> None:
    """Send signal ``number`` to the process."""
    call("process", "os_signal", pid, number)


def kill(pid: int) -> None:
    """Kill the process (its exit arrives as ``on_process_exit`` with -9)."""
    call("process", "os_kill", pid)
