"""Loading an actor's component for the runtime: from the store, or from bytes read from a file.

Bytes read from a file go into the store only once the engine has compiled them, so a file that is not a
component (a text file, a device's output) never becomes a blob. When compiling fails, the error says what is
wrong and where, but never quotes the bytes: wasmtime's messages echo the offending source line of component text
and the first bytes of a bad binary, and the bytes may be a file the manifest's author should not see.
"""

from __future__ import annotations

import re
from typing import Any

from replay.engine import Engine
from replay.errors import ComponentError
from store import Store, blob_digest

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


__all__ = ["load", "load_new", "quiet_reason"]
