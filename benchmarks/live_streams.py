"""Live sync at scale: what open event streams cost one process, and a reconnect storm.

For each size N: a fresh uvicorn process (A) on a private PostgreSQL, one open
`GET /api/{user_id}/events` stream per user (N users), then 100 creates a second spread over the
users, first on A itself, then on a second process (B) so that the events travel through
LISTEN/NOTIFY; every event is checked to arrive exactly once on its user's stream. Printed per
size: A's memory per stream (resident set over the idle, warmed-up process, divided by N), the
time to open them all, the writes' p99 on A with no stream open and with the N open, the
fan-out p99 (from the write's 201 to the event on the stream) for writes on A and on B, and the
events lost or doubled.

Then the storm (`--storm`, at the largest size): A is stopped (SIGTERM ends its streams at
once), writes go on through B, and all of A's clients reconnect to B at once, each with the
`Last-Event-ID` of the last event it saw, as after an instance restart. Printed: the time until
every stream is open and has caught up with what it missed, the p99 of requests to another route
of B meanwhile (`GET …/tasks`, 20 a second) and the events lost or doubled.

The client is one process of raw asyncio connections (an `asyncio.Protocol` each, no HTTP
library per stream); it raises its file-descriptor limit, and the servers inherit it. At most
`--in-flight` streams are being opened at any moment (the listen backlog's size: more would be
dropped by the kernel and retried by TCP seconds later). The machine is shared: read the
figures as orders of magnitude and ratios.

    uv run python benchmarks/live_streams.py                       # 200, 2,000, 10,000 + storm
    uv run python benchmarks/live_streams.py --sizes 200 --storm 0 --seconds 5   # a quick look
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import resource
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import jwt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tasks.changelog import Cursor  # noqa: E402
from tests.infra.apps import alembic  # noqa: E402
from tests.infra.servers import free_port, postgres_server, wait_for_port  # noqa: E402
from web.protocol import UVICORN_OPTIONS  # noqa: E402

SECRET = "benchmark-shared-secret-that-is-long-enough-0123456789"
HOST = "127.0.0.1"
OPEN_TIMEOUT_SECONDS = 300.0
DRAIN_SECONDS = 10.0
PROBE_EVERY_SECONDS = 0.05
STORM_MISSED_WRITES = 1_000


def raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# ---- the servers ---------------------------------------------------------------------------


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    def rss_kib(self) -> int:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def cpu_seconds(self) -> float:
        """User and system CPU time the process has used so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 60) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)


def start_server(database_url: str, log_dir: Path, backlog: int) -> Server:
    port = free_port()
    log = log_dir / f"uvicorn-{port}.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "BETTER_AUTH_SECRET": SECRET,
        "ENVIRONMENT": "benchmark",
        "LOG_LEVEL": "WARNING",
    }
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "main:app",
        *UVICORN_OPTIONS,
        "--host",
        HOST,
        "--port",
        str(port),
        "--backlog",
        str(backlog),
        "--no-access-log",
    ]
    with log.open("wb") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=output)
    wait_for_port(port, alive=process)
    return Server(process, port, log)


# ---- the users -----------------------------------------------------------------------------


@dataclass(frozen=True)
class User:
    id: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def make_users(prefix: str, count: int) -> list[User]:
    """Frontend-style identities (no signup: the shared secret signs their tokens)."""
    now = datetime.now(UTC)
    users = []
    for number in range(count):
        sub = f"{prefix}-{number}"
        claims = {
            "sub": sub,
            "iat": int(now.timestamp()),
            "exp": now + timedelta(hours=3),
            "jti": uuid.uuid4().hex,
        }
        users.append(User(sub, jwt.encode(claims, SECRET, algorithm="HS256")))
    return users


# ---- one event stream, read without an HTTP library ---------------------------------------


class EventStream(asyncio.Protocol):
    """`GET …/events` on a raw connection: status, chunked body, SSE blocks."""

    def __init__(self, user: User, port: int, last_event_id: str | None) -> None:
        lines = [
            f"GET /api/{user.id}/events HTTP/1.1",
            f"Host: {HOST}:{port}",
            f"Authorization: Bearer {user.token}",
            "Accept: text/event-stream",
        ]
        if last_event_id is not None:
            lines.append(f"Last-Event-ID: {last_event_id}")
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.user = user
        self.transport: asyncio.Transport | None = None
        self.raw = bytearray()
        self.body = bytearray()
        self.status = 0
        self.in_body = False
        self.opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.ended: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # (title, event id, arrival) of every task event, in arrival order.
        self.events: list[tuple[str, str, float]] = []
        self.last_id = last_event_id
        self.waiting_for: set[str] = set()
        self.caught_up: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result(False)
        if not self.ended.done():
            self.ended.set_result(None)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        arrival = time.perf_counter()
        self.raw += data
        if not self.in_body:
            end = self.raw.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.raw[:end]).decode("latin-1")
            del self.raw[: end + 4]
            self.status = int(head.split(" ", 2)[1])
            if self.status != 200:
                self.opened.set_result(False)
                self.close()
                return
            self.in_body = True
        self._dechunk()
        while (end := self.body.find(b"\n\n")) >= 0:
            block = bytes(self.body[:end]).decode()
            del self.body[: end + 2]
            self._block(block, arrival)

    def _dechunk(self) -> None:
        while (line_end := self.raw.find(b"\r\n")) >= 0:
            size = int(self.raw[:line_end], 16)
            if len(self.raw) < line_end + 2 + size + 2:
                return
            self.body += self.raw[line_end + 2 : line_end + 2 + size]
            del self.raw[: line_end + 2 + size + 2]

    def _block(self, block: str, arrival: float) -> None:
        if not self.opened.done():
            self.opened.set_result(True)
            self._check_caught_up()
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            fields[name] = value
        if "event" not in fields:
            return
        title = json.loads(fields["data"]).get("title", "")
        self.events.append((title, fields["id"], arrival))
        self.last_id = fields["id"]
        self.waiting_for.discard(title)
        self._check_caught_up()

    def _check_caught_up(self) -> None:
        if not self.waiting_for and self.opened.done() and not self.caught_up.done():
            self.caught_up.set_result(None)


def refusals(streams: list[EventStream]) -> str:
    """Why the streams that did not open did not: `503: 850, no answer: 3`."""
    counted = Counter(
        str(stream.status) if stream.status else "no answer"
        for stream in streams
        if stream.status != 200
    )
    return ", ".join(f"{status}: {count}" for status, count in counted.most_common())


async def open_streams(
    users: list[User], port: int, in_flight: int, last_ids: dict[str, str] | None = None
) -> tuple[list[EventStream], float, int]:
    """Open one stream per user, at most `in_flight` being opened at a time: the streams, the
    seconds until all were open, and how many failed."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(in_flight)
    streams = [EventStream(user, port, (last_ids or {}).get(user.id)) for user in users]

    async def one(stream: EventStream) -> bool:
        async with gate:
            try:
                await loop.create_connection(lambda: stream, HOST, port)
                return await asyncio.wait_for(asyncio.shield(stream.opened), OPEN_TIMEOUT_SECONDS)
            except (OSError, TimeoutError):
                return False

    started = time.perf_counter()
    results = await asyncio.gather(*(one(stream) for stream in streams))
    elapsed = time.perf_counter() - started
    return streams, elapsed, results.count(False)


# ---- requests on kept-alive connections ----------------------------------------------------


class HttpError(Exception):
    pass


class Requests:
    """HTTP/1.1 requests over a few kept-alive raw connections (an HTTP library would spend
    more of the shared CPU than the server does on a create)."""

    def __init__(self, connections: int = 32, timeout: float = 60.0) -> None:
        self.limit = asyncio.Semaphore(connections)
        self.idle: dict[int, list[tuple[asyncio.StreamReader, asyncio.StreamWriter]]] = {}
        self.timeout = timeout

    async def request(
        self, method: str, port: int, path: str, headers: dict[str, str], body: bytes = b""
    ) -> int:
        """The response's status (its body is read and dropped)."""
        head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append(f"Content-Length: {len(body)}")
        data = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        async with self.limit:
            pool = self.idle.setdefault(port, [])
            while pool:  # a kept-alive connection, unless the server closed it meanwhile
                reader, writer = pool.pop()
                try:
                    return await self._exchange(reader, writer, data, pool)
                except HttpError:
                    continue
            reader, writer = await asyncio.open_connection(HOST, port)
            return await self._exchange(reader, writer, data, pool)

    async def _exchange(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        data: bytes,
        pool: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]],
    ) -> int:
        try:
            async with asyncio.timeout(self.timeout):
                writer.write(data)
                status, length = await self._head(reader)
                await reader.readexactly(length)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError) as exc:
            writer.close()
            raise HttpError(repr(exc)) from exc
        pool.append((reader, writer))
        return status

    @staticmethod
    async def _head(reader: asyncio.StreamReader) -> tuple[int, int]:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = 0
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return int(head[0].split(" ", 2)[1]), length

    def close(self) -> None:
        for pool in self.idle.values():
            for _reader, writer in pool:
                writer.close()
        self.idle.clear()


# ---- writes and what they cause -----------------------------------------------------------


@dataclass
class Writes:
    """Every create: its title → (user id, when its 201 arrived)."""

    done: dict[str, tuple[str, float]] = field(default_factory=dict)
    failed: int = 0


async def write_load(
    http: Requests,
    server: Server,
    users: list[User],
    rate: float,
    seconds: float,
    tag: str,
    writes: Writes,
    rng: random.Random,
) -> list[float]:
    """`rate` creates a second for `seconds` (open loop: on schedule, whatever the answers take),
    each for a random user; their latencies."""
    loop = asyncio.get_running_loop()
    latencies: list[float] = []

    async def one(number: int) -> None:
        user = rng.choice(users)
        title = f"{tag}-{number}"
        body = json.dumps({"title": title}).encode()
        headers = {**user.headers, "Content-Type": "application/json"}
        started = time.perf_counter()
        try:
            status = await http.request("POST", server.port, f"/api/{user.id}/tasks", headers, body)
        except HttpError:
            writes.failed += 1
            return
        finished = time.perf_counter()
        if status != 201:
            writes.failed += 1
            return
        latencies.append(finished - started)
        writes.done[title] = (user.id, finished)

    start = loop.time()
    pending = []
    for number in range(int(rate * seconds)):
        delay = start + number / rate - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        pending.append(asyncio.create_task(one(number)))
    await asyncio.gather(*pending)
    return latencies


def fan_out(streams: list[EventStream], writes: Writes, titles: set[str]) -> list[float]:
    """Seconds from each write's 201 to its event, for the writes named by `titles`."""
    delays = []
    for stream in streams:
        for title, _event_id, arrival in stream.events:
            if title in titles:
                delays.append(max(0.0, arrival - writes.done[title][1]))
    return delays


def lost_and_doubled(streams: list[EventStream], writes: Writes) -> tuple[int, int]:
    """Events of acknowledged writes that never reached their user's stream, and events that
    arrived more than once (streams that failed to open are counted apart)."""
    by_user: dict[str, list[str]] = {}
    for title, (user_id, _at) in writes.done.items():
        by_user.setdefault(user_id, []).append(title)
    lost = doubled = 0
    for stream in streams:
        if stream.status != 200:
            continue
        seen: dict[str, int] = {}
        for title, _event_id, _arrival in stream.events:
            seen[title] = seen.get(title, 0) + 1
        for title in by_user.get(stream.user.id, []):
            count = seen.get(title, 0)
            lost += count == 0
            doubled += max(0, count - 1)
    return lost, doubled


async def until_drained(streams: list[EventStream], writes: Writes, within: float) -> None:
    """Until every write's event reached its stream, or `within` seconds passed without one
    arriving (late events are not lost ones: a slow process is shown by the fan-out p99)."""
    missing = lost_and_doubled(streams, writes)[0]
    deadline = time.perf_counter() + within
    while missing and time.perf_counter() < deadline:
        await asyncio.sleep(0.5)
        still = lost_and_doubled(streams, writes)[0]
        if still < missing:
            deadline = time.perf_counter() + within
        missing = still


async def probe(
    http: Requests, server: Server, users: list[User], stop: asyncio.Event
) -> list[float]:
    """Another route, `GET …/tasks`, 20 a second until `stop`: its latencies (errors as inf)."""
    latencies: list[float] = []
    rng = random.Random(7)

    async def one() -> None:
        user = rng.choice(users)
        started = time.perf_counter()
        try:
            status = await http.request("GET", server.port, f"/api/{user.id}/tasks", user.headers)
            ok = status == 200
        except HttpError:
            ok = False
        latencies.append(time.perf_counter() - started if ok else float("inf"))

    pending = []
    while not stop.is_set():
        pending.append(asyncio.create_task(one()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), PROBE_EVERY_SECONDS)
    await asyncio.gather(*pending)
    return latencies


# ---- one size, and the storm ---------------------------------------------------------------


@dataclass
class Row:
    streams: int
    failed_to_open: int
    memory_per_stream_kib: float
    opening_seconds: float
    cpu_per_open_ms: float
    idle_rss_mib: float
    loaded_rss_mib: float
    write_p99_idle_ms: float
    write_p99_loaded_ms: float
    fan_out_same_p99_ms: float
    fan_out_other_p99_ms: float
    lost: int
    doubled: int
    write_failures: int
    refusals: str


@dataclass
class Storm:
    streams: int
    failed_to_open: int
    caught_up_seconds: float
    not_caught_up: int
    probe_p99_ms: float
    probes: int
    memory_per_stream_kib: float
    lost: int
    doubled: int
    refusals: str


async def run_size(
    size: int, database_url: str, log_dir: Path, args: argparse.Namespace, storm: bool
) -> tuple[Row, Storm | None]:
    rng = random.Random(size)
    users = make_users(f"u{size}-{uuid.uuid4().hex[:6]}", size)
    first = start_server(database_url, log_dir, args.backlog)
    second = start_server(database_url, log_dir, args.backlog)
    http = Requests()
    try:
        # Warm up: every route once (imports, compiled statements), a few streams.
        warm = make_users(f"warm{size}", 20)
        for server in (first, second):
            await write_load(http, server, warm, 50, 1, "warm", Writes(), rng)
            streams, _, _ = await open_streams(warm, server.port, 20)
            for stream in streams:
                stream.close()
        await asyncio.sleep(2)
        # Other users than the streams' (whose logs stay empty until their streams open).
        others = make_users(f"idle{size}-{uuid.uuid4().hex[:6]}", size)
        idle_write = await write_load(
            http, first, others, args.rate, args.seconds, "idle", Writes(), rng
        )
        idle_rss = first.rss_kib()
        idle_cpu = first.cpu_seconds()
        streams, opening, failed = await open_streams(users, first.port, args.in_flight)
        cpu_per_open = (first.cpu_seconds() - idle_cpu) / size
        await asyncio.sleep(2)
        loaded_rss = first.rss_kib()
        memory_per_stream = (loaded_rss - idle_rss) / size
        progress(f"{size:,} streams open in {opening:.1f} s, {failed} failed")

        writes = Writes()
        same = await write_load(http, first, users, args.rate, args.seconds, "same", writes, rng)
        same_titles = set(writes.done)
        other_before = set(writes.done)
        await write_load(http, second, users, args.rate, args.seconds, "other", writes, rng)
        other_titles = set(writes.done) - other_before
        await until_drained(streams, writes, DRAIN_SECONDS)
        lost, doubled = lost_and_doubled(streams, writes)
        row = Row(
            streams=size,
            failed_to_open=failed,
            memory_per_stream_kib=memory_per_stream,
            opening_seconds=opening,
            cpu_per_open_ms=cpu_per_open * 1000,
            idle_rss_mib=idle_rss / 1024,
            loaded_rss_mib=loaded_rss / 1024,
            write_p99_idle_ms=percentile(idle_write, 0.99) * 1000,
            write_p99_loaded_ms=percentile(same, 0.99) * 1000,
            fan_out_same_p99_ms=percentile(fan_out(streams, writes, same_titles), 0.99) * 1000,
            fan_out_other_p99_ms=percentile(fan_out(streams, writes, other_titles), 0.99) * 1000,
            lost=lost,
            doubled=doubled,
            write_failures=writes.failed,
            refusals=refusals(streams),
        )
        progress(f"{size:,} streams measured")
        result_storm = None
        if storm:
            result_storm = await run_storm(http, users, streams, first, second, args, rng)
            progress("storm measured")
        for stream in streams:
            stream.close()
        return row, result_storm
    finally:
        http.close()
        first.stop()
        second.stop()


async def run_storm(
    http: Requests,
    users: list[User],
    streams: list[EventStream],
    first: Server,
    second: Server,
    args: argparse.Namespace,
    rng: random.Random,
) -> Storm:
    """A stops; writes go on through B; every client reconnects to B at once."""
    first.stop()
    await asyncio.wait_for(asyncio.gather(*(stream.ended for stream in streams)), 60)
    # Where each client stands: its last event, or the (empty) log's start.
    last_ids = {stream.user.id: stream.last_id or Cursor(0).encode() for stream in streams}
    writes = Writes()
    await write_load(http, second, users, 200, STORM_MISSED_WRITES / 200, "missed", writes, rng)
    idle_rss = second.rss_kib()
    stop_probing = asyncio.Event()
    probing = asyncio.create_task(probe(http, second, users, stop_probing))
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(args.storm_in_flight)
    reconnected = [EventStream(user, second.port, last_ids[user.id]) for user in users]
    for stream in reconnected:
        stream.waiting_for = {
            title for title, (user_id, _) in writes.done.items() if user_id == stream.user.id
        }

    async def one(stream: EventStream) -> bool:
        async with gate:
            try:
                await loop.create_connection(lambda: stream, HOST, second.port)
                if not await asyncio.wait_for(asyncio.shield(stream.opened), OPEN_TIMEOUT_SECONDS):
                    return False
            except (OSError, TimeoutError):
                return False
        try:
            await asyncio.wait_for(asyncio.shield(stream.caught_up), OPEN_TIMEOUT_SECONDS)
        except TimeoutError:
            return False
        return True

    started = time.perf_counter()
    results = await asyncio.gather(*(one(stream) for stream in reconnected))
    caught_up = time.perf_counter() - started
    stop_probing.set()
    probes = await probing
    await asyncio.sleep(2)
    memory = (second.rss_kib() - idle_rss) / len(users)
    lost, doubled = lost_and_doubled(reconnected, writes)
    for stream in reconnected:
        stream.close()
    return Storm(
        streams=len(users),
        failed_to_open=sum(1 for stream in reconnected if stream.opened.result() is False),
        caught_up_seconds=caught_up,
        not_caught_up=results.count(False),
        probe_p99_ms=percentile(probes, 0.99) * 1000,
        probes=len(probes),
        memory_per_stream_kib=memory,
        lost=lost,
        doubled=doubled,
        refusals=refusals(reconnected),
    )


# ---- output --------------------------------------------------------------------------------


def print_tables(rows: list[Row], storms: list[Storm]) -> None:
    print(
        "| open streams | memory per stream | opening them | write p99 no stream / loaded "
        "(same instance) | fan-out p99 same / other instance | lost |"
    )
    print("|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        rate = row.streams / row.opening_seconds if row.opening_seconds else float("inf")
        notes = [f"{row.lost}"]
        if row.doubled:
            notes.append(f"{row.doubled} twice")
        if row.failed_to_open:
            notes.append(f"{row.failed_to_open} of {row.streams:,} failed to open ({row.refusals})")
        if row.write_failures:
            notes.append(f"{row.write_failures} writes failed")
        print(
            f"| {row.streams:,} | {row.memory_per_stream_kib:.1f} KB "
            f"| {row.opening_seconds:.1f} s (~{rate:,.0f}/s) "
            f"| {row.write_p99_idle_ms:,.0f} ms / {row.write_p99_loaded_ms:,.0f} ms "
            f"| {row.fan_out_same_p99_ms:,.0f} ms / {row.fan_out_other_p99_ms:,.0f} ms "
            f"| {', '.join(notes)} |"
        )
    for storm in storms:
        print()
        print(
            "| reconnect storm | memory per stream | all open and caught up "
            "| other route p99 meanwhile | lost |"
        )
        print("|---:|---:|---:|---:|---:|")
        missing = (
            f" ({storm.failed_to_open} failed to open: {storm.refusals}; "
            f"{storm.not_caught_up} not caught up)"
            if storm.not_caught_up
            else ""
        )
        doubled = f", {storm.doubled} twice" if storm.doubled else ""
        print(
            f"| {storm.streams:,} at once | {storm.memory_per_stream_kib:.1f} KB "
            f"| {storm.caught_up_seconds:.1f} s{missing} "
            f"| {storm.probe_p99_ms:,.0f} ms ({storm.probes} requests) | {storm.lost}{doubled} |"
        )
    print()
    for row in rows:
        print(
            f"{row.streams:,} streams: the server's CPU per stream opened "
            f"{row.cpu_per_open_ms:.2f} ms; resident set {row.idle_rss_mib:.0f} MiB idle, "
            f"{row.loaded_rss_mib:.0f} MiB with the streams open"
        )


# ---- the database --------------------------------------------------------------------------


@contextlib.contextmanager
def database(admin_url: str | None) -> Iterator[str]:
    """A throwaway database on `admin_url`'s server, or a private server's."""
    if admin_url is None:
        with postgres_server() as server:
            yield server.url()
        return
    name = f"live_bench_{uuid.uuid4().hex[:8]}"

    async def run(sql: str) -> None:
        connection = await asyncpg.connect(admin_url)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def run_all(database_url: str, args: argparse.Namespace) -> None:
    sizes = [int(size) for size in args.sizes.split(",") if size]
    if args.storm > 0 and args.storm not in sizes:
        sizes.append(args.storm)
    rows, storms = [], []
    with tempfile.TemporaryDirectory(prefix="live-bench-") as logs:
        for size in sizes:
            row, storm = await run_size(size, database_url, Path(logs), args, size == args.storm)
            rows.append(row)
            if storm is not None:
                storms.append(storm)
    print_tables(rows, storms)


def progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,2000,10000")
    parser.add_argument("--storm", type=int, default=10_000, help="size of the storm (0: none)")
    parser.add_argument("--rate", type=float, default=100.0, help="creates a second")
    parser.add_argument("--seconds", type=float, default=15.0, help="each write phase")
    parser.add_argument("--in-flight", type=int, default=1_000, help="streams opening at once")
    parser.add_argument(
        "--storm-in-flight", type=int, default=10_000, help="in the storm (default: all at once)"
    )
    parser.add_argument("--backlog", type=int, default=2_048, help="uvicorn's --backlog")
    parser.add_argument("--postgres", default=None, help="an admin URL (default: a private server)")
    args = parser.parse_args()
    # Stopped from outside (a timeout), it still stops its servers and PostgreSQL.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))
    limit = raise_file_limit()
    needed = max(int(size) for size in args.sizes.split(",") if size) + 1_000
    if limit < needed:
        sys.exit(f"the file-descriptor limit is {limit}; {needed} are needed (ulimit -Hn)")
    with database(args.postgres) as url:
        alembic("upgrade", "head", database_url=url)
        print(
            f"one uvicorn process ({' '.join(UVICORN_OPTIONS)} --backlog {args.backlog}), "
            f"{args.rate:.0f} creates/s for {args.seconds:.0f} s per phase, "
            f"at most {args.in_flight} streams opening at once; {os.cpu_count()} CPUs",
            flush=True,
        )
        asyncio.run(run_all(url, args))


if __name__ == "__main__":
    main()
