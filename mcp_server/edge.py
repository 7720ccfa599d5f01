"""The HTTP edge of `/mcp`, inside the SDK's app and around its bearer middleware.

The SDK's authentication middleware lets anything but an `AuthenticationError` escape, and
Starlette would answer it with a bare 500. This pure-ASGI layer (added outermost to the SDK's
middleware) answers what is not about the token the way the REST API does: `503` with
`Retry-After` when Better Auth's keys cannot be fetched or the database is unreachable. It also
tells the app's access log who called (`request.state.user_id`), as the REST auth dependency does.

A stateless server has nothing to push on a `GET` stream: the SDK's legacy transport would hold
one open, idle, until the client leaves (and delay a graceful shutdown), so `GET /mcp` gets the
`405` with `Allow: POST` the spec provides for this (and the SDK's 2026-07-28 path answers).
"""

from __future__ import annotations

import json
import logging

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth.jwks import KeySetUnavailable
from db import is_database_unavailable

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
            await _unavailable(send, *DATABASE_UNAVAILABLE)


async def _unavailable(send: Send, detail: str, retry_after: int) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 503,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", str(retry_after).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _no_stream(send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 405,
            "headers": [(b"allow", b"POST"), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})
