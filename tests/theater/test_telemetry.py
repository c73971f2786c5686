"""OpenTelemetry (``theater.telemetry``): a span per export call, host calls as its children, one trace across the
actors a request passes through, metrics; the trace context stays out of every chain."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the otel extra is needed: pip install -e '.[otel]'")

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from replay.errors import GuestFault
from store import Store
from tests.components import wat
from theater.porcelain import verify_actor
from theater.telemetry import Telemetry

MSG = ["message-server"]
REQUEST = "theater:simple/message-server-host/request"
HANDLE_SEND = "theater:simple/message-server-client.handle-send"
HANDLE_REQUEST = "theater:simple/message-server-client.handle-request"


class Recorded:
    """A ``Telemetry`` whose spans and metrics stay in memory."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.telemetry = Telemetry(tracer_provider=tracer_provider,
                                   meter_provider=MeterProvider(metric_readers=[self.reader]))

    def finished(self) -> list[ReadableSpan]:
        return list(self.spans.get_finished_spans())

    def metrics(self) -> dict[str, list[Any]]:
        """Every metric's data points, by name."""
        out: dict[str, list[Any]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    out.setdefault(metric.name, []).extend(metric.data.data_points)
        return out


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    opened = Recorded()
    yield opened
    opened.telemetry.shutdown()


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _only_one_trace(spans: list[ReadableSpan]) -> int:
    traces = {s.context.trace_id for s in spans}
    assert len(traces) == 1, f"{len(traces)} traces"
    return traces.pop()


def _assert_not_recorded(store: Store, trace_id: int) -> None:
    """No stored event of any actor holds the trace id, in bytes or in hex."""
    raw, text = trace_id.to_bytes(16, "big"), f"{trace_id:032x}".encode()
    for actor, _ in store.log.actors():
        for _, value in store.log.raw_events(actor):
            assert raw not in value and text not in value


def test_a_request_through_three_actors_is_one_trace(theaters, manifest, recorded):
    theater = theaters(telemetry=recorded.telemetry)
    c = theater.start(manifest("c", wat.echo_actor(), MSG))
    b = theater.start(manifest("b", wat.forwarder_actor(), MSG))
    a = theater.start(manifest("a", wat.forwarder_actor(), MSG))
    recorded.spans.clear()  # the starts (init calls) are traces of their own
    assert theater.request(a, b"\0".join([b.encode(), c.encode(), b"payload"])) == b"payload"
    spans = recorded.finished()
    trace_id = _only_one_trace(spans)
    roots = [s for s in spans if s.parent is None]
    assert [(r.name, r.attributes["theater.actor.id"]) for r in roots] == [(HANDLE_REQUEST, a)]
    hops = [roots[0]]
    for actor in (b, c):  # each actor's export span is a child of the request span of the one before it
        asked = [s for s in _children(spans, hops[-1]) if s.name == REQUEST]
        assert len(asked) == 1
        answered = _children(spans, asked[0])
        assert [(s.name, s.attributes["theater.actor.id"]) for s in answered] == [(HANDLE_REQUEST, actor)]
        hops.append(answered[0])
    assert len(spans) == 5
    _assert_not_recorded(theater.store, trace_id)
    for actor in (a, b, c):
        assert verify_actor(theater.store, uuid.UUID(actor)).ok


@pytest.mark.integration
def test_ping_pong_forms_one_trace_with_host_calls_as_children(theaters, recorded, tmp_path: Path):
    pytest.importorskip("componentize_py", reason="componentize-py is needed: pip install -e '.[build]'")
    from tests.sdk._support import EXAMPLES, build, copy_project, seed_compiled

    theater = theaters(telemetry=recorded.telemetry)
    ids = {}
    for name in ("pong", "ping"):
        result = build(copy_project(EXAMPLES / "ping-pong" / name, tmp_path / "projects" / name))
        theater.store.blobs.put(result.wasm.read_bytes())
        seed_compiled(theater.store, theater.engine, result.digest)
        ids[name] = theater.start(result.project.manifest)
    recorded.spans.clear()
    theater.send(ids["ping"], f"play {ids['pong']} 3".encode())
    spans = recorded.finished()
    trace_id = _only_one_trace(spans)
    (root,) = [s for s in spans if s.parent is None]
    assert (root.name, root.attributes["theater.actor.id"], root.attributes["theater.actor.name"]) == (
        HANDLE_SEND, ids["ping"], "ping")
    host = _children(spans, root)
    assert [s.name for s in host if s.name == REQUEST] == [REQUEST] * 3
    assert "theater:simple/runtime/log" in {s.name for s in host}  # ping's print
    for asked in (s for s in host if s.name == REQUEST):
        (answered,) = _children(spans, asked)
        assert (answered.name, answered.attributes["theater.actor.id"]) == (HANDLE_REQUEST, ids["pong"])
        assert answered.start_time >= asked.start_time and answered.end_time <= asked.end_time
    assert len(spans) == 1 + len(host) + 3
    _assert_not_recorded(theater.store, trace_id)
    metrics = recorded.metrics()
    calls = {(p.attributes["theater.actor.name"], p.attributes["theater.export"]): p.value
             for p in metrics["theater.calls"]}
    assert calls[("pong", HANDLE_REQUEST)] == 3 and calls[("ping", HANDLE_SEND)] == 1
    assert sum(p.value for p in metrics["theater.host_calls"]) >= 4
    assert sum(p.count for p in metrics["theater.commit.duration"]) >= 1
    assert sum(p.count for p in metrics["theater.call.duration"]) >= 4
    assert {p.attributes["theater.actor.name"] for p in metrics["theater.mailbox.depth"]} == {"ping", "pong"}


def test_failures_are_counted_and_marked_on_the_span(theaters, manifest, recorded):
    theater = theaters(telemetry=recorded.telemetry)
    faulty = theater.start(manifest("faulty", wat.faulty_actor(), MSG))
    recorded.spans.clear()
    with pytest.raises(GuestFault, match="trap|unreachable"):
        theater.request(faulty, b"trap")
    (span,) = [s for s in recorded.finished() if s.name == HANDLE_REQUEST]
    assert not span.status.is_ok and span.attributes["theater.fault.kind"]
    failures = recorded.metrics()["theater.failures"]
    assert sum(p.value for p in failures) == 1


def test_a_client_trace_context_becomes_the_parent(theaters, manifest, recorded):
    theater = theaters(telemetry=recorded.telemetry)
    echo = theater.start(manifest("echo", wat.echo_actor(), MSG))
    recorded.spans.clear()
    parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    context = recorded.telemetry.extract({"traceparent": parent})
    from theater.envelope import Envelope

    theater.router.deliver_request(theater.router.get(echo), b"hi", Envelope(trace=context)).result(10)
    (span,) = recorded.finished()
    assert f"{span.context.trace_id:032x}" == "0af7651916cd43dd8448eb211c80319c"
    assert f"{span.parent.span_id:016x}" == "b7ad6b7169203331"
    assert recorded.telemetry.extract({}) is None


class _Collector:
    """An OTLP/HTTP collector on 127.0.0.1 that keeps every body posted to it, by path."""

    def __init__(self) -> None:
        import http.server
        import threading

        bodies: dict[str, list[bytes]] = {}
        self.bodies = bodies

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                bodies.setdefault(self.path, []).append(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def test_server_with_otel_exports_the_clients_trace_over_otlp(tmp_path: Path):
    from tests.server._harness import ServerProcess, start_body

    collector = _Collector()
    server = ServerProcess(tmp_path / "home", args=("--otel", "--otel-endpoint", collector.url,
                                                    "--otel-header", "x-team=theater")).start()
    try:
        http = server.http()
        actor = http.ok("POST", "/v1/actors", start_body("echo", wat.echo_actor()), status=201)["id"]
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        reply = http.request("POST", f"/v1/actors/{actor}/request", {"message": {"text": "hi"}},
                             headers={"traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"})
        assert reply.status == 200
    finally:
        assert server.stop() == 0  # a clean stop exports what is pending
        collector.close()
    traces = b"".join(collector.bodies.get("/v1/traces", []))
    assert bytes.fromhex(trace_id) in traces  # the actor's span joined the client's trace
    assert HANDLE_REQUEST.encode() in traces
    assert collector.bodies.get("/v1/metrics"), "metrics are exported on shutdown too"


def test_otel_options_without_otel_are_refused(tmp_path: Path):
    from tests.server._harness import CLI, ROOT, cli_env
    import subprocess

    done = subprocess.run([*CLI, "--home", str(tmp_path / "h"), "server", "--otel-endpoint", "http://127.0.0.1:1"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, env=cli_env())
    assert done.returncode != 0 and "go with --otel" in done.stderr
