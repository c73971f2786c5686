"""The ``filesystem`` interface (handler ``filesystem``): files under the root directory the manifest grants.

Paths are relative to that root; ``..``, absolute paths and symlinks are refused. Every read is recorded with the
bytes read, so a replay needs none of the files.
"""

import builtins
from collections.abc import Sequence
from dataclasses import dataclass

from ._host import HostError, binding, call


@dataclass(frozen=True)
class CommandResult:
    """What a command printed and how it exited."""

    stdout: str
    stderr: str
    exit_code: int


def read(path: str) -> bytes:
    """The bytes of the file at ``path``.

    Raises:
        HostError: it is outside the root, not a regular file, missing or too large.
    """
    return call("filesystem", "read_file", path)


def write(path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, replacing what was there."""
    call("filesystem", "write_file", path, text)


def list(path: str = "") -> builtins.list[str]:
    """The names in the directory ``path`` (the root when empty), sorted."""
    return [str(name) for name in call("filesystem", "list_files", path)]


def delete(path: str) -> None:
    """Delete the file at ``path``."""
    call("filesystem", "delete_file", path)


def mkdir(path: str) -> None:
    """Create the directory ``path``."""
    call("filesystem", "create_dir", path)


def rmdir(path: str) -> None:
    """Delete the directory ``path`` and everything in it."""
    call("filesystem", "delete_dir", path)


def exists(path: str) -> bool:
    """Whether something is at ``path``."""
    return bool(call("filesystem", "path_exists", path))


def run(command: str, args: Sequence[str] = (), dir: str = "") -> CommandResult:
    """Run a program the manifest lists in ``allowed_commands`` (no shell) in ``dir`` under the root.

    Raises:
        HostError: the program is not allowed, or it could not be run to its end (timeout, too much output).
    """
    result = call("filesystem", "execute_command", dir, command, [str(a) for a in args])
    module = binding("filesystem")
    if isinstance(result, module.CommandResult_Error):
        raise HostError("filesystem.execute-command", result.value.message)
    done = result.value
    return CommandResult(stdout=done.stdout, stderr=done.stderr, exit_code=done.exit_code)
