"""Errors of the storage layer, and the root of every Theater error.

The tree (each package adds its own subtree under ``TheaterError``)::

    TheaterError                      root: catch this to catch anything Theater raises
    └── StoreError                    the storage layer
        ├── StoreOpenError            the home cannot be opened (missing, corrupt, locked, not a store)
        ├── StoreWriteError           a write could not be committed; nothing of its batch was written
        │   └── StoreFullError        the disk or the map cannot take the write
        ├── NotFoundError             an unknown hash, prefix, label or actor
        │   └── AmbiguousPrefixError  a hex prefix that matches more than one hash
        ├── InvalidInputError         a malformed argument: a non-UUID actor id, a bad hash or prefix
        │   └── ReservedLabelError    a label name the runtime keeps for itself (``compiled/``, ``build/``, ...)
        ├── ChecksumMismatch          stored bytes that do not hash to their key
        ├── ArtifactRejected          a cached compiled artifact without this home's seal: compile instead
        ├── StaleHeadError            compare-and-append against a head that moved
        ├── CorruptRecordError        a stored record that cannot be decoded
        ├── StoreClosedError          the store was closed by its owner
        ├── ProofError                a signed checkpoint or Merkle proof that does not hold, or an unsafe key
        └── ReadOnlyError             a write to a store opened read-only

``replay.errors`` and ``theater.errors`` hang their subtrees off ``TheaterError``.
"""

from __future__ import annotations


class TheaterError(Exception):
    """Root of every error Theater raises on purpose."""


class StoreError(TheaterError):
    """Something went wrong in the storage layer."""


class StoreOpenError(StoreError):
    """The store at ``path`` cannot be opened."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"cannot open the store at {path}: {reason}")


class StoreWriteError(StoreError):
    """A write could not be committed; nothing of its batch was written."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"the store at {path} cannot take the write ({reason}); nothing was written")


class StoreFullError(StoreWriteError):
    """A write did not fit: the disk is full or the map cannot grow. Nothing was written."""


class StoreClosedError(StoreError):
    """The store was closed; open it again to use it."""

    def __init__(self) -> None:
        super().__init__("the store is closed")


class NotFoundError(StoreError):
    """No ``kind`` (blob, event, label, actor) is known by ``key``."""

    def __init__(self, kind: str, key: str) -> None:
        self.kind = kind
        self.key = key
        super().__init__(f"no {kind} {key}")


class AmbiguousPrefixError(NotFoundError):
    """A hex prefix matches more than one hash."""

    def __init__(self, kind: str, prefix: str, candidates: list[str]) -> None:
        self.candidates = candidates
        shown = ", ".join(c[:16] for c in candidates)
        StoreError.__init__(
            self, f"{kind} prefix {prefix!r} is ambiguous: it matches {shown}; give more hex digits"
        )
        self.kind = kind
        self.key = prefix


class InvalidInputError(StoreError, ValueError):
    """An argument is malformed: ``what`` was ``value``, expected ``expected``."""

    def __init__(self, what: str, value: object, expected: str) -> None:
        self.what = what
        self.value = value
        self.expected = expected
        super().__init__(f"invalid {what} {value!r}: expected {expected}")


class ReservedLabelError(InvalidInputError):
    """The label ``name`` starts with ``prefix``, which the runtime reserves for itself: no client may set it."""

    def __init__(self, name: str, prefix: str) -> None:
        self.what = "label"
        self.value = name
        self.expected = f"a name not starting with {prefix!r}"
        self.name = name
        self.prefix = prefix
        StoreError.__init__(
            self, f"label {name!r} is reserved: names starting with {prefix!r} belong to the runtime; choose another"
        )


class ArtifactRejected(StoreError):
    """The cached compiled artifact at ``path`` is not loaded: ``reason`` (not sealed by this home, damaged)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"the compiled artifact {path} is not trusted: {reason}")


class ChecksumMismatch(StoreError):
    """Stored bytes hash to ``actual``, not to their key ``expected``."""

    def __init__(self, kind: str, expected: bytes, actual: bytes) -> None:
        self.kind = kind
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"{kind} checksum mismatch: stored under {expected.hex()} but the bytes hash to {actual.hex()}"
        )


class StaleHeadError(StoreError):
    """Compare-and-append failed: the chain's head is not the one the caller expected."""

    def __init__(self, actor: str, expected: tuple[int, bytes | None], actual: tuple[int, bytes | None]) -> None:
        self.actor = actor
        self.expected = expected
        self.actual = actual

        def show(head: tuple[int, bytes | None]) -> str:
            seq, digest = head
            return "empty chain" if digest is None else f"seq {seq} {digest.hex()[:16]}"

        super().__init__(
            f"stale head for actor {actor}: expected {show(expected)}, the chain is at {show(actual)}"
        )


class CorruptRecordError(StoreError):
    """A stored record at ``where`` cannot be decoded."""

    def __init__(self, where: str, reason: str) -> None:
        self.where = where
        self.reason = reason
        super().__init__(f"corrupt record at {where}: {reason}")


class ReadOnlyError(StoreError):
    """A write was attempted on a store opened read-only."""

    def __init__(self, path: str) -> None:
        self.path = path
        super().__init__(f"the store at {path} is open read-only; open it for writing to change it")


class ProofError(StoreError):
    """The audit ``what`` (a checkpoint, a proof, a signing key) does not hold: ``reason``."""

    def __init__(self, what: str, reason: str) -> None:
        self.what = what
        self.reason = reason
        super().__init__(f"{what} does not hold: {reason}")


class CosignatureRefused(ProofError):
    """A witness's cosignature was refused (an unknown witness key, a forgery, another checkpoint's)."""
