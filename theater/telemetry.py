"""OpenTelemetry traces and metrics of a runtime: optional, off unless a ``Telemetry`` is given to ``Theater``.

Traces: a span per export call (``wasm/call`` to its outcome) and, inside it, a child span per host call. A
message between actors carries the sending host call's trace context in its host-side envelope
(``theater.envelope``), so the receiver's export span is a child of the sender's ``send``/``request`` span and a
request that passes through three actors is one trace. The context never reaches a guest and is never recorded:
no actor's chain can hold it, forge it or depend on it (replay and verification are unchanged). A client of the
API may hand its own context in a W3C ``traceparent`` header on ``send`` and ``request``.

Metrics (instruments of meter ``theater``): ``theater.calls`` and ``theater.failures`` (export calls, and those that
failed or were answered with err; by actor name, export and fault kind), ``theater.host_calls``,
``theater.call.duration`` (s), ``theater.restarts`` (instances made again after a supervisor restart, by actor
name), ``theater.mailbox.depth`` (messages waiting, by actor name, observed when the metrics are read) and
``theater.commit.duration`` (s, one per group commit of the home's store).

Off costs one ``is None`` test per export call and per instance (the runtime holds ``None``); the OpenTelemetry
packages (the ``otel`` extra) are imported only when a ``Telemetry`` is made.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation
    from opentelemetry.trace import Span, TracerProvider

    from theater.envelope import Envelope

HostFunctions = dict[str, dict[str, Callable[..., Any]]]
TRACER = "theater"


class Telemetry:
    """Spans and metrics of one runtime, through the providers given (the OTLP exporter's, or tests' in-memory
    ones). ``shutdown`` flushes and closes them.

    Raises:
        ImportError: the OpenTelemetry SDK is not installed (``pip install 'theater[otel]'``).
    """

    def __init__(self, *, tracer_provider: TracerProvider, meter_provider: MeterProvider) -> None:
        from opentelemetry import context, propagate, trace

        self._context = context
        self._trace = trace
        self._propagate = propagate
        self._error = trace.StatusCode.ERROR
        self.tracer_provider = tracer_provider
        self.meter_provider = meter_provider
        self._tracer = tracer_provider.get_tracer(TRACER)
        meter = meter_provider.get_meter(TRACER)
        self._calls = meter.create_counter("theater.calls", unit="{call}", description="export calls")
        self._failures = meter.create_counter("theater.failures", unit="{call}",
                                              description="export calls that failed or were answered with err")
        self._host_calls = meter.create_counter("theater.host_calls", unit="{call}", description="host calls")
        self._duration = meter.create_histogram("theater.call.duration", unit="s", description="export calls")
        self._restarts = meter.create_counter("theater.restarts", unit="{restart}",
                                              description="instances made again by a supervisor's restart")
        self._commits = meter.create_histogram("theater.commit.duration", unit="s",
                                               description="group commits of the home's store")
        meter.create_observable_gauge("theater.mailbox.depth", callbacks=[self._observe_mailboxes],
                                      unit="{message}", description="messages waiting in mailboxes")
        self._routers: list[Any] = []

    @classmethod
    def otlp(cls, *, endpoint: str | None = None, headers: Mapping[str, str] | None = None,
             service_name: str = "theater", export_interval_s: float = 10.0) -> Telemetry:
        """Telemetry exported with OTLP over HTTP (protobuf) to ``endpoint`` (the collector's base URL, e.g.
        ``http://127.0.0.1:4318``; None: the exporter's default, ``$OTEL_EXPORTER_OTLP_ENDPOINT`` or
        ``http://localhost:4318``): spans in batches, metrics every ``export_interval_s`` seconds."""
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider as SdkMeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        base = endpoint.rstrip("/") if endpoint else None
        resource = Resource.create({"service.name": service_name})
        tracer_provider = SdkTracerProvider(resource=resource)
        tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(
            endpoint=None if base is None else f"{base}/v1/traces", headers=dict(headers or {}))))
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=None if base is None else f"{base}/v1/metrics", headers=dict(headers or {})),
            export_interval_millis=export_interval_s * 1000)
        meter_provider = SdkMeterProvider(resource=resource, metric_readers=[reader])
        return cls(tracer_provider=tracer_provider, meter_provider=meter_provider)

    # What the runtime calls.

    def watch(self, router: Any, store: Any) -> None:
        """Observe a runtime: its actors' mailboxes (``theater.mailbox.depth``) and its store's commits."""
        self._routers.append(router)
        store.add_commit_timing(self._committed)

    def start_call(self, actor: Any, export: str, envelope: Envelope | None) -> CallSpan:
        """Start the span of an export call, current on this thread until ``end``; its parent is the sender's
        context when a message brought it, else whatever span is current (none: a new trace)."""
        parent = None if envelope is None else envelope.trace
        attributes = {"theater.actor.id": str(actor.id), "theater.actor.name": actor.name, "theater.export": export}
        span = self._tracer.start_span(export, context=parent, attributes=attributes)
        token = self._context.attach(self._trace.set_span_in_context(span))
        return CallSpan(self, span, token, {"theater.actor.name": actor.name, "theater.export": export})

    def wrap_host(self, actor: Any, host: HostFunctions) -> HostFunctions:
        """The host functions of an instance, each run inside its own span (a child of the export call's)."""
        return {interface: {name: self._traced(f"{interface}/{name}", actor, fn) for name, fn in functions.items()}
                for interface, functions in host.items()}

    def capture(self) -> Any:
        """The current trace context (a message sent now carries it)."""
        return self._context.get_current()

    def extract(self, headers: Mapping[str, str]) -> Any:
        """The trace context a client sent (W3C ``traceparent``), or None when it sent none."""
        if "traceparent" not in headers:
            return None
        return self._propagate.extract(headers)

    def instantiated(self, actor: Any, reason: str) -> None:
        """Count an instance made again by a supervisor's restart."""
        if reason == "restart":
            self._restarts.add(1, {"theater.actor.name": actor.name})

    def shutdown(self) -> None:
        """Export what is pending and close the providers."""
        for provider in (self.tracer_provider, self.meter_provider):
            close = getattr(provider, "shutdown", None)
            if close is not None:
                close()

    # Inside.

    def _traced(self, name: str, actor: Any, fn: Callable[..., Any]) -> Callable[..., Any]:
        tracer, error, host_calls = self._tracer, self._error, self._host_calls
        attributes = {"theater.actor.id": str(actor.id), "theater.actor.name": actor.name}
        counted = {"theater.host_call": name}

        def traced(*args: Any) -> Any:
            with tracer.start_as_current_span(name, attributes=attributes) as span:
                result = fn(*args)
                if isinstance(result, dict) and "err" in result:
                    span.set_status(error, str(result["err"])[:200])
            host_calls.add(1, counted)
            return result

        return traced

    def _committed(self, seconds: float, writes: int) -> None:
        self._commits.record(seconds, {"theater.writes": "many" if writes >= 64 else "few"})

    def _observe_mailboxes(self, options: CallbackOptions) -> Iterable[Observation]:
        from opentelemetry.metrics import Observation

        depth: dict[str, int] = {}
        for router in self._routers:
            for actor in router.all():
                depth[actor.name] = depth.get(actor.name, 0) + actor.mailbox.waiting
        return [Observation(count, {"theater.actor.name": name}) for name, count in sorted(depth.items())]


class CallSpan:
    """The span of one export call, current on the calling thread until ``end``."""

    __slots__ = ("_telemetry", "_span", "_token", "_attributes", "_started", "_fault")

    def __init__(self, telemetry: Telemetry, span: Span, token: object, attributes: dict[str, str]) -> None:
        self._telemetry = telemetry
        self._span = span
        self._token = token
        self._attributes = attributes
        self._started = time.perf_counter()
        self._fault: str | None = None

    def failed(self, fault: Any) -> None:
        """The call failed (or was answered with err): mark the span and count it."""
        kind = str(fault.kind)
        self._fault = kind
        self._span.set_status(self._telemetry._error, f"{kind}: {str(fault.detail)[:200]}")
        self._span.set_attribute("theater.fault.kind", kind)
        self._telemetry._failures.add(1, {**self._attributes, "theater.fault.kind": kind})

    def end(self) -> None:
        """End the span and make the one before it current again; count the call and its duration."""
        telemetry = self._telemetry
        telemetry._context.detach(self._token)
        self._span.end()
        telemetry._calls.add(1, self._attributes)
        telemetry._duration.record(time.perf_counter() - self._started, self._attributes)


__all__ = ["CallSpan", "Telemetry"]
