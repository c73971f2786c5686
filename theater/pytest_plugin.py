"""A pytest plugin for actor authors: fixtures that run an actor project under Theater, and recorded chains as tests.

Installed with Theater (the ``pytest11`` entry point ``theater``), so an actor project's tests use it with no
configuration. Fixtures:

- ``theater_project``: the actor project under test (the directory holding ``manifest.toml``: ``--theater-project``
  or the ini option ``theater_project``, else the first such directory from the test file upwards);
- ``theater_build`` (per session): the project built with componentize-py (``theater build``'s cache: unchanged
  sources are not rebuilt; ``--theater-build-cache`` or ``$THEATER_BUILD_CACHE`` shares builds between projects);
- ``theater_home``: a fresh, empty Theater home (a temporary directory);
- ``theater_runtime``: a ``Theater`` on that home (closed after the test); ``theater_actor``: the project's actor
  started in it, as an ``ActorUnderTest`` (``send``, ``request``, ``state``, ``events``, ``assert_verifies``);
  ``theater_start(manifest=None, init_state=None)`` starts one with other arguments;
- ``theater_server``: ``theater server`` on a fresh home on a free port of 127.0.0.1 (``url``, ``cli(...)``).

``assert_chain_verifies(store, actor)`` fails a test unless the chain's hashes hold and re-execution reproduces it.

Recorded chains as tests: every bundle file (``*.bundle``, from ``theater chain export``) in a folder named
``chains`` inside the tests (``tests/chains/``), or in a folder given with ``--theater-bundles DIR``, is collected
as a test that replays it against the current build of the project with the rules of ``theater upgrade-check``:
it passes when the build gives the same host calls and answers at every recorded step (``identical``; add
``--theater-accept state-only`` to pass a new state encoding too). A bundle that cannot be read (forged,
truncated, not a bundle) fails its test with what is wrong; replay runs no host function, so a bundle never
reaches the world.

Compiled components (wasmtime's native code) are cached in ``compiled/`` of the build cache (else of the project's
``build/``), sealed into each fresh home with that home's key: a directory as trusted as the project itself.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import blake3
import pytest

from replay.upgrade import DEFAULT_ACCEPTED, ChainCheck, UpgradeChecker, Verdict
from store import Event, Store, parse_actor_id
from theater.build import BuildResult, build_project
from theater.porcelain import verify_actor
from theater.porcelain.upgrade import check_bundle
from theater.runtime import Theater

BUNDLE_SUFFIX = ".bundle"
CHAINS_DIR = "chains"
SERVER_START_S = 60.0
CLI = (sys.executable, "-c", "from theater.cli import main; main()")

__all__ = ["ActorUnderTest", "BundleItem", "TheaterServer", "assert_chain_verifies"]


# Options.


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("theater", "Theater actors")
    group.addoption("--theater-project", metavar="DIR", help="The actor project under test (default: the directory "
                    "holding manifest.toml, from the test file upwards).")
    group.addoption("--theater-bundles", metavar="DIR", action="append", default=[],
                    help="Replay every *.bundle in DIR against the current build, as a test (repeatable; "
                         "tests/chains/ is always collected).")
    group.addoption("--theater-accept", metavar="VERDICT", action="append", default=[],
                    choices=[str(Verdict.STATE_ONLY), str(Verdict.DIFFERENT)],
                    help="A bundle test also passes with this upgrade-check verdict (repeatable).")
    group.addoption("--theater-build-cache", metavar="DIR", help="Build cache shared between projects "
                    "(default: $THEATER_BUILD_CACHE).")
    parser.addini("theater_project", "The actor project under test (a path from the rootdir).")
    parser.addini("theater_accept", "Upgrade-check verdicts a bundle test passes with besides identical.",
                  type="args", default=[])


def _project_of(config: pytest.Config, start: Path) -> Path:
    """The project directory: the option, the ini value, else the first directory from ``start`` up holding a
    ``manifest.toml`` (else from the directory pytest was started in up: a ``--theater-bundles`` folder may lie
    outside the project)."""
    given = config.getoption("theater_project") or config.getini("theater_project")
    if given:
        path = Path(given)
        return (path if path.is_absolute() else config.rootpath / path).resolve()
    invoked = config.invocation_params.dir
    for directory in [start, *start.parents, invoked, *invoked.parents]:
        if (directory / "manifest.toml").is_file():
            return directory.resolve()
    raise pytest.UsageError(f"no actor project (manifest.toml) at or above {start}: give --theater-project")


def _build_cache(config: pytest.Config) -> Path | None:
    given = config.getoption("theater_build_cache") or os.environ.get("THEATER_BUILD_CACHE")
    return Path(given) if given else None


class _Builds:
    """One build per project per session."""

    def __init__(self, config: pytest.Config) -> None:
        self.cache = _build_cache(config)
        self.done: dict[Path, BuildResult] = {}

    def __call__(self, project: Path) -> BuildResult:
        if project not in self.done:
            self.done[project] = build_project(project, cache_dir=self.cache)
        return self.done[project]

    def compiled_dir(self, project: Path) -> Path:
        return (self.cache if self.cache is not None else project / "build") / "compiled"


_BUILDS = pytest.StashKey[_Builds]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_BUILDS] = _Builds(config)


# Recorded chains as tests.


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != BUNDLE_SUFFIX:
        return None
    chosen = [Path(d).resolve() for d in parent.config.getoption("theater_bundles")]
    if file_path.parent.name == CHAINS_DIR or any(file_path.resolve().is_relative_to(d) for d in chosen):
        return BundleFile.from_parent(parent, path=file_path)
    return None


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--theater-bundles`` folders outside the paths being collected are collected too."""
    seen = {item.path.resolve() for item in items if isinstance(item, BundleItem)}
    for directory in (Path(d) for d in config.getoption("theater_bundles")):
        if not directory.is_dir():
            raise pytest.UsageError(f"--theater-bundles {directory}: no such directory")
        for path in sorted(directory.glob(f"*{BUNDLE_SUFFIX}")):
            if path.resolve() not in seen:
                bundle = BundleFile.from_parent(session, path=path)
                items.extend(bundle.collect())


class BundleFile(pytest.File):
    """A bundle file: one test."""

    def collect(self) -> Iterator[BundleItem]:
        yield BundleItem.from_parent(self, name=self.path.name)


class BundleRefused(Exception):
    """A bundle's chain did not pass the upgrade check against the current build."""

    def __init__(self, check: ChainCheck, accept: frozenset[Verdict]) -> None:
        self.check = check
        self.accept = accept
        super().__init__(describe_check(check))


class BundleItem(pytest.Item):
    """Replays a bundle against the current build of the project with the upgrade check's rules."""

    def accepted(self) -> frozenset[Verdict]:
        named = [*self.config.getoption("theater_accept"), *self.config.getini("theater_accept")]
        return frozenset({*DEFAULT_ACCEPTED, *(Verdict(v) for v in named)})

    def runtest(self) -> None:
        project = _project_of(self.config, self.path.parent)
        build = self.config.stash[_BUILDS](project)
        check = check_bundle(UpgradeChecker(build.wasm.read_bytes()), self.path)
        accept = self.accepted()
        if not check.accepted(accept):
            raise BundleRefused(check, accept)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, BundleRefused):
            return f"{self.path.name}: {excinfo.value}"
        return str(super().repr_failure(excinfo))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"recorded chain {self.path.name}"


def describe_check(check: ChainCheck) -> str:
    """One chain's verdict in words, with the first difference."""
    text = {
        Verdict.IDENTICAL: "identical: the current build answers every recorded call as recorded",
        Verdict.STATE_ONLY: "state-only: the current build answers as recorded but encodes its state differently",
        Verdict.DIFFERENT: "different: the current build departs from the recorded chain",
    }.get(check.verdict) or f"{check.verdict}: {check.detail}"
    d = check.difference
    if d is not None:
        text += (f"\n  first difference at event {d.seq} ({d.event or 'past the end of the record'}), {d.what}:"
                 f"\n    recorded: {_brief(d.recorded)}\n    new:      {_brief(d.new)}")
    return text


def _brief(value: Any, width: int = 200) -> str:
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


# Fixtures.


@pytest.fixture(scope="session")
def _theater_builds(pytestconfig: pytest.Config) -> _Builds:
    return pytestconfig.stash[_BUILDS]


@pytest.fixture
def theater_project(request: pytest.FixtureRequest) -> Path:
    """The actor project under test (the directory holding its ``manifest.toml``)."""
    return _project_of(request.config, Path(request.path).parent)


@pytest.fixture
def theater_build(theater_project: Path, _theater_builds: _Builds) -> BuildResult:
    """The project built (once per session; an unchanged project is not rebuilt)."""
    return _theater_builds(theater_project)


@pytest.fixture
def theater_home(tmp_path: Path) -> Path:
    """A fresh, empty Theater home."""
    return tmp_path / "theater-home"


@pytest.fixture
def theater_runtime(theater_home: Path) -> Iterator[Theater]:
    """A Theater runtime on ``theater_home``, closed after the test."""
    with Theater(theater_home, durability="buffered") as theater:
        yield theater


@pytest.fixture
def theater_start(theater_runtime: Theater, theater_build: BuildResult,
                  _theater_builds: _Builds) -> Callable[..., ActorUnderTest]:
    """``theater_start(manifest=None, init_state=None)``: start the project's actor (or the one of another manifest
    of the project) in ``theater_runtime``, ``init`` run."""
    project = theater_build.project
    _seed_compiled(theater_runtime, theater_build, _theater_builds.compiled_dir(project.root))

    def start(manifest: Path | str | None = None, *, init_state: bytes | None = None) -> ActorUnderTest:
        path = project.manifest if manifest is None else project.root / manifest
        return ActorUnderTest(runtime=theater_runtime, id=theater_runtime.start(path, init_state=init_state))

    return start


@pytest.fixture
def theater_actor(theater_start: Callable[..., ActorUnderTest]) -> ActorUnderTest:
    """The project's actor, started (``init`` run) in ``theater_runtime``."""
    return theater_start()


@pytest.fixture
def theater_server(tmp_path: Path) -> Iterator[TheaterServer]:
    """``theater server`` on a fresh home, listening on a free port of 127.0.0.1; stopped after the test."""
    server = TheaterServer(home=tmp_path / "server-home")
    server.start()
    try:
        yield server
    finally:
        server.stop()


# Helpers.


def assert_chain_verifies(store: Store, actor: str | uuid.UUID) -> None:
    """Fail unless the actor's chain is intact and re-execution reproduces every recorded result."""
    report = verify_actor(store, parse_actor_id(actor) if isinstance(actor, str) else actor)
    if not report.integrity.ok:
        pytest.fail(f"the chain of {actor} is not intact: {report.integrity.problem}", pytrace=False)
    if report.replay is None or not report.replay.ok:
        divergence = None if report.replay is None else report.replay.divergence
        pytest.fail(f"re-execution of the chain of {actor} does not reproduce it: {divergence}", pytrace=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActorUnderTest:
    """An actor started by ``theater_actor``, with the operations a test needs."""

    runtime: Theater
    id: str

    def send(self, message: bytes) -> None:
        """A one-way message (``handle-send``); returns once it is queued."""
        self.runtime.send(self.id, message)

    def request(self, message: bytes, *, timeout: float | None = None) -> bytes:
        """A request (``handle-request``); its answer."""
        return self.runtime.request(self.id, message, timeout=timeout)

    def state(self) -> bytes | None:
        """The actor's current state, as recorded."""
        return self.runtime.state(self.id)

    def events(self) -> list[Event]:
        """Its chain, oldest first."""
        return self.runtime.events(self.id)

    def assert_verifies(self) -> None:
        """Fail unless its chain is intact and re-executes as recorded (see ``assert_chain_verifies``)."""
        assert_chain_verifies(self.runtime.store, self.id)


def _seed_compiled(theater: Theater, build: BuildResult, cache: Path) -> None:
    """Put the build in the home's blob store and its compiled form in the home's artifact cache: from ``cache``,
    else compiled now and kept there (a fresh home would otherwise compile the component in every test)."""
    theater.store.blobs.put(build.wasm.read_bytes())
    name = theater.engine.artifact_name(build.digest)
    cached = cache / f"{blake3.blake3(name.encode()).hexdigest()[:32]}.bin"
    if cached.is_file():
        theater.store.artifacts.put(name, cached.read_bytes())
        return
    theater.engine.load(theater.store, build.digest)
    artifact = theater.store.artifacts.get(name)
    if artifact is not None:
        cache.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp")
        partial.write_bytes(artifact)
        partial.replace(cached)


def _pump(stream: Any, lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


class TheaterServer:
    """``theater server`` in a subprocess on a free port of 127.0.0.1."""

    def __init__(self, *, home: Path) -> None:
        self.home = home
        self.address = ""
        self.process: subprocess.Popen[str] | None = None
        self._log = home.parent / f"{home.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self) -> None:
        """Start it and wait for its banner (the address it listens on)."""
        with self._log.open("w") as log:
            self.process = subprocess.Popen([*CLI, "--home", str(self.home), "server", "--address", "127.0.0.1:0"],
                                            stdout=subprocess.PIPE, stderr=log, text=True)
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        threading.Thread(target=_pump, args=(self.process.stdout, lines), daemon=True).start()
        try:
            banner = lines.get(timeout=SERVER_START_S)
        except queue.Empty:
            self.stop()
            raise RuntimeError(f"theater server did not start: {self._log.read_text()}") from None
        if "http://" not in banner:
            self.stop()
            raise RuntimeError(f"theater server did not start: {banner} {self._log.read_text()}")
        self.address = banner.split("http://", 1)[1].split()[0]

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``theater ARGS`` against this server (and its home)."""
        done = subprocess.run([*CLI, "--home", str(self.home), "--address", self.address, *args],
                              capture_output=True, text=True, timeout=120)
        if check and done.returncode != 0:
            pytest.fail(f"theater {' '.join(args)} exited {done.returncode}: {done.stderr}", pytrace=False)
        return done

    def stop(self) -> None:
        """SIGTERM, and wait for it to exit."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
