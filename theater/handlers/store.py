"""Handler ``store``: ``theater:simple/store`` over the home's content-addressed blob store.

Content is the home's blobs: addressed by the blake3 digest of its bytes (hex in a ``content-ref``; the WIT's
comment says SHA-256, as in the original Theater, but the home has one hash), stored once however many actors or
stores hold it, deduplicated with every other blob of the home (components, states, spilled payloads).

Namespaces. A store id names a namespace of labels and content. An actor reaches only the store ids its config
lists (``store_ids``) and those it created with ``new`` (at most ``max_stores``), so two actors see each other's
labels only when both were granted the same id. A namespace lives in the home's reserved labels (under
``theater/stores/<id>/``, which no API client or CLI user can set, and which no guest label can name: a guest's
label is always inside its namespace):

- ``theater/stores/<id>/owner``: the actor that created it (for ids made by ``new``);
- ``theater/stores/<id>/content/<hex>``: each piece of content stored in it (``get`` and ``exists`` answer only
  for content of the namespace, never for any blob of the home);
- ``theater/stores/<id>/label/<label>``: a label, pointing at a blob that lists its content references (a label
  may hold several: ``label`` adds one, ``get-by-label`` answers the latest, ``replace-*`` leave only one).

Quotas (config): ``max_bytes`` (the content of one namespace, default 64 MiB), ``max_labels`` (per namespace,
default 10 000), ``max_stores`` (ids one actor may create, default 16).

Records. Every call is an import call recorded whole. A ``get`` of content larger than the store's spill threshold
(16 KiB) is recorded as a reference to the blob by its hash (``store.codec`` spills it, and the digest is the
content's own): the chain does not copy it again, replay reads it back from the blob store, and verification
checks that the blob is present and intact.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from typing import Any

import cbor2

from store.blobs import blob_digest
from store.errors import InvalidInputError, NotFoundError, StoreError
from theater.errors import ManifestError
from theater.handlers._base import Handler, at_most, string_list
from theater.host import ActorHost

PREFIX = "theater/stores/"
MAX_BYTES = 64 * 1024 * 1024
MAX_LABELS = 10_000
MAX_STORES = 16
MAX_LABEL_BYTES = 200
_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_HEX = re.compile(r"[0-9a-f]{64}")
_LOCK = threading.Lock()  # one namespace change at a time in this process (labels are read, changed, written)


class Refused(Exception):
    """A store call this handler will not carry out; the message says why (answered as ``err``)."""


def _owner_blob(actor: uuid.UUID) -> bytes:
    return f"theater store owner {actor}".encode()


class StoreHandler(Handler):
    """The ``theater:simple/store`` functions over the home's blobs, in the namespaces granted (see the module)."""

    type = "store"
    interface = "theater:simple/store"
    config_keys = {"store_ids": list, "allow_new": bool, "max_stores": int, "max_bytes": int, "max_labels": int}

    def __init__(self, actor: ActorHost, config: dict[str, Any]) -> None:
        super().__init__(actor, config)
        self.blobs = actor.store.blobs
        self.granted = frozenset(config.get("store_ids", ()))
        self.allow_new = bool(config.get("allow_new", True))
        self.max_stores = int(config.get("max_stores", MAX_STORES))
        self.max_bytes = int(config.get("max_bytes", MAX_BYTES))
        self.max_labels = int(config.get("max_labels", MAX_LABELS))

    @classmethod
    def check_config(cls, source: str, config: dict[str, Any]) -> None:
        super().check_config(source, config)
        field = "handlers.store.config"
        for index, item in enumerate(string_list(source, cls.type, "store_ids", config.get("store_ids", []))):
            if not _ID.fullmatch(item):
                raise ManifestError(source, f"{field}.store_ids[{index}]",
                                    f"expected letters, digits and '_.-' (at most 64), got {item!r}")
        for key in ("max_stores", "max_bytes", "max_labels"):
            if key in config and config[key] < 0:
                raise ManifestError(source, f"{field}.{key}", f"expected an integer >= 0, got {config[key]}")

    @classmethod
    def config_within(cls, parent_config: dict[str, Any], child_config: dict[str, Any]) -> str | None:
        extra = sorted(set(child_config.get("store_ids", ())) - set(parent_config.get("store_ids", ())))
        if extra:
            return f"store_ids has {extra!r}, not among its parent's {sorted(parent_config.get('store_ids', ()))!r}"
        if child_config.get("allow_new", True) and not parent_config.get("allow_new", True):
            return "allow_new = true, but its parent's is false"
        for key, default in (("max_stores", MAX_STORES), ("max_bytes", MAX_BYTES), ("max_labels", MAX_LABELS)):
            wider = at_most(key, parent_config.get(key, default), child_config.get(key, default))
            if wider:
                return wider
        return None

    def functions(self) -> dict[str, Callable[..., Any]]:
        table: dict[str, Callable[..., Any]] = {
            "new": self.new, "store": self.store, "get": self.get, "exists": self.exists, "label": self.label,
            "get-by-label": self.get_by_label, "remove-label": self.remove_label,
            "remove-from-label": self.remove_from_label, "store-at-label": self.store_at_label,
            "replace-content-at-label": self.replace_content_at_label, "replace-at-label": self.replace_at_label,
            "list-labels": self.list_labels, "list-all-content": self.list_all_content,
            "calculate-total-size": self.calculate_total_size,
        }
        return {name: self._guard(function) for name, function in table.items()}

    def _guard(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any) -> dict[str, Any]:
            try:
                with _LOCK:
                    return {"ok": function(*args)}
            except Refused as exc:
                return {"err": str(exc)}
            except (InvalidInputError, NotFoundError) as exc:
                return {"err": str(exc)}
            except StoreError as exc:
                return {"err": f"the store could not carry it out: {exc}"}

        return guarded

    # Namespaces.

    def _space(self, store_id: str) -> str:
        """The label prefix of ``store_id``, if this actor may reach it."""
        if not isinstance(store_id, str) or not _ID.fullmatch(store_id):
            raise Refused(f"store id {store_id!r} is not a store id (letters, digits and '_.-', at most 64)")
        space = f"{PREFIX}{store_id}/"
        if store_id in self.granted:
            return space
        try:
            owner = self.blobs.get_label(space + "owner")
        except NotFoundError:
            owner = None
        if owner != blob_digest(_owner_blob(self.actor.id)):
            raise Refused(f"store id {store_id!r} is not granted to this actor: its config does not list it and "
                          "it did not create it")
        return space

    @staticmethod
    def _label_key(space: str, label: str) -> str:
        if not isinstance(label, str) or not label or any(ord(c) < 0x20 for c in label):
            raise Refused(f"label {label!r} must be a non-empty name without control characters")
        if len(label.encode()) > MAX_LABEL_BYTES:
            raise Refused(f"label is longer than {MAX_LABEL_BYTES} bytes")
        return f"{space}label/{label}"

    @staticmethod
    def _digest(ref: dict[str, Any]) -> bytes:
        text = ref.get("hash") if isinstance(ref, dict) else None
        if not isinstance(text, str) or not _HEX.fullmatch(text):
            raise Refused(f"content-ref {ref!r} does not hold a 64-digit lowercase hex hash")
        return bytes.fromhex(text)

    def _contents(self, space: str) -> list[bytes]:
        return [digest for _, digest in self.blobs.labels(space + "content/")]

    def _holds(self, space: str, digest: bytes) -> bool:
        try:
            self.blobs.get_label(f"{space}content/{digest.hex()}")
        except NotFoundError:
            return False
        return True

    def _refs(self, key: str) -> list[bytes]:
        try:
            digest = self.blobs.get_label(key)
        except NotFoundError:
            return []
        refs = cbor2.loads(self.blobs.get(digest))
        return [r for r in refs if isinstance(r, bytes)] if isinstance(refs, list) else []

    def _set_refs(self, key: str, refs: list[bytes]) -> None:
        if not refs:
            try:
                self.blobs.remove_runtime_label(key)
            except NotFoundError:
                pass
            return
        if not self._refs(key) and len(self.blobs.labels(key.rsplit("/label/", 1)[0] + "/label/")) >= self.max_labels:
            raise Refused(f"the store already holds max_labels = {self.max_labels} labels")
        self.blobs.set_runtime_label(key, self.blobs.put(cbor2.dumps(refs)))

    def _put(self, space: str, content: bytes) -> bytes:
        digest = blob_digest(content)
        if self._holds(space, digest):
            return digest
        total = sum(self.blobs.size(d) for d in self._contents(space))
        if total + len(content) > self.max_bytes:
            raise Refused(f"storing {len(content)} bytes would take the store past max_bytes = {self.max_bytes} "
                          f"(it holds {total})")
        self.blobs.put(content)
        self.blobs.set_runtime_label(f"{space}content/{digest.hex()}", digest)
        return digest

    def _known(self, space: str, ref: dict[str, Any]) -> bytes:
        digest = self._digest(ref)
        if not self._holds(space, digest):
            raise Refused(f"content {digest.hex()} is not in this store")
        return digest

    # The functions.

    def new(self) -> str:
        if not self.allow_new:
            raise Refused("new stores are not granted: the config sets allow_new = false")
        owner = blob_digest(_owner_blob(self.actor.id))
        made = sum(1 for name, digest in self.blobs.labels(PREFIX) if name.endswith("/owner") and digest == owner)
        if made >= self.max_stores:
            raise Refused(f"this actor already created max_stores = {self.max_stores} stores")
        store_id = str(uuid.uuid4())
        self.blobs.put(_owner_blob(self.actor.id))
        self.blobs.set_runtime_label(f"{PREFIX}{store_id}/owner", owner)
        return store_id

    def store(self, store_id: str, content: bytes) -> dict[str, str]:
        return {"hash": self._put(self._space(store_id), content).hex()}

    def get(self, store_id: str, ref: dict[str, Any]) -> bytes:
        return self.blobs.get(self._known(self._space(store_id), ref))

    def exists(self, store_id: str, ref: dict[str, Any]) -> bool:
        return self._holds(self._space(store_id), self._digest(ref))

    def label(self, store_id: str, label: str, ref: dict[str, Any]) -> None:
        space = self._space(store_id)
        key = self._label_key(space, label)
        digest = self._known(space, ref)
        refs = [r for r in self._refs(key) if r != digest]
        self._set_refs(key, [*refs, digest])

    def get_by_label(self, store_id: str, label: str) -> dict[str, Any] | None:
        refs = self._refs(self._label_key(self._space(store_id), label))
        return {"some": {"hash": refs[-1].hex()}} if refs else None

    def remove_label(self, store_id: str, label: str) -> None:
        key = self._label_key(self._space(store_id), label)
        if not self._refs(key):
            raise Refused(f"there is no label {label!r} in store {store_id!r}")
        self._set_refs(key, [])

    def remove_from_label(self, store_id: str, label: str, ref: dict[str, Any]) -> None:
        key = self._label_key(self._space(store_id), label)
        digest = self._digest(ref)
        refs = self._refs(key)
        if digest not in refs:
            raise Refused(f"label {label!r} does not hold content {digest.hex()}")
        self._set_refs(key, [r for r in refs if r != digest])

    def store_at_label(self, store_id: str, label: str, content: bytes) -> dict[str, str]:
        space = self._space(store_id)
        key = self._label_key(space, label)
        digest = self._put(space, content)
        self._set_refs(key, [*(r for r in self._refs(key) if r != digest), digest])
        return {"hash": digest.hex()}

    def replace_content_at_label(self, store_id: str, label: str, content: bytes) -> dict[str, str]:
        space = self._space(store_id)
        key = self._label_key(space, label)
        digest = self._put(space, content)
        self._set_refs(key, [digest])
        return {"hash": digest.hex()}

    def replace_at_label(self, store_id: str, label: str, ref: dict[str, Any]) -> None:
        space = self._space(store_id)
        key = self._label_key(space, label)
        self._set_refs(key, [self._known(space, ref)])

    def list_labels(self, store_id: str) -> list[str]:
        space = self._space(store_id) + "label/"
        return [name[len(space):] for name, _ in self.blobs.labels(space)]

    def list_all_content(self, store_id: str) -> list[dict[str, str]]:
        return [{"hash": d.hex()} for d in self._contents(self._space(store_id))]

    def calculate_total_size(self, store_id: str) -> int:
        return sum(self.blobs.size(d) for d in self._contents(self._space(store_id)))
