"""The bounded HTTP protocol (`--http web.protocol:BoundedHTTPProtocol`), fed bytes directly:
what it answers, and how much of a hostile head ever reaches the parser."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from web.protocol import UVICORN_OPTIONS, BoundedHTTPProtocol, HeadLimits

LIMITS = HeadLimits(
    request_line_bytes=1024,
    head_bytes=4096,
    headers=20,
    head_timeout_seconds=0.2,
    body_timeout_seconds=0.3,
)
PIECE = 64 * 1024


async def echo_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 with the size of the body it read and its number of headers."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body", False):
            break
    content = json.dumps({"body": len(body), "headers": len(scope["headers"])}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", str(len(content)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": content})


async def answer_at_once(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answers 200 without reading the body (as a GET route does)."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 8000), "peername": ("127.0.0.1", 50000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class CountingParser:
    """The protocol's parser, counting the bytes it is given."""

    def __init__(self, parser: Any) -> None:
        self.parser = parser
        self.fed = 0

    def feed_data(self, data: bytes) -> None:
        self.fed += len(data)
        self.parser.feed_data(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.parser, name)


def connect(
    keep_alive: int = 5, app: Any = echo_app, limits: HeadLimits = LIMITS
) -> tuple[BoundedHTTPProtocol, Transport]:
    config = Config(app=app, lifespan="off", timeout_keep_alive=keep_alive)
    protocol = BoundedHTTPProtocol(config, ServerState(), {}, limits=limits)
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport


async def answered(transport: Transport, answers: int = 1) -> None:
    """Waits (up to 5 s, polling: the machine may be loaded) until `answers` heads are out."""
    for _ in range(500):
        if transport.written.count(b"HTTP/1.1") >= answers and b"\r\n\r\n" in transport.written:
            return
        await asyncio.sleep(0.01)


def status_of(transport: Transport) -> int:
    return int(transport.written.split(b" ", 2)[1])


def detail_of(transport: Transport) -> str:
    return json.loads(transport.written.split(b"\r\n\r\n", 1)[1])["detail"]


def request(target: bytes = b"/", headers: int = 2, body: bytes = b"") -> bytes:
    """A POST with `headers` headers in all (`host` and `content-length` included)."""
    lines = [b"POST " + target + b" HTTP/1.1", b"host: test"]
    lines += [b"x-h%d: v" % number for number in range(headers - 2)]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class TestWithinBounds:
    async def test_a_request_is_served(self) -> None:
        protocol, transport = connect()
        protocol.data_received(request(body=b"x" * 10_000))
        await answered(transport)
        assert status_of(transport) == 200
        assert not transport.closed

    async def test_a_head_in_many_pieces(self) -> None:
        protocol, transport = connect()
        for byte in request(headers=10):
            protocol.data_received(bytes([byte]))
        await answered(transport)
        assert status_of(transport) == 200

    async def test_a_head_and_a_large_body_in_one_read(self) -> None:
        """Only the head counts toward the head's limit, not the body read with it."""
        protocol, transport = connect()
        protocol.data_received(request(body=b"b" * (3 * LIMITS.head_bytes)))
        await answered(transport)
        assert status_of(transport) == 200
        assert json.loads(transport.written.split(b"\r\n\r\n", 1)[1])["body"] == 3 * 4096

    async def test_pipelined_requests(self) -> None:
        protocol, transport = connect()
        protocol.data_received(request(body=b"one") + request(body=b"two"))
        await answered(transport, answers=2)
        assert transport.written.count(b"HTTP/1.1 200") == 2

    async def test_the_exact_limits_are_allowed(self) -> None:
        protocol, transport = connect()
        target = b"/" + b"a" * (LIMITS.request_line_bytes - 1)
        protocol.data_received(request(target=target, headers=LIMITS.headers))
        await answered(transport)
        assert status_of(transport) == 200


class TestRefused:
    async def test_a_head_past_the_limit_is_431(self) -> None:
        protocol, transport = connect()
        protocol.data_received(b"GET / HTTP/1.1\r\nx-big: " + b"a" * LIMITS.head_bytes)
        assert status_of(transport) == 431
        assert detail_of(transport) == "The request head is larger than 4096 bytes"
        assert b"connection: close" in transport.written
        assert transport.closed

    async def test_a_50_mb_header_never_reaches_the_parser(self) -> None:
        """Refused once the limit is passed: the parser was given at most the limit."""
        protocol, transport = connect()
        parser = CountingParser(protocol.parser)
        protocol.parser = parser  # type: ignore[assignment]
        protocol.data_received(b"GET /health HTTP/1.1\r\nAuthorization: Bearer ")
        pieces = 0
        while not transport.closed and pieces < 50 * 1024 * 1024 // PIECE:
            protocol.data_received(b"a" * PIECE)
            pieces += 1
        assert status_of(transport) == 431
        assert pieces == 1
        assert parser.fed <= LIMITS.head_bytes

    async def test_a_long_request_target_is_414(self) -> None:
        protocol, transport = connect()
        protocol.data_received(b"GET /" + b"a" * LIMITS.request_line_bytes + b" HTTP/1.1\r\n")
        assert status_of(transport) == 414
        assert transport.closed

    async def test_too_many_headers_is_431(self) -> None:
        protocol, transport = connect()
        protocol.data_received(request(headers=LIMITS.headers + 1))
        assert status_of(transport) == 431
        assert detail_of(transport) == "The request has more than 20 headers"

    async def test_half_a_head_is_408_after_the_timeout(self) -> None:
        protocol, transport = connect()
        protocol.data_received(b"GET / HTTP/1.1\r\nhost: te")
        await asyncio.sleep(LIMITS.head_timeout_seconds * 2)
        assert status_of(transport) == 408
        assert transport.closed

    async def test_a_dripping_head_is_408_too(self) -> None:
        """The time counts from the head's first byte, not from the latest one."""
        protocol, transport = connect()
        for byte in b"GET / HTTP/1.1\r\nhost: test\r\nx-slow: aaaaaaaaaaaa":
            if transport.closed:
                break
            protocol.data_received(bytes([byte]))
            await asyncio.sleep(LIMITS.head_timeout_seconds / 10)
        assert status_of(transport) == 408

    async def test_a_second_request_gets_its_own_time(self) -> None:
        protocol, transport = connect()
        protocol.data_received(request())
        await asyncio.sleep(LIMITS.head_timeout_seconds * 1.5)
        assert not transport.closed
        protocol.data_received(request())
        await answered(transport, answers=2)
        assert transport.written.count(b"HTTP/1.1 200") == 2

    async def test_a_silent_connection_is_closed_like_an_idle_one(self) -> None:
        _protocol, transport = connect(keep_alive=0)
        await asyncio.sleep(0.05)
        assert transport.closed
        assert transport.written == b""

    async def test_a_malformed_head_is_still_uvicorns_400(self) -> None:
        protocol, transport = connect()
        protocol.data_received(b"NOT HTTP\r\n\r\n")
        assert status_of(transport) == 400


class TestBodyTheAppDoesNotRead:
    """The app bounds the bodies it reads (`web.body_limit`: 408); one it answers without
    reading is still taken in by the server, and a client dripping it kept the connection for
    good (each byte restarted the keep-alive wait)."""

    HEAD = b"GET / HTTP/1.1\r\nhost: test\r\ncontent-length: 1000\r\n\r\n"

    async def test_a_body_still_dripping_after_the_time_closes_the_connection(self) -> None:
        protocol, transport = connect(app=answer_at_once)
        protocol.data_received(self.HEAD + b"{")
        await answered(transport)
        assert status_of(transport) == 200
        for _ in range(20):
            if transport.closed:
                break
            protocol.data_received(b" ")
            await asyncio.sleep(LIMITS.body_timeout_seconds / 6)
        assert transport.closed

    async def test_a_body_complete_in_time_keeps_the_connection(self) -> None:
        """A longer bound here: the pause between the body's two halves must stay inside it
        even when the process is held up (a full garbage collection takes ~0.2 s under load)."""
        limits = dataclasses.replace(LIMITS, body_timeout_seconds=1.0)
        protocol, transport = connect(app=answer_at_once, limits=limits)
        protocol.data_received(self.HEAD + b"x" * 500)
        await asyncio.sleep(LIMITS.body_timeout_seconds / 6)
        protocol.data_received(b"x" * 500)
        await asyncio.sleep(limits.body_timeout_seconds * 1.5)
        assert not transport.closed
        protocol.data_received(request())
        await answered(transport, answers=2)
        assert transport.written.count(b"HTTP/1.1 200") == 2

    async def test_an_answer_still_running_ends_the_connection_when_complete(self) -> None:
        """The answer is not cut: the connection is not kept alive after it."""
        release = asyncio.Event()

        async def slow_answer(scope: dict[str, Any], receive: Any, send: Any) -> None:
            await release.wait()
            await answer_at_once(scope, receive, send)

        protocol, transport = connect(app=slow_answer)
        protocol.data_received(self.HEAD + b"{")
        await asyncio.sleep(LIMITS.body_timeout_seconds * 1.5)
        assert not transport.closed
        release.set()
        await answered(transport)
        assert status_of(transport) == 200
        assert transport.closed


class TestUpgradeRequests:
    """No route of the app is a WebSocket: an upgrade request is the plain HTTP request it also
    is. Handed to uvicorn's WebSocket implementation, a handshake header with a byte past ASCII
    was a 500 with a traceback in the log, or no answer at all."""

    @pytest.mark.parametrize(
        "header",
        [
            b"sec-websocket-key: \xc3\xa9t\xc3\xa9",
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: \xff",
            b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-protocol: \xff",
        ],
        ids=["key", "version", "protocol"],
    )
    async def test_a_websocket_handshake_is_answered_as_http(
        self, header: bytes, caplog: pytest.LogCaptureFixture
    ) -> None:
        protocol, transport = connect()
        with caplog.at_level(logging.DEBUG):
            protocol.data_received(
                b"GET / HTTP/1.1\r\nhost: test\r\nupgrade: websocket\r\n"
                b"connection: Upgrade\r\nsec-websocket-version: 13\r\n" + header + b"\r\n\r\n"
            )
            await answered(transport)
        assert status_of(transport) == 200
        assert json.loads(transport.written.split(b"\r\n\r\n", 1)[1])["body"] == 0
        assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_the_options_name_this_class() -> None:
    flag, target = UVICORN_OPTIONS
    module, name = target.split(":")
    assert flag == "--http"
    assert getattr(__import__(module, fromlist=[name]), name) is BoundedHTTPProtocol


@pytest.mark.parametrize(
    "field", ["request_line_bytes", "head_bytes", "headers", "body_timeout_seconds"]
)
def test_limits_come_from_the_settings(field: str) -> None:
    from settings import load_settings

    settings = load_settings(
        http_max_request_line_bytes=2048,
        http_max_head_bytes=8192,
        http_max_headers=50,
        http_body_timeout_seconds=7.5,
    )
    limits = HeadLimits.from_settings(settings)
    assert (
        getattr(limits, field)
        == {
            "request_line_bytes": 2048,
            "head_bytes": 8192,
            "headers": 50,
            "body_timeout_seconds": 7.5,
        }[field]
    )
