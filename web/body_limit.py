"""Pure-ASGI middleware bounding request bodies: size (413) and time to arrive (408).

Under any server (the bounded protocol's head limits need uvicorn's `--http` option; these do
not): a `Content-Length` over the limit is refused up front, a streamed (chunked) body is counted
as it arrives, and a body still arriving `HTTP_BODY_TIMEOUT_SECONDS` after its head is refused
with 408 and `Connection: close`. Once the body is complete, `receive` is passed through as it
is (an event stream waits on it for the client's disconnect, for as long as it lasts).
"""

from __future__ import annotations

import asyncio
import json

from fastapi import HTTPException, status
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int) -> None:
        super().__init__(
            status_code=status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"Request body is larger than {limit} bytes",
        )


class BodyTooSlow(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(
            status_code=status.HTTP_408_REQUEST_TIMEOUT,
            detail=f"The request body did not arrive within {seconds:g} seconds",
            headers={"Connection": "close"},
        )


class BodyLimitMiddleware:
    """Reject by `Content-Length` up front; count streamed bodies and time them as they arrive."""

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_seconds: float) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_seconds = timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                if declared > self.max_bytes or declared < 0:
                    await self._refuse(send, declared < 0)
                    return
                break

        received = 0
        complete = False
        max_bytes, timeout = self.max_bytes, self.timeout_seconds
        deadline = asyncio.get_running_loop().time() + timeout

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:
                return await receive()
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow(timeout) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    raise BodyTooLarge(max_bytes)
                complete = not message.get("more_body", False)
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send, malformed: bool) -> None:
        if malformed:
            code, detail = 400, "Invalid Content-Length header"
        else:
            code, detail = 413, f"Request body is larger than {self.max_bytes} bytes"
        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
