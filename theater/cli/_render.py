"""Rendering for the CLI: JSON-safe values, short hashes, relative times, event tables."""

from __future__ import annotations

import json
import time
from typing import Any

from store import Event

SHORT = 12


def jsonable(value: Any, *, readable: bool = False) -> Any:
    """Event data as JSON: bytes become ``"hex:..."``; with ``readable``, bytes holding JSON become that value."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if readable and raw[:1] in (b"{", b"["):
            try:
                return {"json": json.loads(raw)}
            except ValueError:
                pass
        return "hex:" + raw.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v, readable=readable) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, readable=readable) for v in value]
    return value


def short(digest: bytes | None, full: bool = False) -> str:
    if digest is None:
        return "-"
    return digest.hex() if full else digest.hex()[:SHORT]


def ago(timestamp_ms: int, now_ms: int | None = None) -> str:
    """A relative time such as ``3s ago`` or ``2h ago``."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    delta = max(0, now_ms - timestamp_ms) / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit} ago"
    return f"{int(delta)}s ago"


def event_json(event: Event) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "hash": event.hash.hex(),
        "parent": event.parent.hex() if event.parent else None,
        "type": event.type,
        "timestamp_ms": event.timestamp_ms,
        "data": jsonable(event.data),
    }


def summary(event: Event, width: int = 80) -> str:
    """One line describing the event's data."""
    return data_summary(event.data, width)


def data_summary(data: Any, width: int = 80) -> str:
    """One line describing event data: hashes shortened, printable bytes as text, long values cut."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ("engine", "limits")}
    text = json.dumps(_brief(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


def from_jsonable(value: Any) -> Any:
    """The inverse of ``jsonable`` (without ``readable``): ``"hex:..."`` strings become bytes again."""
    if isinstance(value, str) and value.startswith("hex:"):
        try:
            return bytes.fromhex(value[4:])
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def _brief(value: Any) -> Any:
    if isinstance(value, bytes):
        if len(value) == 32:
            return value.hex()[:SHORT]
        try:
            text = value.decode()
            if text.isprintable():
                return text if len(text) <= 40 else text[:39] + "…"
        except UnicodeDecodeError:
            pass
        return f"<{len(value)} bytes {value[:8].hex()}>"
    if isinstance(value, dict):
        return {k: _brief(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_brief(v) for v in value]
    return value
