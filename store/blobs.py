"""The content-addressed blob store (blake3) and its labels, the only mutable names in a home.

A blob is stored once under the blake3 digest of its bytes; every read checks the bytes against the key.

Label names starting with one of ``RESERVED_LABEL_PREFIXES`` belong to the runtime (``build/<key>`` names the
component ``theater build`` made from its inputs). ``set_label`` and ``remove_label`` refuse them, so no API client
or CLI user can set or drop them; the runtime writes them through ``set_runtime_label`` only.
"""

from __future__ import annotations

from collections.abc import Iterator

import blake3
import lmdb

from store._commit import CommitContext, Pending, ReadOnlyWriter, Writer
from store._env import Environment
from store._prefix import resolve_prefix
from store.errors import ChecksumMismatch, InvalidInputError, NotFoundError, ReservedLabelError

DIGEST_SIZE = 32
MAX_LABEL_BYTES = 400
# Label namespaces of the runtime: ``build/`` (theater build), ``compiled/`` (compiled artifacts were cached there
# before they moved out of the blob store; kept reserved so no old build can be fooled), ``theater/`` (future use).
RESERVED_LABEL_PREFIXES = ("build/", "compiled/", "theater/")
_PARALLEL_HASH_FROM = 1 << 20


def blob_digest(data: bytes | memoryview) -> bytes:
    """The blake3 digest of ``data`` (multithreaded for large inputs)."""
    threads = blake3.blake3.AUTO if len(data) >= _PARALLEL_HASH_FROM else 1
    return blake3.blake3(data, max_threads=threads).digest()


def check_digest(digest: bytes) -> bytes:
    """Return ``digest`` if it is 32 raw bytes.

    Raises:
        InvalidInputError: anything else (hex strings belong to the CLI and API, not here).
    """
    if not isinstance(digest, bytes) or len(digest) != DIGEST_SIZE:
        raise InvalidInputError("blob hash", digest, "32 raw bytes")
    return digest


def check_label(name: str) -> bytes:
    """Return the UTF-8 key of a label name.

    Raises:
        InvalidInputError: empty, too long, or containing control characters.
    """
    if not isinstance(name, str) or not name or any(ord(c) < 0x20 for c in name):
        raise InvalidInputError("label", name, "a non-empty name without control characters")
    key = name.encode()
    if len(key) > MAX_LABEL_BYTES:
        raise InvalidInputError("label", name, f"at most {MAX_LABEL_BYTES} bytes")
    return key


def reserved_prefix(name: str) -> str | None:
    """The reserved prefix ``name`` starts with, or None when a client may use the name."""
    return next((p for p in RESERVED_LABEL_PREFIXES if name.startswith(p)), None)


def check_client_label(name: str) -> bytes:
    """Return the UTF-8 key of a label name that clients may set or remove (``check_label``, not reserved).

    Call it before doing anything a refused label should prevent (``theater store put --label`` checks the label
    before it stores the blob).

    Raises:
        InvalidInputError: the name is malformed. ReservedLabelError: the runtime reserves it.
    """
    key = check_label(name)
    prefix = reserved_prefix(name)
    if prefix is not None:
        raise ReservedLabelError(name, prefix)
    return key


class PutBlob(Pending[bytes]):
    """Write a blob unless it is already there. ``value`` is its digest."""

    __slots__ = ("data",)

    def __init__(self, digest: bytes, data: bytes) -> None:
        super().__init__(digest)
        self.data = data

    def apply(self, txn: lmdb.Transaction[bytes], ctx: CommitContext) -> None:
        ctx.new_blobs[self.value] = self.data

    def committed(self) -> None:
        self.data = b""


class SetLabel(Pending[str]):
    """Point a label at a blob, or remove it when the digest is None. ``value`` is the label's name."""

    __slots__ = ("key", "digest")

    def __init__(self, name: str, key: bytes, digest: bytes | None) -> None:
        super().__init__(name)
        self.key = key
        self.digest = digest

    def apply(self, txn: lmdb.Transaction[bytes], ctx: CommitContext) -> None:
        ctx.write(txn)  # labels are rare: write what is queued so far, then act directly
        ctx.wrote = True
        if self.digest is None:
            if not txn.delete(self.key, db=ctx.dbs["labels"]):
                raise NotFoundError("label", self.value)
            return
        if not ctx.has_blob(txn, self.digest):
            raise NotFoundError("blob", self.digest.hex())
        txn.put(self.key, self.digest, db=ctx.dbs["labels"])


class BlobStore:
    """Content-addressed blobs and labels in one LMDB environment."""

    def __init__(self, env: Environment, writer: Writer | ReadOnlyWriter) -> None:
        self._env = env
        self._writer = writer
        self._db = env.dbs["blobs"]
        self._labels = env.dbs["labels"]

    def put(self, data: bytes | bytearray | memoryview) -> bytes:
        """Store ``data`` (once, however often it is put) and return its digest when it is durable."""
        return self.put_async(data).wait()

    def put_async(self, data: bytes | bytearray | memoryview) -> Pending[bytes]:
        """Queue ``data`` for the next commit; ``wait()`` on the result returns the digest."""
        return self._writer.submit(self.prepare(data))

    def prepare(self, data: bytes | bytearray | memoryview) -> PutBlob:
        """The put of ``data``, hashed now and not yet queued: ``Store.submit`` queues it (``value`` is the digest)."""
        data = bytes(data)
        return PutBlob(blob_digest(data), data)

    def get(self, digest: bytes) -> bytes:
        """Return the blob's bytes, checked against its digest.

        Raises:
            NotFoundError: no such blob.
            ChecksumMismatch: the stored bytes do not hash to ``digest``.
        """
        check_digest(digest)
        with self._env.read() as txn:
            data = txn.get(digest, db=self._db)
        if data is None:
            raise NotFoundError("blob", digest.hex())
        actual = blob_digest(data)
        if actual != digest:
            raise ChecksumMismatch("blob", digest, actual)
        return data

    def has(self, digest: bytes) -> bool:
        """True when the blob is stored."""
        check_digest(digest)
        with self._env.read() as txn:
            return txn.get(digest, db=self._db) is not None

    def size(self, digest: bytes) -> int:
        """The blob's length in bytes.

        Raises:
            NotFoundError: no such blob.
        """
        check_digest(digest)
        with self._env.read() as txn:
            with txn.cursor(db=self._db) as cursor:
                if not cursor.set_key(digest):
                    raise NotFoundError("blob", digest.hex())
                return len(memoryview(cursor.value()))

    def __iter__(self) -> Iterator[bytes]:
        """Every blob digest, in key order, from one snapshot."""
        with self._env.read() as txn:
            keys = list(txn.cursor(db=self._db).iternext(keys=True, values=False))
        return iter(keys)

    def resolve(self, prefix: str) -> bytes:
        """The digest of the one blob whose hex form starts with ``prefix``."""
        with self._env.read() as txn:
            return resolve_prefix(txn, self._db, prefix, "blob")

    def set_label(self, name: str, digest: bytes) -> None:
        """Point label ``name`` at an existing blob (replacing where it pointed before).

        This is the path of every client (API, CLI, embedding code): reserved names are refused.

        Raises:
            ReservedLabelError: the name starts with a prefix the runtime reserves.
            NotFoundError: the blob is not stored.
        """
        self._writer.submit(SetLabel(name, check_client_label(name), check_digest(digest))).wait()

    def set_runtime_label(self, name: str, digest: bytes) -> None:
        """Point a reserved label (one of ``RESERVED_LABEL_PREFIXES``) at an existing blob: the runtime's own path.

        Raises:
            InvalidInputError: the name is not reserved (clients' labels go through ``set_label``).
            NotFoundError: the blob is not stored.
        """
        key = check_label(name)
        if reserved_prefix(name) is None:
            raise InvalidInputError("runtime label", name, f"a name starting with one of {RESERVED_LABEL_PREFIXES}")
        self._writer.submit(SetLabel(name, key, check_digest(digest))).wait()

    def remove_runtime_label(self, name: str) -> None:
        """Delete a reserved label (one of ``RESERVED_LABEL_PREFIXES``): the runtime's own path.

        Raises:
            InvalidInputError: the name is not reserved (clients' labels go through ``remove_label``).
            NotFoundError: there is no such label.
        """
        key = check_label(name)
        if reserved_prefix(name) is None:
            raise InvalidInputError("runtime label", name, f"a name starting with one of {RESERVED_LABEL_PREFIXES}")
        self._writer.submit(SetLabel(name, key, None)).wait()

    def remove_label(self, name: str) -> None:
        """Delete label ``name``.

        Raises:
            ReservedLabelError: the name starts with a prefix the runtime reserves.
            NotFoundError: there is no such label.
        """
        self._writer.submit(SetLabel(name, check_client_label(name), None)).wait()

    def get_label(self, name: str) -> bytes:
        """The digest label ``name`` points at.

        Raises:
            NotFoundError: there is no such label.
        """
        key = check_label(name)
        with self._env.read() as txn:
            digest = txn.get(key, db=self._labels)
        if digest is None:
            raise NotFoundError("label", name)
        return digest

    def labels(self, prefix: str = "") -> list[tuple[str, bytes]]:
        """Every (name, digest) whose name starts with ``prefix``, sorted by name."""
        start = prefix.encode()
        out: list[tuple[str, bytes]] = []
        with self._env.read() as txn:
            cursor = txn.cursor(db=self._labels)
            if not cursor.set_range(start):
                return out
            for key, digest in cursor:
                if not key.startswith(start):
                    break
                out.append((key.decode(), digest))
        return out
