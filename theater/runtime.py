"""The embeddable runtime: ``Theater`` opened on a home directory runs actors from manifests.

    with Theater("~/.theater") as theater:
        actor = theater.start("examples/counter/manifest.toml")
        theater.send(actor, b"+1")
        print(theater.request(actor, b"get"))
        print(theater.state(actor), len(theater.events(actor)))

Everything an actor does is recorded in its chain in ``<home>/store``; ``Theater`` needs no server.

``Theater``'s methods are the embedding API. What the rest of the system uses inside is kept apart: delivery
between actors in ``router`` (``theater.router``), supervision in ``supervision`` (``theater.supervision``); each
actor sees the runtime through its ``theater.actor.Stage``, handlers and supervision through ``theater.host``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from pathlib import Path
from types import TracebackType
from typing import Any

from replay.boundary import import_functions
from replay.engine import Engine
from replay.errors import MalformedRecord
from replay.history import state_at
from replay.lineage import ForkOrigin
from replay.replayer import Replayer
from replay.schema import ActorCreated, ActorUpgraded, InstantiateReason, Limits
from store import EMPTY, Event, Store, new_actor_id, parse_actor_id
from store.errors import InvalidInputError, NotFoundError, StoreError
from theater import components, netloop
from theater.actor import Actor, Stage
from theater.channels import Channel, QueueEnd
from theater.errors import ChannelRejected, ManifestError
from theater.files import FileAccess
from theater.handlers import check_grants, check_origin, check_permissions, configs
from theater.host import ChannelAnswer
from theater.mailbox import MailboxLimits
from theater.record import RecordTape
from theater.passivation import Passivation, resume_reason
from theater.release import Releaser
from theater.manifest import (
    DEFAULT_MAXIMUMS,
    ComponentRef,
    Manifest,
    ManifestCache,
    Maximums,
    check_limits,
    load_manifest,
    parse_manifest,
    start_state,
)
from theater.router import Router
from theater.scheduler import Scheduler, blocking, in_place_depth
from theater.status import ENDED, LIVE, ActorStatus
from theater.supervision import Supervision
from theater.telemetry import Telemetry

DEFAULT_REQUEST_TIMEOUT_S = 30.0
PAGE = 1000  # actors in one page of ``Theater.actors`` when no limit is given
# A start runs on the thread that asks for it (``Actor.start_here``: no hand-off to a worker and back), a spawn on
# the parent's worker inside its host call, and so a spawn in a child's ``init`` one level deeper on the same native
# stack, a guest's wasm stack (up to wasmtime's 512 KiB) each time. Past this depth a start goes to a worker.
MAX_IN_PLACE_DEPTH = 3
CREATIONS = 256  # manifests whose ``_Creation`` a runtime keeps (the most recently first used)
CREATION_TEXT_BYTES = 16 * 1024  # the longest manifest text kept with one (a longer one is derived every time)
# The reserved label naming the component an upgraded actor runs (``theater.porcelain.upgrade``); the chain says
# the same (``actor/upgraded``, and each ``wasm/instantiate`` after it), the label saves a walk back through it.
COMPONENT_LABEL = "theater/component/"


def actor_summary(a: Actor, supervision: Supervision) -> dict[str, Any]:
    """One actor's row of ``Theater.actors``: id, name, status, parent, children, failure, and ``idle_ms`` (ms since
    its last call began or ended, for a running actor with an instance; else None)."""
    idle = a.status == ActorStatus.RUNNING and not a.passivated and a.boundary is not None
    return {
        "id": str(a.id),
        "name": a.name,
        "status": a.reported_status,
        "parent": str(a.parent) if a.parent else None,
        "children": [str(c) for c in supervision.children(a.id)],
        "failure": None if a.failure is None else {"kind": a.failure.kind, "detail": a.failure.detail},
        "idle_ms": int((time.monotonic() - a.last_active) * 1000) if idle else None,
    }
log = logging.getLogger("theater.runtime")


def recorded_grants(manifest: Manifest) -> list[dict[str, Any]]:
    """The effective grants ``actor/created`` records: each handler's type and config (``runtime`` first, always),
    in a form CBOR and JSON both carry (a TOML date becomes its text)."""
    return [{"type": type_, "config": json.loads(json.dumps(config, default=str))}
            for type_, config in configs(manifest).items()]


def canonical_order(value: Any) -> Any:
    """``value`` with the keys of every map in it in canonical CBOR order (shorter first, then bytewise): an equal
    value, so it encodes to the same canonical bytes. The event codec encodes a map already in that order with plain
    cbor2 (``store.codec``, which checks the order itself), where it sorts any other map first: about half the cost
    of encoding ``actor/created``. A map with a key that is not text (or not UTF-8) is left as it is."""
    if isinstance(value, dict):
        try:
            order = sorted(value, key=lambda key: (len(key.encode()), key.encode()))
        except (AttributeError, UnicodeEncodeError):
            return value  # the codec encodes (or refuses) it as before
        return {key: canonical_order(value[key]) for key in order}
    if isinstance(value, list):
        return [canonical_order(item) for item in value]
    return value


# The fields of ``actor/created`` that differ between two starts from one manifest (a fork's ``fork`` aside: a fork
# records its creation the general way, ``Theater._genesis``).
PER_START = ("id", "component", "manifest", "parent", "init_state")


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class _Creation:
    """What ``actor/created`` records the same way for every start from one manifest object, derived from it once
    (``Theater._creation``), after its limits were checked against the runtime's maximums. Read only."""

    manifest: Manifest  # kept, so the id it is cached under stays its own
    text: bytes
    limits: Limits
    files: dict[str, Any] | None
    grants: list[dict[str, Any]]
    # ``ActorCreated(...).encode()`` of a start from it, in canonical order (``canonical_order``), the fields of
    # ``PER_START`` left None: a start fills them in (``Theater._genesis``).
    recorded: dict[str, Any]

    @classmethod
    def of(cls, manifest: Manifest, engine: dict[str, Any]) -> _Creation:
        limits, files, grants = manifest.limits.per_call(), manifest.files.recorded_map(), recorded_grants(manifest)
        recorded = ActorCreated(
            id="", name=manifest.name, component=b"", manifest=b"", engine=dict(engine), parent=None, init_state=None,
            limits=limits, **({} if files is None else {"files": files}), on_err=manifest.on_err, grants=grants,
        ).encode()
        recorded.update(dict.fromkeys(PER_START))
        return cls(manifest=manifest, text=manifest.source_text.encode(), limits=limits, files=files, grants=grants,
                   recorded=canonical_order(recorded))


class Theater:
    """A runtime over one home directory.

    Args:
        home: the home directory; its store lives in ``<home>/store``.
        durability: ``sync`` (default) or ``buffered``; see ``store.Store``.
        request_timeout: seconds a ``request`` or ``open-channel`` waits for its answer, between actors and from
            this API; a request cycle (A asks B asks A) ends in this timeout, never a hang.
        maximums: the most any manifest's ``[limits]`` may ask for, and the most of a file a manifest names that
            is read (see ``theater.manifest.Maximums``).
        mailbox: how many messages (and bytes) may wait in each actor's mailbox; a sender beyond that is refused
            with ``MailboxFull`` (see ``theater.mailbox``).
        passivate_after: seconds an actor may sit idle, holding nothing live, before it drops its instance (and,
            top-level and without children, leaves memory); its next operation brings it back from its last state.
            None (default): never (see ``theater.passivation``).
        workers: worker threads kept running actors' operations (default: twice the cores; see
            ``theater.scheduler``). Actors have no threads of their own.
        telemetry: OpenTelemetry traces and metrics of this runtime (``theater.telemetry``); None (default): off.
        max_threads: the most worker threads at once, those of actors waiting in a host call (a request to another
            actor, a sleep) included; a wait beyond it is refused with ``ResourceExhausted``.
        store: the home's store, opened by the caller (a cluster node's ``store.replicated.ReplicatedStore``);
            default: ``Store(<home>/store, durability=durability)``. The runtime closes it.

    Raises:
        ResourceExhausted: not even one worker thread could be started.
    """

    def __init__(
        self,
        home: Path | str,
        *,
        durability: str = "sync",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
        maximums: Maximums = DEFAULT_MAXIMUMS,
        mailbox: MailboxLimits = MailboxLimits(),
        passivate_after: float | None = None,
        workers: int | None = None,
        max_threads: int | None = None,
        telemetry: Telemetry | None = None,
        store: Store | None = None,
    ) -> None:
        if passivate_after is not None and passivate_after < 0:
            raise InvalidInputError("passivate_after", passivate_after, "a number of seconds >= 0, or None")
        self.home = Path(home).expanduser()
        self.maximums = maximums
        self.scheduler = Scheduler(workers=workers, max_threads=max_threads)
        try:
            self.store = Store(self.home / "store", durability=durability) if store is None else store
        except BaseException:
            self.scheduler.close()
            raise
        self.engine = Engine()
        self.engine.start_ticker()
        self.request_timeout = request_timeout
        self.mailbox_limits = mailbox
        self.releaser = Releaser(self.store)
        self.router = Router(request_timeout)  # internal: the live actors and delivery into their mailboxes
        self.supervision = Supervision(self.store, self._launch, permits=check_permissions)
        self._stage = Stage(
            store=self.store, engine=self.engine, releaser=self.releaser, mailbox_limits=mailbox,
            maximums=maximums, router=self.router, children_of=self.supervision.of, on_ended=self._on_actor_ended,
            scheduler=self.scheduler, telemetry=telemetry,
        )
        if telemetry is not None:
            telemetry.watch(self.router, self.store)
        self.passivation = Passivation(store=self.store, router=self.router, supervision=self.supervision,
                                       restore=self._restore_passivated, after=passivate_after)
        self.passivation.start()
        self._component_files = components.FileDigests()  # component files read before, unchanged since
        self._engine_record = self.engine.settings.record()  # what every ``actor/created`` records of the engine
        self._creations: dict[int, _Creation] = {}  # by the manifest object's id (see ``_creation``)
        self._creations_lock = threading.Lock()
        self._manifests = ManifestCache()  # the operator's manifest texts, parsed once
        self._closed = False

    # Starting and stopping.

    def start(
        self,
        manifest: Manifest | Path | str,
        *,
        init_state: bytes | None = None,
        parent: str | uuid.UUID | None = None,
        call_init: bool = True,
        restart: str | None = None,
        restart_from: str | None = None,
    ) -> str:
        """Start an actor and return its id once ``init`` has run and its events are durable.

        ``manifest`` is a parsed ``Manifest``, a path to a TOML file, or TOML text (a string containing a newline).
        A path or text is the operator's: it may name any regular file, relative paths against the manifest's
        directory (text: the current directory), up to this runtime's ``maximums``. A parsed manifest may name the
        files its ``files`` access allows (``parse_manifest`` without one: none).
        With ``call_init=False`` the actor starts from ``init_state`` as it is, without calling ``init`` (resume).
        With ``parent`` the actor is a child of that running actor, supervised by its ``[supervision]`` policy;
        ``restart`` and ``restart_from`` override the parent's defaults for this child (see ``theater.supervision``).

        Raises:
            ManifestError: the manifest is malformed, its component cannot be found or read, a limit is above the
                runtime's maximum, or it asks for a handler or a limit beyond its parent's.
            ComponentError: the component is not valid wasm.
            LinkError: the component imports an interface the manifest does not grant.
            GuestFault: ``init`` failed (an ``err`` from ``init`` too, whatever ``on_err`` says); the actor is
                recorded as failed.
            ResourceExhausted: the system refused memory for its instance (the actor is recorded as failed), or
                (from a parent's host call) no thread was left to wait for the child's start.
            StoreError: its start could not be committed (``StoreFullError``: the disk is full); the actor is
                failed, and recorded so once the store takes it (see ``stop``).
            ActorNotFound, ActorNotRunning: the parent is unknown or not running.
        """
        manifest = self._manifest(manifest)
        if parent is None:
            return str(self._launch(manifest, init_state=init_state, parent=None, call_init=call_init).id)
        child = self.supervision.start_child(
            self.router.get(parent), manifest, init_state=init_state, call_init=call_init, restart=restart,
            restart_from=restart_from,
        )
        return str(child.id)

    def _launch(
        self, manifest: Manifest, *, init_state: bytes | None, parent: uuid.UUID | None, call_init: bool,
        fork: ForkOrigin | None = None,
    ) -> Actor:
        """Create, record and boot an actor (``start`` without the supervision; supervision's ``launch``)."""
        creation = self._creation(manifest)  # checks its limits against this runtime's maximums
        if parent is None:
            check_origin(manifest)  # a child's grants are checked against its parent's instead
        component_hash, component = self._component(manifest)
        check_grants(manifest, import_functions(self.engine, component))
        actor_id = new_actor_id()
        state = start_state(manifest, init_state, call_init)
        here = in_place_depth() < MAX_IN_PLACE_DEPTH  # its start runs on this thread (see below)
        tape = self._genesis(actor_id, creation, component_hash, state, parent, fork)
        actor = Actor(self._stage, actor_id, manifest, component_hash, tape, parent, held=here)
        actor.state = state
        self.router.add(actor)
        try:
            boot = lambda: actor.boot(InstantiateReason.START, call_init=call_init)  # noqa: E731
            spawner = None if parent is None else self.router.find(parent)
            if spawner is not None and spawner.on_thread():
                # A spawn, on the parent's worker: the parent's next append (its record of the spawn) depends
                # on the child's start instead of waiting for its commit; concurrent spawns share one.
                def lost(exc: BaseException) -> None:  # as below, once the child's commit has failed
                    reason = f"its start could not be committed: {type(exc).__name__}: {exc}"
                    # Unless it is failed already: an operation before this one (a stop, or its supervisor's drop)
                    # found its creation lost and failed it; this one may then run as a leftover of its closed
                    # mailbox, on a tape reset to an empty chain, where an ``actor/failed`` would be its first event.
                    actor.submit(lambda: actor.abandon(reason) if actor.status in LIVE else None)
                    # The parent's record of the spawn failed with it: its supervisor forgets the child too, as it
                    # forgets any child whose spawn record was lost (``Supervision._unrecorded``).

                queued = actor.start_here_queued(boot, lost) if here else actor.submit_queued(boot, lost)
                with blocking():  # in place: done unless it failed (then until its events are durable)
                    spawner.tape.depend_on(queued.result())
            else:
                if here:
                    # This thread waits for the start's commit: with the writer thread idle, the start's release
                    # commits on it (no hand-off to the writer and back; the commit settles ``started`` here).
                    tape.leads = True
                    try:
                        started = actor.start_here(boot)
                    finally:
                        tape.leads = False
                else:
                    started = actor.submit(boot)
                with blocking():  # until its events are durable (a start shares its commit with the others)
                    started.result()
        except StoreError as exc:
            # The start was refused, so the actor must not live on: it fails (recorded once the store takes it).
            reason = f"its start could not be committed: {type(exc).__name__}: {exc}"
            actor.submit(lambda: actor.abandon(reason))
            raise
        return actor

    def fork(
        self,
        event: bytes | str,
        *,
        component: bytes | str | Path | None = None,
        manifest: Manifest | Path | str | None = None,
        name: str | None = None,
        overrides: dict[int, Any] | None = None,
    ) -> str:
        """Start a new actor whose history begins at ``event`` (a hash or hex prefix) of another actor, from the
        state there, without ``init``; its id once it runs. See ``theater.lineage.fork``."""
        from theater import lineage

        return lineage.fork(self, event, component=component, manifest=manifest, name=name, overrides=overrides)

    def revert(self, actor_id: str | uuid.UUID, event: bytes | str) -> int:
        """Bring a running actor back to its state at ``event`` of its own chain, by appending a revert and a
        fresh instance; the seq of the ``actor/revert``. See ``theater.lineage.revert``."""
        from theater import lineage

        return lineage.revert(self, actor_id, event)

    def reopen(self, actor_id: str | uuid.UUID, *, upgrade: ActorUpgraded | None = None) -> str:
        """Bring an actor recorded in this home back to life after a restart of the runtime.

        A fresh instance starts from the state of the actor's last successful call, without ``init``; the chain
        continues where it ended (``wasm/instantiate`` with reason ``resume``; ``activate`` when the chain ends in
        ``actor/passivated``). Does nothing for an actor this runtime runs (passivated included).

        With ``upgrade`` (an actor not running here) the chain first records it (``actor/upgraded``) and the fresh
        instance runs its ``new`` component (already in the blob store; ``theater.porcelain.upgrade`` checks it
        first).

        Raises:
            NotFoundError: no such actor in the store; RecordIncomplete: its creation event is missing.
        """
        key = parse_actor_id(actor_id)
        live = self.router.find(key)
        if live is not None and live.status in LIVE:
            return str(key)
        head = self.store.log.head(key)
        if head.hash is None:
            raise NotFoundError("actor", str(key))
        reason = resume_reason(self.store.log.at(key, head.seq).type)
        actor = self._restore(key, component=None if upgrade is None else upgrade.new)
        if self.router.add_unless_live(actor) is not actor:
            actor.close()  # brought back meanwhile (by a message): that one stands
            return str(key)
        with blocking():  # on a worker (a parent's resume), waiting for the actor's first operation
            actor.submit(lambda: self._resume(actor, reason, upgrade)).result()
        self._rejoin(actor)
        return str(key)

    def _restore(self, key: uuid.UUID, *, component: bytes | None = None) -> Actor:
        """An actor object read from its chain: its manifest, parent, component (the one its last instance ran,
        or ``component``) and last state, registered nowhere, with no instance yet.

        Raises:
            RecordIncomplete: its creation event is missing. MalformedRecord, ManifestError: its record is not
                well formed, or asks for more than this runtime's maximums.
        """
        genesis = Replayer(self.store).genesis(key)
        source = f"store:{genesis.data['manifest'].hex()}"
        text = self.store.blobs.get(genesis.data["manifest"]).decode()
        manifest = parse_manifest(text, source=source, files=FileAccess.recorded())
        # What an err does is what the creation recorded (chains from before ``on_err``: an err fails the actor),
        # so the chain goes on as it began whatever the manifest's default is now.
        on_err = ActorCreated.decode(genesis).err_policy
        manifest = dataclasses.replace(manifest, files=self._recorded_files(genesis), on_err=on_err)
        check_limits(manifest, self.maximums)
        parent = genesis.data.get("parent")
        tape = RecordTape(self.store, key, self.store.log.head(key))
        runs = self._component_of(key, genesis.data["component"]) if component is None else component
        actor = Actor(self._stage, key, manifest, runs, tape, parse_actor_id(parent) if parent else None)
        actor.upgraded = runs != genesis.data["component"]
        actor.state = state_at(self.store, key)
        return actor

    def _component_of(self, key: uuid.UUID, created: bytes) -> bytes:
        """The component the actor runs: the one of its last upgrade (kept under a reserved label when the upgrade
        is recorded, so finding it costs no walk of the chain), else its creation's."""
        try:
            return self.store.blobs.get_label(COMPONENT_LABEL + str(key))
        except NotFoundError:
            return created

    def _restore_passivated(self, key: uuid.UUID, reason: InstantiateReason) -> Actor:
        """``_restore``, as a running actor without an instance: its first call makes one (``reason``)."""
        actor = self._restore(key)
        actor.status = ActorStatus.RUNNING
        actor.passivated, actor.activation, actor.last_active = True, reason, time.monotonic()
        return actor

    def _resume(self, actor: Actor, reason: InstantiateReason, upgrade: ActorUpgraded | None = None) -> None:
        """On the actor's thread: a fresh instance from its last state (after recording ``upgrade``, if any), then
        what its handlers held outside it (the servers of ``http-framework``: each handler class with a
        ``reattach`` brings its part back)."""
        if upgrade is not None:
            actor.tape.record(upgrade)
        actor.boot(reason, call_init=False)
        actor.reattach()

    def _recorded_files(self, genesis: Event) -> FileAccess:
        """The file access a reopened actor keeps: the uploaded map its creation recorded (``files``), if any;
        else none (its manifest's own names are in the chain, and its children name no files).

        Raises:
            MalformedRecord: the recorded map is not well formed.
        """
        created = ActorCreated.decode(genesis)
        if not isinstance(created.files, dict):
            return FileAccess.recorded()
        try:
            return FileAccess.from_record(created.files, self.store.blobs, origin="the record")
        except InvalidInputError as exc:
            raise MalformedRecord(seq=0, type=genesis.type, field="files", problem=str(exc)) from None

    def _rejoin(self, actor: Actor) -> None:
        """Put a reopened actor back into its supervision tree: under its parent, over its children.

        Parents and children can be reopened in any order: whichever comes second makes the link.
        """
        parent = self.router.find(actor.parent) if actor.parent else None
        children = [a for a in self.router.all() if a.parent == actor.id and a.status == ActorStatus.RUNNING]
        if parent is not None and parent.status == ActorStatus.RUNNING:
            self.supervision.adopt(parent, actor)
        for child in children:
            self.supervision.adopt(actor, child)

    def _manifest(self, manifest: Manifest | Path | str) -> Manifest:
        """A manifest given to ``start``: paths and text are the operator's (see ``theater.files``)."""
        if isinstance(manifest, Manifest):
            return manifest
        if isinstance(manifest, str) and "\n" in manifest:
            return self._manifests.parse(manifest, files=FileAccess.trusted(), maximums=self.maximums)
        return load_manifest(Path(manifest), maximums=self.maximums, cache=self._manifests)

    def _component(self, manifest: Manifest) -> tuple[bytes, Any]:
        """The manifest's component: its blob hash and its compiled form.

        A component named by a path is read as the manifest's file access allows, at most
        ``maximums.component_file_bytes`` of it, and stored only once it compiles.
        """
        ref: ComponentRef = manifest.component
        if ref.kind == "path":
            return components.load_file(self.engine, self.store, manifest.files, ref.path,
                                        limit=self.maximums.component_file_bytes, source=manifest.source,
                                        field="component", known=self._component_files)
        if ref.kind == "hash":
            if not self.store.blobs.has(ref.digest):
                raise ManifestError(manifest.source, "component", f"no blob {ref.digest.hex()} in the store")
            digest = ref.digest
        else:
            try:
                digest = self.store.blobs.get_label(ref.label)
            except NotFoundError:
                raise ManifestError(manifest.source, "component", f"no label {ref.label!r} in the store") from None
        return digest, components.load(self.engine, self.store, digest, what=f"component {digest.hex()[:16]}")

    def _creation(self, manifest: Manifest) -> _Creation:
        """What ``actor/created`` records of ``manifest``, derived once per manifest object (a manifest is not
        changed once parsed): a start from the same parsed manifest, or from the same text (``_manifest`` parses it
        once), costs one lookup. Only manifests of at most ``CREATION_TEXT_BYTES`` of text are kept.

        Raises:
            ManifestError: a ``[limits]`` value is above this runtime's maximums (``check_limits``); nothing kept.
        """
        found = self._creations.get(id(manifest))
        if found is not None and found.manifest is manifest:
            return found
        check_limits(manifest, self.maximums)
        creation = _Creation.of(manifest, self._engine_record)
        if len(creation.text) > CREATION_TEXT_BYTES:
            return creation  # not kept: the cache holds at most CREATIONS small texts (twice: text and manifest)
        with self._creations_lock:
            self._creations[id(manifest)] = creation
            while len(self._creations) > CREATIONS:
                del self._creations[next(iter(self._creations))]
        return creation

    def _genesis(
        self, actor_id: uuid.UUID, creation: _Creation | Manifest, component_hash: bytes, state: bytes | None,
        parent: uuid.UUID | None, fork: ForkOrigin | None = None,
    ) -> RecordTape:
        """The new actor's tape, holding its ``actor/created`` (``creation``: a manifest, or what was derived from
        one)."""
        if isinstance(creation, Manifest):
            creation = self._creation(creation)
        manifest, files = creation.manifest, creation.files
        tape = RecordTape(self.store, actor_id, EMPTY)
        if fork is None:
            # What the general way below records, equal field for field (``_Creation.recorded``), in canonical order.
            data = dict(creation.recorded)
            data["id"] = str(actor_id)
            data["component"] = component_hash
            data["manifest"] = tape.put_blob(creation.text)  # held: committed with the start's events
            data["parent"] = str(parent) if parent else None
            data["init_state"] = tape.state_ref(state)
            data["engine"], data["limits"] = dict(data["engine"]), dict(data["limits"])  # its own, as below
            tape.append(ActorCreated.TYPE, data)
            return tape
        tape.record(ActorCreated(
            id=str(actor_id),
            name=manifest.name,
            component=component_hash,
            manifest=tape.put_blob(creation.text),  # held: committed with the start's events
            engine=dict(self._engine_record),
            parent=str(parent) if parent else None,
            init_state=tape.state_ref(state),
            limits=creation.limits,
            **({} if files is None else {"files": files}),  # the uploaded map a tree started on a server keeps
            on_err=manifest.on_err,
            grants=creation.grants,
            **({} if fork is None else {"fork": fork.encode()}),
        ))
        return tape

    def stop(self, actor_id: str | uuid.UUID) -> None:
        """Stop an actor and its subtree at once; its chain records the stop.

        The stop runs before any message waiting in the actor's mailbox (they are then refused with
        ``ActorNotRunning``), and a call running now is ended at the next epoch tick, recorded as a ``stopped``
        fault. Its children are stopped first, in reverse start order, each after its own subtree. A supervised
        child is stopped by its parent (as soon as the parent's own running operation ends), which records the stop
        and forgets the child.

        Raises:
            ActorNotFound: no such actor.
            StoreError: the stop could not be recorded (the disk is full); the actor is stopped all the same, and
                stopping it again records it.
        """
        actor = self.router.get(actor_id)
        if actor.status in ENDED:
            actor.confirm_end()  # an end whose record a failed commit lost is recorded now
            return
        parent = self.supervision.supervising(actor)
        if parent is not None and parent.actor.status == ActorStatus.RUNNING:
            self.supervision.stop_child(parent.actor, actor.id, "stopped through the runtime")
            return
        with self.router.holding(actor_id) as held:  # not evicted until the stop is queued
            stopping = held.interrupt(lambda: self.supervision.shutdown(held))
        with blocking():
            stopping.result()

    def relinquish(self, actor_id: str | uuid.UUID) -> bool:
        """Stop running an actor here without recording anything, because another node owns it now
        (``theater.cluster``): its mailbox ends, a call running now ends with it, and the router forgets it.
        True when this runtime held it."""
        actor = self.router.find(parse_actor_id(actor_id))
        if actor is None:
            return False
        self.router.discard(actor)
        actor.close()
        return True

    def passivate(self, actor_id: str | uuid.UUID, *, idle_for: float = 0.0) -> bool:
        """Passivate an actor now, if it ran no call for ``idle_for`` seconds and holds nothing live (see
        ``theater.passivation``); True when it is passivated after this.

        Raises:
            ActorNotFound: no such actor. StoreError: the passivation could not be committed.
        """
        return self.passivation.passivate(self.router.get(actor_id), idle_for)

    def _on_actor_ended(self, actor: Actor, how: str, data: bytes | None) -> None:
        """Called in the actor's operation when it stops, exits (``how``) or fails: drops its channels, stops its
        children and tells its supervisor."""
        self.router.drop_actor(actor)
        netloop.actor_ended(self.store, actor.id)  # its HTTP servers stop
        self.supervision.actor_ended(actor, how, data)

    # Messages from outside.

    def send(self, actor_id: str | uuid.UUID, message: bytes) -> None:
        """Deliver a one-way message and return once the actor has handled it and its events are durable.

        Raises:
            InvalidInputError: ``actor_id`` is not a UUID.
            ActorNotFound, ActorNotRunning: no such actor, or it is not running.
            MailboxFull: the actor's mailbox is full; nothing was delivered, try again later.
            MessageTooLarge: the message is larger than the actor's ``max_message_bytes``.
            ExportMissing: the actor does not export ``handle-send``.
            ErrAnswered: the actor answered it with its ``err`` (``on_err = "answer"``): it keeps running, its
                state unchanged.
            GuestFault: the actor failed handling it (kind ``stopped``: it was stopped while handling it).
        """
        delivery = self.router.deliver_send(self.router.get(actor_id), message)
        with blocking():
            delivery.result()

    def request(self, actor_id: str | uuid.UUID, message: bytes, *, timeout: float | None = None) -> bytes:
        """Send a request and wait for the response (which may be deferred by the actor).

        Raises:
            ReplyTimeout: no response within ``timeout`` (default: the runtime's request timeout).
            RequestCancelled: the actor cancelled the request.
            ErrAnswered: the actor answered with its ``err``, naming the actor and the guest's text; it keeps running.
            MessageError, GuestFault: as for ``send``.
        """
        reply = self.router.deliver_request(self.router.get(actor_id), message)
        return self.router.wait_reply(reply, timeout, f"request to {actor_id}")

    def open_channel(self, actor_id: str | uuid.UUID, initial: bytes, *, timeout: float | None = None) -> Channel:
        """Open a channel from this client to an actor.

        Raises:
            ChannelRejected: the actor rejected the channel (with its message).
            ReplyTimeout: it did not answer in time.
        """
        actor = self.router.get(actor_id)
        end = QueueEnd()
        channel_id = str(uuid.uuid4())
        opening = self.router.deliver_channel_open(actor, channel_id, initial)
        answer: ChannelAnswer = self.router.wait_reply(opening, timeout, "open-channel")
        if not answer.accepted:
            raise ChannelRejected(str(actor.id), answer.message)
        self.router.channels.open(channel_id, end, actor)
        return Channel(self.router, channel_id, end, answer.message)

    # Reading.

    def actor(self, actor_id: str | uuid.UUID) -> Actor:
        """The live actor object (status, failure, manifest).

        Raises:
            InvalidInputError: not an actor id. ActorNotFound: no such actor in this runtime.
        """
        return self.router.get(actor_id)

    def running(self, actor_id: str | uuid.UUID) -> Actor:
        """The actor, if it is running.

        Raises:
            ActorNotFound, ActorNotRunning.
        """
        return self.router.running(actor_id)

    def actors(self, *, after: str | uuid.UUID | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """The actors of this runtime: those it holds (running, passivated, ended), then those it brings back when
        addressed (evicted passivated actors: their chains end in ``actor/passivated``; with lazy resume, the
        interrupted ones), each with id, name, status, parent, children, failure and ``idle_ms`` (ms since its
        last call began or ended, for a running actor with an instance; else None).

        With ``after`` or ``limit``: one page in id order, the ids above ``after``, at most ``limit`` (default
        ``PAGE``), read with one seek in the home's index whatever its size.

        Raises:
            InvalidInputError: ``after`` is not an actor id, or ``limit`` is not positive.
        """
        if after is None and limit is None:
            held = self.router.all()
            known = {actor.id for actor in held}
            rows = [actor_summary(actor, self.supervision) for actor in held]
            rows += [row for key, head in self.store.log.actors()
                     if key not in known and (row := self._chain_row(key, head)) is not None]
            return rows
        return self._page(parse_actor_id(after) if after is not None else None, PAGE if limit is None else limit)

    def _page(self, after: uuid.UUID | None, limit: int) -> list[dict[str, Any]]:
        if limit < 1:
            raise InvalidInputError("limit", limit, "a positive number of actors")
        rows: list[dict[str, Any]] = []
        while len(rows) < limit:
            batch = self.store.log.actors_page(after, limit)
            for key, head in batch:
                actor = self.router.find(key)
                row = actor_summary(actor, self.supervision) if actor is not None else self._chain_row(key, head)
                if row is not None and len(rows) < limit:
                    rows.append(row)
            if len(batch) < limit:
                break
            after = batch[-1][0]
        return rows

    def _chain_row(self, key: uuid.UUID, head: Any) -> dict[str, Any] | None:
        """The row of an actor this runtime does not hold but brings back when addressed; None for any other."""
        if not self.passivation.comes_back(key, self.store.log.at(key, head.seq).type):
            return None
        genesis = self.store.log.at(key, 0).data
        data = genesis if isinstance(genesis, dict) else {}
        return {"id": str(key), "name": data.get("name"), "status": ActorStatus.PASSIVATED,
                "parent": data.get("parent"), "children": [], "failure": None, "idle_ms": None}

    def status(self, actor_id: str | uuid.UUID) -> ActorStatus:
        """The actor's status: ``running``, ``recovering`` (a commit of its events failed; it goes back to its
        last committed state before its next call), ``starting``, ``restarting``, ``stopped`` or ``failed``."""
        return self.router.get(actor_id).reported_status

    def state(self, actor_id: str | uuid.UUID) -> bytes | None:
        """The actor's current state (the state of its latest successful call; see ``Actor.current_state``)."""
        return self.router.get(actor_id).current_state()

    def events(self, actor_id: str | uuid.UUID) -> list[Event]:
        """The actor's chain, from genesis."""
        return list(self.store.log.events(parse_actor_id(actor_id)))

    def close(self) -> None:
        """End every actor's mailbox (without recording a stop: they were not asked to stop), stop the workers and
        close the store."""
        if self._closed:
            return
        self._closed = True
        self.passivation.close()
        self.supervision.close()
        for actor in self.router.all():
            actor.close()
        self.scheduler.close()
        self.releaser.close()
        netloop.close(self.store)  # the network handlers' loop: their servers and connection pools
        self.engine.close()
        self.store.close()

    def __enter__(self) -> Theater:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

