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

from replay import ReplayLimits
from replay.bundle import opened_bundle
from replay.upgrade import DEFAULT_ACCEPTED, ChainCheck, UpgradeChecker, UpgradeReport, Verdict
from store import Store, blob_digest, verify_chain
from store.errors import NotFoundError, TheaterError
from theater.build import build_project, load_project
from theater.errors import BuildError
from theater.porcelain.forms import jsonable

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


def upgrade_json(report: UpgradeReport) -> dict[str, Any]:
    """The JSON form of an upgrade report."""
    return {
        "new_component": report.new_component.hex(),
        "accept": sorted(str(v) for v in report.accept),
        "passed": report.passed,
        "exit_code": report.exit_code,
        "chains": [
            {
                "actor": str(c.actor), "source": c.source, "verdict": str(c.verdict),
                "accepted": c.accepted(report.accept),
                "old_component": c.old_component.hex() if c.old_component else None,
                "calls": c.calls, "host_calls": c.host_calls, "detail": c.detail,
                "difference": None if c.difference is None else {
                    "seq": c.difference.seq, "event": c.difference.event, "what": c.difference.what,
                    "recorded": jsonable(c.difference.recorded), "new": jsonable(c.difference.new),
                },
            }
            for c in report.chains
        ],
    }


__all__ = ["NewBuild", "chains_named", "check_actor", "check_bundle", "new_build", "recorded_name", "upgrade_check",
           "upgrade_json"]
