"""Fixtures of the explorer's tests: a real ``theater server`` running the ping-pong and supervisor examples (built
with componentize-py, cached), a token-protected server, and a real Chromium driven by Playwright.

The browser is the system's (the Debian ``chromium`` package), never one Playwright downloads. Without it the
browser tests skip and say what to install, except in CI (``$CI`` set, as ``.ci/run`` does), where a missing
browser fails the run. Screenshots of every view go to ``$THEATER_TEST_ARTIFACTS/explorer`` when that is set,
else to ``explorer-screenshots`` under pytest's temporary directory.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.server._harness import Http, ServerProcess

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
TOKEN = "explorer-test-token-0123456789abcdef"
WAIT_MS = 30_000  # the longest any single browser wait may take


@dataclass(frozen=True, slots=True, kw_only=True)
class Stage:
    """A server running the examples, and their actors' ids."""

    server: ServerProcess
    http: Http
    ping: str
    pong: str
    supervisor: str
    worker: str


def _build_examples(root: Path) -> list[Any]:
    pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[test]'")
    from tests.sdk._support import EXAMPLES, build, copy_project

    return [build(copy_project(EXAMPLES / name, root / name)) for name in ("ping-pong/pong", "ping-pong/ping",
                                                                             "supervisor")]


def _seed(home: Path, results: list[Any]) -> None:
    from tests.sdk._support import seed_home

    for result in results:
        seed_home(home, result)  # the compiled forms, so the server compiles nothing


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stage]:
    """A server on a fresh home with ping and pong (3 rallies played) and a supervisor with one worker that crashed
    once and was restarted."""
    root = tmp_path_factory.mktemp("explorer")
    results = _build_examples(root / "projects")
    home = root / "home"
    _seed(home, results)
    server = ServerProcess(home).start()
    try:
        pong_result, ping_result, supervisor_result = results
        pong = server.cli("start", str(pong_result.project.manifest), "--id-only").stdout.strip()
        ping = server.cli("start", str(ping_result.project.manifest), "--id-only").stdout.strip()
        server.cli("message", ping, f"play {pong} 3")
        boss = server.cli("start", str(supervisor_result.project.manifest), "--id-only").stdout.strip()
        worker = server.cli("message", boss, "start", "--request").stdout.strip()
        http = server.http()
        restarts = http.sse(f"/v1/actors/{worker}/subscribe?type=wasm/instantiate")
        assert next(restarts)[0] == "ready"
        crashed = server.cli("message", worker, "crash", "--request", check=False)
        assert crashed.returncode != 0, crashed.stdout
        kind, event = next(restarts)  # the supervisor brings it back: a new instance
        assert (kind, event["data"]["reason"]) == ("event", "restart"), event
        restarts.close()
        http.ok("POST", f"/v1/actors/{worker}/request", {"message": {"text": "work"}})
        yield Stage(server=server, http=http, ping=ping, pong=pong, supervisor=boss, worker=worker)
    finally:
        assert server.stop() == 0, server.stderr()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose API needs ``TOKEN``, on an empty home."""
    server = ServerProcess(tmp_path_factory.mktemp("explorer-token") / "home", env={"THEATER_TOKEN": TOKEN}).start()
    yield server
    assert server.stop() == 0, server.stderr()


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the browser tests write their screenshots."""
    given = os.environ.get("THEATER_TEST_ARTIFACTS")
    where = Path(given) / "explorer" if given else tmp_path_factory.getbasetemp() / "explorer-screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where


def chromium_path() -> Path | None:
    """The system's Chromium, if installed."""
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """A headless Chromium (the system's) under Playwright, shared by the session's browser tests."""
    executable = chromium_path()
    if executable is None:
        message = "the explorer's browser tests need Chromium: apt-get install -y chromium (Debian's package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    if os.environ.get("CI"):
        import playwright.sync_api  # noqa: F401  (in CI a missing Playwright fails the run too)
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install -e '.[test]' (it brings playwright)")
    with sync_api.sync_playwright() as driver:
        opened = driver.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context and page; fails the test on any error a page's script throws."""
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    context.set_default_timeout(WAIT_MS)
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))
    yield opened
    context.close()
    assert not errors, f"the page's script failed: {errors}"
