"""A real OTLP/HTTP trace receiver on loopback, for tests: what an OpenTelemetry collector's
port 4318 does with `POST /v1/traces`, the protobuf decoded with `opentelemetry-proto`."""

from __future__ import annotations

import base64
import gzip
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests.infra.servers import free_port


@dataclass(frozen=True)
class ReceivedSpan:
    name: str
    kind: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    resource: dict[str, Any]


def _values(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    """OTLP's `[{key, value: {stringValue|intValue|...}}]` as a plain mapping."""
    return {pair["key"]: next(iter(pair.get("value", {}).values()), None) for pair in pairs}


@dataclass
class OtlpReceiver:
    port: int
    requests: list[ExportTraceServiceRequest] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def spans(self) -> list[ReceivedSpan]:
        spans = []
        for request in list(self.requests):
            for resource_spans in MessageToDict(request).get("resourceSpans", []):
                resource = _values(resource_spans.get("resource", {}).get("attributes", []))
                for scope_spans in resource_spans.get("scopeSpans", []):
                    for span in scope_spans.get("spans", []):
                        spans.append(
                            ReceivedSpan(
                                name=span["name"],
                                kind=span.get("kind", ""),
                                trace_id=_hex(span["traceId"]),
                                span_id=_hex(span["spanId"]),
                                parent_span_id=_hex(span.get("parentSpanId", "")),
                                attributes=_values(span.get("attributes", [])),
                                resource=resource,
                            )
                        )
        return spans

    def wait_for(self, predicate: Any, timeout: float = 15.0) -> list[ReceivedSpan]:
        """The spans received once one of them satisfies `predicate`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            spans = self.spans()
            if any(predicate(span) for span in spans):
                return spans
            time.sleep(0.1)
        raise AssertionError(f"no such span within {timeout} s: {self.spans()}")


def _hex(value: str) -> str:
    """MessageToDict writes bytes fields in base64."""
    return base64.b64decode(value).hex() if value else ""


@contextmanager
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver(port=free_port())

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            receiver.requests.append(request)
            receiver.paths.append(self.path)
            answer = ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", receiver.port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
