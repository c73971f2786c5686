"""Passivation: idle actors drop their instance, and come back on their next operation.

An actor is idle when no call of it began or ended for ``passivate_after`` seconds (a runtime option; a manifest's
``passivate_after_ms`` may ask for less, never more, and is honoured to within the sweeper's period) and it holds
nothing live (``Actor.holds_live``): no outstanding request, no open channel, no child in this runtime, nothing a
handler holds open (``Handler.holds_live``). One sweeper thread per runtime finds such actors and queues a
passivation on each one's mailbox, as a control operation, so it runs between two of the actor's operations
whatever schedules them. There the actor checks again (a message may have come meanwhile), records
``actor/passivated`` with the state it holds, waits until that is durable and drops its instance. Its next call
makes a fresh instance from that state, recorded as ``wasm/instantiate`` with reason ``activate``: replay, verify
and ``state --at`` follow the chain across it.

Eviction. A passivated actor with no parent and no children, whose manifest is durable, also leaves the router: the
runtime keeps nothing of it in memory. The router's ``get`` (every message, request, channel, stop or status query
by id) brings it back through ``Passivation.load``: a new actor object read from its chain, without an instance
until its next call. Actors in a supervision tree (a parent or children) stay in memory without an instance: their
supervisor keeps its records of them and nothing of supervision changes. Non-durable actors are not evicted: the
loader brings back only what a restarted runtime may resume.

Lazy resume. A runtime that resumes the home's interrupted actors (the server: ``theater.porcelain.resume``) sets
``lazy_resume``: a top-level durable actor whose chain ends without an end event (its runtime stopped or was killed)
is then brought back by the same loader when first addressed, with reason ``resume`` (``activate`` when its chain
ends in ``actor/passivated``). Imported chains (bundles) are never loaded.
"""

from __future__ import annotations

import logging
import threading
import time
import tomllib
import uuid
from collections.abc import Callable
from functools import partial

from replay.schema import ACTOR_PASSIVATED, CHAIN_ENDS, InstantiateReason
from store import Store
from store.errors import NotFoundError, TheaterError
from theater.actor import Actor
from theater.router import Router
from theater.status import ActorStatus
from theater.supervision import Supervision

log = logging.getLogger("theater.passivation")

IMPORTED_LABEL = "theater/imported/"  # + actor id: a chain that came from a bundle (a runtime label)
# The sweeper looks for idle actors this often (a fraction of ``passivate_after``, within these bounds).
MIN_SWEEP_S, MAX_SWEEP_S = 0.02, 1.0
DURABLE_CACHE = 4096  # manifests whose ``durable`` setting is remembered


def is_imported(store: Store, actor: uuid.UUID) -> bool:
    """Whether the actor's chain came into the home from a bundle (``theater.porcelain.resume.import_chain``)."""
    try:
        store.blobs.get_label(f"{IMPORTED_LABEL}{actor}")
    except NotFoundError:
        return False
    return True


def is_durable(store: Store, actor: uuid.UUID) -> bool:
    """The ``durable`` setting of the actor's recorded manifest (default true; true if it cannot be read)."""
    try:
        genesis = store.log.at(actor, 0)
        text = store.blobs.get(genesis.data["manifest"]).decode("utf-8")
        value = tomllib.loads(text).get("durable", True)
    except (TheaterError, KeyError, TypeError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    return value is not False


# Handlers whose grant brings something back outside the instance when the actor resumes (``http-framework``: its
# servers listen again): an actor granted one is resumed at start, never left to come back when first addressed
# (nothing would address it: its sockets are closed until it is back).
RESUMED_AT_START = frozenset({"http-framework"})


def resumes_at_start(store: Store, actor: uuid.UUID) -> bool:
    """Whether the actor's recorded manifest grants a handler of ``RESUMED_AT_START`` (true if it cannot be read:
    it is then reopened at start, where the error is reported)."""
    try:
        genesis = store.log.at(actor, 0)
        handlers = tomllib.loads(store.blobs.get(genesis.data["manifest"]).decode("utf-8")).get("handlers", [])
    except (TheaterError, KeyError, TypeError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return True
    if not isinstance(handlers, list):
        return True
    return any(isinstance(h, dict) and h.get("type") in RESUMED_AT_START for h in handlers)


def resume_reason(last_event_type: str) -> InstantiateReason:
    """How an actor brought back from its chain is recorded: ``activate`` after a passivation, else ``resume``."""
    return InstantiateReason.ACTIVATE if last_event_type == ACTOR_PASSIVATED else InstantiateReason.RESUME


Restore = Callable[[uuid.UUID, InstantiateReason], Actor]


class Passivation:
    """A runtime's passivation: the sweeper thread, eviction, and the router's loader.

    Args:
        store, router, supervision: the runtime's.
        restore: makes an actor object from its chain, registered nowhere, with no instance yet: its first call
            makes one with the given reason (the runtime's).
        after: seconds idle before an actor is passivated; None: never (``passivate`` still does it on demand).
    """

    def __init__(self, *, store: Store, router: Router, supervision: Supervision, restore: Restore,
                 after: float | None) -> None:
        self.store = store
        self.router = router
        self.supervision = supervision
        self.restore = restore
        self.after = after
        self.lazy_resume = False  # set by a runtime that resumes the home's interrupted actors
        self.passivated = 0  # passivations done by this runtime
        self.evicted = 0  # of which the actor also left the router
        self._pending: set[uuid.UUID] = set()  # passivations queued, not yet run
        self._durable: dict[bytes, bool] = {}  # manifest blob -> its ``durable`` (stored blobs never change)
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        router.loader = self.load

    def start(self) -> None:
        """Start the sweeper (when ``after`` is set)."""
        if self.after is None or self._thread is not None:
            return
        self._thread = threading.Thread(target=self._sweep_loop, name="theater-passivation", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # Passivating.

    def _sweep_loop(self) -> None:
        assert self.after is not None
        interval = min(max(self.after / 4, MIN_SWEEP_S), MAX_SWEEP_S)
        while not self._closed.wait(interval):
            self.sweep(self.after)

    def sweep(self, after: float) -> int:
        """Queue a passivation on every running actor that ran no call for ``after`` seconds; how many."""
        now = time.monotonic()
        queued = 0
        for actor in self.router.all():
            idle_after = self.idle_after(actor, after)
            if (actor.status != ActorStatus.RUNNING or now - actor.last_active < idle_after
                    or (actor.passivated and not self.evictable(actor)) or not self._claim(actor.id)):
                continue
            actor.control(partial(self._passivate, actor, idle_after)).add_done_callback(
                partial(self._done, actor.id))
            queued += 1
        return queued

    @staticmethod
    def idle_after(actor: Actor, after: float) -> float:
        """The seconds idle after which ``actor`` is passivated: ``after``, or sooner if its manifest's
        ``passivate_after_ms`` says so (a manifest never keeps an actor in memory longer)."""
        asked = actor.manifest.passivate_after_ms
        return after if asked is None else min(after, asked / 1000)

    def passivate(self, actor: Actor, after: float = 0.0) -> bool:
        """Passivate one actor now (if idle ``after`` seconds and holding nothing live); True when it did."""
        return bool(actor.control(partial(self._passivate, actor, after)).result())

    def _claim(self, actor: uuid.UUID) -> bool:
        with self._lock:
            if actor in self._pending:
                return False
            self._pending.add(actor)
            return True

    def _done(self, actor: uuid.UUID, done: object) -> None:
        with self._lock:
            self._pending.discard(actor)

    def _passivate(self, actor: Actor, after: float) -> bool:
        """On the actor's thread: passivate it, then evict it if nothing keeps it in memory."""
        if actor.passivated:  # no instance already (a status query brought it back, say): evict it if it may go
            if time.monotonic() - actor.last_active >= after:
                self._count(evicted=self._evict(actor))
            return True
        if not actor.passivate(after):
            return False
        self._count(passivated=True, evicted=self._evict(actor))
        return True

    def _count(self, *, passivated: bool = False, evicted: bool = False) -> None:
        with self._changed:
            self.passivated += passivated
            self.evicted += evicted
            self._changed.notify_all()

    def wait(self, *, passivated: int = 0, evicted: int = 0, timeout: float) -> bool:
        """Wait until this runtime has passivated (and evicted) at least that many actors; False on timeout."""
        with self._changed:
            return self._changed.wait_for(lambda: self.passivated >= passivated and self.evicted >= evicted,
                                          timeout)

    def evictable(self, actor: Actor) -> bool:
        """A passivated actor may leave memory: top-level, no children here, durable manifest."""
        return actor.parent is None and not self.supervision.children(actor.id) and actor.manifest.durable

    def _evict(self, actor: Actor) -> bool:
        """Take an evictable passivated actor out of memory (its supervision record, then the router)."""
        return self.evictable(actor) and self.supervision.forget(actor) and self.router.evict(actor)

    # Bringing back (the router's loader, under its lock).

    def load(self, key: uuid.UUID) -> Actor | None:
        """The actor ``key`` from its chain, if it may be brought back (``comes_back``), else None.

        Raises:
            TheaterError: its chain says it may come back but its record cannot be read (a clear error for the
                caller, never a crash of the runtime).
        """
        head = self.store.log.head(key)
        if head.hash is None:
            return None
        last = self.store.log.at(key, head.seq).type
        if not self.comes_back(key, last):
            return None
        log.debug("bringing back actor %s (%s)", key, resume_reason(last))
        return self.restore(key, resume_reason(last))

    def comes_back(self, key: uuid.UUID, last: str) -> bool:
        """Whether the loader brings back the actor whose chain ends in an event of type ``last``: passivated (or,
        with lazy resume, interrupted), durable, not imported, and not part of a supervision tree (such actors come
        back with their tree, ``Theater.reopen``)."""
        if last in CHAIN_ENDS or (last != ACTOR_PASSIVATED and not self.lazy_resume):
            return False
        if is_imported(self.store, key):
            return False
        genesis = self.store.log.at(key, 0).data
        if not isinstance(genesis, dict) or genesis.get("parent") is not None:
            return False
        manifest = genesis.get("manifest")
        durable = self._durable.get(manifest) if isinstance(manifest, bytes) else None
        if durable is None:
            durable = is_durable(self.store, key)
            if isinstance(manifest, bytes) and len(self._durable) < DURABLE_CACHE:
                self._durable[manifest] = durable  # many actors share a manifest: parse it once
        return durable


__all__ = ["IMPORTED_LABEL", "Passivation", "is_durable", "is_imported", "resume_reason"]
