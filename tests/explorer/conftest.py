"""Fixtures of the explorer's tests: a real ``theater server`` running the ping-pong and supervisor examples (built
with componentize-py, cached), a token-protected server, and a real Chromium driven by Playwright.

The browser is the system's (the Debian ``chromium`` package), never one Playwright downloads. Without it the
browser tests skip and say what to install, except in CI (``$CI`` set, as ``.ci/run`` does), where a missing
browser fails the run. Screenshots of every view go to ``$THEATER_TEST_ARTIFACTS/explorer`` when that is set,
else to ``test-artifacts/explorer`` in the repository (ignored by git).
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

REPO = Path(__file__).resolve().parents[2]
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


@dataclass(frozen=True, slots=True, kw_only=True)
class ForgedStage:
    """A server (not resuming) on a home holding pong's chain with one answer rewritten."""

    server: ServerProcess
    actor: str
    seq: int  # the rewritten event


@pytest.fixture(scope="session")
def forged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForgedStage]:
    """pong answered ``ping 0`` and ``ping 1``; its chain is then forged so that the first answer reads ``pong 9``
    (every hash valid: only re-execution can tell)."""
    from store import parse_actor_id
    from tests._forge import Draft, forge
    from theater.runtime import Theater

    root = tmp_path_factory.mktemp("explorer-forged")
    pong_result = _build_examples(root / "projects")[0]
    _seed(root / "home", [pong_result])
    with Theater(root / "home") as theater:
        pong = theater.start(pong_result.project.manifest)
        for n in range(2):
            assert theater.request(pong, f"ping {n}".encode()) == f"pong {n}".encode()
        theater.stop(pong)
        changed: list[int] = []

        def edit(drafts: list[Draft]) -> None:
            for seq, draft in enumerate(drafts):
                if draft.type == "wasm/result" and draft.data["output"] == [[{"some": b"pong 0"}]]:
                    draft.data["output"] = [[{"some": b"pong 9"}]]
                    changed.append(seq)
                    return

        made = forge(theater.store, parse_actor_id(pong), edit, root / "forged")
    _seed(made.home, [pong_result])
    server = ServerProcess(made.home, args=("--no-resume",)).start()
    yield ForgedStage(server=server, actor=pong, seq=changed[0])
    assert server.stop() == 0, server.stderr()


CLIENT = "theater:simple/message-server-client."
HOST = "theater:simple/message-server-host/"


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkedStage:
    """A server on a home of two hand-written chains whose deliveries record causal links."""

    server: ServerProcess
    sender: str
    receiver: str


@pytest.fixture(scope="session")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LinkedStage]:
    """``a`` sends ``hello`` to ``b`` (seq 2) and asks it ``q`` (seq 4, after its log at 3). ``b`` first gets a
    ``hello`` from the API (seq 1, no cause: a decoy for matching by content), then a's (seq 3, cause a#2), then
    a's request (seq 5, cause a#3: the event before the request)."""
    import uuid

    from store import EMPTY, Head, Store

    home = tmp_path_factory.mktemp("explorer-linked") / "home"
    a, b = uuid.uuid4(), uuid.uuid4()
    with Store(home / "store", durability="buffered") as store:
        def chain(actor: uuid.UUID, events: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
            head, hashes = EMPTY, []
            for seq, (kind, data) in enumerate(events):
                event = store.log.append(actor, kind, data, expected=head, timestamp_ms=1_700_000_000_000 + seq)
                head = Head(event.seq, event.hash)
                hashes.append(event.hash)
            return hashes

        def created(actor: uuid.UUID, name: str) -> tuple[str, dict[str, Any]]:
            return "actor/created", {"id": str(actor), "name": name, "component": bytes(32), "manifest": bytes(32)}

        sent = chain(a, [created(a, "a"), ("wasm/call", {"export": CLIENT + "handle-send", "params": [b"go"]}),
                         (HOST + "send", {"params": [str(b), b"hello"], "result": {"ok": None}}),
                         ("theater:simple/runtime/log", {"params": ["asking"], "result": None}),
                         (HOST + "request", {"params": [str(b), b"q"], "result": {"ok": b"r"}}),
                         ("wasm/result", {"export": CLIENT + "handle-send", "output": [], "state": None})])
        chain(b, [created(b, "b"),
                  ("wasm/call", {"export": CLIENT + "handle-send", "params": [b"hello"]}),
                  ("wasm/result", {"export": CLIENT + "handle-send", "output": [], "state": None}),
                  ("wasm/call", {"export": CLIENT + "handle-send", "params": [b"hello"], "cause": sent[2]}),
                  ("wasm/result", {"export": CLIENT + "handle-send", "output": [], "state": None}),
                  ("wasm/call", {"export": CLIENT + "handle-request", "params": ["r1", b"q"], "cause": sent[3]}),
                  ("wasm/result", {"export": CLIENT + "handle-request", "output": [[{"some": b"r"}]],
                                   "state": None})])
    server = ServerProcess(home, args=("--no-resume",)).start()
    yield LinkedStage(server=server, sender=str(a), receiver=str(b))
    assert server.stop() == 0, server.stderr()


BIG_CHAIN = 1_000_000


@pytest.fixture(scope="session")
def big_chain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server on a home holding one chain of ``BIG_CHAIN`` events (written straight to the store: calls and
    results alternating, as a busy actor's chain does)."""
    import uuid

    from store import EMPTY, Head, Store

    home = tmp_path_factory.mktemp("explorer-big") / "home"
    actor = uuid.uuid4()
    with Store(home / "store", durability="buffered") as store:
        head, pending = EMPTY, None
        created = {"id": str(actor), "name": "big", "component": bytes(32), "manifest": bytes(32)}
        for seq in range(BIG_CHAIN):
            if seq == 0:
                kind, data = "actor/created", created
            elif seq % 2:
                kind, data = "wasm/call", {"export": "big.tick", "params": [f"tick {seq}".encode()], "state": None}
            else:
                kind, data = "wasm/result", {"export": "big.tick", "output": [], "state": None}
            pending = store.log.append_async(actor, kind, data, expected=head, timestamp_ms=1_700_000_000_000 + seq)
            head = Head(pending.event.seq, pending.event.hash)
        assert pending is not None
        pending.wait()
    server = ServerProcess(home, args=("--no-resume",)).start()
    yield server, str(actor)
    assert server.stop() == 0, server.stderr()


WITNESS_NAME = "witness.example/<i>w1</i>"  # markup in a name is shown as text
NEEDLES = 250  # the events of the ``searchable`` chain whose text holds "needle": more than a page of the timeline


@dataclass(frozen=True, slots=True, kw_only=True)
class WitnessedStage:
    """A server that accepts cosignatures by ``cosigner``'s key, with one actor's chain to sign."""

    server: ServerProcess
    cosigner: Any  # store.checkpoint.Cosigner


@pytest.fixture(scope="module")
def witnessed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WitnessedStage]:
    """A server started with ``--witness-key`` of a witness key made here (the test co-signs as that witness)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from store.checkpoint import Cosigner
    from tests.components import wat
    from tests.server._harness import start_body

    cosigner = Cosigner(Ed25519PrivateKey.generate(), WITNESS_NAME)
    home = tmp_path_factory.mktemp("explorer-witnessed") / "home"
    server = ServerProcess(home, args=("--witness-key", cosigner.key.text)).start()
    server.http().ok("POST", "/v1/actors", start_body("counter", wat.counter_actor()), status=201)
    yield WitnessedStage(server=server, cosigner=cosigner)
    assert server.stop() == 0, server.stderr()


@pytest.fixture(scope="module")
def searchable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, str]]:
    """A server on a home holding one chain of 2 * 2 * ``NEEDLES`` calls and results, every other call's text
    holding "needle" (written straight to the store)."""
    import uuid

    from store import EMPTY, Head, Store

    home = tmp_path_factory.mktemp("explorer-search") / "home"
    actor = uuid.uuid4()
    with Store(home / "store", durability="buffered") as store:
        head = EMPTY
        created = {"id": str(actor), "name": "haystack", "component": bytes(32), "manifest": bytes(32)}
        events: list[tuple[str, dict[str, Any]]] = [("actor/created", created)]
        for n in range(2 * NEEDLES):
            text = f"needle {n}" if n % 2 == 0 else f"straw {n}"
            events += [("wasm/call", {"export": "hay.tick", "params": [text.encode()], "state": None}),
                       ("wasm/result", {"export": "hay.tick", "output": [], "state": None})]
        for seq, (kind, data) in enumerate(events):
            event = store.log.append(actor, kind, data, expected=head, timestamp_ms=1_700_000_000_000 + seq)
            head = Head(event.seq, event.hash)
    server = ServerProcess(home, args=("--no-resume",)).start()
    yield server, str(actor)
    assert server.stop() == 0, server.stderr()


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose API needs ``TOKEN``, on an empty home."""
    server = ServerProcess(tmp_path_factory.mktemp("explorer-token") / "home", env={"THEATER_TOKEN": TOKEN}).start()
    yield server
    assert server.stop() == 0, server.stderr()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Where the browser tests write their screenshots: ``$THEATER_TEST_ARTIFACTS/explorer``, else
    ``test-artifacts/explorer`` in the repository (ignored by git)."""
    where = Path(os.environ.get("THEATER_TEST_ARTIFACTS") or REPO / "test-artifacts") / "explorer"
    where.mkdir(parents=True, exist_ok=True)
    return where


def chromium_path() -> Path | None:
    """The system's Chromium, if installed."""
    if CHROMIUM.exists():
        return CHROMIUM
    found = shutil.which("chromium")
    return Path(found) if found else None


def require_chromium() -> Path:
    """The system's Chromium; without it the test skips saying what to install, or fails under ``$CI``."""
    executable = chromium_path()
    if executable is None:
        message = "the explorer's browser tests need Chromium: apt-get install -y chromium (Debian's package)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return executable


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """A headless Chromium (the system's) under Playwright, shared by a module's browser tests. Not by the whole
    session: Playwright's sync API keeps an event loop marked running on the main thread while it is open, and
    every later test that calls ``asyncio.run`` would fail."""
    executable = require_chromium()
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
