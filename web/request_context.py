"""Pure-ASGI middleware: request ids, security headers, one access-log line, last-resort 500.

- `X-Request-ID`: the client's when it is sane (1 to 128 of `A-Z a-z 0-9 . _ : -`), otherwise a
  new one; it is in `request.state.request_id` and on every response.
- `X-Content-Type-Options: nosniff` everywhere, `Cache-Control: no-store` on `/api/auth/*`.
- One `todo.access` line per request: method, route template (never the raw path or query, which
  may carry ids or secrets), status, duration, user id (set by the auth dependency), request id
  and, while tracing is on, trace id. The request id is also the context's (`observability`):
  every line logged while the request is served carries it in the JSON format.
- An exception nobody handled becomes `500 {"detail": "Internal server error", "request_id"}`;
  the traceback goes to the log only.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability.context import current_trace_id, enter_request, leave_request

access_logger = logging.getLogger("todo.access")
error_logger = logging.getLogger("todo.errors")

REQUEST_ID_HEADER = b"x-request-id"
SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
AUTH_PATH_PREFIX = "/api/auth/"
NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")
INTERNAL_ERROR = "Internal server error"


def _request_id(scope: Scope) -> str:
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER:
            if SANE_REQUEST_ID.fullmatch(value):
                return value.decode("ascii")
            break
    return uuid.uuid4().hex


def internal_error_body(request_id: str | None) -> dict[str, Any]:
    return {"detail": INTERNAL_ERROR, "request_id": request_id}


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        extra_headers = [(REQUEST_ID_HEADER, request_id.encode("ascii")), NOSNIFF]
        is_auth = scope["path"].startswith(AUTH_PATH_PREFIX)
        status_code = 500
        response_started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_code = message["status"]
                headers = [
                    header
                    for header in message.get("headers", [])
                    if header[0] != REQUEST_ID_HEADER
                ]
                headers.extend(extra_headers)
                if is_auth and not any(name == b"cache-control" for name, _ in headers):
                    headers.append(NO_STORE)
                message["headers"] = headers
            await send(message)

        entered = enter_request(request_id)
        try:
            await self.app(scope, receive, send_with_headers)
        except Exception:
            error_logger.exception(
                "unhandled error during %s %s (request id %s)",
                scope["method"],
                route_of(scope),
                request_id,
            )
            if response_started:
                raise
            await self._internal_error(send_with_headers, request_id)
        finally:
            if access_logger.isEnabledFor(logging.INFO):
                self._log(scope, state, status_code, started, request_id)
            leave_request(entered)

    @staticmethod
    async def _internal_error(send: Send, request_id: str) -> None:
        body = json.dumps(internal_error_body(request_id)).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 500,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _log(
        scope: Scope, state: dict[str, Any], status_code: int, started: float, request_id: str
    ) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        route = route_of(scope)
        user_id = state.get("user_id")
        trace_id = current_trace_id()
        access_logger.info(
            "method=%s route=%s status=%d duration_ms=%.2f user_id=%s request_id=%s trace_id=%s",
            scope["method"],
            route,
            status_code,
            duration_ms,
            user_id or "-",
            request_id,
            trace_id or "-",
            extra={
                "method": scope["method"],
                "route": route,
                "status": status_code,
                "duration_ms": duration_ms,
                "user_id": user_id,
                "request_id": request_id,
                "trace_id": trace_id,
            },
        )


def route_of(scope: Scope) -> str:
    """The matched route's template (`/api/{user_id}/tasks`): what logs name, never the raw
    path (it holds user ids)."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else "-"
