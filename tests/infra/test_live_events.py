"""Live events across two uvicorn processes on one PostgreSQL (LISTEN/NOTIFY), the listener
killed mid-run, resumption with Last-Event-ID, a revocation ending streams on both processes,
and the shutdown of a process with open streams."""

from __future__ import annotations

import asyncio
import random
import signal
import time
from typing import Any

import asyncpg
import httpx
import pytest

from live.listener import LISTENER_NAME
from tests.infra.apps import RunningApp, alembic, running_app
from tests.infra.servers import PostgresServer
from tests.sse import EventReader, Stream

pytestmark = pytest.mark.infra

WRITES = 200
CLIENTS = 4


async def _account(
    http: httpx.AsyncClient, base_url: str, email: str
) -> tuple[str, dict[str, str]]:
    response = await http.post(
        f"{base_url}/api/auth/signup", json={"email": email, "password": "password123"}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user_id"], {"Authorization": f"Bearer {body['access_token']}"}


async def _query(postgres: PostgresServer, sql: str) -> Any:
    connection = await asyncpg.connect(postgres.url())
    try:
        return await connection.fetchval(sql)
    finally:
        await connection.close()


KILL_LISTENERS = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    f"WHERE application_name = '{LISTENER_NAME}'"
)
LISTENERS = f"SELECT count(*) FROM pg_stat_activity WHERE application_name = '{LISTENER_NAME}'"


async def _open_streams(
    http: httpx.AsyncClient, base_urls: list[str], user_id: str, headers: dict[str, str]
) -> tuple[list[Stream], list[EventReader]]:
    """One of the user's event streams on each of `base_urls`, each past its first comment
    (close them with `__aexit__`)."""
    streams = [Stream(http, f"{url}/api/{user_id}/events", headers=headers) for url in base_urls]
    readers = []
    for stream in streams:
        response, reader = await stream.__aenter__()
        assert response.status_code == 200
        await reader.next()
        readers.append(reader)
    return streams, readers


async def _listeners_ready(postgres: PostgresServer, count: int) -> None:
    """Wait until `count` processes LISTEN (each has one connection named LISTENER_NAME)."""
    async with asyncio.timeout(20):
        while await _query(postgres, LISTENERS) < count:  # noqa: ASYNC110 (polls the server)
            await asyncio.sleep(0.2)


async def _collect(reader: EventReader, count: int, within: float) -> list[Any]:
    events = []
    async with asyncio.timeout(within):
        while len(events) < count:
            event = await reader.next_event(within)
            assert event is not None, "the stream ended early"
            events.append(event)
    return events


async def test_a_stream_on_one_sees_a_create_on_the_other_within_a_second(
    postgres: PostgresServer, two_instances: tuple[RunningApp, RunningApp]
) -> None:
    first, second = two_instances
    async with httpx.AsyncClient(timeout=30) as http:
        user_id, headers = await _account(http, first.base_url, "cross@example.com")
        url = f"{second.base_url}/api/{user_id}/events"
        async with Stream(http, url, headers=headers) as (response, reader):
            assert response.status_code == 200
            await reader.next()
            # B listens while it has a stream open (it connected when this one opened).
            await _listeners_ready(postgres, 1)
            started = time.monotonic()
            created = await http.post(
                f"{first.base_url}/api/{user_id}/tasks", json={"title": "from A"}, headers=headers
            )
            event = await reader.next_event(within=5)
            elapsed = time.monotonic() - started
    assert event is not None and event.data == created.json()
    # Far under the 15 s periodic check: the notification carried it (generous for a loaded CI).
    assert elapsed < 3.0, f"{elapsed:.2f} s"


async def test_mixed_writes_on_both_arrive_once_each_in_order_despite_a_killed_listener(
    postgres: PostgresServer, two_instances: tuple[RunningApp, RunningApp]
) -> None:
    """200 writes from four clients spread over both processes, one process's LISTEN
    connection killed half way: each stream gets every write exactly once, in cursor order."""
    first, second = two_instances
    rng = random.Random(20261130)
    async with httpx.AsyncClient(timeout=30) as http:
        user_id, headers = await _account(http, first.base_url, "mixed@example.com")
        path = f"/api/{user_id}/tasks"
        urls = [first.base_url, second.base_url]
        streams, readers = await _open_streams(http, urls, user_id, headers)
        await _listeners_ready(postgres, 2)
        collected = [
            asyncio.create_task(_collect(reader, WRITES, within=120)) for reader in readers
        ]
        try:
            own: list[list[int]] = [[] for _ in range(CLIENTS)]
            done = 0
            lock = asyncio.Lock()

            async def one_write(client: int) -> None:
                nonlocal done
                base = (first, second)[rng.randrange(2)].base_url
                tasks = own[client]
                roll = rng.random()
                if roll < 0.4 or not tasks:
                    response = await http.post(
                        f"{base}{path}", json={"title": f"c{client}"}, headers=headers
                    )
                    assert response.status_code == 201, response.text
                    tasks.append(response.json()["id"])
                elif roll < 0.65:
                    task_id = rng.choice(tasks)
                    response = await http.put(
                        f"{base}{path}/{task_id}", json={"priority": "high"}, headers=headers
                    )
                    assert response.status_code == 200, response.text
                elif roll < 0.85:
                    task_id = rng.choice(tasks)
                    response = await http.patch(f"{base}{path}/{task_id}/complete", headers=headers)
                    assert response.status_code == 200, response.text
                else:
                    task_id = tasks.pop(rng.randrange(len(tasks)))
                    response = await http.delete(f"{base}{path}/{task_id}", headers=headers)
                    assert response.status_code == 204, response.text
                async with lock:
                    done += 1
                    if done == WRITES // 2:
                        killed = await _query(postgres, KILL_LISTENERS)
                        assert killed == 2

            async def client_loop(client: int) -> None:
                for _ in range(WRITES // CLIENTS):
                    await one_write(client)

            await asyncio.gather(*(client_loop(client) for client in range(CLIENTS)))
            results = [await task for task in collected]
        finally:
            for task in collected:
                task.cancel()
            for stream in streams:
                await stream.__aexit__()
    for events in results:
        ids = [event.id for event in events]
        assert len(set(ids)) == WRITES, "an event arrived twice"
        positions = [tuple(int(part) for part in _decoded(event.id)[1:]) for event in events]
        assert positions == sorted(positions), "events out of cursor order"
    assert [event.id for event in results[0]] == [event.id for event in results[1]]


def _decoded(cursor: str) -> list[str]:
    import base64

    return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().split(".")


async def test_disconnect_write_reconnect_replays_the_missed_events(
    two_instances: tuple[RunningApp, RunningApp],
) -> None:
    first, second = two_instances
    async with httpx.AsyncClient(timeout=30) as http:
        user_id, headers = await _account(http, first.base_url, "resume@example.com")
        path = f"/api/{user_id}/tasks"
        async with Stream(http, f"{first.base_url}/api/{user_id}/events", headers=headers) as (
            _response,
            reader,
        ):
            await reader.next()
            await http.post(f"{first.base_url}{path}", json={"title": "seen"}, headers=headers)
            seen = await reader.next_event()
        assert seen is not None and seen.id is not None
        missed = [
            (
                await http.post(
                    f"{second.base_url}{path}", json={"title": f"m{n}"}, headers=headers
                )
            ).json()
            for n in range(5)
        ]
        resumed = {**headers, "Last-Event-ID": seen.id}
        async with Stream(http, f"{second.base_url}/api/{user_id}/events", headers=resumed) as (
            _response,
            reader,
        ):
            replayed = await _collect(reader, len(missed), within=10)
    assert [event.data for event in replayed] == missed


async def test_a_logout_on_one_ends_the_tokens_streams_on_both(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """The revocation is notified like a change: these processes check their streams only
    hourly on their own, so only the notification can end them within the test's wait."""
    alembic("upgrade", "head", database_url=postgres.url())
    logs = tmp_path_factory.mktemp("revocation")
    with (
        running_app(postgres.url(), logs, EVENTS_CHECK_SECONDS="3600") as first,
        running_app(postgres.url(), logs, EVENTS_CHECK_SECONDS="3600") as second,
    ):
        async with httpx.AsyncClient(timeout=30) as http:
            user_id, headers = await _account(http, first.base_url, "logout@example.com")
            urls = [first.base_url, second.base_url]
            streams, readers = await _open_streams(http, urls, user_id, headers)
            try:
                await _listeners_ready(postgres, 2)
                logged_out = await http.post(f"{first.base_url}/api/auth/logout", headers=headers)
                assert logged_out.status_code == 200
                for reader in readers:
                    assert await reader.next_event(within=30) is None, "the stream went on"
            finally:
                for stream in streams:
                    await stream.__aexit__()


async def test_sigterm_with_streams_open_exits_promptly_with_writes_committed(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> None:
    alembic("upgrade", "head", database_url=postgres.url())
    logs = tmp_path_factory.mktemp("shutdown")
    with running_app(postgres.url(), logs) as app:
        async with httpx.AsyncClient(timeout=30) as http:
            user_id, headers = await _account(http, app.base_url, "drain@example.com")
            streams, readers = await _open_streams(http, [app.base_url] * 3, user_id, headers)
            created = await http.post(
                f"{app.base_url}/api/{user_id}/tasks", json={"title": "kept"}, headers=headers
            )
            assert created.status_code == 201
            started = time.monotonic()
            app.process.send_signal(signal.SIGTERM)
            for reader in readers:
                while (event := await reader.next(within=10)) is not None:
                    assert event.event in (None, "task.created")
            exit_code = await asyncio.to_thread(app.process.wait, 10)
            elapsed = time.monotonic() - started
            for stream in streams:
                await stream.__aexit__()
    assert exit_code in (0, -signal.SIGTERM)
    assert elapsed < 8, f"{elapsed:.1f} s to exit"
    assert await _query(postgres, "SELECT count(*) FROM tasks WHERE title = 'kept'") == 1
