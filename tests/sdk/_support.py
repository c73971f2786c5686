"""Helpers of the Python-actor tests: projects copied to ``tmp_path``, builds and compiled components cached between
runs, a ``Theater`` whose chains are all verified and replayed afterwards, and waiting on commits.

Caches live under ``.cache/theater-build/`` in the repository (gitignored): ``<input key>.wasm`` for builds
(``build_project(cache_dir=...)``) and ``compiled/<artifact name digest>.bin`` for wasmtime's compiled form, which
is sealed into each test's fresh home's artifact cache (``store.artifacts``, with that home's key) under the name the
engine looks for. A change to an actor's sources, the WIT, the SDK or componentize-py changes the key; another
wasmtime or engine setting changes the name. The test cache is trusted as a home is: it is this machine's own.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
import os
from pathlib import Path
from typing import Any

import blake3

from store import Store
from theater.build import BuildResult, build_project
from theater.runtime import Theater
from tests._chains import CommitWaiter
from tests._chains import chain_problems as store_chain_problems

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
# CI points THEATER_TEST_BUILD_CACHE outside the clone, so builds survive between runs on the same machine.
CACHE = Path(os.environ.get("THEATER_TEST_BUILD_CACHE") or REPO / ".cache" / "theater-build")
WAIT = 30.0  # seconds any single wait may take


def copy_project(source: Path, target: Path) -> Path:
    """Copy an actor project without its build output and bytecode caches."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("build", "__pycache__", ".*"))
    return target


def build(root: Path, **options: Any) -> BuildResult:
    """``build_project`` with the shared build cache."""
    return build_project(root, cache_dir=CACHE, **options)


def seed_compiled(store: Store, engine: Any, digest: bytes) -> None:
    """Make the compiled form of a component available in ``store``: from the cache, else compile and keep it.

    A cached artifact is sealed with the home's key as the engine seals what it compiles (``store.artifacts.put``).
    """
    name = engine.artifact_name(digest)
    cached = CACHE / "compiled" / f"{blake3.blake3(name.encode()).hexdigest()[:32]}.bin"
    if cached.is_file():
        store.artifacts.put(name, cached.read_bytes())
        return
    engine.load(store, digest)
    artifact = store.artifacts.get(name)
    assert artifact is not None, f"the engine did not cache {name}"
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = cached.with_suffix(".tmp")
    tmp.write_bytes(artifact)
    tmp.replace(cached)


def seed_home(home: Path, result: BuildResult) -> None:
    """Put a built component and its compiled form into the home ``home`` (for code that opens its own Theater)."""
    with Theater(home) as theater:
        theater.store.blobs.put(result.wasm.read_bytes())
        seed_compiled(theater.store, theater.engine, result.digest)


def chain_problems(theater: Theater) -> list[str]:
    """Every reason a chain of the runtime's store fails integrity verification or replay from genesis."""
    return store_chain_problems(theater.store)


class Stage:
    """A ``Theater`` on a fresh home with helpers to start built projects and wait on the record."""

    def __init__(self, home: Path, **options: Any) -> None:
        self.theater = Theater(home, **options)
        self._waiter = CommitWaiter(self.theater.store, WAIT)

    def start(self, result: BuildResult, manifest: Path | None = None, **options: Any) -> str:
        """Start a built project's actor (its compiled form seeded first)."""
        self.theater.store.blobs.put(result.wasm.read_bytes())
        seed_compiled(self.theater.store, self.theater.engine, result.digest)
        return self.theater.start(manifest or result.project.manifest, **options)

    def until(self, predicate: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """Wait until ``predicate()`` is true (checked after each commit) and return its value."""
        return self._waiter.until(predicate, what, timeout)

    def events(self, actor: str, type_: str) -> list[Any]:
        return [e for e in self.theater.events(actor) if e.type == type_]


def prune_cache(max_age_days: float = 14.0) -> None:
    """Drop cached builds and compiled forms nobody has read for ``max_age_days`` (old SDK or tool versions)."""
    cutoff = time.time() - max_age_days * 86400
    for path in [*CACHE.glob("*.wasm"), *CACHE.glob("compiled/*.bin")]:
        try:
            if path.stat().st_atime < cutoff:
                path.unlink()
        except OSError:
            pass
