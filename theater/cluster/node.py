"""One node of a cluster: the leases of the actors it runs, failover, and messages forwarded to their owners.

- A node runs an actor only while it holds the actor's lease: a key of the ``theater-leases`` bucket whose value
  is the node's name. The bucket's TTL ends a lease its owner does not refresh; the owner refreshes each of its
  leases every third of the TTL with a revision-checked update, and stops running an actor whose lease it lost
  (someone else's revision) or could not refresh within 80% of the TTL (cut off). Its appends are fenced anyway:
  a node that lost an actor cannot extend its chain even before it notices (``theater.cluster.replicator``).
- Every actor with a chain is listed in ``theater-actors`` until its chain ends (stop, exit, failed). Each node
  looks every ``scan_every`` seconds for listed actors with no lease, takes the lease (a create: one node wins),
  reads the chain back from the stream into its home (checking every event), and resumes the actor from its
  last state (``Theater.reopen``, as after a restart).
- Send and request by id from any node: a node that does not run the actor asks the lease's owner over
  ``theater.node.<name>.rpc`` (NATS request/reply) and answers what the owner answered.
- Channels between actors on two nodes: each node keeps the channel with a ``RemoteEnd`` for the other actor,
  which forwards what its actor sends (``chan-open``, ``chan-msg``, ``chan-close`` on the same subject).
- Placement: a node tells its load (``load``) when asked; ``place`` asks every node, then reserves a place on the
  least loaded one (``reserve``: refused when that node's load grew since it was asked, and the next is tried), so
  starts placed at the same moment through several nodes do not all pick the node that was emptiest.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import cbor2
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from store.errors import TheaterError
from store.replicated import ReplicationError
from theater.cluster.chains import apply_chain, fetch_blob, read_chain
from theater.cluster.config import (
    ACTORS,
    LEASES,
    NODE_NAME,
    NODES,
    ActorUnavailable,
    ClusterConfig,
    ClusterUnreachable,
    NodeUnavailable,
    RemoteRefused,
    node_subject,
)
from theater.cluster.labels import LabelSync
from theater.cluster.link import Link
from theater.cluster.remote import RemoteTree
from theater.cluster.replicator import JetStreamReplicator
from theater.errors import ActorNotFound, ChannelClosed
from theater.host import ChannelAnswer
from theater.passivation import is_durable
from theater.router import RemoteActor

if TYPE_CHECKING:
    from theater.runtime import Theater

log = logging.getLogger("theater.cluster")

ENDED = frozenset({"actor/stop", "actor/exit", "actor/failed"})  # a chain that ends so is never taken over
NOT_RESUMED = ENDED | {"wasm/error"}
LOST_AFTER = 0.8  # of the TTL: a lease not refreshed for this long is given up here
JOINED = "theater.nodes.joined"  # a node that joins says its name here
LOAD_WAIT_S = 1.0  # a node that does not tell its load within this is left out of a placement
RESERVED_S = 30.0  # a place reserved for a start that never arrives stops counting after this
MAX_RESERVED = 4096  # places reserved on one node at once (each for up to RESERVED_S)
PLACE_TRIES = 4  # reservations refused (each node's load grew since asked) before a placement takes the least loaded
# (status, body, content type) of a request handled by the owner; the server supplies the handler.
Handler = Callable[[str, uuid.UUID, bytes], Awaitable[tuple[int, bytes, str]]]


class ClusterNode:
    """This node's part of the cluster (see the module docstring)."""

    def __init__(self, config: ClusterConfig, link: Link, replicator: JetStreamReplicator) -> None:
        self.config = config
        self.name = config.node
        self.link = link
        self.replicator = replicator
        self.theater: Theater | None = None
        self.http_url = ""
        self.held: dict[uuid.UUID, int] = {}  # actor -> lease revision (loop only)
        self._refreshed: dict[uuid.UUID, float] = {}
        self._taking: dict[uuid.UUID, asyncio.Future[None]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._handler: Handler | None = None
        self._parents: dict[str, str | None] = {}  # listed actor -> its parent, as its record says
        self._targets: dict[uuid.UUID, asyncio.Lock] = {}  # messages from this node to a remote actor, in order
        self.takeovers = 0
        self._reserved: dict[str, float] = {}  # places reserved here for starts: token -> when it lapses
        self.known: set[str] = set()  # the nodes listed in theater-nodes, as the last heartbeat read them
        self._channel_ends: dict[str, RemoteEnd] = {}  # channel id -> this node's end, the other actor elsewhere
        self._placing_lock = threading.Lock()  # reservations change on the server's loop and on the link's
        self.labels: LabelSync | None = None  # clients' labels across the cluster, once attached
        self._restarted = True  # until the first scan: leases this node's name held before a restart are its own
        replicator.on_new = self._on_new
        replicator.on_lost = self._on_lost
        replicator.on_ended = self._on_ended
        replicator.terminal = ENDED
        self.tree = RemoteTree(self)

    # Joining.

    def attach(self, theater: Theater, handler: Handler) -> None:
        """Start the node's work once its runtime is open: heartbeats, the failover scan, the forwarded messages."""
        self.theater = theater
        self._handler = handler
        theater.router.remote = self.remote_actor
        self.tree.install(theater)  # children on other nodes than their parents (theater.cluster.remote)
        self.labels = LabelSync(self.link, self.replicator, theater.store)
        self.link.call(self._attach(), self.config.timeout)

    async def _attach(self) -> None:
        await self.link.nc.subscribe(node_subject(self.name), cb=self._on_rpc)
        await self.link.nc.subscribe(JOINED, cb=self._on_joined)
        try:  # listed at once, so a placement finds this node before its first heartbeat
            await asyncio.wait_for(self.link.nodes.put(self.name, json.dumps(self._beat()).encode()),
                                   self.config.timeout)
            self.known = set(await asyncio.wait_for(self.link.entries(NODES, values=False), self.config.timeout))
        except (NatsError, asyncio.TimeoutError):
            pass  # the heartbeats list it, and read the others
        try:  # the others place starts here at once, not after their next heartbeat
            await self.link.nc.publish(JOINED, self.name.encode())
        except NatsError:
            pass
        loop = self.link.loop
        self._tasks = [loop.create_task(self._heartbeats()), loop.create_task(self._scans())]
        if self.labels is not None:
            self._tasks.append(loop.create_task(self.labels.run()))

    def release(self) -> None:
        """Give every lease back now (after the runtime closed: nothing more is appended), so other nodes take the
        actors over at their next scan instead of after the TTL."""
        async def free() -> None:
            held, self.held = self.held, {}
            for actor, revision in held.items():
                try:
                    await self.link.leases.delete(str(actor), last=revision)
                except NatsError:
                    pass  # someone else's already, or unreachable: it expires
        try:
            self.link.call(free(), self.config.timeout)
        except (NatsError, TimeoutError):
            pass

    def close(self) -> None:
        """Stop the node's work (heartbeats, scans); the leases stay until ``release`` or their TTL."""
        async def stop() -> None:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            self.link.call(stop(), 5)
        except (NatsError, TimeoutError):
            pass

    # Leases.

    async def _on_new(self, actor: uuid.UUID, created: dict[str, Any]) -> None:
        """Before a new chain's first message: take its lease and list it (an error refuses the batch)."""
        key = str(actor)
        try:
            revision = await self.link.leases.create(key, self.name.encode())
        except KeyWrongLastSequenceError:
            raise ReplicationError(key, "another node holds its lease", fenced=True) from None
        self.held[actor] = revision
        self._refreshed[actor] = time.monotonic()
        record = {"parent": created.get("parent"), "name": created.get("name"), "created_by": self.name}
        await self.link.actors.put(key, json.dumps(record).encode())

    def _on_lost(self, actor: uuid.UUID, error: BaseException) -> None:
        log.warning("node %s gives up actor %s: %s", self.name, actor, error)
        self.link.loop.create_task(self._give_up(actor, release=True))

    def _on_ended(self, actor: uuid.UUID) -> None:
        self.link.loop.create_task(self._end(actor))

    async def _end(self, actor: uuid.UUID) -> None:
        revision = self.held.pop(actor, None)
        self._refreshed.pop(actor, None)
        try:
            await self.link.actors.delete(str(actor))
            if revision is not None:
                await self.link.leases.delete(str(actor), last=revision)
        except NatsError as exc:
            log.warning("actor %s ended, but its lease stays until it expires: %s", actor, exc)

    async def _give_up(self, actor: uuid.UUID, *, release: bool) -> None:
        """Stop running ``actor`` here without recording anything; with ``release``, free its lease at once."""
        revision = self.held.pop(actor, None)
        self._refreshed.pop(actor, None)
        self.replicator.forget(actor)
        if release and revision is not None:
            try:
                await self.link.leases.delete(str(actor), last=revision)
            except NatsError:
                pass  # someone else's now, or unreachable: it expires
        theater = self.theater
        if theater is not None:
            await asyncio.to_thread(theater.relinquish, actor)

    async def _heartbeats(self) -> None:
        ttl = self.config.lease_ttl
        while True:
            await asyncio.sleep(ttl / 3)
            held = list(self.held.items())
            results = await asyncio.gather(*(self._refresh(a, r) for a, r in held), return_exceptions=True)
            now = time.monotonic()
            for (actor, _), result in zip(held, results):
                if isinstance(result, int):
                    if actor in self.held:
                        self.held[actor] = result
                        self._refreshed[actor] = now
                elif isinstance(result, (KeyWrongLastSequenceError, KeyNotFoundError)):
                    log.warning("node %s lost the lease of actor %s", self.name, actor)
                    self.link.loop.create_task(self._give_up(actor, release=False))
                elif now - self._refreshed.get(actor, now) > ttl * LOST_AFTER:
                    log.warning("node %s could not refresh the lease of actor %s: stops running it", self.name, actor)
                    self.link.loop.create_task(self._give_up(actor, release=False))
            try:
                await asyncio.wait_for(self.link.nodes.put(self.name, json.dumps(self._beat()).encode()), ttl / 3)
                self.known = set(await asyncio.wait_for(self.link.entries(NODES, values=False), ttl / 3))
            except (NatsError, asyncio.TimeoutError):
                pass

    async def _refresh(self, actor: uuid.UUID, revision: int) -> int:
        result: int = await asyncio.wait_for(
            self.link.leases.update(str(actor), self.name.encode(), last=revision), self.config.lease_ttl / 3)
        return result

    def _beat(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "url": self.http_url, "actors": len(self.held), "ms": time.time_ns() // 1_000_000}

    async def _on_joined(self, msg: Any) -> None:
        name = bytes(msg.data).decode("utf-8", "replace")
        if NODE_NAME.match(name):
            self.known.add(name)

    def load(self) -> int:
        """What placement compares: the actors this node runs (the leases it holds) and the places reserved for
        starts under way here or on their way here."""
        with self._placing_lock:
            return self._load()

    def _load(self) -> int:
        now = time.monotonic()
        return len(self.held) + sum(1 for lapses in self._reserved.values() if lapses > now)

    def reserve(self, at_most: int | None = None) -> str | None:
        """Reserve a place for a start on this node (it counts in its load until ``unreserve`` or ``RESERVED_S``),
        unless its load is above ``at_most`` now: the reservation's token, or None when refused (or when
        ``MAX_RESERVED`` places are reserved already: whoever can publish on NATS can ask). From any thread."""
        with self._placing_lock:
            now = time.monotonic()
            self._reserved = {token: lapses for token, lapses in self._reserved.items() if lapses > now}
            if (at_most is not None and self._load() > at_most) or len(self._reserved) >= MAX_RESERVED:
                return None
            token = uuid.uuid4().hex
            self._reserved[token] = now + RESERVED_S
            return token

    def holds(self, token: object) -> bool:
        """Whether ``token`` (from anyone: a start's body) names a live reservation of this node."""
        with self._placing_lock:
            return isinstance(token, str) and self._reserved.get(token, 0.0) > time.monotonic()

    def unreserve(self, token: str | None) -> None:
        """Drop a reservation (the start it was for ended here); None: nothing to drop."""
        with self._placing_lock:
            if token is not None:
                self._reserved.pop(token, None)

    # Placement.

    async def least_loaded(self) -> str:
        """The node to start an actor on: of the nodes listed in ``theater-nodes`` (as the last heartbeat read the
        bucket) that tell their load within ``LOAD_WAIT_S`` (asked now, not read from a heartbeat, so starts one
        after the other spread at once), the one with the fewest actors; this node when tied (its blobs need no
        transfer), then by name."""
        ordered = sorted(self.known | {self.name})
        loads = await asyncio.gather(*(self._load_of(name) for name in ordered))
        answered = [(load, name != self.name, name) for name, load in zip(ordered, loads) if load is not None]
        return min(answered)[2] if answered else self.name

    async def place(self) -> tuple[str, str | None]:
        """The node to start an actor on, as ``least_loaded`` picks it, with a place reserved there: (node, token).
        A reservation is refused when that node's load grew since it was asked (another start was placed there
        meanwhile); the next least loaded is tried then, with the refused node's new load. Token None: every node
        refused ``PLACE_TRIES`` times, or none answered (this node then)."""
        ordered = sorted(self.known | {self.name})
        loads = await asyncio.gather(*(self._load_of(name) for name in ordered))
        seen = {name: load for name, load in zip(ordered, loads) if load is not None}
        for _ in range(PLACE_TRIES):
            if not seen:
                break
            name = min(seen, key=lambda n: (seen[n], n != self.name, n))
            answer = await self._reserve_on(name, seen[name])
            if isinstance(answer, str):
                return name, answer
            if answer is None:
                del seen[name]  # it did not answer: not a place for a new actor
            else:
                seen[name] = answer
        return (min(seen, key=lambda n: (seen[n], n != self.name, n)) if seen else self.name), None

    async def _reserve_on(self, name: str, at_most: int) -> str | int | None:
        """A reservation on node ``name`` if its load is at most ``at_most``: its token, else its load now (None:
        it did not answer)."""
        if name == self.name:
            token = self.reserve(at_most)
            return token if token is not None else self.load()
        request = cbor2.dumps({"op": "reserve", "actor": bytes(16), "body": json.dumps({"at_most": at_most}).encode()})
        try:
            reply = await self.link.nc.request(node_subject(name), request, timeout=LOAD_WAIT_S)
            answer = json.loads(bytes(cbor2.loads(reply.data)["body"]))
            token, load = answer.get("token"), answer.get("actors")
        except (NatsError, asyncio.TimeoutError, ValueError, KeyError, TypeError, AttributeError,
                cbor2.CBORDecodeError):
            return None
        if isinstance(token, str):
            return token
        return load if isinstance(load, int) and not isinstance(load, bool) and load >= 0 else None

    async def _load_of(self, name: str) -> int | None:
        if name == self.name:
            return self.load()
        request = cbor2.dumps({"op": "load", "actor": bytes(16), "body": b""})
        try:
            reply = await self.link.nc.request(node_subject(name), request, timeout=LOAD_WAIT_S)
            load = json.loads(bytes(cbor2.loads(reply.data)["body"]))["actors"]
        except (NatsError, asyncio.TimeoutError, ValueError, KeyError, TypeError, cbor2.CBORDecodeError):
            return None  # gone, or not answering: not a place for a new actor
        return load if isinstance(load, int) and not isinstance(load, bool) and load >= 0 else None

    # Failover.

    async def _scans(self) -> None:
        while True:
            await asyncio.sleep(self.config.scan_every)
            try:
                await self._scan()
            except (NatsError, asyncio.TimeoutError) as exc:
                log.info("failover scan skipped: %s", exc or type(exc).__name__)

    async def _scan(self) -> None:
        """Take over the listed actors nobody holds. A supervision tree moves whole: an actor whose parent is
        listed goes with its root, taken by the node that takes (or holds) the root, so parent and children land
        on one node and are linked again."""
        keys = list(await self.link.entries(ACTORS, values=False))
        if not keys:
            return
        leased = set(await self.link.entries(LEASES, values=False))
        listed = set(keys)
        free = [k for k in keys if (k not in leased or self._restarted) and _uuid(k) not in self.held
                and _uuid(k) not in self._taking]
        groups: dict[str, list[str]] = {}
        for key in free:
            groups.setdefault(await self._root(key, listed), []).append(key)
        own = self.name.encode()
        roots = list(groups)
        random.shuffle(roots)  # nodes that look at once try different trees first
        for root in roots:
            root_id = _uuid(root)
            if root_id is None:
                continue
            if root_id not in self.held:
                if root not in groups[root]:
                    continue  # the root is held by another node: that node takes its tree
                revision = await self._try_lease(root, own)
                if revision is None:
                    continue
                self.held[root_id] = revision
                self._refreshed[root_id] = time.monotonic()
            taken = [root_id] if root in groups[root] else []
            try:
                for key in groups[root]:
                    actor = _uuid(key)
                    if actor is None or actor == root_id:
                        continue
                    revision = await self._try_lease(key, own)
                    if revision is not None:
                        self.held[actor] = revision
                        self._refreshed[actor] = time.monotonic()
                        taken.append(actor)
            finally:  # what is leased is taken over, even when a later lease could not be asked for: an actor
                if taken:  # held here and never reopened would be lost to every node until this one dies
                    self._start_takeover(taken)
        self._restarted = False

    async def _root(self, key: str, listed: set[str]) -> str:
        """The top of the listed supervision tree ``key`` belongs to (itself when its parent is not listed)."""
        seen = {key}
        while True:
            parent = self._parents.get(key, "?")
            if parent == "?":
                try:
                    record = json.loads(bytes((await self.link.actors.get(key)).value or b"{}"))
                    parent = record.get("parent") if isinstance(record, dict) else None
                except (KeyNotFoundError, ValueError):
                    parent = None
                self._parents[key] = parent
            if parent is None or parent not in listed or parent in seen:
                return key
            seen.add(parent)
            key = parent

    async def _try_lease(self, key: str, own: bytes) -> int | None:
        """Take a free lease (or one this node's name held before a restart); None when another node holds it."""
        try:
            entry = await self.link.leases.get(key)
        except KeyNotFoundError:
            entry = None
        try:
            if entry is None:
                revision: int = await self.link.leases.create(key, self.name.encode())
                return revision
            if entry.value == own:
                revision = await self.link.leases.update(key, self.name.encode(), last=entry.revision)
                return revision
        except KeyWrongLastSequenceError:
            return None
        return None

    def _start_takeover(self, actors: list[uuid.UUID]) -> None:
        """Take over ``actors`` (leases held), one tree: parents are reopened before their children."""
        done: asyncio.Future[None] = self.link.loop.create_future()
        for actor in actors:
            self._taking[actor] = done
        task = self.link.loop.create_task(self._take_over_all(actors))

        def finished(_: object) -> None:
            for actor in actors:
                self._taking.pop(actor, None)
            if not done.done():
                done.set_result(None)

        task.add_done_callback(finished)

    async def _take_over_all(self, actors: list[uuid.UUID]) -> None:
        for actor in actors:
            await self._take_over(actor)

    async def _take_over(self, actor: uuid.UUID) -> None:
        """Read the chain back, check it, and resume the actor here; on any failure give the lease back."""
        theater = self.theater
        assert theater is not None
        started = time.monotonic()
        try:
            messages = await read_chain(self.link, actor)
            if not messages:
                await self._end(actor)  # listed, but its chain never reached the stream
                return
            fetched = {}
            for message in messages:
                for digest in message.refs:
                    if digest not in fetched and not await asyncio.to_thread(theater.store.blobs.has, digest):
                        fetched[digest] = await fetch_blob(self.link, digest)
            cursor = await asyncio.to_thread(apply_chain, theater.store, actor, messages, fetched)
            self.replicator.adopt(actor, cursor)
            last = await asyncio.to_thread(lambda: theater.store.log.at(actor, cursor.head.seq).type)
            if last in NOT_RESUMED or not await asyncio.to_thread(is_durable, theater.store, actor):
                await self._end(actor)
                return
            await asyncio.to_thread(theater.reopen, actor)
            await self.tree.adopt_children(actor)  # its children that other nodes run
        except (TheaterError, NatsError, asyncio.TimeoutError, KeyError) as exc:
            log.warning("node %s could not take over actor %s: %s: %s", self.name, actor, type(exc).__name__, exc)
            await self._give_up(actor, release=True)
            return
        self.takeovers += 1
        log.warning("node %s took over actor %s in %.3f s", self.name, actor, time.monotonic() - started)

    # Messages by id.

    async def owner(self, actor: uuid.UUID) -> str | None:
        """The node holding the actor's lease, or None."""
        try:
            entry = await self.link.leases.get(str(actor))
        except KeyNotFoundError:
            return None
        return bytes(entry.value).decode() if entry.value else None

    async def forward(self, op: str, actor: uuid.UUID, body: bytes, timeout: float
                      ) -> tuple[int, bytes, str] | None:
        """Hand a message to the actor's owner and return its answer; None when this node is the owner (or
        nobody lists the actor: the caller answers as for any unknown actor).

        Raises:
            ActorUnavailable: the actor is listed but no node holds its lease now. ClusterUnreachable: this node
                cannot reach the cluster (it does not answer from what it last knew).
        """
        try:
            return await self._forward_to_owner(op, actor, body, timeout)
        except (NatsError, asyncio.TimeoutError):
            raise ClusterUnreachable(str(actor)) from None

    async def _forward_to_owner(self, op: str, actor: uuid.UUID, body: bytes, timeout: float
                                ) -> tuple[int, bytes, str] | None:
        owner = await self.owner(actor)
        if owner == self.name:
            waiting = self._taking.get(actor)
            if waiting is not None:
                await asyncio.wait_for(asyncio.shield(waiting), timeout)
            return None
        if owner is None:
            try:
                await self.link.actors.get(str(actor))
            except KeyNotFoundError:
                return None
            raise ActorUnavailable(str(actor))
        request = cbor2.dumps({"op": op, "actor": actor.bytes, "body": body})
        asking = asyncio.ensure_future(self.link.nc.request(node_subject(owner), request, timeout=timeout))
        # An owner that dies holding the message never answers: watch its lease meanwhile, and once someone else
        # holds it (or nobody), answer that the actor is unavailable; the client may send again.
        try:
            while not (await asyncio.wait({asyncio.shield(asking)}, timeout=self.config.scan_every))[0]:
                if await self.owner(actor) != owner:
                    raise ActorUnavailable(str(actor))
        except BaseException:
            asking.cancel()
            raise
        try:
            reply = asking.result()
        except NatsError:
            raise ActorUnavailable(str(actor)) from None
        answer = cbor2.loads(reply.data)
        return int(answer["status"]), bytes(answer["body"]), str(answer.get("type") or "application/json")

    # Messages from this node's actors to actors on other nodes.

    def remote_actor(self, actor: uuid.UUID) -> RemoteActor | None:
        """The actor as another node runs it (``Router.target``, on an actor's worker); None when no other node
        holds its lease."""
        try:
            owner = self.link.call(self.owner(actor), self.config.timeout)
        except (NatsError, TimeoutError, concurrent.futures.TimeoutError):
            return None
        if owner is None or owner == self.name:
            return None

        def send(message: bytes) -> concurrent.futures.Future[None]:
            return self.link.spawn(self._message("send", actor, message))

        def request(message: bytes) -> concurrent.futures.Future[bytes]:
            return self.link.spawn(self._message("request", actor, message))

        def open_channel(channel_id: str, initial: bytes) -> concurrent.futures.Future[ChannelAnswer]:
            return self.link.spawn(self._open_channel(owner, actor, channel_id, initial))

        def channel_end(channel_id: str) -> RemoteEnd:
            end = self._channel_ends[channel_id] = RemoteEnd(self, owner, channel_id)
            return end

        return RemoteActor(actor, send, request, open_channel, channel_end)

    # Channels between actors on two nodes.

    async def _open_channel(self, owner: str, actor: uuid.UUID, channel_id: str, initial: bytes) -> ChannelAnswer:
        """Ask ``owner`` to open ``channel_id`` to ``actor`` (its handle-channel-open decides).

        Raises:
            ActorUnavailable: the node does not answer. RemoteRefused: it refused (the actor is not running there).
        """
        timeout = (self.theater.request_timeout if self.theater is not None else 30.0) + 2.0
        answer = await self._channel_call(owner, "chan-open", channel_id, initial, timeout,
                                          actor=str(actor), opener=self.name)
        if answer is None:
            raise ActorUnavailable(str(actor))
        if answer.get("status") != 200:
            raise RemoteRefused(str(actor), str(answer.get("error")), str(answer.get("message", "")))
        message = answer.get("reply")
        return ChannelAnswer(accepted=bool(answer.get("accepted")),
                             message=bytes(message) if message is not None else None)

    async def _channel_call(self, node: str, op: str, channel_id: str, message: bytes, timeout: float,
                            **extra: str) -> dict[str, Any] | None:
        """One channel operation asked of ``node``: its answer, or None when it did not answer."""
        body = cbor2.dumps({"channel": channel_id, "message": message, **extra})
        request = cbor2.dumps({"op": op, "actor": bytes(16), "body": body})
        try:
            reply = await self.link.nc.request(node_subject(node), request, timeout=timeout)
            answer = cbor2.loads(reply.data)
        except (NatsError, asyncio.TimeoutError, ValueError, cbor2.CBORDecodeError):
            return None
        return answer if isinstance(answer, dict) else None

    async def _channel_op(self, msg: Any, op: str, body: bytes) -> None:
        """A channel operation another node asks of this one: open a channel to an actor here, deliver a message
        on one, or close one."""
        status, answer = 200, {}
        try:
            data = cbor2.loads(body)
            channel, message = str(data["channel"]), bytes(data["message"])
            if op == "chan-open":
                answer = await self._accept_channel(channel, message, str(data["actor"]), str(data["opener"]))
            elif op == "chan-msg":
                await self._channel_message(channel, message)
            elif op == "chan-close":
                await asyncio.to_thread(self._close_here, channel, self._channel_ends.get(channel), tell=False)
            else:
                status, answer = 400, {"error": "BadRequest", "message": f"unknown operation {op!r}"}
        except (ValueError, TypeError, KeyError, cbor2.CBORDecodeError):
            status, answer = 400, {"error": "BadRequest", "message": "a malformed channel operation"}
        except TheaterError as exc:
            status, answer = 409, {"error": type(exc).__name__, "message": str(exc)}
        try:
            await msg.respond(cbor2.dumps({"status": status, **answer}))
        except NatsError:
            pass  # the asker is gone

    async def _accept_channel(self, channel: str, initial: bytes, actor_id: str, opener: str) -> dict[str, Any]:
        if not NODE_NAME.match(opener):
            raise ValueError("not a node name")
        theater = self.theater
        assert theater is not None
        router = theater.router
        target = router.running(actor_id)
        end = RemoteEnd(self, opener, channel)
        answer = await asyncio.wrap_future(router.deliver_channel_open(target, channel, initial))
        if answer.accepted:
            self._channel_ends[channel] = end
            router.channels.open(channel, end, target)
        return {"accepted": answer.accepted, "reply": answer.message}

    async def _channel_message(self, channel: str, message: bytes) -> None:
        theater = self.theater
        assert theater is not None
        end = self._channel_ends.get(channel)
        if end is None:
            raise ChannelClosed(channel)
        peer = theater.router.channels.peer(channel, end)
        await asyncio.wrap_future(theater.router.deliver_channel_message(peer, channel, message))

    def _close_here(self, channel: str, end: RemoteEnd | None, *, tell: bool) -> None:
        """Close ``channel`` on this node and tell its local actor (a close from the other node, or a message it
        refused: its actor ended or moved); with ``tell``, the other node is told too."""
        if end is None:
            return
        self._channel_ends.pop(channel, None)
        theater = self.theater
        if theater is None:
            return
        try:
            peer = theater.router.channels.peer(channel, end)
        except ChannelClosed:
            return
        theater.router.channels.close(channel)
        theater.router.deliver_channel_close(peer, channel)
        if tell:
            self.link.spawn(self._channel_call(end.peer, "chan-close", channel, b"", self.config.timeout))

    async def _message(self, op: str, actor: uuid.UUID, message: bytes) -> Any:
        """Forward one message of a local actor; messages to one actor leave this node one after the other, so
        each pair of actors keeps its order.

        Raises:
            ActorUnavailable: no node runs it now. ActorNotFound: it has ended. RemoteRefused: its node refused it.
        """
        body = json.dumps({"message": {"base64": base64.b64encode(message).decode()}}).encode()
        timeout = (self.theater.request_timeout if self.theater is not None else 30.0) + 2.0
        async with self._targets.setdefault(actor, asyncio.Lock()):
            answer = await self.forward(op, actor, body, timeout)
        if answer is None:
            raise ActorNotFound(str(actor))
        status, payload, _ = answer
        try:
            data = json.loads(payload)
        except ValueError:
            data = {}
        if status != 200:
            raise RemoteRefused(str(actor), str(data.get("error", status)), str(data.get("message", "")))
        if op == "send":
            return None
        return base64.b64decode(data["response"]["base64"])

    # Placement: a start asked of this node for another.

    async def ask_node(self, node: str, op: str, actor: uuid.UUID, body: bytes, timeout: float
                       ) -> tuple[int, bytes, str]:
        """Ask node ``node`` directly (a start placed there).

        Raises:
            NodeUnavailable: no such node answers.
        """
        request = cbor2.dumps({"op": op, "actor": actor.bytes, "body": body})
        try:
            reply = await self.link.nc.request(node_subject(node), request, timeout=timeout)
        except NatsError:
            raise NodeUnavailable(node) from None
        answer = cbor2.loads(reply.data)
        return int(answer["status"]), bytes(answer["body"]), str(answer.get("type") or "application/json")

    async def share_blobs(self, store: Any, digests: list[str]) -> None:
        """Put the blobs this home holds under ``digests`` (hex) into the object store (others are left out:
        the node that starts the actor names what it lacks)."""
        for text in digests:
            try:
                digest = bytes.fromhex(text)
            except ValueError:
                continue
            if await asyncio.to_thread(store.blobs.has, digest):
                await self.replicator.upload(digest, None)

    async def fetch_blobs(self, store: Any, digests: list[str]) -> None:
        """Bring the blobs named by ``digests`` (hex) that this home lacks from the object store, checked."""
        for text in digests:
            digest = bytes.fromhex(text)
            if not await asyncio.to_thread(store.blobs.has, digest):
                try:
                    data = await fetch_blob(self.link, digest)
                except NatsError:
                    continue  # not shared: the start answers that the blob is missing
                actual = await asyncio.to_thread(store.blobs.put, data)
                if actual != digest:
                    raise ReplicationError(text[:16], "the object store's bytes do not hash to the blob's name")

    async def _on_rpc(self, msg: Any) -> None:
        try:
            data = cbor2.loads(msg.data)
            op, actor, body = str(data["op"]), uuid.UUID(bytes=bytes(data["actor"])), bytes(data["body"])
        except (ValueError, TypeError, KeyError, cbor2.CBORDecodeError):
            await msg.respond(cbor2.dumps({"status": 400, "body": b'{"error":"BadRequest","message":"malformed"}'}))
            return
        if op.startswith("child-"):  # a parent and its child on two nodes (theater.cluster.remote)
            self.link.loop.create_task(self.tree.answer(msg, op, actor, body))
            return
        if op.startswith("chan-"):
            self.link.loop.create_task(self._channel_op(msg, op, body))
            return
        if op in ("load", "reserve"):  # answered at once, on the loop: nothing of the runtime is asked
            body = json.dumps(self._reserve_asked(body) if op == "reserve" else {"actors": self.load()}).encode()
            try:
                await msg.respond(cbor2.dumps({"status": 200, "body": body, "type": "application/json"}))
            except NatsError:
                pass  # the asker is gone
            return
        self.link.loop.create_task(self._answer(msg, op, actor, body))

    def _reserve_asked(self, body: bytes) -> dict[str, Any]:
        """Another node places a start here if this node's load is at most what it saw: the reservation's token,
        or this node's load now."""
        try:
            at_most = json.loads(body)["at_most"]
        except (ValueError, KeyError, TypeError):
            at_most = None
        if not isinstance(at_most, int) or isinstance(at_most, bool):
            return {"actors": self.load()}
        token = self.reserve(at_most)
        return {"token": token} if token is not None else {"actors": self.load()}

    async def _answer(self, msg: Any, op: str, actor: uuid.UUID, body: bytes) -> None:
        waiting = self._taking.get(actor)
        if waiting is not None:
            await asyncio.shield(waiting)
        assert self._handler is not None
        status, answer, kind = await self._handler(op, actor, body)
        try:
            await msg.respond(cbor2.dumps({"status": status, "body": answer, "type": kind}))
        except NatsError:
            pass  # the asker is gone


class RemoteEnd:
    """This node's end of a channel whose other actor runs on node ``peer`` (a ``theater.host.ChannelEnd``): what
    the local actor sends on it is forwarded there, one message after the other; its close too. A message that
    node refuses (it no longer holds the channel: its actor ended or moved) closes the channel here, as the end of
    the other actor would."""

    def __init__(self, node: ClusterNode, peer: str, channel_id: str) -> None:
        self.node = node
        self.peer = peer
        self.channel_id = channel_id
        self._order = asyncio.Lock()

    def on_message(self, message: bytes) -> None:
        self.node.link.spawn(self._forward(message))

    def on_close(self) -> None:
        """The local actor closed the channel, or ended: the other node closes its end."""
        self.node._channel_ends.pop(self.channel_id, None)
        self.node.link.spawn(self.node._channel_call(self.peer, "chan-close", self.channel_id, b"",
                                                     self.node.config.timeout))

    async def _forward(self, message: bytes) -> None:
        async with self._order:
            answer = await self.node._channel_call(self.peer, "chan-msg", self.channel_id, message,
                                                   self.node.config.timeout)
        if answer is None or answer.get("status") != 200:
            log.info("channel %s: node %s did not take a message; closed here", self.channel_id, self.peer)
            await asyncio.to_thread(self.node._close_here, self.channel_id, self, tell=answer is not None)


def _uuid(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key)
    except ValueError:
        return None
