"""The node's NATS connection, on an event loop thread of its own, and the JetStream objects every node shares.

The runtime's threads hand coroutines to the loop (``call``, ``spawn``) and never wait on the network while they
hold an actor, except where a caller asks to.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import logging
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
from nats.errors import Error as NatsError
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    KeyValueConfig,
    ObjectStoreConfig,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BucketNotFoundError, NotFoundError as JsNotFound

from theater.cluster.config import (
    ACTORS,
    BLOBS,
    CHAIN_SUBJECT,
    LABELS,
    LEASES,
    NODES,
    STREAM,
    ClusterConfig,
    ClusterError,
)

log = logging.getLogger("theater.cluster")
T = TypeVar("T")
CONNECT_WAIT_S = 10.0  # no server of the cluster answers within this: the node does not start
SETUP_WAIT_S = 30.0  # a cluster that was just started takes a few seconds to elect its JetStream leader
LIST_BATCH = 1000  # entries per fetch when a bucket is listed
LIST_WAIT_S = 1.0  # a fetch that gets nothing for this long asks the consumer what is still pending
_DELETED_HEADERS = ("KV-Operation", "Nats-Marker-Reason")  # a delete or purge marker, a server's expiry marker


class Link:
    """A connection to the cluster: the NATS client, JetStream, the buckets and the object store."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="theater-cluster", daemon=True)
        self._thread.start()
        self.nc: Any = None
        self.js: Any = None
        self.leases: Any = None
        self.actors: Any = None
        self.nodes: Any = None
        self.blobs: Any = None
        self.labels: Any = None

    def call(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (from any thread but the loop's)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def open(self) -> Link:
        """Connect and make sure the stream, the buckets and the object store exist.

        Raises:
            ClusterError: no server could be reached, or JetStream did not answer within ``SETUP_WAIT_S``.
        """
        try:
            self.call(self._open(), SETUP_WAIT_S + 10)
        except (NatsError, OSError, TimeoutError) as exc:
            self.close()
            where = ",".join(self.config.servers)
            reason = str(exc) or f"no server answered within {CONNECT_WAIT_S:g} s"
            raise ClusterError(f"cannot join the cluster at {where}: {reason}") from None
        return self

    async def _open(self) -> None:
        cfg = self.config
        async def on_error(exc: Exception) -> None:
            log.warning("NATS: %s", exc or type(exc).__name__)  # one line: the client reconnects by itself

        self.nc = await asyncio.wait_for(nats.connect(
            list(cfg.servers), name=f"theater-{cfg.node}", connect_timeout=2, ping_interval=1,
            max_outstanding_pings=2, reconnect_time_wait=0.2, max_reconnect_attempts=-1,
            allow_reconnect=True, error_cb=on_error,
            # Nothing is buffered while the connection is down: a publish then fails at once. Buffered, it would
            # be sent after the reconnection, when this node may have lost the actor it was for.
            pending_size=0,
        ), CONNECT_WAIT_S)
        self.js = self.nc.jetstream(timeout=cfg.timeout)
        deadline = self.loop.time() + SETUP_WAIT_S
        while True:
            try:
                await self._ensure()
                return
            except (NatsError, asyncio.TimeoutError) as exc:
                if self.loop.time() > deadline:
                    raise ClusterError(f"JetStream did not answer: {exc or type(exc).__name__}") from None
                await asyncio.sleep(0.25)

    async def _ensure(self) -> None:
        cfg, js = self.config, self.js
        try:
            await js.stream_info(STREAM)
        except JsNotFound:
            await js.add_stream(StreamConfig(name=STREAM, subjects=[f"{CHAIN_SUBJECT}.>"], num_replicas=cfg.replicas,
                                             storage=StorageType.FILE, max_msg_size=-1))
        self.leases = await self._bucket(LEASES, ttl=cfg.lease_ttl)
        # The bucket's TTL is the cluster's, fixed by the node that made it: refresh at its pace, whatever ours says.
        ttl = (await self.leases.status()).ttl
        if ttl and abs(ttl - cfg.lease_ttl) > 1e-6:
            log.warning("the cluster's lease TTL is %g s (not %g s): this node uses it", ttl, cfg.lease_ttl)
            self.config = cfg = dataclasses.replace(cfg, lease_ttl=float(ttl))
        self.nodes = await self._bucket(NODES, ttl=cfg.lease_ttl)
        self.actors = await self._bucket(ACTORS, ttl=None)
        self.labels = await self._bucket(LABELS, ttl=None)
        try:
            self.blobs = await js.object_store(BLOBS)
        except (BucketNotFoundError, JsNotFound):
            self.blobs = await js.create_object_store(BLOBS, ObjectStoreConfig(replicas=cfg.replicas))

    async def _bucket(self, name: str, *, ttl: float | None) -> Any:
        try:
            return await self.js.key_value(name)
        except (BucketNotFoundError, JsNotFound):
            return await self.js.create_key_value(KeyValueConfig(bucket=name, ttl=ttl, replicas=self.config.replicas,
                                                                 history=1))

    async def entries(self, bucket: str, *, values: bool = True) -> dict[str, bytes]:
        """Every live key of the key-value bucket ``bucket`` with its value (``b""`` for each when ``values`` is
        false): what the bucket held when the call began, and possibly writes made during it.

        nats-py's ``KeyValue.keys()`` lists through a push watcher that decides it has seen everything when the
        consumer reports nothing pending, which it does as soon as the server has *sent* the entries: a loaded
        process that has not read them yet gets a partial list, or none. Here a pull consumer (nothing is sent
        until asked) counts the entries at its creation, and they are fetched until that many have arrived (fewer
        when the bucket's TTL expires some meanwhile: the consumer is asked again after a fetch that gets none).

        Raises:
            nats.errors.Error, asyncio.TimeoutError: the server did not answer.
        """
        stream, prefix = f"KV_{bucket}", f"$KV.{bucket}."
        config = ConsumerConfig(deliver_policy=DeliverPolicy.LAST_PER_SUBJECT, ack_policy=AckPolicy.NONE,
                                headers_only=not values, filter_subject=prefix + ">", mem_storage=True,
                                inactive_threshold=max(30.0, 3 * self.config.timeout))
        sub = await self.js.pull_subscribe(prefix + ">", durable=None, stream=stream, config=config)
        name = None
        out: dict[str, bytes] = {}
        try:
            info = await sub.consumer_info()
            name, left = info.name, info.num_pending
            deadline = self.loop.time() + max(30.0, 3 * self.config.timeout)
            while left > 0:
                if self.loop.time() > deadline:
                    raise asyncio.TimeoutError(f"listing the bucket {bucket}: {left} entries never arrived")
                try:
                    msgs = await sub.fetch(batch=min(left, LIST_BATCH), timeout=LIST_WAIT_S)
                except (asyncio.TimeoutError, nats.errors.TimeoutError):
                    left = min(left, (await sub.consumer_info()).num_pending)  # expired since it was counted
                    continue
                for msg in msgs:
                    left = min(left - 1, msg.metadata.num_pending)
                    key = msg.subject[len(prefix):]
                    headers = msg.headers or {}
                    if any(h in headers for h in _DELETED_HEADERS):
                        out.pop(key, None)
                    else:
                        out[key] = b"" if not values else bytes(msg.data or b"")
        finally:
            try:
                await sub.unsubscribe()
                if name is not None:
                    await self.js.delete_consumer(stream, name)
            except (NatsError, asyncio.TimeoutError):
                pass  # the server drops it after inactive_threshold
        return out

    def close(self) -> None:
        """Drain the connection and stop the loop. Safe to call twice."""
        if self.loop.is_closed():
            return
        if self.nc is not None:
            try:
                self.call(self.nc.close(), 5)
            except (NatsError, OSError, concurrent.futures.TimeoutError):
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        if not self._thread.is_alive():  # what the client left running is cancelled and awaited, not dropped: a
            self._finish_tasks()  # dropped task's coroutine warns from the garbage collector, where nothing catches it
        self.loop.close()

    def _finish_tasks(self) -> None:
        pending = [task for task in asyncio.all_tasks(self.loop) if not task.done()]
        for task in pending:
            task.cancel()
        try:
            if pending:
                self.loop.run_until_complete(asyncio.wait(pending, timeout=5))
            self.loop.run_until_complete(self.loop.shutdown_asyncgens())
        except RuntimeError:
            pass  # the loop was closed under us
