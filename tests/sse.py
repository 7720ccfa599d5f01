"""Reading Server-Sent Events as a browser does (shared by the live-event tests)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.types import ASGIApp

WAIT = 10.0
# What uvicorn gives open responses (streams a test left open) before it cancels them.
GRACEFUL_SHUTDOWN_SECONDS = 2


@asynccontextmanager
async def served(app: ASGIApp) -> AsyncIterator[str]:
    """`app` on a loopback port of this event loop, its lifespan left to the caller (httpx's
    ASGI transport buffers whole responses; a stream needs a server). Yields the base URL."""
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(WAIT):
            while not server.started:
                if serving.done():
                    await serving
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


@dataclass
class Event:
    event: str | None = None
    id: str | None = None
    data: Any = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


class EventReader:
    """Parses a text/event-stream response into events (comment-only blocks included)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, within: float = WAIT) -> Event | None:
        """The next event, or None when the stream ended."""
        event = Event()
        seen = False
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line == "":
                    if seen:
                        return event
                    continue
                seen = True
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    event.comments.append(value)
                elif name == "data":
                    event.data = json.loads(value)
                elif name == "retry":
                    event.retry = int(value)
                else:
                    setattr(event, name, value)
        return event if seen else None

    async def next_event(self, within: float = WAIT) -> Event | None:
        """The next event that is not only a comment."""
        while True:
            event = await self.next(within)
            if event is None or event.event is not None:
                return event


class Stream:
    def __init__(self, http: httpx.AsyncClient, url: str, **kwargs: Any) -> None:
        self.http, self.url, self.kwargs = http, url, kwargs
        self.response: httpx.Response | None = None

    async def __aenter__(self) -> tuple[httpx.Response, EventReader]:
        request = self.http.build_request("GET", self.url, **self.kwargs)
        self.response = await self.http.send(request, stream=True)
        return self.response, EventReader(self.response)

    async def __aexit__(self, *_exc: object) -> None:
        assert self.response is not None
        await self.response.aclose()


class RawStream(asyncio.Protocol):
    """An event stream on a bare connection, for tests that open hundreds: counts what arrives
    (an httpx client per stream would cost the test more than the server)."""

    def __init__(self, host: str, port: int, path: str, headers: dict[str, str]) -> None:
        lines = [f"GET {path} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.received = bytearray()
        self.opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.BaseTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.received += data
        if self.opened.done():
            return
        refused = b"\r\n\r\n" in self.received and not self.received.startswith(b"HTTP/1.1 200")
        if refused or b": live" in self.received:
            self.opened.set_result(not refused)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)
        if not self.closed.done():
            self.closed.set_result(None)

    def events(self, name: str) -> int:
        return self.received.count(f"event: {name}\n".encode())

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def open_raw_streams(
    base_url: str, requests: list[tuple[str, dict[str, str]]], at_once: int = 200
) -> list[RawStream]:
    """One open stream per `(path, headers)`, at most `at_once` being opened at a time."""
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(at_once)
    streams = [RawStream(host, int(port), path, headers) for path, headers in requests]

    async def one(stream: RawStream) -> None:
        async with gate:
            await loop.create_connection(lambda: stream, host, int(port))
            async with asyncio.timeout(WAIT * 3):
                assert await asyncio.shield(stream.opened), bytes(stream.received[:300])

    await asyncio.gather(*(one(stream) for stream in streams))
    return streams
