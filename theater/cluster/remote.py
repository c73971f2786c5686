"""A parent and its children on different nodes: a child spawned elsewhere, supervised by its parent where it runs.

- Placement (``theater server --child-placement least-loaded``): a child a supervisor spawns starts on the
  cluster's least loaded node (``ClusterNode.least_loaded``) instead of its parent's (``parent``, the default). The
  parent's node checks the child's grants against the parent's as for any spawn, resolves its component (through
  the parent's file access) and puts it into the object store; the chosen node starts the child with the parent
  recorded in its creation event (op ``child-start``), and the parent keeps a ``RemoteChild`` for it.
- The parent's side is unchanged: ``theater.supervision`` decides and records every restart, stop and give-up in
  the parent's chain as for a local child; a ``RemoteChild`` carries out what it asks on the child's node: stop
  (``child-stop``), restart (``child-restart``), its state (``child-state``).
- A child's end reaches its parent across nodes: its node tells the node holding the parent's lease
  (``child-ended``, once the end is durable), which checks the end against the replicated chain (the event at the
  told seq must be on the stream and be such an end) and queues it on the parent's mailbox
  (``Supervision.heard``), where the parent's guest hears it and its policy decides, as for a local child.
- Fencing: the child's node carries out a stop or a restart only when it runs the child and holds its lease (a
  restart after a stop or an exit takes the free lease back first, once the local chain is the stream's), the
  asking node holds the lease of the child's recorded parent, and (restart) the child's chain still ends at the
  seq of the end the parent decided on: a second restart for the same end is refused, so a restart happens at
  most once. The appends are fenced by the chain's expected sequence anyway (``theater.cluster.replicator``).
- Failover: a child whose node dies goes to the node that holds its parent (``ClusterNode._scan``: trees move
  together), which supervises it locally from then on (``Supervision.adopt`` replaces the ``RemoteChild``); a parent
  whose node dies is reopened elsewhere and adopts a ``RemoteChild`` for each listed child of it another node runs.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import json
import logging
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any, cast

import cbor2
from nats.errors import Error as NatsError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

from replay.errors import GuestFault
from replay.schema import (
    ACTOR_EXIT,
    ACTOR_FAILED,
    ACTOR_STOP,
    SUPERVISOR_SPAWN,
    WASM_ERROR,
    InstantiateReason,
)
from store import Event, Head
from store.codec import decode_stored
from store.errors import NotFoundError, TheaterError
from theater.cluster.chains import ChainMessage, apply_chain, fetch_blob, read_chain
from theater.cluster.config import ACTORS, NODE_NAME, STREAM, chain_subject, node_subject
from theater.cluster.replicator import decode_message
from theater.errors import SupervisionError
from theater.files import FileAccess
from theater.manifest import ComponentRef, Manifest, parse_manifest, start_state
from theater.scheduler import blocking
from theater.status import ENDED, LIVE, ActorStatus
from theater.supervision import Child, ChildSpec, Ending, on_thread

if TYPE_CHECKING:
    from theater.cluster.node import ClusterNode
    from theater.host import SupervisedActor
    from theater.runtime import Theater

log = logging.getLogger("theater.cluster")
ENDS = {"failure": (WASM_ERROR, ACTOR_FAILED), "stop": (ACTOR_STOP,), "exit": (ACTOR_EXIT,)}
ADOPT_RETRY_MAX = 5.0  # seconds: a parent reopened here asks a child's node again at most this far apart
TELL_TRIES = 40  # a child's end is told again (every scan) while its parent's node does not answer (a failover)
_RUNNER = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="theater-remote-child")


class Refused(TheaterError):
    """A request about a child was refused by the node asked: ``reason`` says why."""

    def __init__(self, reason: str, status: int = 409) -> None:
        self.reason = reason
        self.status = status
        super().__init__(reason)


class RemoteChild:
    """A child another node runs, as its parent's supervision sees it (a ``theater.host.SupervisedActor``): its
    life cycle is carried out on the child's node, its status and incarnation are the parent's view of it.

    Attributes:
        manifest: the child's manifest as its parent spawned it (None for a child adopted after the parent moved:
            its manifest is in its own chain, on its node).
        where: the node that ran it when last asked (a stopped child holds no lease: its restart goes there).
        seq: the seq of the child's chain as last heard (its end, or its head after a restart): an end told with a
            seq not above it is stale and ignored.
    """

    remote = True

    def __init__(self, tree: RemoteTree, actor_id: uuid.UUID, parent: uuid.UUID, manifest: Manifest | None, *,
                 where: str, seq: int = 0, status: ActorStatus = ActorStatus.RUNNING) -> None:
        self.tree = tree
        self.id = actor_id
        self.where = where  # the node that ran it when last asked: asked when no node holds its lease
        self.parent: uuid.UUID | None = parent
        self.manifest = manifest
        self.status = status
        self.failure: GuestFault | None = None
        self.shutdown_data: bytes | None = None
        self.incarnation = 0
        self.seq = seq
        self._boot_state: bytes | None = None
        self._lock = threading.Lock()

    # What a handler sees.

    @property
    def state(self) -> bytes | None:
        """The child's state, asked of its node."""
        answer = self.tree.ask_owner(self, "child-state", {})
        state = answer.get("state")
        return None if state is None else bytes(state)

    @state.setter
    def state(self, value: bytes | None) -> None:
        self._boot_state = value  # what the next restart starts from (``Supervision._reboot``)

    @property
    def tape(self) -> Any:
        raise SupervisionError(f"child {self.id} runs on another node: it has no tape here")

    def chain_events(self) -> list[Event]:
        """The child's events up to its durable head, for ``get-child-events``: the head asked of its node, the
        chain read from the stream up to it, checked and copied into this home (``RemoteTree.pull``).

        Raises:
            SupervisionError: its node refused or did not answer, or the stream does not hold that head.
            TheaterError: the chain read back does not hold together (``apply_chain``).
        """
        return self.tree.pull(self)

    # The life cycle, as supervision drives it.

    def on_thread(self) -> bool:
        return False

    def control(self, op: Any) -> concurrent.futures.Future[Any]:
        return _RUNNER.submit(op)

    def interrupt(self, op: Any) -> concurrent.futures.Future[Any]:
        return _RUNNER.submit(op)

    def has_export(self, export: str) -> bool:
        return False

    def finish(self, how: str, data: bytes | None = None) -> None:
        """Stop the child on its node (``how`` is ``stop``: supervision never makes a child exit)."""
        answer = self.tree.ask_owner(self, "child-stop", {})
        with self._lock:
            self.seq = max(self.seq, int(answer.get("seq", 0)))
            self.status = ActorStatus.STOPPED

    def fail(self, fault: GuestFault) -> None:
        raise SupervisionError(f"child {self.id} runs on another node: it is failed there, not here")

    def revive(self) -> None:
        pass  # the child's node revives it as part of the restart

    def boot(self, reason: InstantiateReason, *, call_init: bool = True) -> None:
        """Restart the child on its node, from the state ``Supervision._reboot`` set, fenced by the seq of its end.

        Raises:
            SupervisionError: the child's node refused or did not answer (logged; the child stays failed).
        """
        with self._lock:
            asked_at = self.seq
        try:
            answer = self.tree.ask_owner(self, "child-restart", {
                "seq": asked_at, "state": self._boot_state, "call_init": call_init})
        except SupervisionError as exc:
            log.warning("the restart of child %s was not carried out: %s", self.id, exc)
            with self._lock:
                if self.seq == asked_at:
                    self.status = ActorStatus.FAILED
            raise
        with self._lock:
            if self.seq == asked_at:  # no end of the new incarnation heard meanwhile
                self.seq = int(answer.get("seq", asked_at))
                self.status = ActorStatus.RUNNING


class RemoteTree:
    """This node's part in trees that span nodes (see the module docstring)."""

    def __init__(self, node: ClusterNode) -> None:
        self.node = node
        self._local_launch: Any = None
        self._restarts: dict[uuid.UUID, asyncio.Lock] = {}

    @property
    def theater(self) -> Theater:
        assert self.node.theater is not None
        return self.node.theater

    def install(self, theater: Theater) -> None:
        """Hook into the runtime's supervision: children's ends to remote parents; spawns placed elsewhere."""
        supervision = theater.supervision
        supervision.orphaned = self.orphaned
        if self.node.config.child_placement == "least-loaded":
            self._local_launch = supervision.launch
            supervision.launch = self.launch

    def _call(self, coro: Any, timeout: float) -> Any:
        with blocking():  # on a parent's worker: the scheduler runs other actors meanwhile
            return self.node.link.call(coro, timeout)

    # The parent's side.

    def launch(self, manifest: Manifest, *, init_state: bytes | None, parent: uuid.UUID | None,
               call_init: bool) -> Any:
        """Supervision's ``launch``: a child starts on the least loaded node (here when tied or alone)."""
        local = self._local_launch
        if parent is None:
            return local(manifest, init_state=init_state, parent=parent, call_init=call_init)
        try:
            target = self._call(self.node.least_loaded(), self.node.config.timeout + 2)
        except (NatsError, TimeoutError, concurrent.futures.TimeoutError):
            target = self.node.name
        if target == self.node.name:
            return local(manifest, init_state=init_state, parent=parent, call_init=call_init)
        theater = self.theater
        digest, _ = theater._component(manifest)  # through the parent's file access, stored here
        state = start_state(manifest, init_state, call_init)
        timeout = theater.request_timeout + 2
        self._call(self.node.share_blobs(theater.store, [digest.hex()]), timeout)
        body = {"parent": str(parent), "manifest": manifest.source_text, "source": manifest.source,
                "component": digest, "state": state, "call_init": call_init}
        answer = self._call(self._ask(target, "child-start", uuid.UUID(int=0), body, timeout), timeout + 2)
        child = uuid.UUID(str(answer["child"]))
        log.info("node %s: child %s of %s started on node %s", self.node.name, child, parent, target)
        return RemoteChild(self, child, parent, manifest, where=target, seq=int(answer.get("seq", 0)))

    def ask_owner(self, child: RemoteChild, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Ask the node holding ``child``'s lease to carry out ``op`` for its parent.

        Raises:
            SupervisionError: no node holds it, or the node refused or did not answer.
        """
        timeout = self.theater.request_timeout + 2

        async def ask() -> dict[str, Any]:
            owner = await self.node.owner(child.id) or child.where  # a stopped child gave its lease back
            answer = await self._ask(owner, op, child.id, {"parent": str(child.parent), **fields}, timeout)
            child.where = owner
            return answer

        try:
            answer: dict[str, Any] = self._call(ask(), timeout + 2)
        except (NatsError, TimeoutError, concurrent.futures.TimeoutError) as exc:
            raise SupervisionError(f"child {child.id}: its node did not answer ({type(exc).__name__})") from None
        except Refused as exc:
            raise SupervisionError(f"child {child.id}: {exc.reason}") from None
        return answer

    def pull(self, child: RemoteChild) -> list[Event]:
        """``child``'s chain up to the durable head its node tells (``child-head``), read from the replicated
        stream, checked event by event (hash, seq, parent links: ``apply_chain``) and imported into this home as a
        read-only chain (nothing runs it here), so that the parent's record refers to events this home holds and
        its replay and verify find them. Runs on the parent's worker.

        Raises:
            SupervisionError: the child's node refused or did not answer; the stream could not be read, or does
                not end the chain at the told head. TheaterError: the chain does not hold together.
        """
        answer = self.ask_owner(child, "child-head", {})
        seq, digest = int(answer["seq"]), bytes(answer["hash"])
        link, store = self.node.link, self.theater.store

        async def read() -> tuple[list[ChainMessage], dict[bytes, bytes]]:
            messages = _up_to(await read_chain(link, child.id), child.id, seq)
            fetched: dict[bytes, bytes] = {}
            for message in messages:
                for ref in message.refs:
                    if ref not in fetched and not await asyncio.to_thread(store.blobs.has, ref):
                        fetched[ref] = await fetch_blob(link, ref)
            return messages, fetched

        try:
            messages, fetched = self._call(read(), self.theater.request_timeout + 2)
        except (NatsError, TimeoutError, concurrent.futures.TimeoutError) as exc:
            raise SupervisionError(f"child {child.id}: its chain could not be read from the stream "
                                   f"({type(exc).__name__})") from None
        cursor = apply_chain(store, child.id, messages, fetched)
        if cursor.head != Head(seq, digest):
            raise SupervisionError(f"child {child.id}: the stream does not end its chain at seq {seq} with the hash "
                                   "its node told")
        return list(store.log.events(child.id, 0, seq + 1))

    async def _ask(self, node: str, op: str, actor: uuid.UUID, fields: dict[str, Any], timeout: float
                   ) -> dict[str, Any]:
        """One request to ``node`` in the name of this node; its answer.

        Raises:
            Refused: the node refused (its reason). NatsError, asyncio.TimeoutError: it did not answer.
        """
        body = cbor2.dumps({"from": self.node.name, **fields})
        request = cbor2.dumps({"op": op, "actor": actor.bytes, "body": body})
        reply = await self.node.link.nc.request(node_subject(node), request, timeout=timeout)
        answer = cbor2.loads(reply.data)
        if not isinstance(answer, dict) or answer.get("status") != 200:
            reason = answer.get("message") if isinstance(answer, dict) else None
            raise Refused(str(reason or "refused"), int(answer.get("status", 500)) if isinstance(answer, dict)
                          else 500)
        return answer

    async def _ended(self, child_id: uuid.UUID, data: dict[str, Any]) -> dict[str, Any]:
        """``child-ended``, on the node of the child's parent: checked against the replicated chain, then queued
        on the parent's mailbox."""
        theater = self.theater
        parent_id, seq, how = uuid.UUID(str(data["parent"])), int(data["seq"]), str(data["how"])
        parent = theater.router.find(parent_id)
        if parent is None or parent.status not in LIVE:
            raise Refused(f"actor {parent_id} does not run here", 404)
        if how not in ENDS:
            raise Refused(f"not an end: {how!r}", 400)
        await self._check_end(child_id, seq, how)
        children = theater.supervision.supervisor(parent).children
        child = children.get(child_id)
        remote = None if child is None else child.actor
        if not isinstance(remote, RemoteChild):
            raise Refused(f"actor {child_id} is not a child of {parent_id} on another node", 404)
        with remote._lock:
            if seq <= remote.seq:
                return {"heard": False}  # stale: an end the parent already heard, or one before a restart
            remote.seq = seq
            remote.status = ActorStatus.FAILED if how == "failure" else ActorStatus.STOPPED
        if how == "stop":
            if child is None or child.watched is None:
                return {"heard": False}  # a stop the parent asked for itself
            # Stopped through its node's runtime: the parent records the stop and forgets it, as for a local child
            # stopped through the runtime (``Theater.stop``).
            await asyncio.to_thread(theater.supervision.stop_child, parent, child_id, "stopped through the runtime")
            return {"heard": True}
        fault = data.get("fault")
        if how == "failure" and isinstance(fault, dict):
            remote.failure = GuestFault(str(fault["kind"]), str(fault["export"]), str(fault["detail"]))
            ending = Ending(how=how, fault=remote.failure)
        else:
            extra = data.get("data")
            ending = Ending(how=how, data=None if extra is None else bytes(extra))
        return {"heard": theater.supervision.heard(parent, child_id, ending)}

    async def restart_through_parent(self, child_id: uuid.UUID) -> tuple[int, str] | None:
        """A restart asked of this node (``POST /v1/actors/{id}/restart``) for a child it runs whose parent runs
        on another node: that node's supervision restarts it (``supervisor/restart`` with reason ``requested``,
        as for a local child). None when the actor is not such a child; else (status, message) of the parent's
        node."""
        theater = self.theater
        actor = theater.router.find(child_id)
        if actor is None or actor.parent is None or theater.router.find(actor.parent) is not None:
            return None
        owner = await self.node.owner(actor.parent)
        if owner is None:
            return None  # no parent in the cluster now: restarted here, as any actor without a supervisor
        try:
            await self._ask(owner, "child-restart-asked", child_id, {"parent": str(actor.parent)},
                            theater.request_timeout + 2)
        except Refused as exc:
            return exc.status, exc.reason
        except (NatsError, asyncio.TimeoutError):
            return 503, f"the node of actor {actor.parent} did not answer"
        return 200, ""

    async def _restart_asked(self, child_id: uuid.UUID, data: dict[str, Any]) -> dict[str, Any]:
        """``child-restart-asked``, on the parent's node: only from the node that runs the child."""
        theater = self.theater
        parent_id = uuid.UUID(str(data["parent"]))
        parent = theater.router.find(parent_id)
        if parent is None or parent.status not in LIVE:
            raise Refused(f"actor {parent_id} does not run here", 404)
        child = theater.supervision.supervisor(parent).children.get(child_id)
        if child is None or not isinstance(child.actor, RemoteChild):
            raise Refused(f"actor {child_id} is not a child of {parent_id} on another node", 404)
        if await self.node.owner(child_id) != data["from"]:
            raise Refused(f"node {data['from']} does not hold the lease of actor {child_id}", 403)
        await asyncio.to_thread(theater.supervision.restart_child, parent, child_id, "requested")
        return {}

    async def _check_end(self, child_id: uuid.UUID, seq: int, how: str) -> None:
        """The end told must be in the replicated chain: the stream's last message of the child's chain holds an
        event at ``seq`` of a type such an end records.

        Raises:
            Refused: it is not.
        """
        try:
            last = await self.node.link.js.get_last_msg(STREAM, chain_subject(child_id))
            events, _, _ = decode_message(last.data, str(child_id))
            found = {}
            for value in events:
                fields = decode_stored(value, where=f"actor {child_id}")[1]
                found[fields[2]] = fields[5]
        except (NatsError, TheaterError) as exc:
            raise Refused(f"the end of child {child_id} cannot be read on the stream: {exc}", 409) from None
        if found.get(seq) not in ENDS[how]:
            raise Refused(f"child {child_id} has no {how} at seq {seq} on the stream", 409)

    async def adopt_children(self, parent_id: uuid.UUID) -> None:
        """After ``parent_id`` was reopened here: a ``RemoteChild`` for each listed child of it another node runs,
        with the restart type its spawn recorded and the start state the child's node tells. Never raises: a child
        whose node did not answer, or was not ready to (a loaded node, a child being reopened there), is asked
        again in the background (every ``scan_every`` at first, then less often, up to every ``ADOPT_RETRY_MAX``
        seconds) while the parent runs here; only a refusal that cannot pass (not its parent) ends that."""
        if await self._adopt_once(parent_id):
            loop = self.node.link.loop
            task: asyncio.Task[None] = loop.create_task(self._adopt_later(parent_id))
            self.node._tasks.append(task)  # cancelled with the node's other work (``ClusterNode.close``)
            task.add_done_callback(lambda done: self.node._tasks.remove(done) if done in self.node._tasks else None)

    async def _adopt_later(self, parent_id: uuid.UUID) -> None:
        wait = self.node.config.scan_every
        while True:
            await asyncio.sleep(wait)
            wait = min(wait * 2, ADOPT_RETRY_MAX)
            if not await self._adopt_once(parent_id):  # adopted, or the parent no longer runs here
                log.warning("node %s: nothing of %s is left to adopt", self.node.name, parent_id)
                return

    async def _adopt_once(self, parent_id: uuid.UUID) -> bool:
        """One round of adoption; True when a child is left that a later round may adopt."""
        try:
            return await self._adopt_children(parent_id)
        except (TheaterError, NatsError, asyncio.TimeoutError) as exc:
            log.warning("node %s: the children of %s on other nodes were not adopted (asked again later): %s",
                        self.node.name, parent_id, exc or type(exc).__name__)
            return True

    async def _adopt_children(self, parent_id: uuid.UUID) -> bool:
        theater = self.theater
        parent = theater.router.find(parent_id)
        if parent is None or parent.status not in LIVE:
            return False  # gone from here (stopped, or moved on): whoever runs it now adopts
        keys = list(await self.node.link.entries(ACTORS, values=False))
        if not keys:
            return False
        candidates = []
        for key in keys:  # a listed actor's parent never changes: read once per node (``ClusterNode._parents``)
            parent_of = self.node._parents.get(key, "?")
            if parent_of == "?":
                try:
                    record = json.loads(bytes((await self.node.link.actors.get(key)).value or b"{}"))
                except (KeyNotFoundError, ValueError):
                    continue
                parent_of = record.get("parent") if isinstance(record, dict) else None
                self.node._parents[key] = parent_of
            child_id = _uuid(key)
            if parent_of == str(parent_id) and child_id is not None:
                candidates.append(child_id)
        adopted = set(theater.supervision.children(parent_id))
        candidates = [child for child in candidates if child not in adopted]
        if not candidates:
            return False
        spawns = await asyncio.to_thread(self._spawns, parent_id)
        left = False
        for child_id in candidates:
            if child_id not in spawns:
                continue
            owner = await self.node.owner(child_id)
            if owner is None or owner == self.node.name:
                continue  # a free child goes with its parent (the scan); one here was linked on its reopen
            try:
                info = await self._ask(owner, "child-info", child_id, {"parent": str(parent_id)},
                                       self.node.config.timeout)
            except Refused as exc:
                final = exc.status in (400, 403)  # not its parent, or not understood: asking again cannot help
                log.warning("child %s of %s not adopted%s: %s", child_id, parent_id,
                            "" if final else " (asked again later)", exc)
                left = left or not final
                continue
            except (NatsError, asyncio.TimeoutError) as exc:
                log.warning("child %s of %s not adopted (asked again later): %s", child_id, parent_id,
                            exc or type(exc).__name__)
                left = True
                continue
            spawned = spawns[child_id]
            await asyncio.to_thread(self._register, parent, child_id, spawned, {**info, "node": owner}, list(spawns))
        return left

    def _spawns(self, parent_id: uuid.UUID) -> dict[uuid.UUID, dict[str, Any]]:
        found: dict[uuid.UUID, dict[str, Any]] = {}
        for event in self.theater.store.log.events(parent_id):
            if event.type == SUPERVISOR_SPAWN and event.data.get("child"):
                found.setdefault(uuid.UUID(event.data["child"]), dict(event.data))
        return found

    def _register(self, parent: Any, child_id: uuid.UUID, spawned: dict[str, Any], info: dict[str, Any],
                  order: list[uuid.UUID]) -> None:
        supervision = self.theater.supervision
        status = ActorStatus.RUNNING if info.get("running") else ActorStatus.FAILED
        remote = RemoteChild(self, child_id, parent.id, None, where=str(info["node"]),
                             seq=int(info.get("seq", 0)), status=status)
        spec = ChildSpec.defaults(parent.manifest.supervision, spawned.get("restart"), spawned.get("restart_from"))
        start = info.get("start")

        def register() -> None:
            sup = supervision.supervisor(parent)
            if child_id in sup.children:
                return
            # A RemoteChild has what supervision uses of a child (the rest of SupervisedActor is the handler's).
            stand_in = cast("SupervisedActor", remote)
            entry = Child(stand_in, spec, None if start is None else bytes(start), bool(spawned.get("init", True)))
            if status != ActorStatus.RUNNING:
                entry.watched = None  # ended before the parent moved: not restarted by it
            rank = {c: i for i, c in enumerate(order)}
            sup.add(entry, rank=lambda key: rank.get(key, len(rank)))  # copied on write (``Supervisor``)

        on_thread(parent, register)
        log.warning("node %s: actor %s supervises its child %s on another node", self.node.name, parent.id, child_id)

    # The child's side.

    def orphaned(self, actor: Any, ending: Ending) -> None:
        """Supervision's hook: ``actor``, whose parent does not run here, ended; once the end is durable, its
        parent's node is told (if the parent runs in the cluster)."""
        parent = actor.parent
        if parent is None or self.theater.router.find(parent) is not None:
            return
        data: dict[str, Any] = {"parent": str(parent), "how": ending.how}
        if ending.fault is not None:
            data["fault"] = {"kind": str(ending.fault.kind), "export": ending.fault.export,
                             "detail": ending.fault.detail}
        if ending.data is not None:
            data["data"] = ending.data

        def tell(failed: BaseException | None) -> None:
            if failed is None:
                seq = self.theater.store.log.head(actor.id).seq
                self.node.link.spawn(self._tell_parent(actor.id, parent, {**data, "seq": seq}))

        actor.defer(tell)

    async def _tell_parent(self, child_id: uuid.UUID, parent: uuid.UUID, data: dict[str, Any]) -> None:
        for _ in range(TELL_TRIES):
            owner = await self.node.owner(parent)
            if owner is not None:
                try:
                    await self._ask(owner, "child-ended", child_id, data, self.node.config.timeout)
                    return
                except Refused as exc:
                    if exc.status != 404:
                        log.warning("the end of child %s was refused by node %s: %s", child_id, owner, exc.reason)
                        return
                except (NatsError, asyncio.TimeoutError):
                    pass  # its node is going: told again to whichever takes the parent
            try:
                await self.node.link.actors.get(str(parent))
            except KeyNotFoundError:
                return  # the parent ended: nobody to tell
            await asyncio.sleep(self.node.config.scan_every)
        log.warning("the end of child %s did not reach its parent %s", child_id, parent)

    async def answer(self, msg: Any, op: str, actor: uuid.UUID, body: bytes) -> None:
        """A ``child-*`` request from another node (see the module docstring); answered, never raised."""
        status, answer = 200, {}
        try:
            data = cbor2.loads(body)
            if not isinstance(data, dict) or not NODE_NAME.match(str(data.get("from", ""))):
                raise ValueError("not a request of a node")
            if op == "child-ended":
                answer = await self._ended(actor, data)
            elif op == "child-restart-asked":
                answer = await self._restart_asked(actor, data)
            elif op == "child-start":
                answer = await self._start(data)
            else:
                answer = await self._for_parent(op, actor, data)
        except (ValueError, TypeError, KeyError, cbor2.CBORDecodeError) as exc:
            status, answer = 400, {"message": f"a malformed {op}: {exc}"}
        except Refused as exc:
            status, answer = exc.status, {"message": exc.reason}
        except TheaterError as exc:
            status, answer = 422, {"message": f"{type(exc).__name__}: {exc}"}
        except (NatsError, asyncio.TimeoutError) as exc:
            status, answer = 503, {"message": f"the cluster did not answer: {exc or type(exc).__name__}"}
        try:
            await msg.respond(cbor2.dumps({"status": status, **answer}))
        except NatsError:
            pass  # the asker is gone

    async def _asker_holds(self, data: dict[str, Any], parent: uuid.UUID) -> None:
        owner = await self.node.owner(parent)
        if owner != data["from"]:
            raise Refused(f"node {data['from']} does not hold the lease of actor {parent}", 403)

    async def _start(self, data: dict[str, Any]) -> dict[str, Any]:
        """``child-start``: a child of a parent another node runs, started here."""
        theater = self.theater
        parent = uuid.UUID(str(data["parent"]))
        await self._asker_holds(data, parent)
        digest = bytes(data["component"])
        await self.node.fetch_blobs(theater.store, [digest.hex()])
        manifest = parse_manifest(str(data["manifest"]), source=str(data.get("source") or "<spawned>"),
                                  files=FileAccess.recorded(), maximums=theater.maximums)
        manifest = dataclasses.replace(manifest, component=ComponentRef(kind="hash", value=digest))
        state = data.get("state")
        actor = await asyncio.to_thread(theater._launch, manifest, init_state=None if state is None else bytes(state),
                                        parent=parent, call_init=bool(data.get("call_init", True)))
        return {"child": str(actor.id), "seq": theater.store.log.head(actor.id).seq}

    async def _for_parent(self, op: str, child_id: uuid.UUID, data: dict[str, Any]) -> dict[str, Any]:
        """``child-stop``, ``child-restart``, ``child-state``, ``child-info``, ``child-head``: only from the node
        holding the lease of the child's recorded parent, only on the node that runs the child."""
        theater = self.theater
        actor = theater.router.find(child_id)
        if actor is None:
            raise Refused(f"actor {child_id} does not run on node {self.node.name}", 404)
        parent = uuid.UUID(str(data["parent"]))
        if actor.parent != parent:
            raise Refused(f"actor {parent} is not the parent of actor {child_id}", 403)
        await self._asker_holds(data, parent)
        if op == "child-state":
            self._holds(child_id)
            return {"state": actor.state}
        if op == "child-head":  # the durable head: the local home commits an event once the stream holds it
            head = theater.store.log.head(child_id)
            if head.hash is None:
                raise Refused(f"actor {child_id} has no events on node {self.node.name}", 404)
            return {"seq": head.seq, "hash": head.hash}
        if op == "child-info":
            self._holds(child_id)
            digest = theater.store.log.at(child_id, 0).data.get("init_state")
            try:
                start = None if digest is None else theater.store.blobs.get(digest)
            except NotFoundError:
                start = None
            return {"start": start, "seq": theater.store.log.head(child_id).seq, "running": actor.status in LIVE}
        if op == "child-stop":
            self._holds(child_id)
            await asyncio.to_thread(theater.stop, child_id)
            return {"seq": theater.store.log.head(child_id).seq}
        if op == "child-restart":
            lock = self._restarts.setdefault(child_id, asyncio.Lock())
            async with lock:  # one restart at a time: the seq check below sees the one before
                return await self._restart(actor, data)
        raise Refused(f"unknown operation {op!r}", 400)

    def _holds(self, child_id: uuid.UUID) -> None:
        if child_id not in self.node.held or child_id in self.node._taking:
            raise Refused(f"node {self.node.name} does not hold the lease of actor {child_id}", 409)

    async def _restart(self, actor: Any, data: dict[str, Any]) -> dict[str, Any]:
        theater = self.theater
        child_id = actor.id
        head = theater.store.log.head(child_id).seq
        if actor.status not in ENDED:
            raise Refused(f"actor {child_id} is {actor.status}: only an ended child is restarted", 409)
        if int(data["seq"]) != head:
            raise Refused(f"actor {child_id}'s chain is at seq {head}, not at the end the restart is for "
                          f"({int(data['seq'])}): restarted already", 409)
        if child_id not in self.node.held:
            await self._retake(child_id, head, actor.parent, actor.manifest.name)
        self._holds(child_id)
        state = data.get("state")
        call_init = bool(data.get("call_init", True))

        def reboot() -> None:
            actor.incarnation += 1
            actor.revive()

            def boot() -> None:
                actor.failure = None
                actor.shutdown_data = None
                actor.state = None if state is None else bytes(state)
                actor.status = ActorStatus.STARTING
                actor.boot(InstantiateReason.RESTART, call_init=call_init)

            actor.control(boot).result()

        try:
            await asyncio.to_thread(reboot)
        except TheaterError as exc:  # recorded in its chain; its end is told to its parent as any end
            raise Refused(f"actor {child_id} could not be restarted: {exc}", 422) from None
        return {"seq": theater.store.log.head(child_id).seq}

    async def _retake(self, child_id: uuid.UUID, head: int, parent: uuid.UUID | None, name: str) -> None:
        """A child whose chain ended here (a stop, an exit) gave its lease back: take it again before its restart,
        once the stream's chain is the one this home holds (nobody wrote after us) and the lease is free.

        Raises:
            Refused: the stream's chain went on elsewhere, or another node holds the lease.
        """
        from theater.cluster.chains import stream_head

        if await stream_head(self.node.link, child_id) != head:
            raise Refused(f"actor {child_id}'s chain went on elsewhere", 409)
        key = str(child_id)
        for _ in range(TELL_TRIES):  # the end's own release of the lease may still be on its way
            try:
                entry = await self.node.link.leases.get(key)
            except KeyNotFoundError:
                entry = None
            if entry is None:
                try:
                    revision = await self.node.link.leases.create(key, self.node.name.encode())
                except KeyWrongLastSequenceError:
                    raise Refused(f"another node took the lease of actor {child_id}", 409) from None
                self.node.held[child_id] = revision
                self.node._refreshed[child_id] = time.monotonic()
                record = {"parent": str(parent) if parent else None, "name": name, "created_by": self.node.name}
                await self.node.link.actors.put(key, json.dumps(record).encode())
                return
            if bytes(entry.value or b"") != self.node.name.encode():
                raise Refused(f"node {bytes(entry.value or b'').decode()} holds the lease of actor {child_id}", 409)
            await asyncio.sleep(self.node.config.scan_every / 5)
        raise Refused(f"the lease of actor {child_id} was not given back in time", 409)


def _up_to(messages: list[ChainMessage], actor: uuid.UUID, seq: int) -> list[ChainMessage]:
    """The chain's messages cut after its event ``seq`` (the events after it are left out)."""
    out: list[ChainMessage] = []
    for message in messages:
        kept = []
        for value in message.events:
            at = decode_stored(value, where=f"actor {actor}")[1][2]
            if not isinstance(at, int) or at > seq:
                break
            kept.append(value)
        if kept:
            out.append(dataclasses.replace(message, events=kept))
        if len(kept) < len(message.events):
            break
    return out


def _uuid(key: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(key)
    except ValueError:
        return None
