"""OpenTelemetry traces: imported only when the environment asks for them
(`observability.setup.tracing_requested`: `OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER`); otherwise nothing of the SDK,
the exporter or the instrumentations is loaded.

- One server span per request from the FastAPI instrumentation (`opentelemetry-
  instrumentation-fastapi` 0.64b0 or later: older ones raise on FastAPI's included routers and
  answer 500 to CORS preflights), named by the route template, without the ASGI receive/send
  spans. FastAPI's own tracing (0.165 turns it on whenever a global tracer provider exists) is
  off (`main.create_app`), so each request has one server span, this one.
- A child span per statement from the SQLAlchemy instrumentation on the async engine's
  `sync_engine`. It declares SQLAlchemy < 2.1 and, without `skip_dep_check`, silently does
  nothing on 2.1. asyncpg is not instrumented (its spans would repeat every statement).
- The standard variables are the SDK's own: `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`
  (the resource is built from them, `todo-api` only when neither names the service: a name
  set in code would override them), `OTEL_EXPORTER_OTLP_*` (endpoint, headers, timeout, ...),
  `OTEL_TRACES_SAMPLER*`, `OTEL_BSP_*`, `OTEL_PYTHON_FASTAPI_EXCLUDED_URLS`.
- The raw path and query hold user ids: they never leave the process. Spans are named by the
  route template, and the attributes that carry the raw target (`http.target`, `http.url`,
  `url.path`, `url.query`, `url.full`) are dropped before export, the same rule as the access
  log. The request id is the server span's `todo.request_id`; the access line carries the trace
  id.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from observability.context import install_trace_hooks

logger = logging.getLogger("todo.tracing")

DEFAULT_SERVICE_NAME = "todo-api"
REQUEST_ID_ATTRIBUTE = "todo.request_id"
RAW_TARGET_ATTRIBUTES = frozenset({"http.target", "http.url", "url.path", "url.query", "url.full"})
SUPPORTED_PROTOCOL = "http/protobuf"
FLUSH_TIMEOUT_MILLIS = 5_000


class TracingError(RuntimeError):
    """The OTEL_* variables ask for something this service cannot do; the message says what."""


def service_resource(environ: Mapping[str, str]) -> Resource:
    """The SDK's resource from the environment, named `todo-api` only when the environment
    names no service (`Resource.create` with a `service.name` overrides `OTEL_SERVICE_NAME`)."""
    named = environ.get("OTEL_SERVICE_NAME", "").strip() or any(
        pair.split("=", 1)[0].strip() == SERVICE_NAME
        for pair in environ.get("OTEL_RESOURCE_ATTRIBUTES", "").split(",")
    )
    return Resource.create({} if named else {SERVICE_NAME: DEFAULT_SERVICE_NAME})


def span_exporter(environ: Mapping[str, str]) -> SpanExporter:
    """`OTEL_TRACES_EXPORTER`: `otlp` (the default, over HTTP with protobuf) or `console`."""
    names = [
        name.strip().lower()
        for name in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")
        if name.strip()
    ] or ["otlp"]
    if names == ["console"]:
        return ConsoleSpanExporter()
    if names != ["otlp"]:
        raise TracingError(
            f"OTEL_TRACES_EXPORTER={environ['OTEL_TRACES_EXPORTER']}: this service exports "
            "traces with otlp (OTLP over HTTP) or console"
        )
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or SUPPORTED_PROTOCOL
    ).strip()
    if protocol != SUPPORTED_PROTOCOL:
        raise TracingError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol}: this service ships the OTLP exporter for "
            f"{SUPPORTED_PROTOCOL} only (a collector's port 4318)"
        )
    return OTLPSpanExporter()


def _without_raw_target(span: ReadableSpan) -> ReadableSpan:
    attributes = span.attributes or {}
    if RAW_TARGET_ATTRIBUTES.isdisjoint(attributes):
        return span
    return ReadableSpan(
        name=span.name,
        context=span.context,
        parent=span.parent,
        resource=span.resource,
        attributes={
            key: value for key, value in attributes.items() if key not in RAW_TARGET_ATTRIBUTES
        },
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


class WithoutRawTargets(SpanExporter):
    """Exports through `exporter` every span without the attributes that carry the raw path or
    query (the instrumentations set them from the request; they hold user ids)."""

    def __init__(self, exporter: SpanExporter) -> None:
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self.exporter.export([_without_raw_target(span) for span in spans])

    def shutdown(self) -> None:
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def _current_trace_id() -> str | None:
    context = trace.get_current_span().get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


def _annotate_server_span(request_id: str) -> None:
    span = trace.get_current_span()
    if span.is_recording():
        span.set_attribute(REQUEST_ID_ATTRIBUTE, request_id)


class Tracing:
    """The process's tracer provider (the global one: libraries that trace, such as the MCP
    SDK, join the same traces) and what it instruments."""

    _started: Tracing | None = None

    def __init__(self, provider: TracerProvider) -> None:
        self.provider = provider

    @classmethod
    def start(cls, environ: Mapping[str, str] = os.environ) -> Tracing:
        """Once per process (OpenTelemetry's global provider cannot be replaced)."""
        if cls._started is None:
            provider = TracerProvider(resource=service_resource(environ))
            provider.add_span_processor(
                BatchSpanProcessor(WithoutRawTargets(span_exporter(environ)))
            )
            trace.set_tracer_provider(provider)
            install_trace_hooks(_current_trace_id, _annotate_server_span)
            cls._started = cls(provider)
            logger.info("tracing on: %s", provider.resource.attributes.get(SERVICE_NAME))
        return cls._started

    def instrument_app(self, app: FastAPI) -> None:
        FastAPIInstrumentor.instrument_app(
            app, tracer_provider=self.provider, exclude_spans=["receive", "send"]
        )

    def instrument_engine(self, engine: AsyncEngine) -> None:
        """One `instrument()` call for the engine (the instrumentor is process-wide: a second
        call while instrumented is ignored, so `release_engine` undoes it when the app stops)."""
        SQLAlchemyInstrumentor().instrument(
            engine=engine.sync_engine, tracer_provider=self.provider, skip_dep_check=True
        )

    def release_engine(self) -> None:
        SQLAlchemyInstrumentor().uninstrument()

    def flush(self) -> Any:
        """Export what is buffered (a worker that stops sends its last spans first)."""
        return self.provider.force_flush(FLUSH_TIMEOUT_MILLIS)
