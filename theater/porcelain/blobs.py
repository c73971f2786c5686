"""Blob references, as a user names a blob anywhere (CLI, API, manifests): ``store:LABEL``, a full hash or a
unique hex prefix of at least 4 digits, else a label name.
"""

from __future__ import annotations

from dataclasses import dataclass

from store import Store
from store.blobs import check_client_label
from store.errors import AmbiguousPrefixError, InvalidInputError, NotFoundError

LABEL_PREFIX = "store:"


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobInfo:
    """A stored blob: its blake3 digest and its size in bytes."""

    digest: bytes
    size: int


def resolve_blob(store: Store, ref: str) -> bytes:
    """The digest of the blob ``ref`` names.

    ``store:LABEL`` names the label only; any other text is tried as a hex prefix first, then as a label name.

    Raises:
        AmbiguousPrefixError: the prefix matches several blobs.
        NotFoundError: nothing of that name (``kind`` ``label`` for ``store:LABEL``, else ``blob or label``).
    """
    if ref.startswith(LABEL_PREFIX):
        return _label(store, ref[len(LABEL_PREFIX):], "label")
    try:
        return store.blobs.resolve(ref)
    except AmbiguousPrefixError:
        raise
    except (InvalidInputError, NotFoundError):
        return _label(store, ref, "blob or label")


def _label(store: Store, name: str, kind: str) -> bytes:
    try:
        return store.blobs.get_label(name)
    except (InvalidInputError, NotFoundError):
        raise NotFoundError(kind, name) from None


def blob_info(store: Store, ref: str) -> BlobInfo:
    """The digest and size of the blob ``ref`` names (see ``resolve_blob``)."""
    digest = resolve_blob(store, ref)
    return BlobInfo(digest=digest, size=store.blobs.size(digest))


def put_blob(store: Store, data: bytes, label: str | None = None) -> BlobInfo:
    """Store ``data``; with ``label``, also point that label at it.

    Raises:
        ReservedLabelError: the label belongs to the runtime (nothing is stored then).
        InvalidInputError: the label is not a valid name (nothing is stored then).
    """
    if label:
        check_client_label(label)  # a refused label stores nothing
    digest = store.blobs.put(data)
    if label:
        store.blobs.set_label(label, digest)
    return BlobInfo(digest=digest, size=len(data))


def set_label(store: Store, name: str, ref: str) -> bytes:
    """Point the client label ``name`` at the blob ``ref`` names (a full hash or a unique hex prefix); returns
    the digest.

    Raises:
        ReservedLabelError: the name belongs to the runtime.
        NotFoundError, AmbiguousPrefixError, InvalidInputError: ``ref`` names no blob, several, or is not hex.
    """
    digest = store.blobs.resolve(ref)
    store.blobs.set_label(name, digest)
    return digest


__all__ = ["LABEL_PREFIX", "BlobInfo", "blob_info", "put_blob", "resolve_blob", "set_label"]
