"""Handler ``filesystem``: files under one root directory, and the programs the config lists, every call recorded.

Config (``[[handlers]] type = "filesystem"``):

- ``path`` (required): the root directory, an absolute path; nothing outside it is ever opened;
- ``new_dir``: create the root (and its parents) at start when it is missing;
- ``read_only``: refuse every write, deletion and directory creation, and ``execute-command``;
- ``max_read_bytes`` (default 16 MiB): the largest file ``read-file`` hands back;
- ``allowed_commands``: the programs ``execute-command`` may run (an absolute path, or a name looked up in the
  runtime's ``PATH``), matched exactly; none by default;
- ``command_timeout_ms`` (default 10 000) and ``max_output_bytes`` (default 1 MiB, each of stdout and stderr):
  a command past either is killed and answered with a ``command-result.error`` saying so.

Paths. A guest path is relative to the root: an absolute path, a ``..`` component, a NUL or a backslash is refused.
It is then opened one component at a time, each relative to the directory opened before it and with
``O_NOFOLLOW``: a symlink anywhere in a path is refused (it is never followed, so a symlink pointing out of the root,
or swapped in between a check and an open, reaches nothing). Only regular files are read or written: a device,
a fifo or a socket is refused before it is opened.

Records. Every call is an import call: ``read-file`` records the bytes read (replay needs no file), a write records
its path and content, a deletion its path, a command its argument list and its whole output.

``execute-command`` runs the program with its arguments as a list, never through a shell (a ``;`` or ``$(...)`` in
an argument is only text), with stdin closed, the root (or a directory inside it) as its working directory and
an environment holding only ``PATH``. ``execute-nix-command`` is refused: it runs a command line through a shell
in the original Theater, and this handler runs no shell.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from theater.errors import ManifestError, ResourceExhausted
from theater.handlers._base import Handler, at_most, string_list
from theater.handlers._commands import run_program
from theater.host import ActorHost
from theater.scheduler import blocking

MAX_READ_BYTES = 16 * 1024 * 1024
MAX_OUTPUT_BYTES = 1024 * 1024
COMMAND_TIMEOUT_MS = 10_000
MAX_LIST_ENTRIES = 10_000
MAX_PATH_BYTES = 4096

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class Refused(Exception):
    """A guest path or operation this handler will not carry out; the message says why (answered as ``err``)."""


def guest_parts(path: str) -> list[str]:
    """The components of a guest path relative to the root (``""`` and ``.`` are the root itself).

    Raises:
        Refused: absolute, with a ``..`` component, a NUL or backslash, or too long.
    """
    if not isinstance(path, str) or "\0" in path or "\\" in path:
        raise Refused(f"path {path!r} holds a NUL or a backslash")
    if len(path.encode("utf-8", "surrogatepass")) > MAX_PATH_BYTES:
        raise Refused(f"path is longer than {MAX_PATH_BYTES} bytes")
    if path.startswith("/"):
        raise Refused(f"path {path!r} is absolute: paths are relative to the handler's root")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Refused(f"path {path!r} has a '..' component: paths may not leave the handler's root")
    return parts


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "a regular file")


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.EMLINK):
        return "it is a symlink, and symlinks are not followed"
    if exc.errno == errno.ENOTDIR:
        return "a component of it is not a directory (a symlink is not followed)"
    return exc.strerror or type(exc).__name__


class FilesystemHandler(Handler):
    """The ``theater:simple/filesystem`` functions, confined to the configured root (see the module)."""

    type = "filesystem"
    interface = "theater:simple/filesystem"
    config_keys = {"path": str, "new_dir": bool, "read_only": bool, "max_read_bytes": int,
                   "allowed_commands": list, "command_timeout_ms": int, "max_output_bytes": int}
    reaches_host = True

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        super().__init__(actor, config)
        root = Path(config["path"])
        if config.get("new_dir", False):
            try:
                root.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ManifestError(actor.source, "handlers.filesystem.config.path",
                                    f"the root {str(root)!r} cannot be created: {exc.strerror}") from None
        if not root.is_dir():
            raise ManifestError(actor.source, "handlers.filesystem.config.path",
                                f"the root {str(root)!r} is not a directory (set new_dir = true to create it)")
        self.root = root.resolve()
        self.read_only = bool(config.get("read_only", False))
        self.max_read = int(config.get("max_read_bytes", MAX_READ_BYTES))
        self.commands = tuple(config.get("allowed_commands", ()))
        self.timeout_ms = int(config.get("command_timeout_ms", COMMAND_TIMEOUT_MS))
        self.max_output = int(config.get("max_output_bytes", MAX_OUTPUT_BYTES))

    @classmethod
    def check_config(cls, source: str, config: dict[str, Any]) -> None:
        super().check_config(source, config)
        field = "handlers.filesystem.config"
        if "path" not in config:
            raise ManifestError(source, f"{field}.path", "missing: the root directory the actor may reach")
        if not os.path.isabs(config["path"]) or "\0" in config["path"]:
            raise ManifestError(source, f"{field}.path", f"expected an absolute path, got {config['path']!r}")
        for key in ("max_read_bytes", "command_timeout_ms", "max_output_bytes"):
            if key in config and config[key] < 1:
                raise ManifestError(source, f"{field}.{key}", f"expected a positive integer, got {config[key]}")
        if "allowed_commands" in config:
            string_list(source, cls.type, "allowed_commands", config["allowed_commands"])

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        parent_root = os.path.realpath(parent_config["path"])
        child_root = os.path.realpath(child_config["path"])
        if os.path.commonpath([parent_root, child_root]) != parent_root:
            return f"path = {child_config['path']!r}, not inside its parent's {parent_config['path']!r}"
        if parent_config.get("read_only", False) and not child_config.get("read_only", False):
            return "read_only = false, but its parent's is true"
        extra = sorted(set(child_config.get("allowed_commands", ())) - set(parent_config.get("allowed_commands", ())))
        if extra:
            return (f"allowed_commands has {extra!r}, not among its parent's "
                    f"{sorted(parent_config.get('allowed_commands', ()))!r}")
        for key, default in (("max_read_bytes", MAX_READ_BYTES), ("command_timeout_ms", COMMAND_TIMEOUT_MS),
                             ("max_output_bytes", MAX_OUTPUT_BYTES)):
            wider = at_most(key, parent_config.get(key, default), child_config.get(key, default))
            if wider:
                return wider
        return None

    def functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "read-file": self._guard(self.read_file),
            "write-file": self._guard(self.write_file, writes=True),
            "list-files": self._guard(self.list_files),
            "delete-file": self._guard(self.delete_file, writes=True),
            "create-dir": self._guard(self.create_dir, writes=True),
            "delete-dir": self._guard(self.delete_dir, writes=True),
            "path-exists": self._guard(self.path_exists),
            "execute-command": self._guard(self.execute_command, writes=True),
            "execute-nix-command": self.execute_nix_command,
        }

    def _guard(self, function: Callable[..., Any], *, writes: bool = False) -> Callable[..., Any]:
        """``function`` answering a ``Refused`` or an ``OSError`` with ``err`` (and refused in read-only mode)."""
        name = function.__name__.replace("_", "-")

        def guarded(*args: Any) -> dict[str, Any]:
            if writes and self.read_only:
                return {"err": f"{name} is refused: the filesystem handler is read-only"}
            try:
                return {"ok": function(*args)}
            except Refused as exc:
                return {"err": str(exc)}
            except OSError as exc:
                return {"err": f"{name} {args[0]!r}: {_why(exc)}"}

        return guarded

    # Walking inside the root.

    @contextmanager
    def _parent(self, path: str, *, need_name: bool = True) -> Iterator[tuple[int, str | None]]:
        """The open directory holding the last component of ``path``, and that component (None for the root)."""
        parts = guest_parts(path)
        if need_name and not parts:
            raise Refused(f"path {path!r} names the root itself")
        fd = os.open(self.root, _DIR_FLAGS)
        try:
            for part in parts[:-1]:
                try:
                    inner = os.open(part, _DIR_FLAGS, dir_fd=fd)
                except OSError as exc:
                    raise Refused(f"path {path!r}: {part!r} cannot be entered: {_why(exc)}") from None
                os.close(fd)
                fd = inner
            yield fd, parts[-1] if parts else None
        finally:
            os.close(fd)

    @contextmanager
    def _directory(self, path: str) -> Iterator[int]:
        """The open directory ``path`` (the root for ``""``)."""
        with self._parent(path, need_name=False) as (fd, name):
            if name is None:
                yield fd
                return
            try:
                inner = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise Refused(f"path {path!r} is not a directory inside the root: {_why(exc)}") from None
            try:
                yield inner
            finally:
                os.close(inner)

    @staticmethod
    def _regular(path: str, name: str, fd: int, *, missing_ok: bool = False) -> os.stat_result | None:
        try:
            info = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            if missing_ok:
                return None
            raise Refused(f"path {path!r} does not exist") from None
        if not stat.S_ISREG(info.st_mode):
            raise Refused(f"path {path!r} is {_kind(info.st_mode)}, not a regular file")
        return info

    # The functions.

    def read_file(self, path: str) -> bytes:
        with self._parent(path) as (parent, name):
            assert name is not None
            before = self._regular(path, name, parent)
            assert before is not None
            if before.st_size > self.max_read:
                raise Refused(f"path {path!r} holds {before.st_size} bytes, more than max_read_bytes = {self.max_read}")
            fd = os.open(name, _READ_FLAGS, dir_fd=parent)
            try:
                opened = os.fstat(fd)
                if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino) or not stat.S_ISREG(opened.st_mode):
                    raise Refused(f"path {path!r} was replaced while being opened")
                chunks: list[bytes] = []
                left = self.max_read + 1
                while left > 0:
                    chunk = os.read(fd, min(left, 1 << 20))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    left -= len(chunk)
            finally:
                os.close(fd)
        data = b"".join(chunks)
        if len(data) > self.max_read:
            raise Refused(f"path {path!r} grew past max_read_bytes = {self.max_read} while being read")
        return data

    def write_file(self, path: str, content: str) -> None:
        with self._parent(path) as (parent, name):
            assert name is not None
            self._regular(path, name, parent, missing_ok=True)
            fd = os.open(name, _WRITE_FLAGS, 0o644, dir_fd=parent)
            try:
                if not stat.S_ISREG(os.fstat(fd).st_mode):
                    raise Refused(f"path {path!r} was replaced while being opened")
                os.ftruncate(fd, 0)
                data = content.encode("utf-8", "surrogatepass")
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)

    def list_files(self, path: str) -> list[str]:
        with self._directory(path) as fd:
            names = sorted(os.listdir(fd))
        if len(names) > MAX_LIST_ENTRIES:
            raise Refused(f"path {path!r} holds {len(names)} entries, more than {MAX_LIST_ENTRIES}")
        return names

    def delete_file(self, path: str) -> None:
        with self._parent(path) as (parent, name):
            assert name is not None
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if stat.S_ISDIR(info.st_mode):
                raise Refused(f"path {path!r} is a directory: use delete-dir")
            os.unlink(name, dir_fd=parent)  # a symlink is removed itself, never what it points to

    def create_dir(self, path: str) -> None:
        with self._parent(path) as (parent, name):
            assert name is not None
            os.mkdir(name, 0o755, dir_fd=parent)

    def delete_dir(self, path: str) -> None:
        with self._parent(path) as (parent, name):
            assert name is not None
            info = os.stat(name, dir_fd=parent, follow_symlinks=False)
            if not stat.S_ISDIR(info.st_mode):
                raise Refused(f"path {path!r} is {_kind(info.st_mode)}, not a directory")
            errors: list[str] = []
            # rmtree with dir_fd works on open file descriptors and never follows a symlink (its fd-based variant).
            shutil.rmtree(name, dir_fd=parent, onerror=lambda _f, p, exc: errors.append(f"{p}: {exc[1]}"))
            if errors:
                raise Refused(f"delete-dir {path!r} left entries it could not remove: {errors[0]}")

    def path_exists(self, path: str) -> bool:
        with self._parent(path, need_name=False) as (parent, name):
            if name is None:
                return True
            try:
                os.stat(name, dir_fd=parent, follow_symlinks=False)
            except FileNotFoundError:
                return False
            return True

    def execute_command(self, dir: str, command: str, args: list[str]) -> dict[str, Any]:
        if command not in self.commands:
            raise Refused(f"command {command!r} is not in allowed_commands {list(self.commands)!r}")
        if any("\0" in arg for arg in args):
            raise Refused("an argument holds a NUL")
        program = command if os.path.isabs(command) else shutil.which(command)
        if program is None:
            raise Refused(f"command {command!r} is allowed but not found on the runtime's PATH")
        with self._directory(dir) as fd:
            try:
                with blocking():  # the waiting actor keeps its worker; the scheduler keeps the others running
                    outcome = run_program(
                        [program, *args], cwd=f"/proc/self/fd/{fd}",
                        env={"PATH": os.environ.get("PATH", os.defpath)}, timeout_s=self.timeout_ms / 1000,
                        max_output=self.max_output, stop=self.actor.stop_requested, pass_fds=(fd,),
                    )
            except ResourceExhausted as exc:  # no thread left to wait on: nothing was started
                return {"error": {"message": f"command {command!r} was not started: {exc}"}}
            except OSError as exc:
                return {"error": {"message": f"command {command!r} could not be started: {_why(exc)}"}}
        if outcome.problem is not None:
            return {"error": {"message": f"command {command!r}: {outcome.problem}"}}
        assert outcome.exit_code is not None
        return {"success": {"stdout": outcome.stdout.decode("utf-8", "replace"),
                            "stderr": outcome.stderr.decode("utf-8", "replace"), "exit-code": outcome.exit_code}}

    def execute_nix_command(self, dir: str, command: str) -> dict[str, Any]:
        return {"err": "execute-nix-command is refused: it runs a command line through a shell, and this handler "
                       "runs no shell; grant the program in allowed_commands and use execute-command"}
