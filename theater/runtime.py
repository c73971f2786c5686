"""The embeddable runtime: ``Theater`` opened on a home directory runs actors from manifests.

    with Theater("~/.theater") as theater:
        actor = theater.start("examples/counter/manifest.toml")
        theater.send(actor, b"+1")
        print(theater.request(actor, b"get"))
        print(theater.state(actor), len(theater.events(actor)))

Everything an actor does is recorded in its chain in ``<home>/store``; ``Theater`` needs no server.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path
from types import TracebackType
from typing import Any

from replay.boundary import Limits, import_functions
from replay.engine import Engine
from replay.history import state_at
from replay.replayer import Replayer
from store import EMPTY, Event, Store, new_actor_id, parse_actor_id
from store.errors import NotFoundError, StoreError, TheaterError
from theater import components
from theater.actor import (
    ACTOR_INIT,
    HANDLE_CHANNEL_CLOSE,
    HANDLE_CHANNEL_MESSAGE,
    HANDLE_CHANNEL_OPEN,
    HANDLE_REQUEST,
    HANDLE_SEND,
    Actor,
)
from theater.channels import Channel, ChannelRegistry, ClientEnd
from theater.errors import ActorNotFound, ActorNotRunning, LinkError, ManifestError, MessageError
from theater.files import FileAccess
from theater.handlers import IMPLEMENTED, handler_for_import
from theater.mailbox import MailboxLimits, Reservation
from theater.record import RecordTape
from theater.release import Releaser, settle
from theater.manifest import (
    DEFAULT_MAXIMUMS,
    ComponentRef,
    Manifest,
    Maximums,
    check_limits,
    load_manifest,
    parse_manifest,
)
from theater.supervision import Supervision

DEFAULT_REQUEST_TIMEOUT_S = 30.0


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
    """

    def __init__(
        self,
        home: Path | str,
        *,
        durability: str = "sync",
        request_timeout: float = DEFAULT_REQUEST_TIMEOUT_S,
        maximums: Maximums = DEFAULT_MAXIMUMS,
        mailbox: MailboxLimits = MailboxLimits(),
    ) -> None:
        self.home = Path(home).expanduser()
        self.maximums = maximums
        self.store = Store(self.home / "store", durability=durability)
        self.engine = Engine()
        self.engine.start_ticker()
        self.request_timeout = request_timeout
        self.mailbox_limits = mailbox
        self.channels = ChannelRegistry()
        self.releaser = Releaser()
        self.supervision = Supervision(self)
        self._actors: dict[uuid.UUID, Actor] = {}
        self._lock = threading.Lock()
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
            GuestFault: ``init`` failed; the actor is recorded as failed.
            StoreError: its start could not be committed (``StoreFullError``: the disk is full); the actor is
                failed, and recorded so once the store takes it (see ``stop``).
            ActorNotFound, ActorNotRunning: the parent is unknown or not running.
        """
        manifest = self._manifest(manifest)
        if parent is None:
            return str(self.launch(manifest, init_state=init_state, call_init=call_init).id)
        child = self.supervision.start_child(
            self._actor(parent), manifest, init_state=init_state, call_init=call_init, restart=restart,
            restart_from=restart_from,
        )
        return str(child.id)

    def launch(
        self, manifest: Manifest, *, init_state: bytes | None = None, parent: uuid.UUID | None = None,
        call_init: bool = True,
    ) -> Actor:
        """Create, record and boot an actor (``start`` without the supervision); see ``start``."""
        check_limits(manifest, self.maximums)
        component_hash, component = self._component(manifest)
        self._check_grants(manifest, component)
        actor_id = new_actor_id()
        state = init_state if init_state is not None else manifest.init_state
        tape = self._genesis(actor_id, manifest, component_hash, state, parent)
        actor = Actor(self, actor_id, manifest, component_hash, tape, parent)
        actor.state = state
        with self._lock:
            self._actors[actor_id] = actor
        try:
            actor.submit(lambda: self._boot(actor, "start", call_init=call_init)).result()
        except StoreError as exc:
            # The start was refused, so the actor must not live on: it fails (recorded when the store can take it).
            reason = f"its start could not be committed: {type(exc).__name__}: {exc}"
            actor.submit(lambda: actor.abandon(reason))
            raise
        return actor

    def reopen(self, actor_id: str | uuid.UUID) -> str:
        """Bring an actor recorded in this home back to life after a restart of the runtime.

        A fresh instance starts from the state of the actor's last successful call, without ``init``; the chain
        continues where it ended (``wasm/instantiate`` with reason ``resume``).

        Raises:
            NotFoundError: no such actor in the store; RecordIncomplete: its creation event is missing.
        """
        key = parse_actor_id(actor_id)
        with self._lock:
            if key in self._actors and self._actors[key].status in ("running", "starting"):
                return str(key)
        if self.store.log.head(key).hash is None:
            raise NotFoundError("actor", str(key))
        genesis = Replayer(self.store).genesis(key)
        source = f"store:{genesis.data['manifest'].hex()}"
        text = self.store.blobs.get(genesis.data["manifest"]).decode()
        manifest = parse_manifest(text, source=source, files=FileAccess.recorded())
        check_limits(manifest, self.maximums)
        parent = genesis.data.get("parent")
        tape = RecordTape(self.store, key, self.store.log.head(key))
        actor = Actor(self, key, manifest, genesis.data["component"], tape, parse_actor_id(parent) if parent else None)
        actor.state = state_at(self.store, key)
        with self._lock:
            self._actors[key] = actor
        actor.submit(lambda: self._boot(actor, "resume", call_init=False)).result()
        self._rejoin(actor)
        return str(key)

    def _rejoin(self, actor: Actor) -> None:
        """Put a reopened actor back into its supervision tree: under its parent, over its children.

        Parents and children can be reopened in any order: whichever comes second makes the link.
        """
        with self._lock:
            parent = self._actors.get(actor.parent) if actor.parent else None
            children = [a for a in self._actors.values() if a.parent == actor.id and a.status == "running"]
        if parent is not None and parent.status == "running":
            self.supervision.adopt(parent, actor)
        for child in children:
            self.supervision.adopt(actor, child)

    def _manifest(self, manifest: Manifest | Path | str) -> Manifest:
        """A manifest given to ``start``: paths and text are the operator's (see ``theater.files``)."""
        if isinstance(manifest, Manifest):
            return manifest
        if isinstance(manifest, str) and "\n" in manifest:
            return parse_manifest(manifest, files=FileAccess.trusted(), maximums=self.maximums)
        return load_manifest(Path(manifest), maximums=self.maximums)

    def _component(self, manifest: Manifest) -> tuple[bytes, Any]:
        """The manifest's component: its blob hash and its compiled form.

        A component named by a path is read as the manifest's file access allows, at most
        ``maximums.component_file_bytes`` of it, and stored only once it compiles.
        """
        ref: ComponentRef = manifest.component
        if ref.kind == "path":
            data = manifest.files.read(ref.value, limit=self.maximums.component_file_bytes, what="component",
                                       source=manifest.source, field="component")
            return components.load_new(self.engine, self.store, data, what=f"component {str(ref.value)!r}")
        if ref.kind == "hash":
            if not self.store.blobs.has(ref.value):
                raise ManifestError(manifest.source, "component", f"no blob {ref.value.hex()} in the store")
            digest = ref.value
        else:
            try:
                digest = self.store.blobs.get_label(ref.value)
            except NotFoundError:
                raise ManifestError(manifest.source, "component", f"no label {ref.value!r} in the store") from None
        return digest, components.load(self.engine, self.store, digest, what=f"component {digest.hex()[:16]}")

    def _check_grants(self, manifest: Manifest, component: Any) -> None:
        for handler in manifest.handlers:
            if handler.type not in IMPLEMENTED:
                raise ManifestError(
                    manifest.source, "handlers", f"handler type {handler.type!r} is not available in this build"
                )
        granted = manifest.granted
        for interface, funcs in import_functions(self.engine, component).items():
            if not funcs:
                continue
            needed = handler_for_import(interface)
            if needed is None or needed not in granted:
                raise LinkError(manifest.name, interface, needed)

    def _genesis(
        self, actor_id: uuid.UUID, manifest: Manifest, component_hash: bytes, state: bytes | None,
        parent: uuid.UUID | None,
    ) -> RecordTape:
        tape = RecordTape(self.store, actor_id, EMPTY)
        tape.append(
            "actor/created",
            {
                "id": str(actor_id),
                "name": manifest.name,
                "component": component_hash,
                "manifest": self.store.blobs.put_async(manifest.source_text.encode()).value,
                "engine": self.engine.settings.record(),
                "parent": str(parent) if parent else None,
                "init_state": tape.state_ref(state),
                "limits": {
                    "fuel_per_call": manifest.limits.fuel_per_call,
                    "memory_bytes": manifest.limits.memory_bytes,
                    "deadline_ms": manifest.limits.deadline_ms,
                },
            },
        )
        return tape

    def _boot(self, actor: Actor, reason: str, *, call_init: bool = True) -> None:
        limits = actor.manifest.limits
        try:
            actor.instantiate(
                reason,
                Limits(fuel_per_call=limits.fuel_per_call, memory_bytes=limits.memory_bytes,
                       deadline_ms=limits.deadline_ms),
            )
        except TheaterError as exc:
            actor.abandon(f"{type(exc).__name__}: {exc}")
            raise
        if call_init and actor.has_export(ACTOR_INIT):
            actor.call(ACTOR_INIT, [str(actor.id)])
        if actor.status == "starting":
            actor.status = "running"

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
        actor = self._actor(actor_id)
        if actor.status in ("stopped", "failed"):
            actor.confirm_end()  # an end whose record a failed commit lost is recorded now
            return
        parent = self.supervision.supervising(actor)
        if parent is not None and parent.actor.status == "running":
            self.supervision.stop_child(parent.actor, actor.id, "stopped through the runtime")
            return
        actor.interrupt(lambda: self.supervision.shutdown(actor)).result()

    def on_actor_ended(self, actor: Actor, how: str = "fail", data: bytes | None = None) -> None:
        """Called on the actor's thread when it stops, exits (``how``) or fails: drops its channels, stops its
        children and tells its supervisor."""
        self.channels.drop_actor(actor.id)
        self.supervision.actor_ended(actor, how, data)

    # Messages from outside.

    def send(self, actor_id: str | uuid.UUID, message: bytes) -> None:
        """Deliver a one-way message and return once the actor has handled it and its events are durable.

        Raises:
            InvalidInputError: ``actor_id`` is not a UUID.
            ActorNotFound, ActorNotRunning: no such actor, or it is not running.
            MailboxFull: the actor's mailbox is full; nothing was delivered, try again later.
            MessageError: the message is larger than the actor's ``max_message_bytes``, or the actor does not
                export ``handle-send``.
            GuestFault: the actor failed handling it (kind ``stopped``: it was stopped while handling it).
        """
        self.deliver_send(self._actor(actor_id), message).result()

    def request(self, actor_id: str | uuid.UUID, message: bytes, *, timeout: float | None = None) -> bytes:
        """Send a request and wait for the response (which may be deferred by the actor).

        Raises:
            MessageError: no response within ``timeout`` (default: the runtime's request timeout).
        """
        reply = self.deliver_request(self._actor(actor_id), message)
        return self.wait_reply(reply, timeout, f"request to {actor_id}")

    def open_channel(self, actor_id: str | uuid.UUID, initial: bytes, *, timeout: float | None = None) -> Channel:
        """Open a channel from this client to an actor.

        Raises:
            MessageError: the actor rejected the channel (with its message) or did not answer in time.
        """
        actor = self._actor(actor_id)
        end = ClientEnd()
        channel_id = str(uuid.uuid4())
        accepted = self.wait_reply(self.deliver_channel_open(actor, channel_id, initial), timeout, "open-channel")
        if not accepted["accepted"]:
            message = accepted["message"]
            raise MessageError(f"actor {actor.id} rejected the channel" + (f": {message!r}" if message else ""))
        self.channels.open(channel_id, end, actor)
        return Channel(self, channel_id, end, accepted["message"])

    def wait_reply(self, reply: Future[Any], timeout: float | None, what: str, *, waiter: Actor | None = None) -> Any:
        """Wait for an actor's answer; a timeout becomes ``MessageError``. With ``waiter`` (the actor whose host
        function waits), a stop of that actor ends the wait early, also with ``MessageError``."""
        limit = self.request_timeout if timeout is None else timeout
        if waiter is not None and not waiter.wait_for(reply, limit) and waiter.stop_requested.is_set():
            raise MessageError(f"{what} was given up: actor {waiter.id} is stopping")
        try:
            return reply.result(timeout=0 if waiter is not None else limit)
        except FutureTimeout:
            raise MessageError(f"{what} got no answer within {limit} s") from None

    # Delivery into an actor's mailbox (used by this API and by the message-server handler). Each message takes a
    # place in the bounded message lane: the one ``reservation`` kept for it (a message from another actor), else
    # a new one, and the future fails with ``MailboxFull`` when there is none.

    def _check_message(self, actor: Actor, message: bytes, reservation: Reservation | None = None) -> None:
        try:
            actor.check_message(len(message))
        except MessageError:
            if reservation is not None:
                reservation.release()  # the place kept for it is not left taken
            raise

    def deliver_send(self, actor: Actor, message: bytes, reservation: Reservation | None = None) -> Future[None]:
        self._check_message(actor, message, reservation)
        return actor.submit(lambda: actor.call(HANDLE_SEND, [message]) and None, size=len(message),
                            reservation=reservation)

    def deliver_request(self, actor: Actor, message: bytes) -> Future[bytes]:
        self._check_message(actor, message)
        reply: Future[bytes] = Future()

        def handle() -> None:
            request_id = str(uuid.uuid4())
            try:
                result = actor.call(HANDLE_REQUEST, [request_id, message])
            except BaseException as exc:
                error = exc  # ``exc`` is unbound when the except block ends; the effect runs later
                actor.defer(lambda failed: settle(reply, None, error, failed))
                return
            response = result.output[0][0]
            if response is None:
                actor.outstanding[request_id] = reply
            else:
                actor.defer(lambda failed: settle(reply, response["some"], None, failed))

        submitted = actor.submit(handle, size=len(message))
        # If the mailbox refuses the request (full, or the actor has ended), the reply carries that refusal.
        submitted.add_done_callback(
            lambda done: done.exception() is not None and settle(reply, None, done.exception(), None)
        )
        return reply

    def deliver_channel_open(self, actor: Actor, channel_id: str, initial: bytes) -> Future[dict[str, Any]]:
        self._check_message(actor, initial)

        def handle() -> dict[str, Any]:
            result = actor.call(HANDLE_CHANNEL_OPEN, [channel_id, initial])
            accept = result.output[0][0]
            message = accept["message"]
            return {"accepted": accept["accepted"], "message": None if message is None else message["some"]}

        return actor.submit(handle, size=len(initial))

    def deliver_channel_message(
        self, actor: Actor, channel_id: str, message: bytes, reservation: Reservation | None = None
    ) -> Future[Any]:
        self._check_message(actor, message, reservation)
        return actor.submit(lambda: actor.call(HANDLE_CHANNEL_MESSAGE, [channel_id, message]) and None,
                            size=len(message), reservation=reservation)

    def deliver_channel_close(self, actor: Actor, channel_id: str) -> Future[Any]:
        # Never refused for a full mailbox: it follows the channel's messages, which were accepted.
        return actor.submit(lambda: actor.call(HANDLE_CHANNEL_CLOSE, [channel_id]) and None, force=True)

    # Reading.

    def _actor(self, actor_id: str | uuid.UUID) -> Actor:
        key = parse_actor_id(actor_id)
        actor = self._actors.get(key)
        if actor is None:
            raise ActorNotFound(str(actor_id))
        return actor

    def actor(self, actor_id: str | uuid.UUID) -> Actor:
        """The live actor object (status, failure, manifest)."""
        return self._actor(actor_id)

    def running(self, actor_id: str | uuid.UUID) -> Actor:
        """The actor, if it is running.

        Raises:
            ActorNotFound, ActorNotRunning.
        """
        actor = self._actor(actor_id)
        if actor.status != "running":
            raise ActorNotRunning(str(actor.id), actor.status, actor.failure.detail if actor.failure else None)
        return actor

    def actors(self) -> list[dict[str, Any]]:
        """Every actor this runtime started: id, name, status, parent, failure."""
        with self._lock:
            actors = list(self._actors.values())
        return [
            {
                "id": str(a.id),
                "name": a.name,
                "status": a.reported_status,
                "parent": str(a.parent) if a.parent else None,
                "children": [str(c) for c in self.supervision.children(a.id)],
                "failure": None if a.failure is None else {"kind": a.failure.kind, "detail": a.failure.detail},
            }
            for a in actors
        ]

    def status(self, actor_id: str | uuid.UUID) -> str:
        """The actor's status: ``running``, ``recovering`` (a commit of its events failed; it goes back to its
        last committed state before its next call), ``starting``, ``restarting``, ``stopped`` or ``failed``."""
        return self._actor(actor_id).reported_status

    def state(self, actor_id: str | uuid.UUID) -> bytes | None:
        """The actor's current state (the state of its latest successful call; see ``Actor.current_state``)."""
        return self._actor(actor_id).current_state()

    def events(self, actor_id: str | uuid.UUID) -> list[Event]:
        """The actor's chain, from genesis."""
        return list(self.store.log.events(parse_actor_id(actor_id)))

    def close(self) -> None:
        """Stop every actor's thread (without recording a stop: they were not asked to stop) and close the store."""
        if self._closed:
            return
        self._closed = True
        self.supervision.close()
        with self._lock:
            actors = list(self._actors.values())
        for actor in actors:
            actor.close()
        self.releaser.close()
        self.engine.close()
        self.store.close()

    def __enter__(self) -> Theater:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

