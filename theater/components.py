"""Loading an actor's component for the runtime: from the store, or from bytes read from a file.

Bytes read from a file go into the store only once the engine has compiled them, so a file that is not a
component (a text file, a device's output) never becomes a blob. A file read before and unchanged since (by what
``os.stat`` says: device, inode, size, modification and change times) is not read and hashed again
(``FileDigests``): a Python actor's component is 18 MB, and reading and hashing it was most of a start.

When compiling fails, the error says what is wrong and where, but never quotes the bytes: wasmtime's messages echo
the offending source line of component text and the first bytes of a bad binary, and the bytes may be a file the
manifest's author should not see.
"""

from __future__ import annotations

import os
import re
import stat
import threading
from pathlib import PurePath
from typing import Any

from replay.engine import Engine
from replay.errors import ComponentError
from store import Store, blob_digest
from theater.files import Checked, FileAccess

_EXCERPT = re.compile(r"^(\d+\s*)?\|")  # the source lines wasmtime quotes under a text error ("1 | ...", "|")
_NAMED = re.compile(r"`[^`]*[^`()\[\]{},;:=\s][^`]*`")  # a quoted name (`$secret`), not a quoted token (`(`)
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")  # a quoted character or string ('\u{20ac}')
_HEX = re.compile(r"(?<!offset )0x[0-9a-fA-F]+")  # a value read from the bytes (not an offset into them)
_LEADING = re.compile(rb"(?:\s+|;;[^\n]*(?:\n|$)|\(;.*?;\))*", re.S)  # whitespace and comments before text


def load(engine: Engine, store: Store, digest: bytes, *, what: str) -> Any:
    """The compiled component of the blob ``digest``.

    Raises:
        NotFoundError: no such blob.
        ComponentError: the blob is not a usable component (the reason quotes none of its bytes).
    """
    try:
        return engine.load(store, digest)
    except ComponentError as exc:
        raise ComponentError(what, quiet_reason(exc.reason, store.blobs.get(digest))) from None


def load_new(engine: Engine, store: Store, data: bytes, *, what: str) -> tuple[bytes, Any]:
    """Compile component bytes read from a file, then store them; their digest and the compiled component.

    Raises:
        ComponentError: the bytes are not a usable component; nothing is stored (the reason quotes none of them).
    """
    digest = blob_digest(data)
    if store.blobs.has(digest):
        return digest, load(engine, store, digest, what=what)
    try:
        component = engine.load(store, digest, wasm=data)
    except ComponentError as exc:
        raise ComponentError(what, quiet_reason(exc.reason, data)) from None
    store.blobs.put(data)
    return digest, component


_StatKey = tuple[str, int, int, int, int, int]


class FileDigests:
    """The blob digests of component files read before, keyed by what ``os.stat`` says of each file.

    A key holds the path, device, inode, size, and modification and change times (ns); writing to a file changes
    its change time, which no one can set back, so a changed file is read again. A digest is kept only when the
    file's key was the same before and after it was read. At most ``capacity`` files are kept (oldest dropped).
    Thread-safe.
    """

    def __init__(self, capacity: int = 1024) -> None:
        self.capacity = capacity
        self._known: dict[_StatKey, bytes] = {}
        self._lock = threading.Lock()

    def get(self, key: _StatKey) -> bytes | None:
        with self._lock:
            return self._known.get(key)

    def put(self, key: _StatKey, digest: bytes) -> None:
        with self._lock:
            self._known[key] = digest
            while len(self._known) > self.capacity:
                del self._known[next(iter(self._known))]


def _stat_key(checked: Checked, limit: int, *, follow: bool, again: bool = False) -> _StatKey | None:
    """The ``FileDigests`` key of a regular file of at most ``limit`` bytes; None for anything else (the read
    then says what is wrong). What the check of its name found is used (the very file it led to), unless
    ``again`` (or nothing was found then): the file is ``stat``-ed now."""
    st = None if again else checked.stat
    if st is None:
        try:
            st = os.stat(checked.path, follow_symlinks=follow)
        except OSError:
            return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > limit:
        return None
    return (checked.path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def load_file(
    engine: Engine, store: Store, files: FileAccess, name: str | PurePath, *, limit: int, source: str, field: str,
    known: FileDigests,
) -> tuple[bytes, Any]:
    """The component file a manifest names (read as ``files`` allows, at most ``limit`` bytes): its digest and
    compiled form, stored once it compiles (``load_new``). A file ``known`` holds, unchanged (its blob is stored:
    ``known`` keeps a digest only after that, and the store never removes a blob), is not read again: its name is
    still checked against ``files``.

    Raises:
        ManifestError: the name is refused or the file cannot be read (see ``FileAccess.read``).
        ComponentError: the bytes are not a usable component; nothing is stored.
    """
    what = f"component {str(name)!r}"
    checked = files.check(name, source=source, field=field)  # once: the stat key and the read both use it
    key = None
    if files.mode in ("trusted", "confined"):
        key = _stat_key(checked, limit, follow=files.mode == "trusted")
        digest = known.get(key) if key is not None else None
        if digest is not None:  # kept once its blob was stored, and blobs are never removed
            return digest, load(engine, store, digest, what=what)
    data = files.read(checked, limit=limit, what="component", source=source, field=field)
    digest, component = load_new(engine, store, data, what=what)
    if key is not None and _stat_key(checked, limit, follow=files.mode == "trusted", again=True) == key:
        known.put(key, digest)  # the file did not change while it was read
    return digest, component


def quiet_reason(reason: str, data: bytes) -> str:
    """wasmtime's reason why ``data`` does not compile, without anything it quotes from ``data``.

    Bytes that are neither a WebAssembly binary nor text that opens like WebAssembly text get a fixed reason.
    Otherwise the reason keeps wasmtime's message and its line and column, and drops the quoted source lines,
    quoted names, characters and strings, and values read from the bytes.
    """
    if not data.startswith(b"\0asm") and not _opens_like_text(data):
        return ("neither a WebAssembly binary (it does not start with \\0asm) nor WebAssembly text "
                "(it does not start with '(')")
    kept: list[str] = []
    for part in reason.split("; "):
        if _EXCERPT.match(part.strip()):
            break  # the quoted source starts here; what follows it is source too
        kept.append(part)
    text = "; ".join(kept) or "wasmtime refused it"
    return _HEX.sub("0x…", _QUOTED.sub("'…'", _NAMED.sub("`…`", text)))


def _opens_like_text(data: bytes) -> bool:
    leading = _LEADING.match(data)
    return data[leading.end() if leading else 0:].startswith(b"(")


__all__ = ["FileDigests", "load", "load_file", "load_new", "quiet_reason"]
