"""Witnesses: follow a server's signed checkpoints, copy and re-execute what they cover, and co-sign them.

A witness holds its own Ed25519 key and its own home. Each round it:

1. reads the server's newest checkpoint and checks its signature with the server key pinned on first contact;
2. checks that it extends the last checkpoint it accepted (an RFC 9162 consistency proof, checked against the roots
   it holds itself, not against anything the server says about them);
3. copies the events the new checkpoint covers, in feed order, into its home, with the blobs they name: each event
   must hash to its hash and link to the chain the witness holds (``Recorder.append_stored``), and the leaves of
   the copied events must reproduce the checkpoint's root (kept as a compact range, O(log n));
4. re-executes every chain that moved from where it stopped (``replay.live.LiveReplay``: a live instance per
   chain, served from the record; after a restart, from the recorded state at the last call it verified, or from
   the start of the recorded instance when a fresh one does not behave the same);
5. only then keeps its progress (in one transaction, in its home) and posts a C2SP cosignature of the checkpoint.

A rewrite (a checkpoint by another key, inconsistent checkpoints, a changed event, leaves that do not reproduce
the root) or a divergence is written as evidence to a JSON file in ``<home>/witness/evidence/`` and raised as
``RewriteFound``: the witness does not co-sign and stops. It also marks itself halted (``<home>/witness/halted.json``,
naming the evidence): restarted, it refuses to go on (``WitnessHalted``) until the operator has looked at the
evidence and cleared the mark (``clear_halt``, ``theater witness --clear-halt``). A witness that found a rewrite
must not quietly go back to co-signing because it was restarted by a supervisor.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.client import HTTPException
from pathlib import Path
from typing import Any, NoReturn

from replay.errors import ReplayError
from replay.live import LiveReplay
from replay.replayer import Replayer
from store import Event, Head, Store
from store.blobs import blob_digest
from store.checkpoint import Checkpoint, Cosigner, VerifierKey, load_or_create_seed, open_note
from store.codec import BLOB_TAG_BYTES, collect_blob_refs
from store.errors import ChecksumMismatch, CorruptRecordError, ProofError, TheaterError
from store.merkle import HASH_SIZE, leaf_hash, verify_consistency
from store.recorder import unspill
from store.verify import named_blobs
from store.witness import (
    ChainProgress,
    CompactRange,
    PendingWitnessState,
    WitnessState,
    blobs_named,
    page_from_cbor,
    read_state,
)

WITNESS_DIR = "witness"
KEY_FILE = "ed25519.key"
EVIDENCE_DIR = "evidence"
HALT_FILE = "halted.json"
NAME_PREFIX = "theater-witness/"
MAX_RESPONSE_BYTES = 512 * 1024 * 1024
MAX_KEPT_EVENTS = 200_000  # events of a round kept decoded for re-execution; beyond that they are read back
MAX_SESSIONS = 256  # live re-executions kept between rounds; the least recently moved beyond that are dropped
TIMEOUT_S = 60.0


class WitnessError(TheaterError):
    """The witness cannot go on: the server is unreachable, answers an error, or sends something malformed."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what}: {reason}")


class RewriteFound(WitnessError):
    """The server rewrote history, or its record does not re-execute: evidence was written to ``path``."""

    def __init__(self, kind: str, reason: str, path: Path) -> None:
        self.kind = kind
        self.path = path
        super().__init__(f"witness found {kind}", f"{reason}; evidence written to {path}; not co-signed")


class WitnessHalted(WitnessError):
    """The witness found a rewrite or a divergence before and stays halted until the operator clears the mark."""

    def __init__(self, path: Path, kind: str, evidence: str) -> None:
        self.path = path
        self.kind = kind
        self.evidence = evidence
        super().__init__("witness halted", f"it found {kind} (evidence: {evidence}); check the evidence, then clear "
                                           f"the halt ({path}) with 'theater witness --clear-halt' to go on")


@dataclass(frozen=True, slots=True, kw_only=True)
class Round:
    """What one round did: the checkpoint accepted and co-signed (None: nothing new), events and calls verified."""

    number: int | None
    size: int
    events: int
    calls: int
    resumed_chains: int


class _Remote:
    """The server's API, over urllib, with a token; every failure becomes ``WitnessError``."""

    def __init__(self, url: str, token: str | None, timeout: float = TIMEOUT_S) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def _open(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
              missing: bytes | None = None) -> bytes:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw: bytes = response.read(MAX_RESPONSE_BYTES + 1)
        except urllib.error.HTTPError as exc:
            if exc.code == 404 and missing is not None:
                return missing
            raise WitnessError(f"{method} {path}", f"the server answered {exc.code}: {_message(exc)}") from None
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            raise WitnessError(f"{method} {path}", f"cannot reach {self.url}: {exc}") from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise WitnessError(f"{method} {path}", f"the answer is over {MAX_RESPONSE_BYTES} bytes")
        return raw

    def json(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             missing: bytes | None = None) -> dict[str, Any]:
        """The JSON object the server answers; ``missing`` (JSON) stands for the answer when it is a 404."""
        raw = self._open(method, path, query, body, missing)
        try:
            value = json.loads(raw)
        except ValueError:
            raise WitnessError(f"{method} {path}", "the answer is not JSON") from None
        if not isinstance(value, dict):
            raise WitnessError(f"{method} {path}", "the answer is not a JSON object")
        return value

    def raw(self, path: str, query: dict[str, Any] | None = None) -> bytes:
        return self._open("GET", path, query)


def _message(exc: urllib.error.HTTPError) -> str:
    try:
        return str(json.loads(exc.read()).get("message", exc.reason))[:300]
    except (ValueError, AttributeError, OSError):
        return str(exc.reason)


class Witness:
    """A witness of one server, with its home's store and its key.

    Args:
        url: the server's base URL (``http://host:port``).
        store: the witness's own home store (it copies events and blobs into it; its progress lives there).
        cosigner: the witness's key and name.
        evidence_dir: where evidence files go.
        token: the server's API token, if it has one.
        server_key: the server's verifier key; None: pinned on first contact (or from the kept state).
        log: called with one line per thing worth saying.
        halt_file: the halt mark (default: ``halted.json`` beside ``evidence_dir``).

    Raises:
        WitnessHalted: the witness found a rewrite or a divergence before and the mark is not cleared.
        WitnessError: ``server_key`` is not the key this witness pinned.
    """

    def __init__(self, url: str, store: Store, cosigner: Cosigner, evidence_dir: Path, *, token: str | None = None,
                 server_key: VerifierKey | None = None, log: Callable[[str], None] = lambda line: None,
                 halt_file: Path | None = None) -> None:
        self.halt_file = evidence_dir.parent / HALT_FILE if halt_file is None else halt_file
        check_halt(self.halt_file)
        self.remote = _Remote(url, token)
        self.store = store
        self.cosigner = cosigner
        self.evidence_dir = evidence_dir
        self.log = log
        self.replayer = Replayer(store)
        self.sessions: dict[bytes, LiveReplay] = {}
        self._posted = 0  # the checkpoint this process last co-signed
        self._copied: dict[bytes, list[tuple[Event, bool]]] = {}  # this round's events as copied, by chain
        self._kept = 0
        self.state = read_state(store)
        if self.state is not None and server_key is not None and self.state.server_key != server_key.text:
            raise WitnessError("server key", f"--server-key {server_key.text} is not the key this witness pinned "
                                             f"({self.state.server_key})")
        self._given_key = server_key

    # The round.

    def round(self) -> Round:
        """Poll once: verify and co-sign the server's newest checkpoint if it is new.

        Raises:
            RewriteFound: a rewrite or a divergence (evidence written). WitnessHalted: one was found before and the
            halt mark is not cleared. WitnessError: the server cannot be read.
        """
        check_halt(self.halt_file)
        key = self._server_key()
        assert self.state is not None
        latest = self.remote.json("GET", "/v1/audit/checkpoints/latest", missing=b"{}")
        if not latest:  # the server has made no checkpoint yet
            return Round(number=None, size=self.state.size, events=0, calls=0, resumed_chains=0)
        number, note = latest.get("number"), latest.get("note")
        if type(number) is not int or not isinstance(note, str):
            raise WitnessError("GET /v1/audit/checkpoints", "the newest checkpoint has no number or note")
        cp = self._open(note, key, number)
        if number == self.state.number and cp.size == self.state.size:
            if cp.root != CompactRange(self.state.size, list(self.state.hashes)).root():
                self._evidence("a rewrite", f"checkpoint {number} now signs another root for the same size",
                               new=note, new_number=number)
            if self._posted != number:  # accepted before a restart (or a failed post): co-sign it now
                self._post(cp, number)
            return Round(number=None, size=cp.size, events=0, calls=0, resumed_chains=0)
        self._check_extends(cp, number)
        tree, moved, events = self._copy(cp, number)
        walked, resumed = self._reexecute(moved, cp, number)
        self._accept(cp, number, tree, moved, events, walked)
        self._post(cp, number)
        return Round(number=number, size=cp.size, events=events, calls=sum(w[0] for w in walked.values()),
                     resumed_chains=resumed)

    def _server_key(self) -> VerifierKey:
        if self.state is None:
            key = self._given_key
            if key is None:
                answer = self.remote.json("GET", "/v1/audit/key")
                try:
                    key = VerifierKey.parse(str(answer.get("key", "")))
                except TheaterError as exc:
                    raise WitnessError("GET /v1/audit/key", str(exc)) from None
                self.log(f"pinned the server's key {key.text}")
            self.state = WitnessState(server_key=key.text)
            self.store.submit([pending := PendingWitnessState(self.state, [])])
            pending.wait()
        return VerifierKey.parse(self.state.server_key)

    def _open(self, note: str, key: VerifierKey, number: int) -> Checkpoint:
        try:
            cp = open_note(note, key)
        except ProofError as exc:
            self._evidence("a checkpoint signed by another key", f"checkpoint {number} does not verify with the "
                           f"pinned server key {key.text}: {exc.reason}", new=note, new_number=number)
        if cp.origin != key.name:
            self._evidence("a checkpoint of another log", f"checkpoint {number} names origin {cp.origin!r}, not "
                           f"{key.name!r}", new=note, new_number=number)
        return cp

    def _check_extends(self, cp: Checkpoint, number: int) -> None:
        """Check the new checkpoint extends the accepted one (RFC 9162 consistency, against our own roots)."""
        state = self.state
        assert state is not None
        old_root = CompactRange(state.size, list(state.hashes)).root()
        if cp.size < state.size or (cp.size == state.size and cp.root != old_root):
            self._evidence("a rewrite", f"checkpoint {number} signs {cp.size} events with root "
                           f"{cp.root.hex()}, but checkpoint {state.number} accepted before signs {state.size} "
                           f"with root {old_root.hex()}: the log shrank or changed", new=cp.note, new_number=number)
        if state.size == 0 or cp.size == state.size:
            return
        proof = self.remote.json("GET", "/v1/audit/proofs/consistency", {"old": state.number, "new": number})
        path = _hashes(proof.get("path"))
        sizes_match = proof.get("old_size") == state.size and proof.get("new_size") == cp.size
        if path is None or not sizes_match or not verify_consistency(state.size, cp.size, path, old_root, cp.root):
            self._evidence("a rewrite (inconsistent checkpoints)", f"checkpoint {number} ({cp.size} events) does "
                           f"not extend checkpoint {state.number} ({state.size} events) accepted before: the "
                           "consistency proof does not hold", new=cp.note, new_number=number, proof=proof)

    def _copy(self, cp: Checkpoint, number: int) -> tuple[CompactRange, dict[bytes, Head], int]:
        """Copy the events ``state.size <= position < cp.size`` with their blobs; check hashes, links and root."""
        state = self.state
        assert state is not None
        tree = CompactRange(state.size, list(state.hashes))
        heads: dict[bytes, Head] = {}
        self._copied, self._kept = {}, 0
        last = None
        while tree.size < cp.size:
            data = self.remote.raw("/v1/audit/feed", {"from": tree.size, "to": cp.size})
            try:
                page = page_from_cbor(data, "GET /v1/audit/feed")
            except CorruptRecordError as exc:
                raise WitnessError("GET /v1/audit/feed", str(exc)) from None
            if not page.entries:
                self._evidence("a rewrite (a truncated feed)", f"checkpoint {number} signs {cp.size} events but the "
                               f"server's feed ends at {page.end}", new=cp.note, new_number=number)
            named: list[bytes] = []
            for position, actor, seq, value in page.entries:
                if position >= cp.size:
                    break
                pending = self._copy_one(position, actor, seq, value, tree, heads, cp, number)
                if pending is None:
                    named.extend(blobs_named(value, f"feed position {position}"))
                else:
                    last = pending
                    collect_blob_refs(pending.event.data, named)
                    named.extend(digest for _, digest in named_blobs(pending.event.type, pending.event.data))
            blob = self._blobs(page.blobs, named, cp, number)
            last = blob or last
        if last is not None:
            last.wait()
        if tree.root() != cp.root:
            self._evidence("a rewrite (leaves do not reproduce the root)", f"the {cp.size} events the server's feed "
                           f"lists have root {tree.root().hex()}, not the root {cp.root.hex()} checkpoint {number} "
                           "signs", new=cp.note, new_number=number)
        return tree, heads, cp.size - state.size

    def _copy_one(self, position: int, actor: bytes, seq: int, value: bytes, tree: CompactRange,
                  heads: dict[bytes, Head], cp: Checkpoint, number: int) -> Any:
        who = uuid.UUID(bytes=actor)
        where = f"feed position {position} (actor {who} seq {seq})"
        if position != tree.size:
            self._evidence("a rewrite (a feed with a gap)", f"the feed jumps from {tree.size} to {position}",
                           new=cp.note, new_number=number)
        head = heads.get(actor) or self.store.log.head(who)
        digest = value[:HASH_SIZE]
        pending = None
        if seq <= head.seq:  # copied before a restart, not accepted then: it must be the same event
            if self.store.log.at(who, seq).hash != digest:
                self._evidence("a changed event", f"{where} is {digest.hex()} now, another event before",
                               new=cp.note, new_number=number)
        elif seq != head.seq + 1:
            self._evidence("a changed chain", f"{where} follows seq {head.seq}: events are missing",
                           new=cp.note, new_number=number)
        else:
            try:
                pending = self.store.log.append_stored(who, value, expected=head)
            except (ChecksumMismatch, CorruptRecordError) as exc:
                self._evidence("a changed event", f"{where} does not fit the chain the witness holds: {exc}",
                               new=cp.note, new_number=number)
            if self._kept < MAX_KEPT_EVENTS:  # decoded once: re-execution takes it from here, not from the store
                self._copied.setdefault(actor, []).append((pending.event, BLOB_TAG_BYTES in value))
                self._kept += 1
        heads[actor] = Head(seq, digest)
        tree.append(leaf_hash(digest))
        return pending

    def _blobs(self, inline: dict[bytes, bytes], named: list[bytes], cp: Checkpoint, number: int) -> Any:
        """Store every blob the copied events name, from the page or fetched one by one; nothing else. Returns the
        last write queued (None: none)."""
        pending = None
        for digest in dict.fromkeys(named):
            if self.store.blobs.has(digest):
                continue
            blob = inline.get(digest)
            if blob is None:
                blob = self.remote.raw(f"/v1/blobs/{digest.hex()}")
            if blob_digest(blob) != digest:
                self._evidence("a changed blob", f"blob {digest.hex()} served does not hash to its name",
                               new=cp.note, new_number=number)
            pending = self.store.blobs.put_async(blob)
        return pending

    def _reexecute(self, moved: dict[bytes, Head], cp: Checkpoint,
                   number: int) -> tuple[dict[bytes, tuple[int, int, int]], int]:
        """Re-execute every chain that moved, from where it stopped. Returns, by chain, the calls re-executed and
        where re-execution goes on from; and how many chains were resumed from the kept state."""
        state = self.state
        assert state is not None
        walked: dict[bytes, tuple[int, int, int]] = {}
        opened = 0
        for actor, head in moved.items():
            kept = state.chains.get(actor)
            try:
                session = self.sessions.get(actor)
                if session is None:
                    session = LiveReplay(self.replayer, uuid.UUID(bytes=actor), resume=kept.resume if kept else 0)
                    opened += kept is not None
                before = session.calls
                try:
                    session.advance(self._events(actor, session.fed + 1, head.seq))
                except ReplayError as exc:
                    if not session.on_recorded_state(getattr(exc, "seq", head.seq)):
                        raise
                    # A guest may keep hidden state (globals) between calls, which a fresh instance made from the
                    # recorded state lacks: re-execute from the start of the instance that made the calls.
                    since = session.instance_before(session.start, kept.instance if kept else 0)
                    session = LiveReplay(self.replayer, uuid.UUID(bytes=actor), resume=since)
                    before = 0
                    session.advance(self._events(actor, 0, head.seq))
                self.sessions.pop(actor, None)
                self.sessions[actor] = session  # the most recently moved last
                walked[actor] = (session.calls - before, session.resume,
                                 session.instance_before(session.resume, kept.instance if kept else 0))
            except TheaterError as exc:  # a divergence, a break, a record that cannot be re-executed
                self.sessions.pop(actor, None)
                self._evidence("a divergence", f"actor {uuid.UUID(bytes=actor)} does not re-execute: "
                               f"{type(exc).__name__}: {exc}", new=cp.note, new_number=number,
                               divergence=_divergence_report(actor, exc))
        while len(self.sessions) > MAX_SESSIONS:  # dropped: resumed from its kept progress when it moves again
            del self.sessions[next(iter(self.sessions))]
        return walked, opened

    def _events(self, actor: bytes, start: int, last: int) -> list[Event]:
        """The chain's events ``start..last``: as this round copied them when it kept them all, else from the store."""
        copied = self._copied.get(actor, [])
        if copied and copied[0][0].seq == start and copied[-1][0].seq == last:
            return [e._replace(data=unspill(e.data, self.store.blobs.get)) if spilled else e for e, spilled in copied]
        return list(self.store.log.events(uuid.UUID(bytes=actor), start, last + 1))

    def _accept(self, cp: Checkpoint, number: int, tree: CompactRange, moved: dict[bytes, Head], events: int,
                walked: dict[bytes, tuple[int, int, int]]) -> None:
        """Keep the checkpoint as accepted and every moved chain's progress, in one transaction."""
        state = self.state
        assert state is not None
        chains = dict(state.chains)
        for actor, head in moved.items():
            old = chains.get(actor)
            assert head.hash is not None
            calls, resume, instance = walked[actor]
            chains[actor] = ChainProgress(seq=head.seq, hash=head.hash, resume=resume, instance=instance,
                                          calls=(old.calls if old else 0) + calls)
        self.state = replace(state, number=number, note=cp.note, size=tree.size, hashes=tuple(tree.hashes),
                             verified=state.verified + events, chains=chains)
        self.store.submit([pending := PendingWitnessState(self.state, list(moved))])
        pending.wait()

    def _post(self, cp: Checkpoint, number: int) -> None:
        cosignature = self.cosigner.cosign(cp.note, int(time.time()))
        self.remote.json("POST", f"/v1/audit/checkpoints/{number}/cosignatures",
                         body={"cosignature": cosignature.line})
        self._posted = number
        self.log(f"co-signed checkpoint {number} ({cp.size} events)")

    # Evidence.

    def _evidence(self, kind: str, reason: str, *, new: str, new_number: int, proof: Any = None,
                  divergence: dict[str, Any] | None = None) -> NoReturn:
        state = self.state
        record = {
            "kind": kind,
            "reason": reason,
            "server": self.remote.url,
            "server_key": state.server_key if state else None,
            "accepted": {"number": state.number, "size": state.size, "note": state.note} if state else None,
            "checkpoint": {"number": new_number, "note": new},
            "consistency_proof": proof,
            "divergence": divergence,
            "witness": self.cosigner.key.text,
            "found_at": datetime.datetime.now(datetime.UTC).isoformat(),
        }
        self.evidence_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        path = self.evidence_dir / f"{stamp}-checkpoint-{new_number}.json"
        path.write_text(json.dumps(record, indent=2, default=repr) + "\n")
        _write_halt(self.halt_file, {"kind": kind, "reason": reason, "evidence": str(path),
                                     "found_at": record["found_at"]})
        raise RewriteFound(kind, reason, path)


def _write_halt(path: Path, mark: dict[str, Any]) -> None:
    """Write the halt mark whole or not at all (a crash leaves the old file or the new one, never half of one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(mark, indent=2) + "\n")
    partial.replace(path)


def read_halt(path: Path) -> dict[str, Any] | None:
    """The halt mark at ``path`` (kind, reason, evidence, found_at), or None when the witness is not halted. A mark
    that cannot be read still halts: it is reported as such."""
    try:
        raw = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return {"kind": "an unreadable halt mark", "reason": str(exc), "evidence": str(path)}
    try:
        mark = json.loads(raw)
    except ValueError:
        mark = None
    if not isinstance(mark, dict):
        return {"kind": "a halt mark that is not JSON", "reason": "", "evidence": str(path)}
    return mark


def check_halt(path: Path) -> None:
    """Raise ``WitnessHalted`` when the witness is halted.

    Raises:
        WitnessHalted: the mark at ``path`` is there.
    """
    mark = read_halt(path)
    if mark is not None:
        raise WitnessHalted(path, str(mark.get("kind", "a rewrite")), str(mark.get("evidence", "?")))


def clear_halt(path: Path) -> dict[str, Any] | None:
    """Clear the halt mark (the evidence files stay); returns the mark cleared, or None when there was none."""
    mark = read_halt(path)
    if mark is not None:
        path.unlink(missing_ok=True)
    return mark


def _hashes(value: object) -> list[bytes] | None:
    if not isinstance(value, list):
        return None
    out = []
    for item in value:
        try:
            raw = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
        except binascii.Error:
            return None
        if len(raw) != HASH_SIZE:
            return None
        out.append(raw)
    return out


def _divergence_report(actor: bytes, exc: BaseException) -> dict[str, Any]:
    report: dict[str, Any] = {"actor": str(uuid.UUID(bytes=actor)), "error": type(exc).__name__,
                              "message": str(exc)}
    for name in ("seq", "what", "expected", "actual", "hint"):
        if hasattr(exc, name):
            value = getattr(exc, name)
            report[name] = value.hex() if isinstance(value, bytes) else value
    if isinstance(getattr(exc, "hash", None), bytes):
        report["event"] = exc.hash.hex()  # type: ignore[attr-defined]
    return report


def load_cosigner(key_file: Path, name: str | None) -> Cosigner:
    """The witness's key (created on first use, mode 0600) and its name (default: ``theater-witness/<16 hex of
    SHA-256 of the public key>``).

    Raises:
        ProofError: the key file is readable by others or is not a 32-byte seed.
    """
    private = load_or_create_seed(key_file)
    public = private.public_key().public_bytes_raw()
    return Cosigner(private, name or NAME_PREFIX + hashlib.sha256(public).hexdigest()[:16])


__all__ = ["EVIDENCE_DIR", "HALT_FILE", "KEY_FILE", "WITNESS_DIR", "RewriteFound", "Round", "Witness", "WitnessError",
           "WitnessHalted", "check_halt", "clear_halt", "load_cosigner", "read_halt"]
