"""Where the files a manifest names may come from, and how much of one may be read.

Every file the runtime reads because a manifest named it (a component, an ``init_state = { file = ... }``, a
manifest named by a supervisor's ``spawn``) goes through a ``FileAccess``. Which one a manifest gets depends on who
wrote it:

* ``FileAccess.trusted(base)``: the operator's own manifests (``theater run PATH``, ``Theater.start(PATH)``): any
  path it names, relative ones against ``base`` (the current directory when None);
* ``FileAccess.confined(root)``: a manifest a guest hands to its supervisor: only relative paths, with no ``..``,
  resolving (symlinks included) inside ``root``, the directory of the operator's manifest the tree started from;
* ``FileAccess.stored(names, blobs)``: a manifest whose tree was started through the server's API with the files of
  the operator's project uploaded as blobs (``theater start`` does it): only the names of that map, relative, without
  ``..``, each read from the blob store (never from the server's disk); a guest in such a tree keeps the map, so it
  spawns ``worker.toml`` on a server as it would embedded, and its ``actor/created`` records the map so that a
  reopened actor keeps it too;
* ``FileAccess.none(origin)``: a manifest from an API client, or from a guest whose tree did not start from a file
  on disk or from an uploaded map: no file at all; components and state come inline, as a blob hash or as a store
  label;
* ``FileAccess.recorded()``: a manifest re-read from an actor's record, whose component and state are in the chain:
  file names are checked in shape and never opened.

Whatever the access, only regular files (or, for ``stored``, blobs) are read (never a device, a fifo or a directory),
and never more than the runtime's maximum for what is being read (see ``theater.manifest.Maximums``): at most that
many bytes plus one are read, so a file that grows while it is read, or a ``/proc`` file that claims size 0, cannot
go past the bound.
Error messages name the path as the manifest gave it and never quote what a file holds.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePath, PurePosixPath
from typing import Any, Literal, Protocol

from store.errors import InvalidInputError, NotFoundError
from theater.errors import ManifestError

Mode = Literal["trusted", "confined", "stored", "none", "recorded"]

MAX_STORED_FILES = 1024  # the most names one uploaded map may hold
MAX_NAME_BYTES = 1024  # the longest name in it (UTF-8)
DIGEST_SIZE = 32

_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True, kw_only=True)
class FileAccess:
    """Which files a manifest may make the host read.

    Attributes:
        mode: ``trusted``, ``confined``, ``stored``, ``none`` or ``recorded`` (see the module's docstring).
        base: the directory relative paths resolve against (None: the current directory, trusted only; for
            ``stored`` the folder of the map, relative, None at its top).
        root: for ``confined``, the directory no path may leave (``base`` is inside it).
        origin: who wrote the manifest, for error messages (``an API client``, ``actor <id>``).
        names: for ``stored``, the uploaded map as sorted (name, 32-byte blob hash) pairs.
        blobs: for ``stored``, the blob store the map's hashes are read from.
    """

    mode: Mode
    base: Path | None = None
    root: Path | None = None
    origin: str = "the operator"
    names: tuple[tuple[str, bytes], ...] = ()
    blobs: Blobs | None = None

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
    def stored(cls, names: Mapping[str, bytes], blobs: Blobs, *, base: str | None = None,
               origin: str = "an API client") -> FileAccess:
        """Only the names of ``names`` (an uploaded map: relative name -> blob hash), read from ``blobs``.

        Args:
            names: the map; checked here (``check_names``).
            blobs: the blob store holding its blobs.
            base: the folder (a name in the map's form, or None for its top) relative names resolve against.
            origin: who wrote the manifest, for error messages.

        Raises:
            InvalidInputError: the map or ``base`` is not well formed.
        """
        folder = None if not base else Path(check_name(base))
        return cls(mode="stored", names=tuple(sorted(check_names(names).items())), blobs=blobs, base=folder,
                   origin=origin)

    @classmethod
    def from_record(cls, recorded: object, blobs: Blobs, *, origin: str) -> FileAccess:
        """The ``stored`` access an actor's ``actor/created`` recorded (``recorded_map``), for a reopened actor.

        Raises:
            InvalidInputError: the recorded value is not a ``{"base": str, "names": {str: hash}}`` map of names in
                plain relative form (a chain may come from anyone).
        """
        if not (isinstance(recorded, dict) and set(recorded) == {"base", "names"}
                and isinstance(recorded["base"], str) and isinstance(recorded["names"], dict)):
            raise InvalidInputError("recorded files", type(recorded).__name__, 'a map {"base": text, "names": map}')
        return cls.stored(recorded["names"], blobs, base=recorded["base"] or None, origin=origin)

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
        return self.mode in ("trusted", "confined", "stored")

    @property
    def folder(self) -> str:
        """For ``stored``: the folder relative names resolve against, in the map's form (``""`` at its top)."""
        return "" if self.base is None else self.base.as_posix()

    def recorded_map(self) -> dict[str, Any] | None:
        """What ``actor/created`` records of this access (``files``): for ``stored`` its folder and its map,
        so a reopened actor gets the same access (``from_record``); None for any other access."""
        if self.mode != "stored":
            return None
        return {"base": self.folder, "names": dict(self.names)}

    def for_child(self, origin: str) -> FileAccess:
        """The access of a manifest that an actor whose manifest had this access hands to its supervisor.

        A tree started by the operator from a file on disk stays inside that file's directory; a tree started
        with an uploaded map keeps that map; any other tree names no files.
        """
        if self.mode == "trusted" and self.base is not None:
            return FileAccess.confined(self.base, origin=origin)
        if self.mode in ("confined", "stored"):
            return dataclasses.replace(self, origin=origin)
        return FileAccess.none(origin)

    def within(self, directory: Path) -> FileAccess:
        """The same access for a manifest file in ``directory``: its relative paths resolve against it."""
        if self.mode == "trusted":
            return FileAccess.trusted(directory)
        if self.mode in ("confined", "stored"):
            return dataclasses.replace(self, base=Path(directory))
        return self

    def beside(self, name: str | PurePath | Checked, *, source: str, field: str) -> FileAccess:
        """The access of the manifest file ``name`` (checked as ``check`` does, unless given checked by this access):
        relative paths in it resolve against its directory (for ``stored``, its folder in the map)."""
        checked = self._checked(name, source=source, field=field)
        if self.mode == "stored":
            folder = PurePosixPath(checked.path).parent
            return dataclasses.replace(self, base=None if folder == PurePosixPath(".") else Path(folder))
        if self.mode == "trusted":
            return FileAccess(mode="trusted", base=Path(checked.path).absolute().parent)
        if self.mode == "confined":  # a real path; built directly (``dataclasses.replace`` costs more than the check)
            return FileAccess(mode="confined", base=Path(os.path.dirname(checked.path)), root=self.root,
                              origin=self.origin)
        return self

    def resolve(self, name: str | PurePath, *, source: str, field: str) -> Path:
        """The path a manifest's file name stands for, once it is checked against this access (``check``)."""
        return Path(self.check(name, source=source, field=field).path)

    def check(self, name: str | PurePath, *, source: str, field: str) -> Checked:
        """A manifest's file name checked against this access, with the path it stands for.

        For ``trusted`` the path is the name against ``base``, symlinks not followed; for ``confined`` it is the
        real path (symlinks followed, once: see ``_real``), inside the root; for ``stored`` it is the name's key in
        the map (relative, never a file on the host). Hand the result to ``read`` or ``beside`` of this same access
        right away: they use its path without resolving the name again (given by another access, a name is checked
        again). A ``Checked`` is a moment's answer; it is not kept.

        Raises:
            ManifestError: this access names no files, or (confined, stored) the name is absolute or has a ``..``
                component, or (confined) leads (through a symlink) out of the root or into a symlink loop, or
                (stored) is not in the map.
        """
        text = os.fspath(name)
        if "\0" in text:
            raise ManifestError(source, field, f"a file name cannot hold a NUL character (got {text!r})")
        if self.mode == "trusted":
            path = Path(text)
            joined = path if path.is_absolute() or self.base is None else self.base / path
            return Checked(name=text, path=str(joined), access=self)
        if self.mode not in ("confined", "stored"):
            raise ManifestError(source, field, self._no_files(text))
        if text.startswith("/"):
            raise ManifestError(source, field, self._confined(text, "is an absolute path"))
        if ".." in text.split("/"):
            raise ManifestError(source, field, self._confined(text, "has a '..' component"))
        if self.mode == "stored":
            key = PurePosixPath(text) if self.base is None else PurePosixPath(self.base.as_posix(), text)
            if self._digest(key.as_posix()) is None:
                raise ManifestError(source, field, self._confined(text, "is not one of them"))
            return Checked(name=text, path=key.as_posix(), access=self)
        root, base = self._confinement()
        top = str(root)
        real, found = _real(os.path.join(base, text), top)
        if real is None:
            raise ManifestError(source, field, self._confined(text, "leads into a symlink loop"))
        if not _inside(real, top):
            raise ManifestError(source, field, self._confined(text, "leads out of it (through a symlink)"))
        return Checked(name=text, path=real, access=self, stat=found)

    def component_path(self, name: str, *, source: str, field: str) -> Path:
        """The path a manifest's ``component`` names, as its ``ComponentRef`` holds it: for ``trusted`` the file's
        real path where the name is absolute or ``base`` is known, else as written; for any other access as written,
        checked now for ``confined`` and ``stored`` (refused now rather than when it is read; checked again then)
        and refused when it is read for ``none`` and ``recorded``.

        Raises:
            ManifestError: as ``check`` (confined, stored), or (trusted) the name leads into a symlink loop.
        """
        if self.mode == "trusted":
            path = self.check(name, source=source, field=field).path
            if not os.path.isabs(path):
                return Path(path)
            real, _ = _real(path, os.sep)
            if real is None:
                raise ManifestError(source, field, f"the file {name!r} leads into a symlink loop")
            return Path(real)
        if self.mode in ("confined", "stored"):
            self.check(name, source=source, field=field)
        return Path(name)

    def read(self, name: str | PurePath | Checked, *, limit: int, what: str, source: str, field: str) -> bytes:
        """The bytes of the regular file a manifest names, at most ``limit`` of them.

        Args:
            name: the file as the manifest names it (checked here, right before it is opened), or as ``check`` of
                this access just gave it: not checked again where the check found the file (the file opened must
                then be that very file, its device and inode compared once it is open), else checked again.
            limit: the most bytes the file may hold.
            what: what the file is, for messages (``component``, ``state``, ``manifest``).
            source, field: where the name was given, for messages.

        Raises:
            ManifestError: the name is refused (see ``check``), or the file cannot be opened, is not a regular
                file, is not the file that was checked, or holds more than ``limit`` bytes. The message never
                quotes the file's content.
        """
        checked = self._checked(name, source=source, field=field, opening=True)
        try:
            if self.mode == "stored":
                return self._read_blob(checked.path, limit)
            return _read_regular(checked.path, limit, follow=self.mode == "trusted", checked=checked.stat)
        except _Refused as exc:
            raise ManifestError(source, field, f"cannot read the {what} file {checked.name!r}: {exc}") from None

    def read_beside(self, name: str | PurePath, *, limit: int, what: str, source: str) -> tuple[bytes, FileAccess]:
        """``read`` and ``beside`` of a manifest file, its name checked once for both: its bytes, and the access of
        the relative names in it.

        Raises:
            ManifestError: as ``read``.
        """
        checked = self.check(name, source=source, field="")
        return (self.read(checked, limit=limit, what=what, source=source, field=""),
                self.beside(checked, source=source, field=""))

    def _checked(self, name: str | PurePath | Checked, *, source: str, field: str, opening: bool = False) -> Checked:
        """``name`` checked by this access: as given if this access checked it (to be opened, a confined name
        only with what its check found, which the open is compared with), else checked now."""
        if isinstance(name, Checked):
            if name.access is self and not (opening and self.mode == "confined" and name.stat is None):
                return name
            name = name.name  # checked by another access, or with nothing to compare the open with: again
        return self.check(name, source=source, field=field)

    def _digest(self, key: str) -> bytes | None:
        return next((digest for name, digest in self.names if name == key), None)

    def _read_blob(self, key: str, limit: int) -> bytes:
        """The blob the map names ``key`` by, at most ``limit`` bytes (its size is checked before it is read)."""
        digest = self._digest(key)
        if digest is None or self.blobs is None:
            raise _Refused("it is not in the uploaded map")
        try:
            size = self.blobs.size(digest)
            if size > limit:
                raise _Refused(f"it holds {size} bytes, more than the maximum of {limit}")
            return self.blobs.get(digest)
        except NotFoundError:
            raise _Refused(f"its blob {digest.hex()} is not in the store") from None

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
        if self.mode == "stored":
            return (f"a manifest from {self.origin} may name only the files uploaded with its tree (by "
                    f"`theater start`), by a relative path without '..'; {name!r} {why}")
        return (f"a manifest from {self.origin} may name only files inside its tree's manifest directory, by a "
                f"relative path without '..'; {name!r} {why}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Checked:
    """A manifest's file name as ``FileAccess.check`` found it, for ``read`` and ``beside`` of the same access.

    Attributes:
        name: the name as the manifest gave it (what messages quote).
        path: what it stands for (see ``FileAccess.check``).
        access: the access that checked it; any other access checks the name again.
        stat: for ``confined``, what ``fstat`` said of the file the name led to when it was checked (None when
            unknown): ``read`` opens only that very file (same device and inode).
    """

    name: str
    path: str
    access: FileAccess = dataclasses.field(repr=False, compare=False)
    stat: os.stat_result | None = dataclasses.field(default=None, repr=False, compare=False)

    def __str__(self) -> str:
        return self.name


_PROC_FD = "/proc/self/fd/"
_KERNEL_PATHS = hasattr(os, "O_PATH") and os.path.isdir(_PROC_FD)


def _real(path: str, root: str) -> tuple[str | None, os.stat_result | None]:
    """The real path of ``path`` (symlinks followed; None where they loop), and the stat of the file it leads to
    when the kernel resolved it.

    Where Linux allows, the kernel resolves it: ``path`` is opened with ``O_PATH`` (which opens nothing: no device
    is touched, no fifo waited on) and the real path read back from ``/proc/self/fd``, the path of the very file
    that was found, with its ``fstat``; a few system calls, where ``os.path.realpath`` walks every component of
    the path in Python (four of a spawn's names took a fifth of it). Where the kernel's answer is not a path inside
    ``root`` (the name leads out, does not exist, loops; a mount the kernel names otherwise), or elsewhere than
    Linux, ``os.path.realpath`` decides, as it always did: every refusal is decided by it.
    """
    if _KERNEL_PATHS:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            fd = -1
        if fd >= 0:
            try:
                real, found = os.readlink(f"{_PROC_FD}{fd}"), os.fstat(fd)
            except OSError:
                real, found = "", None
            finally:
                os.close(fd)
            if found is not None and found.st_nlink > 0 and _inside(real, root):
                return real, found
    real = os.path.realpath(path)
    try:
        os.stat(real)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, None
    return real, None


def _inside(real: str, root: str) -> bool:
    """Whether the real path ``real`` is ``root`` or under it."""
    return real == root or real.startswith(root if root.endswith(os.sep) else root + os.sep)


class Blobs(Protocol):
    """What a ``stored`` access needs of the blob store (``store.blobs.Blobs`` is one)."""

    def size(self, digest: bytes) -> int: ...

    def get(self, digest: bytes) -> bytes: ...


def check_name(name: object) -> str:
    """A name of an uploaded map, checked to be in its plain relative form, and returned.

    A name is a relative POSIX path (``worker.toml``, ``build/supervisor.wasm``): not empty, not absolute, no
    ``..``, ``.`` or empty component, no ``\\`` or NUL, no trailing ``/``, at most ``MAX_NAME_BYTES`` bytes.

    Raises:
        InvalidInputError: it is not such a name (the message says what is wrong with it).
    """
    expected = "a relative file name such as 'worker.toml' or 'build/worker.wasm'"
    if not isinstance(name, str) or not name:
        raise InvalidInputError("file name", name, expected)
    problem = _name_problem(name)
    if problem:
        raise InvalidInputError("file name", name, f"{expected} (it {problem})")
    return name


def _name_problem(name: str) -> str | None:
    if "\0" in name or "\\" in name:
        return "holds a NUL or a backslash"
    try:
        size = len(name.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid Unicode text"
    if size > MAX_NAME_BYTES:
        return f"is longer than {MAX_NAME_BYTES} bytes"
    path = PurePosixPath(name)
    if path.is_absolute():
        return "is an absolute path"
    if ".." in path.parts:
        return "has a '..' component"
    if str(path) != name or "." in name.split("/"):
        return "is not in plain form: no '.' or empty component, no trailing '/'"
    return None


def check_names(names: Mapping[str, bytes]) -> dict[str, bytes]:
    """An uploaded map (name -> 32-byte blob hash), every name and hash checked; returned as a plain dict.

    Raises:
        InvalidInputError: too many names, a name not in plain relative form (``check_name``), or a hash that is
            not 32 bytes.
    """
    if len(names) > MAX_STORED_FILES:
        raise InvalidInputError("files", f"{len(names)} names", f"at most {MAX_STORED_FILES} names")
    checked: dict[str, bytes] = {}
    for name, digest in names.items():
        if not (isinstance(digest, bytes) and len(digest) == DIGEST_SIZE):
            raise InvalidInputError(f"blob hash of file {name!r}", digest, "a 32-byte blake3 digest")
        checked[check_name(name)] = digest
    return checked


class _Refused(Exception):
    """A file that exists by name but may not be read; the message says why (never what it holds)."""


def _read_regular(path: str, limit: int, *, follow: bool = True, checked: os.stat_result | None = None) -> bytes:
    """Read a regular file of at most ``limit`` bytes, reading no more than ``limit + 1``.

    The file is checked before it is opened (so no device or fifo is ever opened: by ``checked``, what was found
    when its name was checked, else by a ``stat`` now) and again once open (so it is the same file: same device
    and inode). With ``follow=False`` a symlink as the last component is refused when opening.

    Raises:
        _Refused: the file cannot be opened, is not a regular file, is not the file checked, or is larger than
            ``limit``.
    """
    if checked is None:
        try:
            before = os.stat(path)
        except OSError as exc:
            raise _Refused(exc.strerror or type(exc).__name__) from None
    else:
        before = checked
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


__all__ = ["MAX_NAME_BYTES", "MAX_STORED_FILES", "Blobs", "Checked", "FileAccess", "check_name", "check_names"]
