"""Clients' labels across the cluster: a label set or removed through any node's API reaches every node's home.

The ``theater-labels`` bucket maps each label (its name in URL-safe base64: a bucket key allows only a few
characters) to the hex digest of the blob it points at; the blob goes to the object store first. Every node watches
the bucket and applies what it sees to its own home: it fetches a blob it lacks (its bytes must hash to the digest
the label names) and points the label at it, or removes the label. So a label points at the same blob on every
node once the watch has delivered it (each node's copy follows the bucket, the last write wins); the node a client
asked answers only after the bucket took the change. The runtime's own labels (``build/``, ``compiled/``,
``theater/``) stay local: they name what this home built or compiled.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError

from store import Store
from store.blobs import reserved_prefix
from store.errors import TheaterError
from theater.cluster.chains import fetch_blob
from theater.cluster.config import ClusterError
from theater.cluster.link import Link
from theater.cluster.replicator import JetStreamReplicator

log = logging.getLogger("theater.cluster")

DELETED = ("DEL", "PURGE")  # the bucket's operations that remove a key


def label_key(name: str) -> str:
    """The bucket key of a label."""
    return base64.urlsafe_b64encode(name.encode()).decode()


def label_name(key: str) -> str | None:
    """The label a bucket key names; None for a key that is not one of ours."""
    try:
        return base64.urlsafe_b64decode(key.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        return None


class LabelSync:
    """Publishes this node's label changes to the bucket and applies every node's to the local home."""

    def __init__(self, link: Link, replicator: JetStreamReplicator, store: Store) -> None:
        self.link = link
        self.replicator = replicator
        self.store = store
        self.applied = 0  # changes seen on the bucket and applied here

    async def publish(self, name: str, digest: bytes | None) -> None:
        """Tell the cluster label ``name`` points at ``digest`` now (None: it was removed). Runtime labels are
        not published.

        Raises:
            ClusterError: the bucket or the object store did not take it.
        """
        if reserved_prefix(name) is not None:
            return
        timeout = self.link.config.timeout
        try:
            if digest is None:
                await asyncio.wait_for(self.link.labels.delete(label_key(name)), timeout)
                return
            await asyncio.wait_for(self.replicator.upload(digest, None), timeout)
            await asyncio.wait_for(self.link.labels.put(label_key(name), digest.hex().encode()), timeout)
        except (NatsError, asyncio.TimeoutError):
            raise ClusterError(f"label {name!r} changed on this node, but the cluster did not take the change: "
                               "set it again") from None

    async def run(self) -> None:
        """Follow the bucket (what it holds now, then each change) until cancelled."""
        while True:
            try:
                watcher = await self.link.labels.watchall()
                async for entry in watcher:
                    if entry is not None:
                        await self._apply(entry)
            except (NatsError, asyncio.TimeoutError) as exc:
                log.info("label watch restarts: %s", exc or type(exc).__name__)
                await asyncio.sleep(self.link.config.scan_every)

    async def _apply(self, entry: Any) -> None:
        name = label_name(str(entry.key))
        if name is None or reserved_prefix(name) is not None:
            return  # not a client's label: nobody may set the runtime's own through the bucket
        try:
            if entry.operation in DELETED:
                await asyncio.to_thread(self._remove, name)
            else:
                digest = bytes.fromhex(bytes(entry.value or b"").decode())
                if not await asyncio.to_thread(self.store.blobs.has, digest):
                    data = await fetch_blob(self.link, digest)
                    actual = await asyncio.to_thread(self.store.blobs.put, data)
                    if actual != digest:
                        log.warning("label %r: the object store's blob does not hash to %s", name, digest.hex())
                        return
                await asyncio.to_thread(self.store.blobs.set_label, name, digest)
        except (ValueError, UnicodeDecodeError, TheaterError, NatsError, KeyNotFoundError) as exc:
            log.warning("label %r from the cluster not applied: %s", name, exc)
            return
        self.applied += 1

    def _remove(self, name: str) -> None:
        try:
            self.store.blobs.remove_label(name)
        except TheaterError:
            pass  # not here: nothing to remove
