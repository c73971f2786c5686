"""The upgrade check as one operation: recorded chains (in the home, or in bundle files) re-executed against a new
build of their component (``replay.upgrade``), each chain's integrity checked first. Nothing is written to the
home: its store is read, bundles go to temporary stores, the new component is compiled in memory.
"""

from __future__ import annotations

import tomllib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from replay import ReplayLimits, import_functions
from replay.bundle import opened_bundle
from replay.schema import WASM_CALL, ActorUpgraded
from replay.upgrade import DEFAULT_ACCEPTED, ChainCheck, UpgradeChecker, UpgradeReport, Verdict
from store import Store, blob_digest, verify_chain
from store.errors import NotFoundError, TheaterError
from theater.build import build_project, load_project
from theater.errors import BuildError, SupervisionError, UpgradeRefused
from theater.files import FileAccess
from theater.handlers import check_grants
from theater.manifest import parse_manifest
from theater.porcelain.actors import live_actor, running_component
from theater.porcelain.forms import jsonable
from theater.porcelain.records import recorded_head
from theater.runtime import COMPONENT_LABEL, Theater
from theater.status import LIVE

WASM_SUFFIXES = (".wasm", ".wat")


@dataclass(frozen=True, slots=True, kw_only=True)
class NewBuild:
    """The component an upgrade check is run against.

    Attributes:
        wasm: its bytes. digest: their blob hash. source: where they came from (a file, or a project built).
        name: the project's actor name when built from a project directory, else None.
    """

    wasm: bytes
    digest: bytes
    source: str
    name: str | None = None


def new_build(path: Path | str, *, cache_dir: Path | None = None) -> NewBuild:
    """The new component at ``path``: a ``.wasm`` (or ``.wat``) file, or an actor project directory, built (and
    cached as ``theater build`` does; the home is not touched).

    Raises:
        BuildError, BuildToolMissing: the project cannot be built, or ``path`` is neither.
        OSError: the file cannot be read.
    """
    path = Path(path)
    if path.is_dir():
        result = build_project(path, cache_dir=cache_dir)
        wasm = result.wasm.read_bytes()
        return NewBuild(wasm=wasm, digest=blob_digest(wasm), source=str(path), name=load_project(path).name)
    if not path.is_file():
        raise BuildError(str(path), "no such file or project directory: give a component (.wasm) or a project")
    wasm = path.read_bytes()
    return NewBuild(wasm=wasm, digest=blob_digest(wasm), source=str(path))


def recorded_name(store: Store, actor: uuid.UUID) -> str | None:
    """The ``name`` of the manifest an actor's chain was created with, or None when it cannot be read."""
    try:
        manifest = store.log.at(actor, 0).data.get("manifest")
        text = store.blobs.get(manifest).decode() if isinstance(manifest, bytes) else ""
        name = tomllib.loads(text).get("name")
    except (TheaterError, UnicodeDecodeError, tomllib.TOMLDecodeError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def chains_named(store: Store, name: str | None) -> list[uuid.UUID]:
    """Every chain in the store, or those whose manifest's name is ``name``."""
    actors = [actor for actor, _head in store.log.actors()]
    return actors if name is None else [a for a in actors if recorded_name(store, a) == name]


def check_actor(checker: UpgradeChecker, store: Store, actor: uuid.UUID, *, source: str | None = None) -> ChainCheck:
    """One chain's verdict: integrity first (a chain whose hashes do not hold is ``unchecked``), then the check."""
    integrity = verify_chain(store, actor)
    if not integrity.ok:
        return ChainCheck(actor=actor, source=source or str(actor), old_component=None,
                          new_component=checker.digest, verdict=Verdict.UNCHECKED,
                          detail=f"the chain's integrity does not hold: {integrity.problem}")
    return checker.check(store, actor, source=source)


def check_bundle(checker: UpgradeChecker, path: Path) -> ChainCheck:
    """A bundle file's verdict; a bundle that cannot be read or imported (forged, truncated, not a bundle) is
    ``unchecked``, with what is wrong."""
    try:
        with opened_bundle(path) as (store, actor, _bundle):
            return check_actor(checker, store, actor, source=str(path))
    except (TheaterError, NotFoundError) as exc:
        return ChainCheck(actor=uuid.UUID(int=0), source=str(path), old_component=None,
                          new_component=checker.digest, verdict=Verdict.UNCHECKED,
                          detail=f"not a usable bundle: {type(exc).__name__}: {exc}")


def upgrade_check(
    wasm: bytes,
    *,
    store: Store | None = None,
    actors: Iterable[uuid.UUID] = (),
    bundles: Iterable[Path] = (),
    accept: Iterable[Verdict] = DEFAULT_ACCEPTED,
    limits: ReplayLimits = ReplayLimits(),
) -> UpgradeReport:
    """Check ``actors`` (chains in ``store``) and ``bundles`` (files) against the new component ``wasm``.

    ``accept``: the verdicts that pass (``identical`` always does).

    Returns a report whose ``exit_code`` is 0 when every verdict is accepted, 3 when a chain differs, 4 when one
    fails or could not be checked. Never writes to ``store``.
    """
    checker = UpgradeChecker(wasm, limits=limits)
    chains: list[ChainCheck] = []
    for actor in actors:
        if store is None:
            raise TheaterError("actors to check need the store that holds their chains")
        chains.append(check_actor(checker, store, actor))
    chains.extend(check_bundle(checker, Path(path)) for path in bundles)
    return UpgradeReport(new_component=checker.digest, chains=tuple(chains),
                         accept=frozenset({Verdict.IDENTICAL, *accept}))


def upgrade_actor(
    theater: Theater,
    actor: uuid.UUID,
    wasm: bytes,
    *,
    force: bool = False,
    accept: Iterable[Verdict] = DEFAULT_ACCEPTED,
    limits: ReplayLimits = ReplayLimits(),
) -> ChainCheck:
    """Restart ``actor`` with the new component ``wasm``, once the upgrade check over its chain passes.

    The check runs first, over the chain as it stands; refused (a verdict not in ``accept``; ``identical``
    always passes) and without ``force``, nothing is recorded or stopped. Otherwise the component goes to the blob
    store, the actor is stopped if it runs, and its chain records ``actor/upgraded`` (old and new component, the
    verdict, ``forced``) followed by a fresh instance of the new component from the last state (no ``init``).
    Calls the actor made between the check and its stop are checked again before the upgrade is recorded.

    Raises:
        ActorNotFound: the home has no chain for it. SupervisionError: it is a supervised child (its supervisor
            restarts it). ComponentError: ``wasm`` is not a component. LinkError: it imports an interface the
            actor's manifest does not grant. UpgradeRefused: the check did not pass and ``force`` is false.
    """
    store = theater.store
    recorded_head(store, actor)
    live = live_actor(theater, actor)
    if live is not None and theater.supervision.supervising(live) is not None:
        raise SupervisionError(f"actor {actor} is a supervised child: upgrade its supervisor's spawn instead")
    passing = frozenset({Verdict.IDENTICAL, *accept})
    _check_links(theater, actor, wasm)
    checker = UpgradeChecker(wasm, limits=limits)
    checked_to = store.log.head(actor).seq
    check = _gate(checker, store, actor, passing, force)
    if live is not None and live.status in LIVE:
        theater.stop(actor)
        if _calls_after(store, actor, checked_to):
            check = _gate(checker, store, actor, passing, force, resume=lambda: theater.reopen(actor))
    old = current_component(store, actor)
    digest = store.blobs.put(wasm)
    upgrade = ActorUpgraded(new=digest, old=old, forced=not check.accepted(passing), verdict=str(check.verdict))
    # The label first: after a crash before the upgrade is recorded, the actor comes back with the new component,
    # and its next wasm/instantiate names it, so the chain still says which component ran.
    store.blobs.set_runtime_label(COMPONENT_LABEL + str(actor), digest)
    theater.reopen(actor, upgrade=upgrade)
    return check


def current_component(store: Store, actor: uuid.UUID) -> bytes:
    """The blob hash of the component the actor runs now: its last upgrade's, else its creation's."""
    return running_component(store, actor, store.log.at(actor, 0).data)


def _gate(checker: UpgradeChecker, store: Store, actor: uuid.UUID, passing: frozenset[Verdict], force: bool,
          resume: Any = None) -> ChainCheck:
    """The chain's check; raises ``UpgradeRefused`` (after ``resume()``, when given) unless it passes or
    ``force``."""
    check = check_actor(checker, store, actor)
    if not check.accepted(passing) and not force:
        if resume is not None:
            resume()
        detail = check.detail or ""
        if check.difference is not None:
            d = check.difference
            detail = f"event {d.seq} ({d.event}): {d.what}" + (f"; {detail}" if detail else "")
        raise UpgradeRefused(str(actor), str(check.verdict), detail or "no detail")
    return check


def _calls_after(store: Store, actor: uuid.UUID, seq: int) -> bool:
    return any(e.type == WASM_CALL for e in store.log.events(actor, seq + 1))


def _check_links(theater: Theater, actor: uuid.UUID, wasm: bytes) -> None:
    """The new component must import nothing the actor's recorded manifest does not grant.

    Raises:
        ComponentError: it is not a component. LinkError: it imports an interface not granted.
    """
    manifest_hash = theater.store.log.at(actor, 0).data["manifest"]
    text = theater.store.blobs.get(manifest_hash).decode()
    manifest = parse_manifest(text, source=f"store:{manifest_hash.hex()}", files=FileAccess.recorded())
    component = theater.engine.compile(wasm, what="the new component")
    check_grants(manifest, import_functions(theater.engine, component))


def chain_check_json(check: ChainCheck, accept: frozenset[Verdict]) -> dict[str, Any]:
    """The JSON form of one chain's verdict."""
    d = check.difference
    return {
        "actor": str(check.actor), "source": check.source, "verdict": str(check.verdict),
        "accepted": check.accepted(accept),
        "old_component": check.old_component.hex() if check.old_component else None,
        "new_component": check.new_component.hex(),
        "calls": check.calls, "host_calls": check.host_calls, "detail": check.detail,
        "difference": None if d is None else {
            "seq": d.seq, "event": d.event, "what": d.what, "recorded": jsonable(d.recorded), "new": jsonable(d.new),
        },
    }


def upgrade_json(report: UpgradeReport) -> dict[str, Any]:
    """The JSON form of an upgrade report."""
    return {
        "new_component": report.new_component.hex(),
        "accept": sorted(str(v) for v in report.accept),
        "passed": report.passed,
        "exit_code": report.exit_code,
        "chains": [chain_check_json(c, report.accept) for c in report.chains],
    }


__all__ = [
    "NewBuild",
    "chain_check_json",
    "chains_named",
    "check_actor",
    "check_bundle",
    "current_component",
    "new_build",
    "recorded_name",
    "upgrade_actor",
    "upgrade_check",
    "upgrade_json",
]
