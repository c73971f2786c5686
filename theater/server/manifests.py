"""Manifests sent by clients: parsed without the server reading any file a manifest names.

A client sends the manifest's TOML text, parsed with no file access (``FileAccess.none``): paths in it are the
client's, not the server's. The component comes as bytes or a blob hash beside the manifest, and an
``init_state = { file = ... }`` must come with the state's bytes (the CLI reads the file and sends them). In that
one case the manifest recorded for the actor is the client's TOML with ``init_state`` given inline as base64, so
the record is self-contained and a restart can read it. A child such an actor spawns through its supervisor names
no files either (its ``files`` access is ``none``).
"""

from __future__ import annotations

import base64
import dataclasses
from typing import Any

import tomli_w

from theater.errors import ManifestError
from theater.files import FileAccess
from theater.manifest import ComponentRef, Manifest, parse_manifest, parse_toml

CLIENT = FileAccess.none("an API client")


def client_manifest(
    text: str, *, source: str, component: bytes | None, init_state: bytes | None
) -> Manifest:
    """Parse a client's manifest; ``component`` (a blob hash) replaces whatever the manifest names.

    Raises:
        ManifestError: the TOML is malformed (or nested too deeply), its component is a path and no component was
            sent, or its ``init_state`` names a file and no ``init_state`` was sent.
    """
    data = parse_toml(text, source)
    state = data.get("init_state")
    if isinstance(state, dict) and "file" in state:
        if init_state is None:
            problem = "the server does not read files: send the state's bytes as init_state (the CLI does)"
            raise ManifestError(source, "init_state.file", problem)
        text = _with_inline_state(data, init_state)
    manifest = parse_manifest(text, source=source, files=CLIENT)
    if component is not None:
        return dataclasses.replace(manifest, component=ComponentRef(kind="hash", value=component))
    if manifest.component.kind == "path":
        problem = ("the server does not read files: send the component's bytes (component) or the hash of a blob "
                   "in the server's store (component_hash)")
        raise ManifestError(source, "component", problem)
    return manifest


def _with_inline_state(data: dict[str, Any], state: bytes) -> str:
    """The manifest as TOML again, with ``init_state`` replaced by the given bytes in base64.

    Written by ``tomli_w``, which writes every value ``tomllib`` reads (any Unicode, nested and array tables,
    dates and times, inf and nan), so the text reads back as the same table.
    """
    data = dict(data)
    data["init_state"] = {"base64": base64.b64encode(state).decode("ascii")}
    return tomli_w.dumps(data)


__all__ = ["client_manifest"]
