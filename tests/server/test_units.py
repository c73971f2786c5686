"""The server's pure parts, in process: client manifests, the error mapping, payloads, addresses, SSE parsing."""

from __future__ import annotations

import base64
import tomllib

import pytest

from replay.errors import GuestFault
from store.errors import AmbiguousPrefixError, InvalidInputError, NotFoundError, StoreFullError
from theater.cli.client import parse_sse
from theater.errors import (
    ActorNotFound,
    ActorNotRunning,
    ChannelClosed,
    ChannelNotFound,
    ChannelRejected,
    ExportMissing,
    ManifestError,
    MessageError,
    MessageTooLarge,
    ReceiveTimeout,
    ReplyAbandoned,
    ReplyTimeout,
    RequestCancelled,
    ResourceExhausted,
)
from theater.server import is_loopback, parse_address
from theater.porcelain import last_status, type_matches
from theater.porcelain.forms import bytes_json
from theater.server.errors import ApiError, error_body, status_of
from theater.server.manifests import client_manifest
from theater.server.wire import parse_bytes

DIGEST = bytes(range(32))


def test_a_client_manifest_takes_the_sent_component_hash():
    manifest = client_manifest('name = "a"\ncomponent = "/abs/a.wasm"\n', source="m.toml", component=DIGEST,
                               init_state=None)
    assert (manifest.component.kind, manifest.component.value) == ("hash", DIGEST)


def test_a_client_manifest_naming_a_path_needs_the_component():
    with pytest.raises(ManifestError, match=r"^m.toml: component: the server does not read files"):
        client_manifest('name = "a"\ncomponent = "a.wasm"\n', source="m.toml", component=None, init_state=None)


def test_a_state_file_is_never_read_and_is_recorded_inline():
    text = (
        'name = "a"  # a comment\ncomponent = "a.wasm"\ndurable = false\ninit_state = { file = "/etc/shadow" }\n'
        'description = "quote \\" and \\u00e9"\n[limits]\nfuel_per_call = 5\n[[handlers]]\ntype = "timing"\n'
        'config = { max_sleep_ms = 10 }\n[supervision]\nperiod_s = 2.5\n'
    )
    with pytest.raises(ManifestError, match=r"init_state.file: the server does not read files"):
        client_manifest(text, source="m.toml", component=DIGEST, init_state=None)
    manifest = client_manifest(text, source="m.toml", component=DIGEST, init_state=b"\x00seed")
    assert manifest.init_state == b"\x00seed"
    recorded = tomllib.loads(manifest.source_text)
    assert recorded["init_state"] == {"base64": base64.b64encode(b"\x00seed").decode()}
    original = tomllib.loads(text)
    assert {k: v for k, v in recorded.items() if k != "init_state"} == \
        {k: v for k, v in original.items() if k != "init_state"}


@pytest.mark.parametrize(("error", "status"), [
    (ActorNotFound("x"), 404),
    (ActorNotRunning("x", "stopped"), 409),
    (ManifestError("m", "f", "p"), 422),
    (MessageError("m"), 409),
    (MessageTooLarge("x", size=9, limit=8, declared=8, call_limit=16), 413),
    (ReplyTimeout("request to x", 0.5), 504),
    (ReceiveTimeout("c", 0.5), 504),
    (ChannelNotFound("c"), 404),
    (ChannelClosed("c"), 409),
    (ChannelRejected("x", b"no"), 409),
    (RequestCancelled("r", "x"), 409),
    (ExportMissing("x", "n", "e"), 409),
    (ReplyAbandoned("request to y", "x"), 409),
    (ResourceExhausted("memory", "x", "the system refused memory"), 503),
    (GuestFault("trap", "e", "d"), 422),
    (AmbiguousPrefixError("blob", "abcd", ["ab", "cd"]), 400),
    (NotFoundError("blob", "x"), 404),
    (InvalidInputError("actor id", "x", "a UUID"), 400),
    (StoreFullError("/p", "full"), 507),
    (ApiError(418, "Teapot", "short and stout"), 418),
    (RuntimeError("a bug"), 500),
])
def test_errors_map_to_statuses_in_one_place(error, status):
    assert status_of(error) == status
    assert error_body(error)["error"] == (error.name if isinstance(error, ApiError) else type(error).__name__)


def test_error_bodies_carry_structured_fields():
    assert error_body(GuestFault("fuel", "x.y", "out of fuel"))["kind"] == "fuel"
    assert error_body(ActorNotRunning("a", "failed", "trap"))["status"] == "failed"
    assert error_body(ManifestError("m", "limits.x", "bad"))["field"] == "limits.x"
    exhausted = error_body(ResourceExhausted("threads", "a", "max_threads=1 reached"))
    assert (exhausted["resource"], exhausted["actor"]) == ("threads", "a")


def test_payloads_round_trip():
    assert parse_bytes({"text": "é"}, "m") == "é".encode()
    assert parse_bytes({"base64": base64.b64encode(b"\xff").decode()}, "m") == b"\xff"
    assert bytes_json(b"\xff") == {"base64": "/w==", "text": None, "size": 1}
    assert bytes_json(None) is None
    for bad in ("text", {"text": 1}, {"text": "a", "base64": ""}, {"base64": "%%"}, None):
        with pytest.raises(ApiError):
            parse_bytes(bad, "m")


def test_type_patterns():
    assert type_matches("wasm/call", ())
    assert type_matches("wasm/call", ("wasm/*",)) and type_matches("wasm/call", ("x", "wasm/call"))
    assert not type_matches("wasm/call", ("wasm/result", "actor/*"))


def test_addresses():
    assert parse_address("127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert parse_address("[::1]:0") == ("::1", 0)
    for bad in ("9000", "host:", "host:99999", ":80"):
        with pytest.raises(ValueError, match="expected HOST:PORT"):
            parse_address(bad)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")


def test_chain_endings():
    assert [last_status(t) for t in ("actor/stop", "actor/exit", "wasm/error", "actor/failed", "wasm/result")] == \
        ["stopped", "stopped", "failed", "failed", "interrupted"]


def test_sse_parsing():
    lines = [b": ping\n", b"\n", b"id: 3\n", b"event: event\n", b'data: {"a":\n', b"data: 1}\n", b"\n",
             b'data: {"b": 2}\n', b"\n"]
    assert list(parse_sse(lines)) == [("event", {"a": 1}), ("message", {"b": 2})]
