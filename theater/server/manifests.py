"""Manifests sent by clients: parsed without the server reading any file a manifest names.

A client sends the manifest's TOML text, parsed with no file access (``FileAccess.none``): paths in it are the
client's, not the server's. The component comes as bytes or a blob hash beside the manifest, and an
``init_state = { file = ... }`` must come with the state's bytes (the CLI reads the file and sends them). In that
one case the manifest recorded for the actor is the client's TOML with ``init_state`` given inline as base64, so
the record is self-contained and a restart can read it. A child such an actor spawns through its supervisor names
no files either (its ``files`` access is ``none``).

Unless the client uploaded its project's files beside the manifest (``files``: relative name -> hash of a blob it
put first; ``theater start`` does it): then the manifest is parsed with that map (``FileAccess.stored``), so its
component and state files, and the manifests its actor's supervisor spawns by name, are read from those blobs,
and from nothing else.
"""

from __future__ import annotations

import base64
import dataclasses
import re
from typing import Any

import tomli_w

from store.blobs import BlobStore
from store.errors import InvalidInputError
from theater.errors import ManifestError
from theater.files import FileAccess
from theater.manifest import DEFAULT_MAXIMUMS, ComponentRef, Manifest, Maximums, parse_manifest, parse_toml

CLIENT = FileAccess.none("an API client")
_HEX = re.compile(r"[0-9a-fA-F]{64}")


def client_manifest(
    text: str, *, source: str, component: bytes | None, init_state: bytes | None, files: FileAccess = CLIENT,
    maximums: Maximums = DEFAULT_MAXIMUMS,
) -> Manifest:
    """Parse a client's manifest; ``component`` (a blob hash) replaces whatever the manifest names.

    Args:
        files: ``CLIENT`` (no file at all), or the ``stored`` access of the map the client uploaded.

    Raises:
        ManifestError: the TOML is malformed (or nested too deeply), its component is a path and no component was
            sent (nor uploaded), or its ``init_state`` names a file and no ``init_state`` was sent (nor uploaded).
    """
    data = parse_toml(text, source)
    state = data.get("init_state")
    names_file = isinstance(state, str) or (isinstance(state, dict) and "file" in state)
    if names_file and (init_state is not None or not files.reads):
        if init_state is None:
            problem = "the server does not read files: send the state's bytes as init_state (the CLI does)"
            raise ManifestError(source, "init_state" if isinstance(state, str) else "init_state.file", problem)
        text = _with_inline_state(data, init_state)
    manifest = parse_manifest(text, source=source, files=files, maximums=maximums)
    if component is not None:
        return dataclasses.replace(manifest, component=ComponentRef(kind="hash", value=component))
    if manifest.component.kind == "path" and not files.reads:
        problem = ("the server does not read files: send the component's bytes (component), the hash of a blob "
                   "in the server's store (component_hash), or upload it in files (the CLI does)")
        raise ManifestError(source, "component", problem)
    return manifest


def uploaded_files(value: Any, blobs: BlobStore, *, source: str) -> FileAccess:
    """The ``stored`` access of a start request's ``files``: ``{relative name: 64-hex blob hash}``.

    Raises:
        InvalidInputError: it is not such a map (too many names, a name absolute, with ``..`` or not in plain form,
            a hash that is not 64 hex digits).
        ManifestError: a hash names no blob in the store (upload it first: ``POST /v1/blobs``).
    """
    if not isinstance(value, dict):
        raise InvalidInputError("files", type(value).__name__, "a map of relative file names to blob hashes")
    names: dict[str, bytes] = {}
    for name, text in value.items():
        if not (isinstance(text, str) and _HEX.fullmatch(text)):
            raise InvalidInputError(f"blob hash of file {name!r}", text, "64 hexadecimal digits")
        names[name] = bytes.fromhex(text)
    access = FileAccess.stored(names, blobs, origin="an API client")
    for name, digest in access.names:
        if not blobs.has(digest):
            problem = f"no blob {digest.hex()} in the store: upload it first (POST /v1/blobs)"
            raise ManifestError(source, f"files[{name!r}]", problem)
    return access


def _with_inline_state(data: dict[str, Any], state: bytes) -> str:
    """The manifest as TOML again, with ``init_state`` replaced by the given bytes in base64.

    Written by ``tomli_w``, which writes every value ``tomllib`` reads (any Unicode, nested and array tables,
    dates and times, inf and nan), so the text reads back as the same table.
    """
    data = dict(data)
    data["init_state"] = {"base64": base64.b64encode(state).decode("ascii")}
    return tomli_w.dumps(data)


__all__ = ["client_manifest", "uploaded_files"]
