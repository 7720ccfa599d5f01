"""The bounds on what a client sends, on the wire, with uvicorn started as the README says (the
container runs the same options): a 50 MB header does not stall the process, half a head or
half a body does not keep a connection, oversized heads are refused before they are parsed."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.infra.apps import PROJECT_ROOT, RunningApp, running_app
from web.protocol import UVICORN_OPTIONS

pytestmark = pytest.mark.infra

HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
FIFTY_MB = 50 * 1024 * 1024
PIECE = 64 * 1024
HUGE_HEADER_START = b"GET /health HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "
# Generous against a loaded CI machine: /health answers in milliseconds, the stall this guards
# against held the loop for seconds.
PROMPT_SECONDS = 2.0


def quickstart_command() -> str:
    readme = (PROJECT_ROOT / "README.md").read_text()
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    [line] = [line for line in quickstart.splitlines() if line.startswith("uv run uvicorn")]
    return line.split("#", 1)[0].strip()


def test_the_readme_command_selects_the_bounded_protocol() -> None:
    command = quickstart_command()
    assert " ".join(UVICORN_OPTIONS) in command, command


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    directory: Path = tmp_path_factory.mktemp("bounds")
    with running_app(
        f"sqlite+aiosqlite:///{directory / 'bounds.db'}",
        directory,
        HTTP_HEAD_TIMEOUT_SECONDS=str(HEAD_TIMEOUT),
        HTTP_BODY_TIMEOUT_SECONDS=str(BODY_TIMEOUT),
        UVICORN_TIMEOUT_KEEP_ALIVE="1",
    ) as app:
        yield app


def _connect(server: RunningApp) -> socket.socket:
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return connection


def _read_all(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    try:
        while chunk := connection.recv(65536):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def _status(answer: bytes) -> int:
    match = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    assert match is not None, answer[:200]
    return int(match.group(1))


def _health_latency(server: RunningApp) -> float:
    started = time.perf_counter()
    with _connect(server) as connection:
        connection.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        answer = _read_all(connection)
    assert _status(answer) == 200, answer[:200]
    return time.perf_counter() - started


class TestFiftyMegabyteHeader:
    def test_health_keeps_answering_while_it_is_sent(self, server: RunningApp) -> None:
        sent = 0
        answer = b""
        done = threading.Event()

        def send_huge_header() -> None:
            nonlocal sent, answer
            with _connect(server) as connection:
                try:
                    connection.sendall(
                        b"GET /health HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer "
                    )
                    piece = b"a" * PIECE
                    while sent < FIFTY_MB:
                        connection.sendall(piece)
                        sent += PIECE
                except OSError:
                    pass  # the server closed the connection on us: what it should do
                answer = _read_all(connection)
            done.set()

        sender = threading.Thread(target=send_huge_header)
        sender.start()
        latencies = []
        while not done.is_set() or len(latencies) < 5:
            latencies.append(_health_latency(server))
        sender.join(timeout=60)
        assert max(latencies) < PROMPT_SECONDS, latencies
        # Refused once past the head's limit: most of the 50 MB was never even taken in.
        assert sent < FIFTY_MB
        if answer:
            assert _status(answer) == 431
        assert "Traceback" not in server.log()


class TestRefusedHeads:
    @pytest.mark.parametrize(
        ("head", "status"),
        [
            (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: test\r\n\r\n", 414),
            (b"GET / HTTP/1.1\r\nHost: test\r\nX-Big: " + b"b" * 33_000 + b"\r\n\r\n", 431),
            (
                b"GET / HTTP/1.1\r\nHost: test\r\n"
                + b"".join(b"X-H%d: v\r\n" % number for number in range(100))
                + b"\r\n",
                431,
            ),
        ],
        ids=["request-line-past-8-KiB", "head-past-32-KiB", "101-headers"],
    )
    def test_answered_and_closed(self, server: RunningApp, head: bytes, status: int) -> None:
        with _connect(server) as connection:
            connection.sendall(head)
            answer = _read_all(connection)
        assert _status(answer) == status
        assert b"connection: close" in answer.lower()
        assert answer.endswith(b"}")  # a JSON detail

    def test_half_a_head_is_408_then_closed(self, server: RunningApp) -> None:
        with _connect(server) as connection:
            connection.sendall(b"GET /health HTTP/1.1\r\nHost: test\r\nX-Slow: ")
            answer = _read_all(connection)
        assert _status(answer) == 408
        assert b"did not arrive within 1 seconds" in answer

    def test_a_silent_connection_is_closed(self, server: RunningApp) -> None:
        with _connect(server) as connection:
            assert _read_all(connection) == b""


class TestSlowBody:
    def test_half_a_body_is_408_then_closed(self, server: RunningApp) -> None:
        with _connect(server) as connection:
            connection.sendall(
                b"POST /api/auth/login HTTP/1.1\r\nHost: test\r\n"
                b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
                b'{"email": '
            )
            answer = _read_all(connection)
        assert _status(answer) == 408
        assert b"The request body did not arrive within 1 seconds" in answer

    def test_a_body_the_app_does_not_read_cannot_drip_forever(self, server: RunningApp) -> None:
        """/health answers without reading the body; a byte every 0.3 s kept the connection
        past the keep-alive wait (1 s here) for as long as the client liked."""
        with _connect(server) as connection:
            connection.sendall(
                b"GET /health HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n{"
            )
            connection.settimeout(0.3)
            received, started = b"", time.monotonic()
            while time.monotonic() - started < 10 * BODY_TIMEOUT:
                try:
                    connection.sendall(b" ")
                    chunk = connection.recv(65536)
                except TimeoutError:
                    continue
                except OSError:
                    break
                if not chunk:
                    break
                received += chunk
            closed_after = time.monotonic() - started
        assert _status(received) == 200
        assert closed_after < 10 * BODY_TIMEOUT
