"""Signed checkpoints of the home's Merkle log: an Ed25519 key per home and C2SP signed notes.

A checkpoint is a C2SP ``tlog-checkpoint`` body (origin line, tree size, base64 root hash) in a C2SP ``signed-note``:
the body, a blank line, and one signature line ``— <key name> <base64(key id (4) || Ed25519 signature (64))>``. The
key id is the first four bytes of ``SHA-256(name || "\\n" || 0x01 || public key)`` (0x01: Ed25519), and the
verifier key is written ``<name>+<key id hex>+<base64(0x01 || public key)>``, as Go's ``golang.org/x/mod/sumdb/note``
and every C2SP tool read it. The key name is the origin, ``theater-home/<first 16 hex digits of SHA-256(public
key)>``.

The private key (its 32-byte seed) is ``<store>/audit/ed25519.key``, mode 0600 in a 0700 directory, created on first
use; a key file that its group or others may read is refused, never used. The verifier key is recorded in the
home's ``meta`` (``audit-key``) by the first checkpoint, and a key file that no longer matches it is refused: a
swapped key would sign a rewritten history under the same home.

Every checkpoint is kept, numbered from 1, in the ``merkle`` database (``b"c" || number (8)`` -> the note).

Witnesses co-sign checkpoints with C2SP ``tlog-cosignature`` cosignatures (``cosignature/v1``): an Ed25519 signature,
by the witness's key, of ``"cosignature/v1\\n" || "time <POSIX seconds>\\n" || the checkpoint's text``, written as
one more signature line ``— <witness name> <base64(key id (4) || timestamp (8, big-endian) || signature (64))>``,
with key id ``SHA-256(name || "\\n" || 0x04 || public key)[:4]`` and verifier key ``<name>+<key id>+<base64(0x04 ||
public key)>``. The home keeps each accepted cosignature (``b"w" || number (8) || key id (4)`` -> the line) and
serves a checkpoint's note with them appended.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable
from typing import Any

import lmdb
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from store._commit import CommitContext, Pending
from store.errors import InvalidInputError, NotFoundError, ProofError, TheaterError
from store.merkle import HASH_SIZE, TreeView, index_positions, read_size

KEY_DIR = "audit"
KEY_FILE = "ed25519.key"
ORIGIN_PREFIX = "theater-home/"
PUBLIC_KEY_META = b"audit-key"
CHECKPOINT_PREFIX = b"c"
SIGNATURE_DASH = "\u2014 "
ED25519_ALG = b"\x01"
COSIGNATURE_ALG = b"\x04"  # C2SP tlog-cosignature: Ed25519 cosignature/v1
COSIGNATURE_HEADER = "cosignature/v1\n"
COSIGNATURE_PREFIX = b"w"
MAX_TIMESTAMP = 2**63 - 1


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """A signed tree head: ``size`` leaves with root ``root``, as ``note`` (the signed note's text)."""

    origin: str
    size: int
    root: bytes
    note: str
    number: int = 0  # its place among the home's checkpoints, from 1 (0: not from a home)


@dataclass(frozen=True, kw_only=True)
class VerifierKey:
    """A C2SP verifier key: the name, the 4-byte key id, and the Ed25519 public key."""

    name: str
    key_id: bytes
    public: bytes

    @property
    def text(self) -> str:
        """``<name>+<key id hex>+<base64(0x01 || public key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(ED25519_ALG + self.public).decode()}"

    @classmethod
    def of(cls, public: bytes) -> VerifierKey:
        name = ORIGIN_PREFIX + hashlib.sha256(public).hexdigest()[:16]
        return cls(name=name, key_id=key_id(name, public), public=public)

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        """Read ``<name>+<key id hex>+<base64 key>``.

        Raises:
            InvalidInputError: it is not an Ed25519 verifier key, or its id does not match its name and key.
        """
        name, kid, public = _parse_vkey(text, ED25519_ALG, "verifier key")
        return cls(name=name, key_id=kid, public=public)


def _parse_vkey(text: str, alg: bytes, what: str) -> tuple[str, bytes, bytes]:
    """Read a C2SP vkey ``<name>+<key id hex>+<base64(alg || 32-byte key)>``: (name, key id, public key)."""
    expected = f"a {what} <name>+<8 hex digits>+<base64 of 0x{alg.hex()} || 32-byte Ed25519 key>"
    shown = text.strip()[:80]
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not parts[0] or any(c.isspace() for c in parts[0]):
        raise InvalidInputError(what, shown, expected)
    name, hex_id, b64 = parts
    try:
        kid = bytes.fromhex(hex_id)
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise InvalidInputError(what, shown, expected) from None
    if len(kid) != 4 or len(raw) != 33 or raw[:1] != alg:
        raise InvalidInputError(what, shown, expected)
    if _key_id(name, alg, raw[1:]) != kid:
        raise InvalidInputError(what, shown, "a key id that matches its name and key")
    return name, kid, raw[1:]


def _key_id(name: str, alg: bytes, public: bytes) -> bytes:
    return hashlib.sha256(name.encode() + b"\n" + alg + public).digest()[:4]


def key_id(name: str, public: bytes) -> bytes:
    """The signed-note key id: SHA-256(name || "\\n" || 0x01 || public key)[:4]."""
    return _key_id(name, ED25519_ALG, public)


def checkpoint_body(origin: str, size: int, root: bytes) -> str:
    """The C2SP checkpoint body: origin, size and base64 root, one a line."""
    return f"{origin}\n{size}\n{base64.b64encode(root).decode()}\n"


def open_note(note: str, key: VerifierKey) -> Checkpoint:
    """Check the note's signature by ``key`` and read the checkpoint it signs.

    Raises:
        ProofError: the note is malformed, carries no signature by ``key``, or the signature does not verify.
    """
    body, sep, signatures = note.partition("\n\n")
    if not sep or not body:
        raise ProofError("checkpoint", "it is not a signed note (no blank line between the text and signatures)")
    text = body + "\n"
    lines = text.split("\n")[:-1]
    if len(lines) < 3:
        raise ProofError("checkpoint", "its text needs an origin, a tree size and a root hash, one a line")
    origin, size_text, root_text = lines[0], lines[1], lines[2]
    if not size_text.isdigit() or (size_text != "0" and size_text.startswith("0")):
        raise ProofError("checkpoint", f"tree size {size_text!r} is not a decimal number")
    try:
        root = base64.b64decode(root_text, validate=True)
    except ValueError:
        raise ProofError("checkpoint", "its root hash is not base64") from None
    if len(root) != HASH_SIZE:
        raise ProofError("checkpoint", f"its root hash is {len(root)} bytes, not {HASH_SIZE}")
    found = False
    for line in signatures.split("\n"):
        if not line:
            continue
        if not line.startswith(SIGNATURE_DASH):
            raise ProofError("checkpoint", f"signature line {line[:40]!r} does not start with an em dash")
        name, _, b64 = line[len(SIGNATURE_DASH):].partition(" ")
        if name != key.name:
            continue
        try:
            raw = base64.b64decode(b64, validate=True)
        except ValueError:
            raise ProofError("checkpoint", f"the signature of {name} is not base64") from None
        if len(raw) != 68 or raw[:4] != key.key_id:
            continue
        try:
            Ed25519PublicKey.from_public_bytes(key.public).verify(raw[4:], text.encode())
        except InvalidSignature:
            raise ProofError("checkpoint", f"the signature of {name} does not verify with key {key.text}") from None
        found = True
    if not found:
        raise ProofError("checkpoint", f"it carries no signature by {key.name} (key id {key.key_id.hex()})")
    return Checkpoint(origin=origin, size=int(size_text), root=root, note=note)


class Signer:
    """The home's Ed25519 signing key."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        self._private = private
        public = private.public_key().public_bytes_raw()
        self.key = VerifierKey.of(public)

    def sign(self, size: int, root: bytes) -> str:
        """The signed note of the checkpoint (origin = key name, size, root)."""
        text = checkpoint_body(self.key.name, size, root)
        signature = self._private.sign(text.encode())
        line = f"{SIGNATURE_DASH}{self.key.name} {base64.b64encode(self.key.key_id + signature).decode()}\n"
        return text + "\n" + line


def load_or_create_key(store_path: Path, *, create: bool = True) -> Signer:
    """The home's signing key, created (mode 0600) on first use when ``create``.

    Raises:
        ProofError: the key file is readable by its group or others, or is not a 32-byte Ed25519 seed.
        NotFoundError: there is no key and ``create`` is false.
    """
    return Signer(load_or_create_seed(store_path / KEY_DIR / KEY_FILE, create=create))


def load_or_create_seed(path: Path, *, create: bool = True) -> Ed25519PrivateKey:
    """The Ed25519 private key whose 32-byte seed is the file ``path``, created (mode 0600, its directory 0700)
    on first use when ``create``.

    Raises:
        ProofError: the key file is readable by its group or others, or is not a 32-byte Ed25519 seed.
        NotFoundError: there is no key and ``create`` is false.
    """
    directory = path.parent
    if not path.exists():
        if not create:
            raise NotFoundError("signing key", str(path))
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        seed = Ed25519PrivateKey.generate().private_bytes_raw()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it first: use theirs
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(seed)
                f.flush()
                os.fsync(f.fileno())
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ProofError(
                f"signing key {path}",
                f"its mode is {stat.S_IMODE(mode):04o}: its group or others can read it; it must be 0600 "
                "(if anyone else read it, make a new key and tell your auditors)",
            )
        seed = path.read_bytes()
    except OSError as exc:
        raise ProofError(f"signing key {path}", f"cannot read it: {exc.strerror}") from None
    if len(seed) != 32:
        raise ProofError(f"signing key {path}", f"it is {len(seed)} bytes, not a 32-byte Ed25519 seed")
    return Ed25519PrivateKey.from_private_bytes(seed)


def _checkpoint_key(number: int) -> bytes:
    return CHECKPOINT_PREFIX + number.to_bytes(8, "big")


def read_public_key(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> VerifierKey | None:
    """The verifier key recorded in the home, if any checkpoint was made."""
    raw = txn.get(PUBLIC_KEY_META, db=dbs["meta"])
    return None if raw is None else VerifierKey.parse(bytes(raw).decode())


def last_number(txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> int:
    """The number of the newest checkpoint (0 when there is none)."""
    if "merkle" not in dbs:
        return 0
    cursor = txn.cursor(db=dbs["merkle"])
    after = bytes((CHECKPOINT_PREFIX[0] + 1,))
    found = cursor.prev() if cursor.set_range(after) else cursor.last()
    if not found:
        return 0
    key = bytes(cursor.key())
    return int.from_bytes(key[1:], "big") if key[:1] == CHECKPOINT_PREFIX and len(key) == 9 else 0


def read_checkpoint(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], number: int) -> Checkpoint:
    """Checkpoint ``number`` as stored.

    Raises:
        NotFoundError: there is no such checkpoint.
    """
    raw = txn.get(_checkpoint_key(number), db=dbs["merkle"]) if "merkle" in dbs and number > 0 else None
    if raw is None:
        raise NotFoundError("checkpoint", str(number))
    note = bytes(raw).decode()
    origin, size, root = note.split("\n")[:3]
    return Checkpoint(origin=origin, size=int(size), root=base64.b64decode(root), note=note, number=number)


class PendingCheckpoint(Pending[Checkpoint | None]):
    """Signs the tree as the commit holding it leaves it (its appends in the log) and keeps the checkpoint."""

    def __init__(self, signer: Signer) -> None:
        super().__init__(None)
        self._signer = signer

    def apply(self, txn: lmdb.Transaction[bytes], ctx: CommitContext) -> None:
        dbs = ctx.dbs
        ctx.late.append(lambda txn: self._sign(txn, dbs))
        ctx.wrote = True

    def _sign(self, txn: lmdb.Transaction[bytes], dbs: dict[str, Any]) -> None:
        try:
            recorded = read_public_key(txn, dbs)
            if recorded is None:
                txn.put(PUBLIC_KEY_META, self._signer.key.text.encode(), db=dbs["meta"])
            elif recorded != self._signer.key:
                raise ProofError(
                    "signing key", f"it is {self._signer.key.text} but the home recorded {recorded.text}: the key "
                    "file was replaced; checkpoints signed with it would not verify against the published key",
                )
            size = read_size(txn, dbs)
            index_positions(txn, dbs, size)
            root = TreeView(txn, dbs).root(size)
            number = last_number(txn, dbs) + 1
            note = self._signer.sign(size, root)
            txn.put(_checkpoint_key(number), note.encode(), db=dbs["merkle"])
            self.value = Checkpoint(origin=self._signer.key.name, size=size, root=root, note=note, number=number)
        except TheaterError as exc:
            self._error = exc


# Cosignatures (C2SP tlog-cosignature, cosignature/v1).


@dataclass(frozen=True, kw_only=True)
class CosignerKey:
    """A witness's C2SP verifier key (signature type 0x04, cosignature/v1): name, 4-byte key id, Ed25519 key."""

    name: str
    key_id: bytes
    public: bytes

    @property
    def text(self) -> str:
        """``<name>+<key id hex>+<base64(0x04 || public key)>``."""
        return f"{self.name}+{self.key_id.hex()}+{base64.b64encode(COSIGNATURE_ALG + self.public).decode()}"

    @classmethod
    def of(cls, name: str, public: bytes) -> CosignerKey:
        return cls(name=name, key_id=_key_id(name, COSIGNATURE_ALG, public), public=public)

    @classmethod
    def parse(cls, text: str) -> CosignerKey:
        """Read ``<name>+<key id hex>+<base64(0x04 || key)>``.

        Raises:
            InvalidInputError: it is not an Ed25519 cosignature/v1 key, or its id does not match its name and key.
        """
        name, kid, public = _parse_vkey(text, COSIGNATURE_ALG, "witness key")
        return cls(name=name, key_id=kid, public=public)


@dataclass(frozen=True, kw_only=True)
class Cosignature:
    """One witness's cosignature of a checkpoint: who, when (POSIX seconds), and its signature line."""

    name: str
    key_id: bytes
    timestamp: int
    line: str  # "— <name> <base64(key id || timestamp || signature)>", no newline


def note_text(note: str) -> str:
    """The signed text of a note: everything before the blank line, with its final newline.

    Raises:
        ProofError: it is not a signed note.
    """
    body, sep, _ = note.partition("\n\n")
    if not sep or not body:
        raise ProofError("checkpoint", "it is not a signed note (no blank line between the text and signatures)")
    return body + "\n"


def cosigned_message(text: str, timestamp: int) -> bytes:
    """What a cosignature/v1 signs: the header line, the time line and the checkpoint's text."""
    return f"{COSIGNATURE_HEADER}time {timestamp}\n{text}".encode()


class Cosigner:
    """A witness's Ed25519 key, which co-signs checkpoints as ``name``."""

    def __init__(self, private: Ed25519PrivateKey, name: str) -> None:
        if not name or any(c.isspace() or c == "+" for c in name):
            raise InvalidInputError("witness name", name, "a non-empty name with no spaces and no '+'")
        self._private = private
        self.key = CosignerKey.of(name, private.public_key().public_bytes_raw())

    def cosign(self, note: str, timestamp: int) -> Cosignature:
        """The cosignature of the checkpoint ``note`` at ``timestamp`` (POSIX seconds)."""
        signature = self._private.sign(cosigned_message(note_text(note), timestamp))
        raw = self.key.key_id + timestamp.to_bytes(8, "big") + signature
        line = f"{SIGNATURE_DASH}{self.key.name} {base64.b64encode(raw).decode()}"
        return Cosignature(name=self.key.name, key_id=self.key.key_id, timestamp=timestamp, line=line)


def open_cosignature(note: str, line: str, keys: Iterable[CosignerKey]) -> Cosignature:
    """Check a cosignature line of checkpoint ``note`` against the witness keys ``keys``.

    Raises:
        ProofError: the line is malformed, its name and key id are not one of ``keys`` (an unknown witness), its
            timestamp is out of range, or its signature does not verify (a forged cosignature).
    """
    line = line.rstrip("\n")
    if not line.startswith(SIGNATURE_DASH) or "\n" in line:
        raise ProofError("cosignature", "it is not one signature line '— <name> <base64>'")
    name, _, b64 = line[len(SIGNATURE_DASH):].partition(" ")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        raise ProofError("cosignature", f"the signature of {name[:60]!r} is not base64") from None
    if len(raw) != 4 + 8 + 64:
        raise ProofError("cosignature", f"it is {len(raw)} bytes, not key id (4), timestamp (8) and an Ed25519 "
                                        "signature (64): not a cosignature/v1")
    kid, timestamp, signature = raw[:4], int.from_bytes(raw[4:12], "big"), raw[12:]
    key = next((k for k in keys if k.name == name and k.key_id == kid), None)
    if key is None:
        raise ProofError("cosignature", f"it is by {name[:60]!r} (key id {kid.hex()}), not a witness key this "
                                        "home accepts (theater server --witness-key)")
    if timestamp > MAX_TIMESTAMP:
        raise ProofError("cosignature", f"its timestamp {timestamp} is beyond 2^63 - 1")
    try:
        Ed25519PublicKey.from_public_bytes(key.public).verify(signature, cosigned_message(note_text(note), timestamp))
    except InvalidSignature:
        raise ProofError("cosignature", f"the cosignature of {name} does not verify with key {key.text}: it was "
                                        "forged, or made for another checkpoint or time") from None
    return Cosignature(name=name, key_id=kid, timestamp=timestamp, line=line)


def with_cosignatures(note: str, lines: Iterable[str]) -> str:
    """The note with the cosignature lines appended as further signature lines."""
    extra = "".join(line + "\n" for line in lines)
    return note + extra if note.endswith("\n") else note + "\n" + extra


def _cosignature_key(number: int, kid: bytes) -> bytes:
    return COSIGNATURE_PREFIX + number.to_bytes(8, "big") + kid


def read_cosignatures(txn: lmdb.Transaction[bytes], dbs: dict[str, Any], number: int) -> list[str]:
    """The cosignature lines kept for checkpoint ``number``, by key id."""
    if "merkle" not in dbs:
        return []
    prefix = COSIGNATURE_PREFIX + number.to_bytes(8, "big")
    cursor = txn.cursor(db=dbs["merkle"])
    lines: list[str] = []
    if cursor.set_range(prefix):
        for key, value in cursor:
            if bytes(key[:9]) != prefix:
                break
            lines.append(bytes(value).decode())
    return lines


class PendingCosignature(Pending[Cosignature]):
    """Keeps a checked cosignature of checkpoint ``number`` (a newer one by the same key replaces it)."""

    def __init__(self, number: int, cosignature: Cosignature) -> None:
        super().__init__(cosignature)
        self._number = number

    def apply(self, txn: lmdb.Transaction[bytes], ctx: CommitContext) -> None:
        key = _cosignature_key(self._number, self.value.key_id)
        txn.put(key, self.value.line.encode(), db=ctx.dbs["merkle"])
        ctx.wrote = True


def cosigner_of(line: str) -> tuple[str, int | None]:
    """The (name, timestamp) a kept cosignature line names, read without checking it (the home checked it when it
    accepted it); the timestamp is None when the line does not hold one."""
    name, _, b64 = line.removeprefix(SIGNATURE_DASH).partition(" ")
    try:
        raw = base64.b64decode(b64, validate=True)
    except ValueError:
        return name, None
    return name, int.from_bytes(raw[4:12], "big") if len(raw) == 76 else None
