"""Where the files a manifest names may come from, and how much of one may be read.

Every file the runtime reads because a manifest named it (a component, an ``init_state = { file = ... }``, a
manifest named by a supervisor's ``spawn``) goes through a ``FileAccess``. Which one a manifest gets depends on who
wrote it:

* ``FileAccess.trusted(base)``: the operator's own manifests (``theater run PATH``, ``Theater.start(PATH)``): any
  path it names, relative ones against ``base`` (the current directory when None);
* ``FileAccess.confined(root)``: a manifest a guest hands to its supervisor: only relative paths, with no ``..``,
  resolving (symlinks included) inside ``root``, the directory of the operator's manifest the tree started from;
* ``FileAccess.none(origin)``: a manifest from an API client, or from a guest whose tree did not start from a file
  on disk: no file at all; components and state come inline, as a blob hash or as a store label;
* ``FileAccess.recorded()``: a manifest re-read from an actor's record, whose component and state are in the chain:
  file names are checked in shape and never opened.

Whatever the access, only regular files are read (never a device, a fifo or a directory), and never more than the
runtime's maximum for what is being read (see ``theater.manifest.Maximums``): at most that many bytes plus one are
read, so a file that grows while it is read, or a ``/proc`` file that claims size 0, cannot go past the bound.
Error messages name the path as the manifest gave it and never quote what a file holds.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Literal

from theater.errors import ManifestError

Mode = Literal["trusted", "confined", "none", "recorded"]

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class FileAccess:
    """Which files a manifest may make the host read.

    Attributes:
        mode: ``trusted``, ``confined``, ``none`` or ``recorded`` (see the module's docstring).
        base: the directory relative paths resolve against (None: the current directory, trusted only).
        root: for ``confined``, the directory no path may leave (``base`` is inside it).
        origin: who wrote the manifest, for error messages (``an API client``, ``actor <id>``).
    """

    mode: Mode
    base: Path | None = None
    root: Path | None = None
    origin: str = "the operator"

    @classmethod
    def trusted(cls, base: Path | None = None) -> FileAccess:
        """The operator's access: any regular file, relative paths against ``base``."""
        return cls(mode="trusted", base=None if base is None else Path(base).absolute())

    @classmethod
    def confined(cls, root: Path, base: Path | None = None, *, origin: str = "a guest") -> FileAccess:
        """Only regular files inside ``root``, named by relative paths against ``base`` (default ``root``)."""
        real = Path(root).resolve()
        return cls(mode="confined", root=real, base=real if base is None else Path(base).resolve(), origin=origin)

    @classmethod
    def none(cls, origin: str) -> FileAccess:
        """No file at all: the manifest came from ``origin``, who may not name the host's files."""
        return cls(mode="none", origin=origin)

    @classmethod
    def recorded(cls) -> FileAccess:
        """A manifest re-read from the record: file names are checked in shape, never opened."""
        return cls(mode="recorded", origin="the record")

    @property
    def reads(self) -> bool:
        """Whether a file named by the manifest is read at all (False for ``none`` and ``recorded``)."""
        return self.mode in ("trusted", "confined")

    def for_child(self, origin: str) -> FileAccess:
        """The access of a manifest that an actor whose manifest had this access hands to its supervisor.

        A tree started by the operator from a file on disk stays inside that file's directory; any other tree
        names no files.
        """
        if self.mode == "trusted" and self.base is not None:
            return FileAccess.confined(self.base, origin=origin)
        if self.mode == "confined":
            return FileAccess(mode="confined", root=self.root, base=self.base, origin=origin)
        return FileAccess.none(origin)

    def within(self, directory: Path) -> FileAccess:
        """The same access for a manifest file in ``directory``: its relative paths resolve against it."""
        if self.mode == "trusted":
            return FileAccess.trusted(directory)
        if self.mode == "confined":
            return FileAccess(mode="confined", root=self.root, base=Path(directory), origin=self.origin)
        return self

    def resolve(self, name: str | PurePath, *, source: str, field: str) -> Path:
        """The path a manifest's file name stands for, once it is checked against this access.

        Raises:
            ManifestError: this access names no files, or (confined) the name is absolute, has a ``..``
                component, or leads (through a symlink) out of the root.
        """
        if "\0" in str(name):
            raise ManifestError(source, field, f"a file name cannot hold a NUL character (got {str(name)!r})")
        path = Path(name)
        if self.mode == "trusted":
            return path if path.is_absolute() or self.base is None else self.base / path
        if self.mode != "confined":
            raise ManifestError(source, field, self._no_files(str(name)))
        if path.is_absolute():
            raise ManifestError(source, field, self._confined(str(name), "is an absolute path"))
        if ".." in path.parts:
            raise ManifestError(source, field, self._confined(str(name), "has a '..' component"))
        root, base = self._confinement()
        real = (base / path).resolve()
        if not real.is_relative_to(root):
            raise ManifestError(source, field, self._confined(str(name), "leads out of it (through a symlink)"))
        return real

    def read(self, name: str | PurePath, *, limit: int, what: str, source: str, field: str) -> bytes:
        """The bytes of the regular file a manifest names, at most ``limit`` of them.

        Args:
            name: the file as the manifest names it (resolved and checked here, again, before it is opened).
            limit: the most bytes the file may hold.
            what: what the file is, for messages (``component``, ``state``, ``manifest``).
            source, field: where the name was given, for messages.

        Raises:
            ManifestError: the name is refused (see ``resolve``), or the file cannot be opened, is not a regular
                file, or holds more than ``limit`` bytes. The message never quotes the file's content.
        """
        path = self.resolve(name, source=source, field=field)
        try:
            return _read_regular(path, limit, follow=self.mode == "trusted")
        except _Refused as exc:
            raise ManifestError(source, field, f"cannot read the {what} file {str(name)!r}: {exc}") from None

    def _confinement(self) -> tuple[Path, Path]:
        if self.root is None or self.base is None:
            raise ValueError("a confined FileAccess needs its root and base")  # FileAccess.confined sets both
        return self.root, self.base

    def _no_files(self, name: str) -> str:
        if self.mode == "recorded":
            return f"a manifest re-read from the record names no files to read (got {name!r})"
        return (f"a manifest from {self.origin} may not name a file on the host (got {name!r}); give the "
                "component by blob hash or store:LABEL and the state inline")

    def _confined(self, name: str, why: str) -> str:
        return (f"a manifest from {self.origin} may name only files inside its tree's manifest directory, by a "
                f"relative path without '..'; {name!r} {why}")


class _Refused(Exception):
    """A file that exists by name but may not be read; the message says why (never what it holds)."""


def _read_regular(path: Path, limit: int, *, follow: bool = True) -> bytes:
    """Read a regular file of at most ``limit`` bytes, reading no more than ``limit + 1``.

    The file is checked before it is opened (so no device or fifo is ever opened) and again once open (so it is
    the same file). With ``follow=False`` a symlink as the last component is refused when opening.

    Raises:
        _Refused: the file cannot be opened, is not a regular file, or is larger than ``limit``.
    """
    try:
        before = os.stat(path)
    except OSError as exc:
        raise _Refused(exc.strerror or type(exc).__name__) from None
    _check_regular(before, limit)
    try:
        fd = os.open(path, _OPEN_FLAGS | (0 if follow else _NOFOLLOW))
    except OSError as exc:
        raise _Refused(exc.strerror or type(exc).__name__) from None
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (before.st_dev, before.st_ino):
            raise _Refused("it was replaced while being opened")
        _check_regular(opened, limit)
        data = _read_at_most(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise _Refused(f"it is larger than the maximum of {limit} bytes")
    return data


def _check_regular(info: os.stat_result, limit: int) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise _Refused(f"it is not a regular file (it is {_kind(info.st_mode)})")
    if info.st_size > limit:
        raise _Refused(f"it holds {info.st_size} bytes, more than the maximum of {limit}")


def _read_at_most(fd: int, count: int) -> bytes:
    chunks: list[bytes] = []
    left = count
    while left > 0:
        try:
            chunk = os.read(fd, min(left, _CHUNK))
        except OSError as exc:
            raise _Refused(exc.strerror or type(exc).__name__) from None
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _kind(mode: int) -> str:
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a fifo"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


__all__ = ["FileAccess"]
