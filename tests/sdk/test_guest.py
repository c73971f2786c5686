"""The SDK inside a real component: exceptions become an ``err`` the actor answers (``wasm/err-answer``, the
actor going on) with their traceback in the chain, output becomes
log events, and what would trap under ``--stub-wasi`` raises a Python error instead."""

from __future__ import annotations

from pathlib import Path

import pytest

from theater.build import BuildResult
from theater.errors import ErrAnswered, GuestFault

from ._support import Stage, build

pytestmark = [pytest.mark.integration]
pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")

PROBE = '''
import logging
import random

from theater_sdk import Actor, CapabilityError, HostError, messaging, run, timing

log = logging.getLogger("probe")


def inner(n):
    raise ValueError(f"bad value {n}")


class Probe(Actor):
    def init(self):
        self.state = {"n": 0}

    def on_send(self, message):
        self.state["n"] += 1

    def on_request(self, message):
        command = message.decode()
        if command == "count":
            return str(self.state["n"])
        if command == "raise":
            inner(self.state["n"])
        if command == "output":
            print("a")
            print("b", end="")
            log.warning("w %d", 1)
            return "ok"
        if command == "log-exception":
            try:
                inner(0)
            except ValueError:
                log.exception("caught it")
            return "ok"
        if command == "clock":
            import time
            return str(time.time())
        if command == "file":
            return open("/etc/hostname").read()
        if command == "lazy-import":
            import decimal
            return str(decimal.Decimal(1))
        if command == "exit":
            raise SystemExit(2)
        if command == "nothing":
            return None
        if command == "host-error":
            try:
                messaging.request("00000000-0000-4000-8000-000000000000", b"hi")
            except HostError as exc:
                return f"{type(exc).__name__} {exc.function}"
        if command == "capability":
            try:
                timing.now()
            except CapabilityError as exc:
                return str(exc)
        if command == "random":
            return repr(random.random())
        return "?"


run(Probe)
'''

WORLD = '''package test:probe;

world probe {
    import theater:simple/runtime;
    import theater:simple/message-server-host;

    export theater:simple/actor;
    export theater:simple/message-server-client;
}
'''

MANIFEST = '''name = "probe"
component = "build/probe.wasm"

[[handlers]]
type = "message-server"
'''


@pytest.fixture
def probe(tmp_path: Path) -> BuildResult:
    root = tmp_path / "probe"
    (root / "wit").mkdir(parents=True)
    (root / "app.py").write_text(PROBE)
    (root / "wit" / "world.wit").write_text(WORLD)
    (root / "manifest.toml").write_text(MANIFEST)
    return build(root)


def fails(stage: Stage, actor: str, request: bytes) -> GuestFault:
    with pytest.raises(GuestFault) as caught:
        stage.theater.request(actor, request)
    return caught.value


def test_an_exception_is_an_err_answer_with_its_traceback_and_the_actor_goes_on(
    stage: Stage, probe: BuildResult
) -> None:
    theater = stage.theater
    actor = stage.start(probe)
    theater.send(actor, b"one")
    theater.send(actor, b"two")
    fault = fails(stage, actor, b"raise")
    assert isinstance(fault, ErrAnswered) and fault.kind == "err"
    assert str(fault).startswith(f"actor {actor} (probe) answered message-server-client.handle-request with err: ")
    [answer] = stage.events(actor, "wasm/err-answer")
    assert not stage.events(actor, "wasm/error")
    detail = answer.data["detail"]
    assert detail == fault.detail
    assert detail.startswith("Traceback (most recent call last):")
    assert 'File "app.py", line 11, in inner' in detail and 'raise ValueError(f"bad value {n}")' in detail
    assert detail.endswith("ValueError: bad value 2")
    assert theater.status(actor) == "running"
    theater.send(actor, b"three")
    assert theater.request(actor, b"count") == b"3"


def test_print_and_logging_become_log_events_in_order(stage: Stage, probe: BuildResult) -> None:
    actor = stage.start(probe)
    assert stage.theater.request(actor, b"output") == b"ok"
    assert stage.theater.request(actor, b"log-exception") == b"ok"
    logs = [e.data["params"][0] for e in stage.events(actor, "theater:simple/runtime/log")]
    assert logs[:3] == ["a", "b", "WARNING probe: w 1"]
    assert logs[3].startswith("ERROR probe: caught it\nTraceback (most recent call last):")
    assert logs[3].endswith("ValueError: bad value 0") and 'File "app.py", line 11, in inner' in logs[3]


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (b"clock", "SandboxError: time.time() is not available inside an actor: use theater_sdk.timing.now()"),
        (b"file", "SandboxError: open() is not available inside an actor: an actor has no file system"),
        (b"lazy-import", "ImportError: module 'decimal' was not imported when the actor was built"),
        (b"exit", "SystemExit: 2"),
        (b"nothing", "on_request must return bytes or str, or DEFER to answer later; got NoneType"),
    ],
)
def test_what_would_trap_is_an_err_naming_the_cause(
    stage: Stage, probe: BuildResult, request_: bytes, message: str
) -> None:
    actor = stage.start(probe)
    fault = fails(stage, actor, request_)
    assert fault.kind == "err", fault.detail
    assert message in fault.detail
    assert "theater_sdk/_sandbox.py" not in fault.detail


def test_host_errors_and_missing_capabilities_are_python_exceptions(stage: Stage, probe: BuildResult) -> None:
    actor = stage.start(probe)
    assert stage.theater.request(actor, b"host-error") == b"HostError message-server-host.request"
    answer = stage.theater.request(actor, b"capability").decode()
    assert "does not import theater:simple/timing" in answer and "type 'timing'" in answer


def test_pythons_own_random_is_seeded_at_build_time(stage: Stage, probe: BuildResult) -> None:
    first = stage.start(probe)
    second = stage.start(probe)
    assert stage.theater.request(first, b"random") == stage.theater.request(second, b"random")
