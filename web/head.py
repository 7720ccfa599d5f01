"""Pure-ASGI middleware: `HEAD` answered wherever `GET` is (RFC 9110 §9.3.2).

FastAPI's routes take the methods they declare, so a `HEAD` of a `GET` route was 405. Here a
`HEAD` request runs as the `GET` it mirrors, and leaves with that answer's status and headers
(`Content-Length` and `ETag` included) and no body. Once the body starts the request counts as
over: the app's later body messages are dropped and its next `receive` is a disconnect. An
open-ended answer (an event stream) should ask `head_only(scope)` and send no body at all:
otherwise it is cancelled wherever it stands (in the middle of a query, perhaps). Paths without
a `GET` answer as `GET` would (404, 405 with `Allow`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

HEAD_ONLY = "todo.head_only"


def head_only(scope: Scope) -> bool:
    """Whether this `GET` is a `HEAD` in disguise: only the status and headers will be sent."""
    return bool(scope.get(HEAD_ONLY))


class HeadAsGetMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":
            await self.app(scope, receive, send)
            return
        # In place, not a copy: the router's match (`scope["route"]`) must reach the access log.
        scope["method"] = "GET"
        scope[HEAD_ONLY] = True
        finished = False

        async def send_headers_only(message: Message) -> None:
            nonlocal finished
            if finished:
                return
            if message["type"] == "http.response.start":
                scope["method"] = "HEAD"  # the server writes no body for a HEAD
                await send(message)
            elif message["type"] == "http.response.body":
                finished = True
                await send({"type": "http.response.body", "body": b"", "more_body": False})
            else:
                await send(message)

        async def receive_until_finished() -> Message:
            if finished:
                return {"type": "http.disconnect"}
            return await receive()

        try:
            await self.app(scope, receive_until_finished, send_headers_only)
        finally:
            scope["method"] = "HEAD"
