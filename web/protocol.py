"""uvicorn's httptools protocol with bounds on what a client sends before the app sees it:
`uv run uvicorn main:app --http web.protocol:BoundedHTTPProtocol` (the README's command and
the container's).

The parser uvicorn picks by default (httptools) accepts a request head of any size and waits
for it forever: a single 50 MB header held the event loop for seconds (httptools joins a
header's pieces by copying them again and again), and a client that sends half a head and
waits kept its connection for good. Here, from the settings:

- the request line (method, target, version) at most `HTTP_MAX_REQUEST_LINE_BYTES`, else 414;
- the whole head at most `HTTP_MAX_HEAD_BYTES` and `HTTP_MAX_HEADERS` headers, else 431: bytes
  are counted before they reach the parser, which never sees more than the limit;
- a head complete within `HTTP_HEAD_TIMEOUT_SECONDS` of its first byte, else 408;
- a new connection that sends nothing closed after `--timeout-keep-alive` (5 s), as an idle
  kept-alive one already is;
- a body still arriving `HTTP_BODY_TIMEOUT_SECONDS` after its head ends the connection. The app
  refuses a body it reads that late (`web.body_limit`, 408); this covers the body it answers
  without reading, which the server still takes in (a client dripping it, each byte restarting
  the keep-alive wait, kept the connection for good): closed at once if the answer is complete,
  else not kept alive after it;
- no WebSocket: no route of the app is one, so an upgrade request is answered as the plain HTTP
  request it also is (uvicorn's WebSocket implementation answered a handshake header with a
  byte past ASCII with a 500 and a logged traceback, or not at all).

A refusal is a JSON `{"detail": ...}` with `Connection: close`, written before any app code
runs (so no access line of the app's own: one INFO line of `todo.http` instead). The body's
bounds (size and time) are the app's (`web.body_limit`), so they hold under any server.

This relies on uvicorn's `HttpToolsProtocol` internals (its parser callbacks, `url`, `cycle`),
which tests/web/test_protocol.py and tests/infra/test_http_bounds.py exercise against the
uvicorn and httptools versions `uv.lock` pins: run them when upgrading either.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from http import HTTPStatus
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from settings import Settings, get_settings

logger = logging.getLogger("todo.http")

# The options that select it, for every command that starts the server.
UVICORN_OPTIONS = ("--http", "web.protocol:BoundedHTTPProtocol")


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """The bounds of a request's head, and the time its body may take after it."""

    request_line_bytes: int
    head_bytes: int
    headers: int
    head_timeout_seconds: float
    body_timeout_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> HeadLimits:
        return cls(
            request_line_bytes=settings.http_max_request_line_bytes,
            head_bytes=settings.http_max_head_bytes,
            headers=settings.http_max_headers,
            head_timeout_seconds=settings.http_head_timeout_seconds,
            body_timeout_seconds=settings.http_body_timeout_seconds,
        )


@lru_cache(maxsize=1)
def process_limits() -> HeadLimits:
    """The limits of this process's settings (the ones `main:app` was built with)."""
    return HeadLimits.from_settings(get_settings())


class HeadRefused(Exception):
    """Raised inside a parser callback to stop parsing a head that broke a limit."""

    def __init__(self, status: HTTPStatus, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class BoundedHTTPProtocol(HttpToolsProtocol):
    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        limits: HeadLimits | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.limits = limits or process_limits()
        # True from the end of one message (or the connection's start) to the end of the next
        # head; `head_bytes` counts what the parser was given meanwhile.
        self.in_head = True
        self.head_bytes = 0
        self.header_count = 0
        self.head_timer: asyncio.TimerHandle | None = None
        self.body_timer: asyncio.TimerHandle | None = None
        self.refusal: HeadRefused | None = None

    # Connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Idle until the first byte: closed like an idle kept-alive connection.
        self.timeout_keep_alive_task = self.loop.call_later(
            self.timeout_keep_alive, self.timeout_keep_alive_handler
        )

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        self._stop_body_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        while data and not self.transport.is_closing():
            if self.in_head:
                room = self.limits.head_bytes - self.head_bytes
                if room <= 0:
                    self._refuse(
                        HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                        f"The request head is larger than {self.limits.head_bytes} bytes",
                    )
                    return
                chunk, data = data[:room], data[room:]
                self.head_bytes += len(chunk)
            else:
                # A body, then possibly the start of a pipelined head: that head's first bytes
                # are not counted (at most one read), the rest of it is.
                chunk, data = data, b""
            if not self._feed(chunk):
                return

    def _feed(self, chunk: bytes) -> bool:
        """Parse `chunk`; False when the connection is done with (refused, broken, upgraded)."""
        try:
            self.parser.feed_data(chunk)
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()
            return False
        except httptools.HttpParserError:
            refusal, self.refusal = self.refusal, None
            if refusal is not None:
                self._refuse(refusal.status, refusal.detail)
            else:
                message = "Invalid HTTP request received."
                self.logger.warning(message)
                self.send_400_response(message)
            return False
        return True

    # Upgrades
    def _should_upgrade_to_ws(self) -> bool:
        return False

    def _unsupported_upgrade_warning(self) -> None:
        # uvicorn warns (twice, advising to install a WebSocket library) for every request that
        # asks for an upgrade; here that is no mistake, only a request served as HTTP.
        logger.debug("answered an upgrade request as plain HTTP")

    # Parser callbacks
    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.header_count = 0
        self._stop_head_timer()
        self.head_timer = self.loop.call_later(
            self.limits.head_timeout_seconds, self._head_timed_out
        )

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > self.limits.request_line_bytes:
            self._stop_parsing(
                HTTPStatus.REQUEST_URI_TOO_LONG,
                f"The request target is longer than {self.limits.request_line_bytes} bytes",
            )
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_count += 1
        if self.header_count > self.limits.headers:
            self._stop_parsing(
                HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE,
                f"The request has more than {self.limits.headers} headers",
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self.in_head = False
        super().on_headers_complete()
        self.body_timer = self.loop.call_later(
            self.limits.body_timeout_seconds, self._body_timed_out
        )

    def on_message_complete(self) -> None:
        self._stop_body_timer()
        super().on_message_complete()
        self.in_head = True
        self.head_bytes = 0

    # Refusals
    def _stop_parsing(self, status: HTTPStatus, detail: str) -> None:
        self.refusal = HeadRefused(status, detail)
        raise self.refusal

    def _stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _stop_body_timer(self) -> None:
        if self.body_timer is not None:
            self.body_timer.cancel()
            self.body_timer = None

    def _body_timed_out(self) -> None:
        self.body_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # closed once its answer is complete
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        logger.info(
            "closed the connection from %s: a request body still arriving %g seconds after "
            "its head",
            client,
            self.limits.body_timeout_seconds,
        )
        self.transport.close()

    def _head_timed_out(self) -> None:
        self.head_timer = None
        self._refuse(
            HTTPStatus.REQUEST_TIMEOUT,
            f"The request head did not arrive within {self.limits.head_timeout_seconds:g} seconds",
        )

    def _refuse(self, status: HTTPStatus, detail: str) -> None:
        """Answer `status` and close; while an earlier request's answer is still being written
        on this connection (pipelining), only close."""
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        logger.info("refused a request head from %s: %d %s", client, status.value, detail)
        if self.cycle is None or self.cycle.response_complete:
            self.transport.write(_refusal(status, detail, self.server_state.default_headers))
        self.transport.close()


def _refusal(status: HTTPStatus, detail: str, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode()]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode(),
        b"connection: close",
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body
