"""The JSON forms of everything the porcelain answers: one definition each, shared by the CLI's ``--json``, the
management API and (next) the web explorer.

* Event data: byte strings become ``"hex:..."`` (lossless; ``from_jsonable`` reverses it).
* A byte payload (a state, a message, a response): ``{"base64": "...", "text": "..." or null, "size": n}``.
* An event: ``{"actor", "seq", "hash", "parent", "type", "timestamp_ms", "data", "cause"}`` (``cause``: the hash
  of the sender's event a delivery names, or null).
* Reports (verify, chain integrity), a page of events, a state at a point: see the functions below.

For humans, ``readable`` shows bytes that are printable UTF-8 text as that text (lossy: JSON output stays
lossless).
"""

from __future__ import annotations

import base64
import json
from typing import TYPE_CHECKING, Any

import cbor2

from replay import ContinuityBreak, ReplayReport
from store import ChainReport, Event
from store.search import SearchPage

if TYPE_CHECKING:
    from theater.porcelain.blobs import BlobInfo
    from theater.porcelain.records import EventPage, StatePoint, VerifyReport

HEX = "hex:"


def jsonable(value: Any, *, readable: bool = False) -> Any:
    """Event data as JSON: bytes become ``"hex:..."``; with ``readable``, bytes holding a JSON object or array
    become ``{"json": value}``."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        if readable and raw[:1] in (b"{", b"["):
            try:
                return {"json": json.loads(raw)}
            except ValueError:
                pass
        return HEX + raw.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v, readable=readable) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v, readable=readable) for v in value]
    return value


def from_jsonable(value: Any) -> Any:
    """The inverse of ``jsonable`` (without ``readable``): ``"hex:..."`` strings become bytes again."""
    if isinstance(value, str) and value.startswith(HEX):
        try:
            return bytes.fromhex(value[len(HEX):])
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: from_jsonable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [from_jsonable(v) for v in value]
    return value


def text_of(value: bytes) -> str | None:
    """The bytes as text when they are UTF-8 with nothing unprintable but line breaks and tabs, else None."""
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.replace("\n", "").replace("\r", "").replace("\t", "").isprintable() else None


def readable(value: Any) -> Any:
    """Event data for humans: bytes that are printable UTF-8 text become that text, other bytes ``"hex:..."``.

    Lossy (text and bytes look alike): only for human output; JSON output uses ``jsonable``.
    """
    if isinstance(value, (bytes, bytearray, memoryview)):
        raw = bytes(value)
        text = text_of(raw)
        return text if text is not None and raw else HEX + raw.hex()
    if isinstance(value, dict):
        return {str(k): readable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [readable(v) for v in value]
    return value


def readable_text(value: Any) -> str:
    """``readable(value)`` as one line of JSON text (non-ASCII shown as is)."""
    return json.dumps(readable(value), ensure_ascii=False)


def bytes_json(value: bytes | None) -> dict[str, Any] | None:
    """A byte payload: base64, its UTF-8 text when it is valid UTF-8, and its size."""
    if value is None:
        return None
    try:
        text: str | None = value.decode("utf-8")
    except UnicodeDecodeError:
        text = None
    return {"base64": base64.b64encode(value).decode("ascii"), "text": text, "size": len(value)}


def blob_json(info: BlobInfo) -> dict[str, Any]:
    """A resolved blob reference: its hash and size."""
    return {"hash": info.digest.hex(), "size": info.size}


def event_json(event: Event) -> dict[str, Any]:
    """One event of a chain."""
    return {
        "actor": str(event.actor),
        "seq": event.seq,
        "hash": event.hash.hex(),
        "parent": event.parent.hex() if event.parent else None,
        "type": event.type,
        "timestamp_ms": event.timestamp_ms,
        "data": jsonable(event.data),
        "cause": cause_hex(event),
    }


def cause_hex(event: Event) -> str | None:
    """The hash (hex) of the sender's event a delivery names as its ``cause`` (``docs/events.md``), else None."""
    data = event.data
    cause = data.get("cause") if isinstance(data, dict) else None
    return cause.hex() if isinstance(cause, bytes) and len(cause) == 32 else None


def search_json(page: SearchPage) -> dict[str, Any]:
    """A page of a search (``GET /v1/events/search``, ``theater events --search --json``)."""
    return {"events": [event_json(e) for e in page.events], "next": page.next, "partial": page.partial,
            "scanned": page.scanned}


def chain_event(event: Event) -> dict[str, Any]:
    """One event in the WIT ``chain-event`` record's form (``runtime.get-chain``, ``supervisor.get-child-events``):
    raw hashes, the data as canonical CBOR."""
    return {
        "hash": event.hash,
        "parent-hash": None if event.parent is None else {"some": event.parent},
        "event-type": event.type,
        "data": cbor2.dumps(event.data, canonical=True),
        "timestamp": event.timestamp_ms,
    }


def page_json(page: EventPage) -> dict[str, Any]:
    """A page of selected events: the actor, its head's seq, the events and where the next page starts."""
    return {"actor": str(page.actor), "head": page.head, "events": [event_json(e) for e in page.events],
            "next": page.next}


def state_json(point: StatePoint) -> dict[str, Any]:
    """An actor's state at a point: the event that set it (seq and hash, or None) and the state as a payload."""
    source = point.source
    return {"actor": str(point.actor), "seq": None if source is None else source.seq,
            "event": None if source is None else source.hash.hex(), "state": bytes_json(point.state)}


def integrity_json(report: ChainReport) -> dict[str, Any]:
    """A chain's integrity report (``store.verify_chain``)."""
    p = report.problem
    return {"ok": report.ok, "events": report.events,
            "problem": None if p is None else {"seq": p.seq, "hash": p.hash.hex() if p.hash else None,
                                                "kind": p.kind, "detail": p.detail}}


def chain_report_json(report: ChainReport) -> dict[str, Any]:
    """``integrity_json`` with the actor and its head (``theater chain verify``)."""
    head = report.head
    return {"actor": str(report.actor), **integrity_json(report),
            "head": {"seq": head.seq, "hash": head.hash.hex() if head.hash else None}}


def replay_json(report: ReplayReport | None) -> dict[str, Any] | None:
    """A re-execution report: span, counts, interrupted calls and the divergence, if any."""
    if report is None:
        return None
    d = report.divergence
    return {"ok": report.ok, "from_seq": report.from_seq, "to_seq": report.to_seq, "calls": report.calls,
            "host_calls": report.host_calls,
            "interrupted": [{"seq": c.seq, "hash": c.hash.hex(), "export": c.export, "resumed_at": c.resumed_at}
                            for c in report.interrupted],
            "divergence": None if d is None else {
                "kind": "continuity" if isinstance(d, ContinuityBreak) else "execution",
                "seq": d.seq, "hash": d.hash.hex() if d.hash else None, "what": d.what,
                "expected": jsonable(d.expected, readable=True), "actual": jsonable(d.actual, readable=True),
                "hint": d.hint}}


def verify_json(report: VerifyReport) -> dict[str, Any]:
    """``theater verify --json`` and ``POST /v1/actors/{id}/verify``: integrity, then re-execution."""
    links = report.links
    problem = None if links is None else links.problem
    return {"ok": report.ok, "actor": str(report.actor), "integrity": integrity_json(report.integrity),
            "replay": replay_json(report.replay),
            "links": None if links is None else {
                "ok": links.ok, "links": links.links,
                "problem": None if problem is None else {
                    "seq": problem.seq, "hash": problem.hash.hex(), "detail": problem.detail,
                    "cause": problem.cause.hex() if isinstance(problem.cause, bytes) else jsonable(problem.cause)}}}


__all__ = [
    "blob_json",
    "bytes_json",
    "cause_hex",
    "chain_event",
    "chain_report_json",
    "event_json",
    "from_jsonable",
    "integrity_json",
    "jsonable",
    "page_json",
    "readable",
    "readable_text",
    "replay_json",
    "search_json",
    "state_json",
    "text_of",
    "verify_json",
]
