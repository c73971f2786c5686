"""Forks and reverts of live actors: history taken up again from an earlier event, always by appending.

- ``fork``: a new actor whose history begins at an event of another actor (or of a what-if run of it,
  ``replay.whatif``): its ``actor/created`` records the source actor, the event and the state there
  (``replay.lineage.ForkOrigin``), and it starts from that state without ``init``, on the source's component and
  manifest unless others are given. ``verify`` of the fork follows into the source chain's prefix.
- ``revert``: a running actor goes back to its state at an earlier event of its own chain: ``actor/revert`` (the
  event, its seq and the state there) then ``wasm/instantiate`` with reason ``revert`` from that state, in one
  operation. Nothing before it changes; ``verify`` checks the event is this chain's and the state is its state.

``Theater.fork`` and ``Theater.revert`` are these functions; the CLI and the HTTP routes call them.

- ``import_verified_bundle``: a bundle (anyone's: hostile until proven) checked in a temporary store first (its
  shape, every hash, link and blob, then re-execution from genesis within the given bounds) and only then imported
  into the home as ``theater chain import`` does; a bundle may not extend a chain the home holds. ``theater fork
  --bundle`` forks from it.
- ``whatif_report``: a what-if run (``replay.whatif``) of a bounded prefix of a chain, as JSON; nothing written.
"""

from __future__ import annotations

import dataclasses
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replay import whatif
from replay.bundle import import_bundle, read_bundle
from replay.history import state_at
from replay.lineage import ForkOrigin
from replay.replayer import Replayer, ReplayLimits
from replay.schema import ActorRevert, InstantiateReason
from store import Store, parse_actor_id, verify_chain
from store.errors import ChecksumMismatch, CorruptRecordError, InvalidInputError
from theater import components
from theater.errors import ActorNotRunning, BundleConflict, BundleRefused, RevertRefused
from theater.files import FileAccess
from theater.manifest import ComponentRef, Manifest, parse_manifest
from theater.porcelain.forms import jsonable
from theater.porcelain.resume import import_chain
from theater.scheduler import blocking
from theater.status import ActorStatus

if TYPE_CHECKING:
    from theater.actor import Actor
    from theater.runtime import Theater

ComponentChoice = bytes | str | Path | None
MAX_WHATIF_EVENTS = 200_000  # the longest prefix a what-if over the API re-executes (its events are held in memory)


def locate_event(store: Store, event: bytes | str) -> tuple[uuid.UUID, int, bytes]:
    """The actor, seq and hash of ``event`` (a 32-byte hash, or a hex hash or unique prefix).

    Raises:
        InvalidInputError: not a hash or a hex prefix. NotFoundError, AmbiguousPrefixError: no event, or several.
    """
    if isinstance(event, bytes):
        if len(event) != 32:
            raise InvalidInputError("event", event.hex(), "a 32-byte event hash")
        digest = event
    else:
        digest = store.log.resolve(event)
    actor, seq = store.log.locate(digest)
    return actor, seq, digest


def fork_manifest(theater: Theater, source: uuid.UUID, *, manifest: Manifest | Path | str | None = None,
                  files: FileAccess | None = None) -> Manifest:
    """The manifest a fork of ``source`` runs under: ``manifest`` (the operator's, as ``Theater.start`` reads it),
    else the one the source's creation recorded, with the uploaded files it recorded; ``files``, when given,
    replaces the access (an API client's fork gets the client's, so it grants no more than the client could).

    Raises:
        RecordIncomplete, MalformedRecord, ManifestError: the source's record cannot be read back.
    """
    genesis = Replayer(theater.store).genesis(source)
    if manifest is not None:
        chosen = theater._manifest(manifest)
    else:
        text = theater.store.blobs.get(genesis.data["manifest"]).decode()
        chosen = parse_manifest(text, source=f"store:{genesis.data['manifest'].hex()}", files=FileAccess.recorded())
        chosen = dataclasses.replace(chosen, files=theater._recorded_files(genesis),
                                     component=ComponentRef(kind="hash", value=genesis.data["component"]))
    if files is not None:
        chosen = dataclasses.replace(chosen, files=files)
    return chosen


def component_ref(theater: Theater, component: ComponentChoice) -> ComponentRef | None:
    """A fork's component: a 32-byte hash or 64 hex digits (a blob of the home), or a file (the operator's)."""
    if component is None:
        return None
    if isinstance(component, bytes):
        if len(component) != 32:
            raise InvalidInputError("component", component.hex(), "a 32-byte blob hash")
        return ComponentRef(kind="hash", value=component)
    text = str(component)
    if len(text) == 64 and all(c in "0123456789abcdefABCDEF" for c in text) and not Path(text).exists():
        return ComponentRef(kind="hash", value=bytes.fromhex(text))
    digest, _ = components.load_new(theater.engine, theater.store, Path(text).read_bytes(), what=f"component {text}")
    return ComponentRef(kind="hash", value=digest)


def fork(theater: Theater, event: bytes | str, *, component: ComponentChoice = None,
         manifest: Manifest | Path | str | None = None, name: str | None = None,
         overrides: dict[int, Any] | None = None, files: FileAccess | None = None) -> str:
    """Start a new actor whose history begins at ``event`` of another actor; its id once it runs.

    The fork starts from the source's state at the event (with ``overrides``: the state a what-if run of the source
    up to the event, with those host results replaced, reaches), without ``init``, as a top-level actor.

    Raises:
        InvalidInputError, NotFoundError, AmbiguousPrefixError: ``event`` names no single event.
        ReplayError: with ``overrides``, the what-if run stops before the event (``NoRecordedAnswer``, ...).
        ManifestError, LinkError, ComponentError: as ``Theater.start``.
    """
    store = theater.store
    source, seq, digest = locate_event(store, event)
    if overrides:
        run = whatif.run(Replayer(store), source, to_seq=seq, overrides=overrides)
        if run.stopped is not None:
            raise run.stopped
        state = run.state
    else:
        state = state_at(store, source, seq)
    chosen = fork_manifest(theater, source, manifest=manifest, files=files)
    ref = component_ref(theater, component)
    changes: dict[str, Any] = {"init_state": None}  # the fork's state is the source's, never the manifest's
    if ref is not None:
        changes["component"] = ref
    if name is not None:
        changes["name"] = name
    chosen = dataclasses.replace(chosen, **changes)
    origin = ForkOrigin(actor=source, seq=seq, event=digest, overrides=tuple(sorted((overrides or {}).items())))
    return str(theater._launch(chosen, init_state=state, parent=None, call_init=False, fork=origin).id)


def revert(theater: Theater, actor_id: str | uuid.UUID, event: bytes | str) -> int:
    """Bring a running actor back to its state after ``event`` of its own chain; the seq of the recorded
    ``actor/revert`` (a ``wasm/instantiate`` with reason ``revert`` follows it). Messages queued before it are
    handled first.

    Raises:
        InvalidInputError: ``event`` belongs to another actor. NotFoundError: no such event.
        ActorNotFound, ActorNotRunning: the actor is unknown or not running.
        RevertRefused: it holds an outstanding request, an open channel or a child.
        StoreError: the revert could not be committed.
    """
    key = parse_actor_id(actor_id)
    owner, seq, digest = locate_event(theater.store, event)
    if owner != key:
        raise InvalidInputError("event", digest.hex(), f"an event of actor {key} (it belongs to {owner})")
    state = state_at(theater.store, key, seq)
    actor = theater.router.get(key)
    future = actor.submit(lambda: _revert(actor, seq, digest, state))
    with blocking():
        return int(future.result())


def _revert(actor: Actor, seq: int, digest: bytes, state: bytes | None) -> int:
    """On the actor's thread: record the revert and make a fresh instance from ``state``."""
    if actor.status != ActorStatus.RUNNING:
        raise ActorNotRunning(str(actor.id), actor.status, actor.failure.detail if actor.failure else None)
    if actor.holds_live():
        raise RevertRefused(str(actor.id), "it holds an outstanding request, an open channel or a child, which a "
                                           "fresh instance from an earlier state could not honour")
    recorded = actor.tape.record(ActorRevert(event=digest, state=actor.tape.state_ref(state), to_seq=seq))
    actor.close_handlers()
    actor.boundary = None
    actor.state = state
    actor.boot(InstantiateReason.REVERT, call_init=False)
    return recorded.seq


def import_verified_bundle(store: Store, data: bytes, *, source: str,
                           limits: ReplayLimits = ReplayLimits()) -> uuid.UUID:
    """Check a bundle in a temporary store, then import it into ``store``; the bundle's actor.

    Checked first, with nothing written to ``store``: the bundle's shape, every event's hash and link and every blob
    (``import_bundle`` into a scratch store, then ``verify_chain``), and re-execution of its whole chain from genesis
    (whatever ``from_seq`` the bundle names) within ``limits``. Then, against the home: a chain the home already holds
    (the bundle's or one it carries) must be the same and no shorter, so importing never appends to a chain of the
    home. Imported as ``theater chain import`` does (``import_chain``: never resumed by a server).

    Raises:
        BundleRefused: any of these checks fails (``BundleConflict`` for a disagreement with the home).
        ReplayTimeout: re-execution passed ``limits``' wall-clock bound.
    """
    try:
        bundle = read_bundle(data, source=source)
    except CorruptRecordError as exc:
        raise BundleRefused(source, str(exc)) from None
    actor = uuid.UUID(bytes=bundle["actor"])
    with tempfile.TemporaryDirectory(prefix="theater-bundle-") as tmp, \
            Store(Path(tmp) / "store", durability="buffered") as scratch:
        try:
            import_bundle(scratch, data, source=source)
        except (CorruptRecordError, ChecksumMismatch) as exc:
            raise BundleRefused(source, str(exc)) from None
        for chain in [actor, *(uuid.UUID(bytes=other) for other in bundle.get("chains", {}))]:
            integrity = verify_chain(scratch, chain)
            if not integrity.ok:
                raise BundleRefused(source, f"the chain of actor {chain} does not hold: {integrity.problem}")
        report = Replayer(scratch, limits=limits).replay(actor)
        if report.divergence is not None:
            raise BundleRefused(source, f"its chain does not re-execute: {report.divergence}")
    chains = {actor: len(bundle["events"]), **{uuid.UUID(bytes=k): len(v) for k, v in bundle.get("chains", {}).items()}}
    for chain, length in chains.items():
        head = store.log.head(chain)
        if head.hash is not None and length - 1 > head.seq:
            raise BundleConflict(source, f"it holds events 0..{length - 1} of actor {chain}, whose chain in this home "
                                        f"ends at {head.seq}: a bundle may not extend a chain of the home")
    try:
        return import_chain(store, data, source=source)
    except (CorruptRecordError, ChecksumMismatch) as exc:
        raise BundleConflict(source, str(exc)) from None


def whatif_report(store: Store, actor: uuid.UUID, to: str | None, overrides: dict[int, Any], *,
                  limits: ReplayLimits = ReplayLimits()) -> dict[str, Any]:
    """A what-if run of ``actor``'s chain up to the event ``to`` (a hash or unique prefix of its chain; None: its
    head), with ``overrides``' host results, as JSON (``whatif_json``). Writes nothing.

    Raises:
        InvalidInputError: ``to`` is another actor's event, the prefix is longer than ``MAX_WHATIF_EVENTS``, or an
            override does not apply. NotFoundError, AmbiguousPrefixError: ``to`` names no single event.
        ReplayTimeout: the run passed ``limits``' wall-clock bound.
    """
    if to is None:
        seq = store.log.head(actor).seq
    else:
        owner, seq, digest = locate_event(store, to)
        if owner != actor:
            raise InvalidInputError("to", digest.hex(), f"an event of actor {actor} (it belongs to {owner})")
    if seq + 1 > MAX_WHATIF_EVENTS:
        raise InvalidInputError("to", seq, f"at most {MAX_WHATIF_EVENTS:,} events re-executed by a what-if over the "
                                           "API (run 'theater replay EVENT --override ...' on the home instead)")
    return whatif_json(store, whatif.run(Replayer(store, limits=limits), actor, to_seq=seq, overrides=overrides))


def _call_json(call: whatif.CallComparison) -> dict[str, Any]:
    return {"seq": call.seq, "export": call.export, "outcome_seq": call.outcome_seq, "same": call.same,
            "recorded": jsonable(call.recorded), "whatif": jsonable(call.whatif),
            "recorded_state": jsonable(call.recorded_state, readable=True),
            "whatif_state": jsonable(call.whatif_state, readable=True)}


def whatif_json(store: Store, result: whatif.WhatIfRun) -> dict[str, Any]:
    """The JSON form of a what-if run."""
    departure = result.departure
    return {
        "actor": str(result.actor), "to_seq": result.to_seq, "last_seq": result.last_seq,
        "overrides": {str(k): jsonable(v) for k, v in sorted(result.overrides.items())},
        "calls": [_call_json(c) for c in result.calls],
        "departure": None if departure is None else departure.seq,
        "stopped": None if result.stopped is None else {"error": type(result.stopped).__name__,
                                                         "message": str(result.stopped)},
        "state": jsonable(result.state, readable=True), "recorded_state": jsonable(result.recorded_state,
                                                                                    readable=True),
    }


__all__ = ["MAX_WHATIF_EVENTS", "BundleConflict", "BundleRefused", "component_ref", "fork", "fork_manifest",
           "import_verified_bundle", "locate_event", "revert", "whatif_json", "whatif_report"]
