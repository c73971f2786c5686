"""The guest SDK's dispatch, errors and output, run in CPython with fake bindings (no component, no build).

Inside a component the SDK calls the modules componentize-py generates; here ``BINDINGS`` holds fakes and ``Err``
is the SDK's stand-in for ``componentize_py_types.Err``. Nothing of the sandbox is installed on a host.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from theater.sdk import (
    DEFER,
    Actor,
    CapabilityError,
    HostError,
    accept,
    messaging,
    reject,
    run,
    timing,
)
from theater.sdk import _actor, _exports, _host, _output, _sandbox
from theater.sdk._host import Err
from theater.sdk._trace import format_error


@dataclass
class ChannelAccept:
    accepted: bool
    message: bytes | None


class WitErrorType(enum.Enum):
    OPERATION_TIMEOUT = 0
    INTERNAL = 5


class FakeRuntime:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def log(self, msg: str) -> None:
        self.lines.append(msg)


@pytest.fixture
def host(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """Fake bindings for types and runtime; the actor registry emptied; the SDK marked as running."""
    runtime = FakeRuntime()
    monkeypatch.setitem(_host.BINDINGS, "types", SimpleNamespace(ChannelAccept=ChannelAccept))
    monkeypatch.setitem(_host.BINDINGS, "runtime", runtime)
    monkeypatch.setattr(_actor, "_registry", {})
    monkeypatch.setitem(_sandbox._flags, "live", True)
    return SimpleNamespace(runtime=runtime)


class Counter(Actor):
    def init(self) -> None:
        self.state = {"count": 0, "id": self.id}

    def on_send(self, message: bytes) -> None:
        if message == b"boom":
            self.explode()
        self.state["count"] += 1

    def explode(self) -> None:
        raise ZeroDivisionError("no counting today")

    def on_request(self, message: bytes) -> Any:
        if message == b"later":
            self.state["waiting"] = self.request_id
            return DEFER
        if message == b"nothing":
            return None
        if message == b"exit":
            raise SystemExit(3)
        return str(self.state["count"])

    def on_channel_open(self, channel_id: str, message: bytes) -> Any:
        return {b"yes": True, b"no": False, b"hi": accept("hello"), b"why": reject(b"full")}.get(message, 42)

    def on_child_error(self, child_id: str, error: Any) -> None:
        self.state["child"] = [child_id, error.kind, error.data.decode()]


def test_init_gets_the_id_and_its_state_is_encoded_as_json(host: SimpleNamespace) -> None:
    run(Counter)
    assert _exports.ActorExport().init(None, ("a-1",)) == (b'{"count":0,"id":"a-1"}',)


def test_each_call_decodes_state_and_encodes_the_new_one(host: SimpleNamespace) -> None:
    run(Counter)
    client = _exports.MessageServerClientExport()
    (state,) = client.handle_send(b'{"count":4}', (b"tick",))
    assert state == b'{"count":5}'
    assert client.handle_request(state, ("r1", b"get")) == (b'{"count":5}', (b"5",))


def test_an_exception_becomes_err_with_the_traceback_of_the_actor_code(host: SimpleNamespace) -> None:
    run(Counter)
    with pytest.raises(Err) as caught:
        _exports.MessageServerClientExport().handle_send(b'{"count":4}', (b"boom",))
    text = caught.value.value
    assert text.startswith("Traceback (most recent call last):")
    assert "in on_send" in text and "in explode" in text
    assert text.endswith("ZeroDivisionError: no counting today")
    assert "dispatch" not in text, "the SDK's own dispatcher frame is left out"


def test_system_exit_is_caught_too(host: SimpleNamespace) -> None:
    run(Counter)
    with pytest.raises(Err, match="SystemExit: 3"):
        _exports.MessageServerClientExport().handle_request(b'{"count":0}', ("r", b"exit"))


def test_a_request_answered_with_none_is_an_error_with_a_hint(host: SimpleNamespace) -> None:
    run(Counter)
    with pytest.raises(Err, match=r"got NoneType \(did you forget a return\?\)"):
        _exports.MessageServerClientExport().handle_request(b'{"count":0}', ("r", b"nothing"))


def test_defer_answers_none_and_the_request_id_is_available(host: SimpleNamespace) -> None:
    run(Counter)
    state, (reply,) = _exports.MessageServerClientExport().handle_request(b'{"count":0}', ("req-9", b"later"))
    assert reply is None
    assert state == b'{"count":0,"waiting":"req-9"}'


@pytest.mark.parametrize(
    ("message", "accepted", "welcome"),
    [(b"yes", True, None), (b"no", False, None), (b"hi", True, b"hello"), (b"why", False, b"full")],
)
def test_channel_open_answers(host: SimpleNamespace, message: bytes, accepted: bool, welcome: bytes | None) -> None:
    run(Counter)
    _, (answer,) = _exports.MessageServerClientExport().handle_channel_open(b"{}", ("c1", message))
    assert answer == ChannelAccept(accepted=accepted, message=welcome)


def test_channel_open_rejects_other_answers_as_an_error(host: SimpleNamespace) -> None:
    run(Counter)
    with pytest.raises(Err, match="on_channel_open must return True, False, accept"):
        _exports.MessageServerClientExport().handle_channel_open(b"{}", ("c1", b"?"))


def test_child_errors_arrive_with_the_kind_as_in_wit(host: SimpleNamespace) -> None:
    run(Counter)
    error = SimpleNamespace(error_type=WitErrorType.OPERATION_TIMEOUT, data=b"slow")
    (state,) = _exports.SupervisorHandlersExport().handle_child_error(b"{}", ("kid", error))
    assert state == b'{"child":["kid","operation-timeout","slow"]}'


def test_unhandled_messages_fail_with_the_handler_to_override(host: SimpleNamespace) -> None:
    run(type("Quiet", (Actor,), {}))
    with pytest.raises(Err, match="Quiet does not handle one-way messages: override on_send"):
        _exports.MessageServerClientExport().handle_send(None, (b"x",))
    _, (answer,) = _exports.MessageServerClientExport().handle_channel_open(None, ("c", b""))
    assert answer.accepted is False


def test_state_codec_can_be_raw_bytes(host: SimpleNamespace) -> None:
    class Raw(Actor):
        def decode_state(self, raw: bytes) -> bytes:
            return raw

        def encode_state(self, value: bytes) -> bytes:
            return value

        def on_send(self, message: bytes) -> None:
            self.state = (self.state or b"") + message

    run(Raw)
    assert _exports.MessageServerClientExport().handle_send(b"\x00\xff", (b"!",)) == (b"\x00\xff!",)


def test_encode_state_must_give_bytes(host: SimpleNamespace) -> None:
    class Wrong(Actor):
        def encode_state(self, value: Any) -> Any:
            return "text"

        def on_send(self, message: bytes) -> None:
            self.state = 1

    run(Wrong)
    with pytest.raises(Err, match="encode_state must return bytes, got str"):
        _exports.MessageServerClientExport().handle_send(None, (b"",))


def test_a_host_err_becomes_host_error(host: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    def request(actor_id: str, msg: bytes) -> bytes:
        raise Err(f"no actor {actor_id}")

    monkeypatch.setitem(_host.BINDINGS, "message_server_host", SimpleNamespace(request=request))
    with pytest.raises(HostError, match="message-server-host.request: no actor nobody") as caught:
        messaging.request("nobody", "hi")
    assert caught.value.function == "message-server-host.request"


def test_a_missing_interface_names_the_world_import_and_the_handler(
    host: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(_host.BINDINGS, "timing", None)
    with pytest.raises(CapabilityError, match=r"add `import theater:simple/timing;` to the world in wit/world.wit"):
        timing.now()
    monkeypatch.setitem(_host.BINDINGS, "message_server_host", None)
    with pytest.raises(CapabilityError, match=re.escape("a [[handlers]] entry of type 'message-server'")):
        messaging.send("a", b"b")


def test_messages_must_be_bytes_or_text(host: SimpleNamespace, monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[tuple[str, bytes]] = []
    monkeypatch.setitem(_host.BINDINGS, "message_server_host", SimpleNamespace(send=lambda a, m: sent.append((a, m))))
    messaging.send("a", "héllo")
    assert sent == [("a", "héllo".encode())]
    with pytest.raises(TypeError, match="a message must be bytes or str, got int"):
        messaging.send("a", 5)  # type: ignore[arg-type]


def test_output_becomes_one_log_call_per_line_and_partial_lines_at_the_end(host: SimpleNamespace) -> None:
    stream = _output.LogStream(None)
    stream.write("one\ntwo")
    stream.write(" halves\nthree")
    assert host.runtime.lines == ["one", "two halves"]
    stream.flush()
    assert host.runtime.lines == ["one", "two halves", "three"]


def test_output_before_the_component_runs_goes_to_the_build(
    host: SimpleNamespace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(_sandbox._flags, "live", False)
    seen: list[str] = []
    stream = _output.LogStream(SimpleNamespace(write=lambda t: seen.append(t) or len(t), flush=lambda: None))
    stream.write("at build time\n")
    assert seen == ["at build time\n"] and host.runtime.lines == []


def test_run_takes_only_actor_classes_and_only_one(host: SimpleNamespace) -> None:
    with pytest.raises(TypeError, match="run\\(\\) takes a subclass of theater_sdk.Actor"):
        run(object)  # type: ignore[arg-type]
    run(Counter)
    assert run(Counter) is Counter
    with pytest.raises(RuntimeError, match="already called with Counter"):
        run(type("Other", (Actor,), {}))


def test_no_registered_actor_is_an_err_naming_run(host: SimpleNamespace) -> None:
    with pytest.raises(Err, match="call theater_sdk.run\\(YourActor\\)"):
        _exports.MessageServerClientExport().handle_send(None, (b"",))


def test_tracebacks_drop_the_component_path_prefixes() -> None:
    try:
        exec(compile("raise KeyError('k')", "/1/app.py", "exec"))
    except KeyError as exc:
        text = format_error(exc, __file__)
    assert 'File "app.py", line 1' in text and "/1/" not in text
