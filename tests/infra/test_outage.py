"""The database goes away under a running app and comes back: nothing hangs, nothing is a 500,
the same process recovers, and every write acknowledged with 201 is in the database. A server
that never answers, and a statement that cannot finish, end in 503 after their timeouts."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from httpx import ASGITransport, AsyncClient

from main import create_app
from settings import load_settings
from tests.helpers import TEST_SECRET, create_task, sign_up
from tests.infra.apps import RunningApp, alembic, running_app
from tests.infra.servers import PostgresServer

pytestmark = pytest.mark.infra

WRITERS = 4
REQUEST_TIMEOUT_SECONDS = 30  # bounds a hang; the app's own timeouts are far shorter
PHASE_TIMEOUT_SECONDS = 90


class Writers:
    """Clients creating tasks in a loop, keeping what the API acknowledged."""

    def __init__(self, http: httpx.AsyncClient, tasks_url: str, headers: dict[str, str]) -> None:
        self.http = http
        self.tasks_url = tasks_url
        self.headers = headers
        self.acknowledged: set[str] = set()
        self.statuses: Counter[int] = Counter()
        self.problems: list[str] = []
        self.running = True

    async def write(self, writer: int) -> None:
        for number in range(1_000_000):
            if not self.running:
                return
            title = f"writer {writer} task {number}"
            try:
                response = await self.http.post(
                    self.tasks_url, json={"title": title}, headers=self.headers
                )
            except httpx.HTTPError as exc:
                self.problems.append(f"{title}: {exc!r}")
                continue
            self.statuses[response.status_code] += 1
            if response.status_code == 201:
                self.acknowledged.add(title)
            elif response.status_code == 503:
                if response.json() != {"detail": "Database unavailable"}:
                    self.problems.append(f"{title}: 503 {response.text}")
                await asyncio.sleep(0.02)  # pacing while the database is away
            else:
                self.problems.append(f"{title}: {response.status_code} {response.text[:200]}")


async def _eventually(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(0.05)


async def _until_healthy(http: httpx.AsyncClient) -> None:
    deadline = time.monotonic() + PHASE_TIMEOUT_SECONDS
    while (await http.get("/health")).status_code != 200:
        if time.monotonic() > deadline:
            raise AssertionError("the app did not recover after the database came back")
        await asyncio.sleep(0.1)


async def _stored_titles(server: PostgresServer) -> set[str]:
    connection = await asyncpg.connect(server.url(), timeout=30)
    try:
        return {row["title"] for row in await connection.fetch("SELECT title FROM tasks")}
    finally:
        await connection.close()


async def test_a_restart_under_load_loses_no_acknowledged_write(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    alembic("upgrade", "head", database_url=postgres.url())
    with running_app(
        postgres.url(), tmp_path, DB_CONNECT_TIMEOUT="3", DB_COMMAND_TIMEOUT="5"
    ) as app:
        await _run_outage(postgres, app)


async def _run_outage(postgres: PostgresServer, app: RunningApp) -> None:
    async with httpx.AsyncClient(base_url=app.base_url, timeout=REQUEST_TIMEOUT_SECONDS) as http:
        signup = await http.post(
            "/api/auth/signup", json={"email": "outage@example.com", "password": "password123"}
        )
        assert signup.status_code == 201, signup.text
        body = signup.json()
        headers = {"Authorization": f"Bearer {body['access_token']}"}
        writers = Writers(http, f"/api/{body['user_id']}/tasks", headers)
        workers = [asyncio.create_task(writers.write(number)) for number in range(WRITERS)]
        try:
            await _eventually(lambda: len(writers.acknowledged) >= 20, "writes before the outage")

            await asyncio.to_thread(postgres.stop, "immediate")  # a crash: WAL replay on start
            outage_start = writers.statuses[503]
            await _eventually(lambda: writers.statuses[503] >= outage_start + 20, "503s")
            health = await http.get("/health")
            assert health.status_code == 503
            assert health.json()["detail"] == "Database unavailable"

            await asyncio.to_thread(postgres.start)
            await _until_healthy(http)
            recovered_at = len(writers.acknowledged)
            await _eventually(
                lambda: len(writers.acknowledged) >= recovered_at + 20, "writes after the restart"
            )
        finally:
            writers.running = False
            await asyncio.gather(*workers)

    print(f"statuses: {dict(writers.statuses)}, acknowledged: {len(writers.acknowledged)}")
    assert writers.problems == []
    assert set(writers.statuses) <= {201, 503}
    assert app.process.poll() is None, "the same process served before, during and after"
    missing = writers.acknowledged - await _stored_titles(postgres)
    assert missing == set(), f"{len(missing)} acknowledged writes are not in the database"


@pytest.fixture
def unresponsive_port() -> Iterator[int]:
    """A port that accepts TCP connections and then never says a word (a stuck endpoint)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


@asynccontextmanager
async def _client_for(database_url: str, **settings: Any) -> AsyncIterator[AsyncClient]:
    application = create_app(
        load_settings(
            database_url=database_url, better_auth_secret=TEST_SECRET, bcrypt_rounds=4, **settings
        )
    )
    async with (
        application.router.lifespan_context(application),
        AsyncClient(transport=ASGITransport(app=application), base_url="http://test") as client,
    ):
        yield client


async def test_an_unresponsive_database_is_503_not_a_hang(unresponsive_port: int) -> None:
    url = f"postgresql://postgres@127.0.0.1:{unresponsive_port}/postgres"
    async with (
        asyncio.timeout(REQUEST_TIMEOUT_SECONDS),
        _client_for(url, db_connect_timeout=1) as client,
    ):
        health = await client.get("/health")
        signup = await client.post(
            "/api/auth/signup", json={"email": "stuck@example.com", "password": "password123"}
        )

    assert health.status_code == 503
    assert signup.status_code == 503
    assert signup.json() == {"detail": "Database unavailable"}


async def test_a_statement_stuck_behind_a_lock_is_503_then_works(empty_database: str) -> None:
    alembic("upgrade", "head", database_url=empty_database)
    async with (
        asyncio.timeout(REQUEST_TIMEOUT_SECONDS),
        _client_for(empty_database, db_command_timeout=1) as client,
    ):
        account = await sign_up(client)
        task = await create_task(client, account)
        toggle_url = f"{account.tasks_url}/{task['id']}/complete"
        locker = await asyncpg.connect(empty_database)
        try:
            async with locker.transaction():
                await locker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task["id"])
                stuck = await client.patch(toggle_url, headers=account.headers)
        finally:
            await locker.close()
        after = await client.patch(toggle_url, headers=account.headers)

    assert stuck.status_code == 503
    assert stuck.json() == {"detail": "Database unavailable"}
    assert after.status_code == 200
    assert after.json()["completed"] is True
