"""The files of an operator's project that ``theater start`` carries to a server, so that its actors run there as
they run embedded.

Embedded, a supervisor started from ``DIR/manifest.toml`` may spawn ``worker.toml`` and the files the manifests in
``DIR`` name (``FileAccess.confined``). A server reads none of the client's files, so the CLI, on the operator's
machine, reads those same files and uploads them as blobs; the start request maps each name to its blob
(``FileAccess.stored`` on the server). What is carried:

* every ``*.toml`` file directly in ``DIR`` (each read only if it is a regular file of at most
  ``manifest_file_bytes``);
* the component file and the ``init_state`` file each of them names by a relative path (at most
  ``component_file_bytes`` and ``state_file_bytes``).

Every file is read under the rules a guest's manifest is held to embedded (``FileAccess.confined(DIR)``): inside
``DIR``, relative, no ``..``, no symlink leading out, regular, bounded. A name those rules refuse, or a ``.toml``
file that is not TOML, is left out: a guest could not read it embedded either (a spawn naming it is refused).
"""

from __future__ import annotations

import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from store.errors import InvalidInputError
from theater.errors import ManifestError
from theater.files import MAX_STORED_FILES, FileAccess, check_name
from theater.manifest import DEFAULT_MAXIMUMS, Maximums


def project_files(manifest: Path, maximums: Maximums = DEFAULT_MAXIMUMS) -> dict[str, bytes]:
    """The files of the project ``manifest`` belongs to, by their names relative to its directory.

    Raises:
        ManifestError: the directory cannot be listed, or the project has more than ``MAX_STORED_FILES`` files.
    """
    directory = Path(manifest).absolute().parent
    access = FileAccess.confined(directory, origin="the project")
    source = str(directory)
    try:
        tomls = sorted(p.name for p in directory.iterdir() if p.suffix == ".toml")
    except OSError as exc:
        raise ManifestError(source, "", f"cannot list the directory: {exc.strerror}") from None
    files: dict[str, bytes] = {}
    for name in tomls:
        data = _read(access, name, maximums.manifest_file_bytes, "manifest", source)
        if data is None:
            continue
        files[name] = data
        for named, limit, what in _named(data, maximums):
            if named not in files:
                content = _read(access, named, limit, what, source)
                if content is not None:
                    files[named] = content
        if len(files) > MAX_STORED_FILES:
            raise ManifestError(source, "", f"the project has more than {MAX_STORED_FILES} files to upload")
    return files


def _read(access: FileAccess, name: str, limit: int, what: str, source: str) -> bytes | None:
    """The file's bytes, or None when the rules a guest is held to refuse it (or it cannot be read)."""
    try:
        return access.read(name, limit=limit, what=what, source=source, field=name)
    except ManifestError:
        return None


def _named(data: bytes, maximums: Maximums) -> list[tuple[str, int, str]]:
    """The relative file names a manifest's text names (component, init_state file), in the map's form."""
    try:
        table: dict[str, Any] = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError):
        return []
    found: list[tuple[str, int, str]] = []
    component = table.get("component", table.get("component_path"))
    if isinstance(component, str):
        found.append((component, maximums.component_file_bytes, "component"))
    state = table.get("init_state")
    if isinstance(state, str):  # the original Theater's form: a file next to the manifest
        found.append((state, maximums.state_file_bytes, "state"))
    elif isinstance(state, dict) and isinstance(state.get("file"), str):
        found.append((state["file"], maximums.state_file_bytes, "state"))
    return [(key, limit, what) for name, limit, what in found if (key := _key(name)) is not None]


def _key(name: str) -> str | None:
    """``name`` in the map's plain form (``./a//b`` is ``a/b``), or None if it cannot be one (absolute, ``..``)."""
    if not name or "\0" in name:
        return None
    try:
        return check_name(PurePosixPath(name).as_posix())
    except InvalidInputError:
        return None


__all__ = ["project_files"]
