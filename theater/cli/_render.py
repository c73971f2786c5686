"""Rendering for humans: short hashes, relative times, one-line summaries, terminal-aware tables.

The JSON forms (``--json``) are ``theater.porcelain.forms``'s, shared with the management API.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console

from store import Event
from theater.handlers.http_events import http_summary

SHORT = 12


def short(digest: bytes | None, full: bool = False) -> str:
    if digest is None:
        return "-"
    return digest.hex() if full else digest.hex()[:SHORT]


def console() -> Console:
    """A console for tables: the terminal's width on a TTY; in a pipe, never wrapped (each row one line)."""
    tty = sys.stdout.isatty()
    return Console(soft_wrap=False, width=None if tty else 100_000)


def ago(timestamp_ms: int, now_ms: int | None = None) -> str:
    """A relative time such as ``3s ago`` or ``2h ago``."""
    now_ms = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    delta = max(0, now_ms - timestamp_ms) / 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if delta >= size:
            return f"{int(delta // size)}{unit} ago"
    return f"{int(delta)}s ago"


def summary(event: Event, width: int = 80) -> str:
    """One line describing the event's data (an HTTP event's method, path, status and sizes first)."""
    text = data_summary(event.data, width)
    reading = http_summary(event.type, event.data)
    if reading is None:
        return text
    line = f"{reading}  {text}"
    return line if len(line) <= width else line[: width - 1] + "…"


def data_summary(data: Any, width: int = 80) -> str:
    """One line describing event data: hashes shortened, printable bytes as text, long values cut."""
    if isinstance(data, dict):
        data = {k: v for k, v in data.items() if k not in ("engine", "limits")}
    text = json.dumps(_brief(data), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text if len(text) <= width else text[: width - 1] + "…"


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
