"""The ``store`` interface (handler ``store``): content-addressed storage with labels, shared with the home.

Content is named by its hash (hex); labels name content. A store id is a namespace: this actor reaches the ids its
manifest lists and those it created with ``new``.
"""

from ._host import binding, call


def _ref(hash_hex: str) -> object:
    return binding("store").ContentRef(hash=hash_hex)


def new() -> str:
    """Create a store owned by this actor; returns its id."""
    return call("store", "new")


def put(store_id: str, data: bytes) -> str:
    """Store ``data``; returns its hash (the same bytes always give the same hash, stored once)."""
    return call("store", "store", store_id, bytes(data)).hash


def get(store_id: str, hash_hex: str) -> bytes:
    """The content with this hash.

    Raises:
        HostError: it is not in this store.
    """
    return call("store", "get", store_id, _ref(hash_hex))


def exists(store_id: str, hash_hex: str) -> bool:
    """Whether content with this hash is in this store."""
    return bool(call("store", "exists", store_id, _ref(hash_hex)))


def label(store_id: str, name: str, hash_hex: str) -> None:
    """Make label ``name`` point at the content (it becomes the label's latest)."""
    call("store", "label", store_id, name, _ref(hash_hex))


def get_label(store_id: str, name: str) -> str | None:
    """The hash the label points at (its latest), or None."""
    found = call("store", "get_by_label", store_id, name)
    return None if found is None else found.hash


def put_at_label(store_id: str, name: str, data: bytes) -> str:
    """Store ``data`` and make label ``name`` point at it; returns its hash."""
    return call("store", "store_at_label", store_id, name, bytes(data)).hash


def replace_at_label(store_id: str, name: str, data: bytes) -> str:
    """Store ``data`` and make label ``name`` point only at it; returns its hash."""
    return call("store", "replace_content_at_label", store_id, name, bytes(data)).hash


def remove_label(store_id: str, name: str) -> None:
    """Remove a label (its content stays)."""
    call("store", "remove_label", store_id, name)


def labels(store_id: str) -> list[str]:
    """The store's labels, sorted."""
    return [str(name) for name in call("store", "list_labels", store_id)]


def contents(store_id: str) -> list[str]:
    """The hashes of all content in the store."""
    return [ref.hash for ref in call("store", "list_all_content", store_id)]


def total_size(store_id: str) -> int:
    """The bytes of all content in the store."""
    return int(call("store", "calculate_total_size", store_id))
