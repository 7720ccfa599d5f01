"""What every log line and span of one request share: its request id and its trace id.

`web.request_context` enters the request id for the request's duration; the JSON log lines read
it from here, and the trace id from whichever tracer is installed. Nothing of OpenTelemetry is
imported here: unless tracing is switched on (`observability.tracing` installs its hooks), the
trace id is None and entering a request touches no span.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar, Token

_request_id: ContextVar[str | None] = ContextVar("todo_request_id", default=None)
_trace_id_reader: Callable[[], str | None] | None = None
_span_annotator: Callable[[str], None] | None = None


def enter_request(request_id: str) -> Token[str | None]:
    """The request `request_id` is being served in this context (hand the token to
    `leave_request`); with tracing on, its server span gets the id as an attribute."""
    if _span_annotator is not None:
        _span_annotator(request_id)
    return _request_id.set(request_id)


def leave_request(token: Token[str | None]) -> None:
    _request_id.reset(token)


def current_request_id() -> str | None:
    return _request_id.get()


def current_trace_id() -> str | None:
    """The trace id of the span current in this context (32 hex digits), or None."""
    return _trace_id_reader() if _trace_id_reader is not None else None


def install_trace_hooks(
    trace_id_reader: Callable[[], str | None], span_annotator: Callable[[str], None]
) -> None:
    """Called by `observability.tracing` when it starts tracing."""
    global _trace_id_reader, _span_annotator
    _trace_id_reader, _span_annotator = trace_id_reader, span_annotator
