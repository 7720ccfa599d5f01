"""The HTTP edge of `/mcp`, inside the SDK's app and around its bearer middleware.

The SDK's authentication middleware lets anything but an `AuthenticationError` escape, and
Starlette would answer it with a bare 500. This pure-ASGI layer (added outermost to the SDK's
middleware) answers what is not about the token the way the REST API does: `503` with
`Retry-After` when Better Auth's keys cannot be fetched or the database is unreachable. It also
tells the app's access log who called (`request.state.user_id`), as the REST auth dependency does.

The SDK reads the body itself and turns any error while reading into its own 500 (with a
traceback in the log), so a POST's body is read here first, through the app's body limits
(`web.body_limit`: 413 too large, 408 too slow, answered as the REST API answers them), and
handed to the SDK whole.

A stateless server has nothing to push on a `GET` stream: the SDK's legacy transport would hold
one open, idle, until the client leaves (and delay a graceful shutdown), so `GET /mcp` gets the
`405` with `Allow: POST` the spec provides for this (and the SDK's 2026-07-28 path answers).
"""

from __future__ import annotations

import json
import logging

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.jwks import KeySetUnavailable
from db import is_database_unavailable
from observability.metrics import database_unavailable

logger = logging.getLogger("todo.mcp")

KEYS_UNAVAILABLE = ("The keys to verify this token are unavailable", 30)
DATABASE_UNAVAILABLE = ("Database unavailable", 5)


class McpEdgeMiddleware:
    def __init__(self, app: ASGIApp, endpoint_path: str) -> None:
        self.app = app
        self.endpoint_path = endpoint_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] == "GET" and scope["path"] == self.endpoint_path:
            await _no_stream(send)
            return
        if scope["method"] == "POST":
            try:
                body = await _read_body(receive)
            except HTTPException as exc:
                await _refuse(send, exc.status_code, exc.detail, exc.headers or {})
                return
            if body is None:  # the client left
                return
            receive = _replaying(body, receive)
        started = False

        async def send_noting_user(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                user = scope.get("user")
                if isinstance(user, AuthenticatedUser):
                    scope.setdefault("state", {})["user_id"] = user.access_token.subject
            await send(message)

        try:
            await self.app(scope, receive, send_noting_user)
        except KeySetUnavailable:
            if started:
                raise
            logger.warning("MCP request refused: the Better Auth key set is unavailable")
            await _unavailable(send, *KEYS_UNAVAILABLE)
        except Exception as exc:
            if started or not is_database_unavailable(exc):
                raise
            logger.warning("database unavailable during an MCP request: %r", exc)
            database_unavailable("mcp")
            await _unavailable(send, *DATABASE_UNAVAILABLE)


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body (bounded by the app's limits, which raise), or None on a disconnect."""
    parts = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


def _replaying(body: bytes, receive: Receive) -> Receive:
    """`receive` for the SDK: the body read already, then the client's own messages."""
    delivered = False

    async def replay() -> Message:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _refuse(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *((name.lower().encode(), value.encode()) for name, value in headers.items()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _unavailable(send: Send, detail: str, retry_after: int) -> None:
    await _refuse(send, 503, detail, {"Retry-After": str(retry_after)})


async def _no_stream(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 405,
            "headers": [(b"allow", b"POST"), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
