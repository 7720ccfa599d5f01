"""Traces only when asked for: the switch, the resource's name, the exporters on offer, and the
raw path and query kept from every exported span. The spans themselves, exported to a real OTLP
receiver by a running server, are proved in tests/infra/test_observability.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from observability.setup import tracing_requested

PROJECT_ROOT = Path(__file__).resolve().parents[2]
# What only tracing would load: the SDK, the exporter, the instrumentations and their protobufs.
TRACING_ONLY = (
    "opentelemetry.sdk",
    "opentelemetry.exporter",
    "opentelemetry.instrumentation",
    "opentelemetry.proto",
)
LOADED = """
import json, sys
before = {name for name in sys.modules if name.startswith("opentelemetry")}
import main
from opentelemetry import trace
after = {name for name in sys.modules if name.startswith("opentelemetry")}
print(json.dumps({
    "by_fastapi_and_mcp": sorted(before), "by_the_app": sorted(after - before),
    "provider": type(trace.get_tracer_provider()).__name__,
}))
"""


class TestTheSwitch:
    @pytest.mark.parametrize(
        ("environ", "on"),
        [
            ({}, False),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
            ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
            ({"OTEL_TRACES_EXPORTER": "console"}, True),
            ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
            (
                {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
                False,
            ),
            ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, False),
            ({"OTEL_SERVICE_NAME": "todo"}, False),
        ],
    )
    def test_which_variables_ask_for_traces(self, environ: dict[str, str], on: bool) -> None:
        assert tracing_requested(environ) is on

    def test_unasked_nothing_of_the_sdk_is_imported(self) -> None:
        """FastAPI 0.165 and the MCP SDK import OpenTelemetry's API themselves (FastAPI for a
        tracing of its own); the app adds nothing to it and sets no tracer provider."""
        environ = {key: value for key, value in os.environ.items() if not key.startswith("OTEL_")}
        result = subprocess.run(
            [sys.executable, "-c", "import fastapi, mcp.server\n" + LOADED],
            cwd=PROJECT_ROOT,
            env=environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        loaded = json.loads(result.stdout.splitlines()[-1])
        assert loaded["by_the_app"] == []
        assert not [name for name in loaded["by_fastapi_and_mcp"] if name.startswith(TRACING_ONLY)]
        assert loaded["provider"] == "ProxyTracerProvider"


class TestTheSdk:
    """These import the SDK into this test process (harmless here; never into the app's)."""

    def test_the_service_name_of_the_environment_wins(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A name set in code would override `OTEL_SERVICE_NAME`: `todo-api` only without one."""
        from observability.tracing import service_resource

        monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
        monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
        assert service_resource(os.environ).attributes["service.name"] == "todo-api"
        monkeypatch.setenv("OTEL_SERVICE_NAME", "todo-eu")
        assert service_resource(os.environ).attributes["service.name"] == "todo-eu"
        monkeypatch.delenv("OTEL_SERVICE_NAME")
        monkeypatch.setenv(
            "OTEL_RESOURCE_ATTRIBUTES", "service.name=todo-us,deployment.environment=prod"
        )
        assert service_resource(os.environ).attributes["service.name"] == "todo-us"

    @pytest.mark.parametrize(
        ("environ", "reason"),
        [
            ({"OTEL_TRACES_EXPORTER": "zipkin"}, "otlp .OTLP over HTTP. or console"),
            ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
            ({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"}, "http/protobuf only"),
        ],
    )
    def test_what_it_cannot_export_is_said(self, environ: dict[str, str], reason: str) -> None:
        from observability.tracing import TracingError, span_exporter

        with pytest.raises(TracingError, match=reason):
            span_exporter(environ)

    def test_the_raw_target_never_leaves(self) -> None:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        from observability.tracing import WithoutRawTargets

        exported = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(WithoutRawTargets(exported)))
        attributes = {
            "http.route": "/api/{user_id}/tasks",
            "http.target": "/api/alice/tasks?q=secret",
            "http.url": "http://h/api/alice/tasks?q=secret",
            "url.path": "/api/alice/tasks",
            "url.query": "q=secret",
            "url.full": "http://h/api/alice/tasks?q=secret",
            "http.request.method": "GET",
        }
        with provider.get_tracer("test").start_as_current_span(
            "GET /api/{user_id}/tasks", attributes=attributes
        ):
            pass
        [span] = exported.get_finished_spans()
        assert dict(span.attributes or {}) == {
            "http.route": "/api/{user_id}/tasks",
            "http.request.method": "GET",
        }
        assert span.name == "GET /api/{user_id}/tasks"
