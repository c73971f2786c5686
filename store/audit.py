"""Audit proofs of a home: its signing key, its checkpoints, and inclusion and consistency proofs against them.

The proof files are JSON, self-contained, and checked by ``check_proof`` with nothing but the home's verifier key
(no home, no store): the signed note of each checkpoint, the leaf index, the tree size and the RFC 9162 path (base64
SHA-256 hashes, bottom-up, as RFC 9162 orders them).

An event's hash commits to its parent's hash, so proving that an actor's event is in a checkpoint proves its whole
chain up to that event: whoever holds the chain checks the links, and the last link is in the signed log.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass
from typing import Any

from store._commit import ReadOnlyWriter, Writer
from store._env import Environment
from store.checkpoint import (
    Checkpoint,
    Cosignature,
    CosignerKey,
    PendingCheckpoint,
    PendingCosignature,
    VerifierKey,
    last_number,
    load_or_create_key,
    open_note,
    open_cosignature,
    read_checkpoint,
    read_cosignatures,
    read_public_key,
    with_cosignatures,
)
from store.chain import EventLog
from store.errors import InvalidInputError, NotFoundError, ProofError, ReadOnlyError
from store.merkle import (
    EMPTY_ROOT,
    HASH_SIZE,
    TreeView,
    leaf_hash,
    node_hash,
    read_size,
    verify_consistency,
    verify_inclusion,
)

INCLUSION_FORMAT = "theater-inclusion-proof/1"
CONSISTENCY_FORMAT = "theater-consistency-proof/1"


def _b64(items: list[bytes]) -> list[str]:
    return [base64.b64encode(item).decode() for item in items]


@dataclass(frozen=True, kw_only=True)
class ProofResult:
    """What a proof file proved: its kind, the checkpoint(s) and, for inclusion, the event and leaf."""

    kind: str
    checkpoints: tuple[Checkpoint, ...]
    event: bytes | None = None
    leaf_index: int | None = None


class Audit:
    """The audit side of one home (``Store.audit``)."""

    def __init__(self, env: Environment, writer: Writer | ReadOnlyWriter, log: EventLog) -> None:
        self._env = env
        self._writer = writer
        self._log = log

    def key(self, *, create: bool = True) -> VerifierKey:
        """The home's verifier key; the signing key is created on first use when ``create``.

        Raises:
            ProofError: the key file is readable by others, malformed, or not the key the home recorded.
        """
        signer = load_or_create_key(self._env.path, create=create and not self._env.readonly)
        with self._env.read() as txn:
            recorded = read_public_key(txn, self._env.dbs)
        if recorded is not None and recorded != signer.key:
            raise ProofError("signing key", f"it is {signer.key.text} but the home recorded {recorded.text}")
        return signer.key

    def checkpoint(self, timeout: float | None = 60.0) -> Checkpoint:
        """Sign the log as it is now (every append committed so far) and keep the checkpoint.

        Raises:
            ReadOnlyError: the store is open read-only. ProofError: the signing key is unsafe or was replaced.
        """
        if self._env.readonly or not isinstance(self._writer, Writer):
            raise ReadOnlyError(str(self._env.path))
        signer = load_or_create_key(self._env.path)
        op = self._writer.submit(PendingCheckpoint(signer))
        made = op.wait(timeout)
        assert made is not None
        return made

    def checkpoints_behind(self) -> bool:
        """True when the log holds events the newest checkpoint does not cover (or there is no checkpoint yet and
        the log is not empty)."""
        with self._env.read() as txn:
            size = read_size(txn, self._env.dbs)
            number = last_number(txn, self._env.dbs)
            return size > (read_checkpoint(txn, self._env.dbs, number).size if number else 0)

    def checkpoints(self) -> list[Checkpoint]:
        """Every checkpoint of the home, oldest first."""
        with self._env.read() as txn:
            return [read_checkpoint(txn, self._env.dbs, n) for n in range(1, last_number(txn, self._env.dbs) + 1)]

    def get(self, number: int | None = None) -> Checkpoint:
        """Checkpoint ``number`` (default: the newest).

        Raises:
            NotFoundError: there is no such checkpoint (none at all: make one with ``checkpoint``).
        """
        with self._env.read() as txn:
            if number is None:
                number = last_number(txn, self._env.dbs)
            return read_checkpoint(txn, self._env.dbs, number)

    def cosign(self, number: int, line: str, keys: tuple[CosignerKey, ...], timeout: float | None = 60.0,
               ) -> Cosignature:
        """Check a witness's cosignature line of checkpoint ``number`` against ``keys`` and keep it.

        Raises:
            NotFoundError: no such checkpoint. ProofError: the line is by no key of ``keys``, or does not verify.
            ReadOnlyError: the store is open read-only.
        """
        if self._env.readonly or not isinstance(self._writer, Writer):
            raise ReadOnlyError(str(self._env.path))
        cp = self.get(number)
        cosignature = open_cosignature(cp.note, line, keys)
        return self._writer.submit(PendingCosignature(number, cosignature)).wait(timeout)

    def cosignatures(self, number: int) -> list[str]:
        """The cosignature lines kept for checkpoint ``number`` (none: an empty list)."""
        with self._env.read() as txn:
            return read_cosignatures(txn, self._env.dbs, number)

    def cosigned(self, number: int | None = None) -> tuple[Checkpoint, str]:
        """Checkpoint ``number`` (default: the newest) and its note with every kept cosignature appended.

        Raises:
            NotFoundError: there is no such checkpoint.
        """
        with self._env.read() as txn:
            if number is None:
                number = last_number(txn, self._env.dbs)
            cp = read_checkpoint(txn, self._env.dbs, number)
            return cp, with_cosignatures(cp.note, read_cosignatures(txn, self._env.dbs, number))

    def prove(self, digest: bytes, number: int | None = None) -> dict[str, Any]:
        """The inclusion proof of the event ``digest`` in checkpoint ``number`` (default: the newest), as JSON.

        Raises:
            NotFoundError: no such event or checkpoint. ProofError: the event is newer than the checkpoint.
        """
        actor, seq = self._log.locate(digest)
        with self._env.read() as txn:
            if number is None:
                number = last_number(txn, self._env.dbs)
            cp = read_checkpoint(txn, self._env.dbs, number)
            tree = TreeView(txn, self._env.dbs)
            try:
                index = tree.position(actor, seq, digest)
            except NotFoundError:
                index = cp.size  # committed after the newest checkpoint: its leaf is not indexed yet
            if index >= cp.size:
                raise ProofError(
                    f"checkpoint {number}", f"it covers {cp.size} events and not this one, committed after it: make "
                    "a newer checkpoint (theater audit checkpoint) and prove against it",
                )
            path = tree.inclusion(index, cp.size)
        return {
            "format": INCLUSION_FORMAT,
            "checkpoint": cp.note,
            "checkpoint_number": number,
            "tree_size": cp.size,
            "leaf_index": index,
            "event": digest.hex(),
            "actor": str(actor),
            "seq": seq,
            "path": _b64(path),
        }

    def consistency(self, old: int, new: int) -> dict[str, Any]:
        """The proof that checkpoint ``new`` extends checkpoint ``old``, as JSON.

        Raises:
            NotFoundError: no such checkpoint. InvalidInputError: ``old`` covers more than ``new``.
        """
        with self._env.read() as txn:
            first = read_checkpoint(txn, self._env.dbs, old)
            second = read_checkpoint(txn, self._env.dbs, new)
            if first.size > second.size:
                raise InvalidInputError(
                    "checkpoints", f"{old}, {new}", f"an older one first (checkpoint {old} covers {first.size} "
                    f"events, {new} covers {second.size})",
                )
            path = TreeView(txn, self._env.dbs).consistency(first.size, second.size)
        return {
            "format": CONSISTENCY_FORMAT,
            "old": first.note,
            "new": second.note,
            "old_size": first.size,
            "new_size": second.size,
            "path": _b64(path),
        }

    def verify(self) -> AuditReport:
        """Check the audit log against the home's events and its checkpoints (see ``verify_log``)."""
        return verify_log(self._env)

    def event_of_actor(self, actor: uuid.UUID) -> bytes:
        """The hash of the actor's latest event (its head), whose inclusion proves the whole chain.

        Raises:
            NotFoundError: the actor has no events.
        """
        head = self._log.head(actor)
        if head.hash is None:
            raise NotFoundError("event of actor", str(actor))
        return head.hash


def _hashes(value: object, where: str) -> list[bytes]:
    if not isinstance(value, list):
        raise ProofError("proof", f"{where} is not a list of base64 hashes")
    out = []
    for item in value:
        try:
            raw = base64.b64decode(item, validate=True) if isinstance(item, str) else b""
        except binascii.Error:
            raw = b""
        if len(raw) != HASH_SIZE:
            raise ProofError("proof", f"{where} holds {str(item)[:60]!r}, not a base64 32-byte hash")
        out.append(raw)
    return out


def _int(proof: dict[str, Any], name: str) -> int:
    value = proof.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ProofError("proof", f"{name} is {value!r}, not a non-negative integer")
    return value


def _note(proof: dict[str, Any], name: str, key: VerifierKey) -> Checkpoint:
    note = proof.get(name)
    if not isinstance(note, str):
        raise ProofError("proof", f"it has no {name} checkpoint (a signed note)")
    return open_note(note, key)


def check_proof(proof: object, key: VerifierKey) -> ProofResult:
    """Check a proof file's content with nothing but the verifier key.

    Raises:
        ProofError: the proof does not hold (names what failed: the signature, the size, the path).
    """
    if not isinstance(proof, dict):
        raise ProofError("proof", "it is not a JSON object")
    kind = proof.get("format")
    if kind == INCLUSION_FORMAT:
        cp = _note(proof, "checkpoint", key)
        size, index = _int(proof, "tree_size"), _int(proof, "leaf_index")
        if size != cp.size:
            raise ProofError("proof", f"it claims tree size {size} but its checkpoint signs size {cp.size}")
        event = proof.get("event")
        try:
            digest = bytes.fromhex(event) if isinstance(event, str) else b""
        except ValueError:
            digest = b""
        if len(digest) != 32:
            raise ProofError("proof", f"event {str(event)[:80]!r} is not a 32-byte hex hash")
        if not verify_inclusion(leaf_hash(digest), index, size, _hashes(proof.get("path"), "path"), cp.root):
            raise ProofError(
                "inclusion proof", f"event {digest.hex()} is not leaf {index} of the log of {size} events signed by "
                f"{key.name}: the path does not lead to the signed root",
            )
        return ProofResult(kind="inclusion", checkpoints=(cp,), event=digest, leaf_index=index)
    if kind == CONSISTENCY_FORMAT:
        first, second = _note(proof, "old", key), _note(proof, "new", key)
        if first.origin != second.origin:
            raise ProofError("consistency proof", f"the checkpoints are of two logs ({first.origin}, {second.origin})")
        if not verify_consistency(first.size, second.size, _hashes(proof.get("path"), "path"), first.root,
                                  second.root):
            raise ProofError(
                "consistency proof", f"the log of {second.size} events does not extend the one of {first.size} "
                "events: history was rewritten, or the proof is not for these checkpoints",
            )
        return ProofResult(kind="consistency", checkpoints=(first, second))
    raise ProofError("proof", f"format {str(kind)[:60]!r} is not {INCLUSION_FORMAT} or {CONSISTENCY_FORMAT}")


@dataclass(frozen=True, kw_only=True)
class AuditReport:
    """What ``Audit.verify`` found: the leaves and checkpoints checked, and every problem (none: the log holds)."""

    leaves: int
    checkpoints: int
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


MAX_PROBLEMS = 50


def verify_log(env: Environment) -> AuditReport:
    """Check the home's audit log against its events, in one snapshot.

    Every leaf must still be the stored event it recorded (an actor's chain truncated and re-appended in place, or an
    event changed, leaves leaves whose events are gone); the tree rebuilt from the feed must have the stored root
    and the root every checkpoint signed; every checkpoint's signature must verify with the recorded key.
    """
    problems: list[str] = []

    def problem(text: str) -> None:
        if len(problems) < MAX_PROBLEMS:
            problems.append(text)

    dbs = env.dbs
    with env.read() as txn:
        size = read_size(txn, dbs)
        count = last_number(txn, dbs)
        kept = [read_checkpoint(txn, dbs, n) for n in range(1, count + 1)]
        key = read_public_key(txn, dbs)
        if kept and key is None:
            problem("the home holds checkpoints but no recorded verifier key")
        for cp in kept:
            if key is not None:
                try:
                    open_note(cp.note, key)
                except ProofError as exc:
                    problem(f"checkpoint {cp.number}: {exc.reason}")
            if cp.size > size:
                problem(f"checkpoint {cp.number} signs {cp.size} events but the log holds {size}")
        for before, after in zip(kept, kept[1:]):
            if after.size < before.size:
                problem(f"checkpoint {after.number} signs {after.size} events, fewer than checkpoint {before.number}")
        wanted: dict[int, list[Checkpoint]] = {}
        for cp in kept:
            wanted.setdefault(cp.size, []).append(cp)
            if cp.size == 0 and cp.root != EMPTY_ROOT:
                problem(f"checkpoint {cp.number} signs an empty log with a root that is not the empty tree's")
        stack: list[tuple[int, bytes]] = []  # the compact range: (leaves, hash) of perfect subtrees, left to right
        events = dbs["events"]
        position = 0
        cursor = txn.cursor(db=dbs["feed"])
        for key_bytes, value in cursor if cursor.first() else ():
            if position >= size:
                break
            if int.from_bytes(key_bytes, "big") != position:
                problem(f"the feed skips from position {position} to {int.from_bytes(key_bytes, 'big')}")
                break
            actor, digest = bytes(value[:16]), bytes(value[16:48])
            if len(value) == 16 + 32 + 8:
                stored = txn.get(actor + bytes(value[48:]), db=events)
                if stored is None or bytes(stored[:32]) != digest:
                    seq = int.from_bytes(value[48:], "big")
                    now = "is gone" if stored is None else f"is now {bytes(stored[:32]).hex()}"
                    problem(f"leaf {position}: event {digest.hex()} of actor {uuid.UUID(bytes=actor)} seq {seq} "
                            f"{now}: its chain was rewritten after it was logged")
            stack.append((1, leaf_hash(digest)))
            while len(stack) > 1 and stack[-1][0] == stack[-2][0]:
                (n, right), (_, left) = stack.pop(), stack.pop()
                stack.append((2 * n, node_hash(left, right)))
            position += 1
            for cp in wanted.get(position, ()):
                if _fold(stack) != cp.root:
                    problem(f"checkpoint {cp.number} signs a root the log's first {cp.size} events do not have")
        if position != size:
            problem(f"the log holds {size} leaves but the feed {position} entries")
        elif size and _fold(stack) != TreeView(txn, dbs).root(size):
            problem("the stored tree's root is not the root of the feed's events")
    return AuditReport(leaves=size, checkpoints=len(kept), problems=tuple(problems))


def _fold(stack: list[tuple[int, bytes]]) -> bytes:
    root = stack[-1][1]
    for _, left in reversed(stack[:-1]):
        root = node_hash(left, root)
    return root
