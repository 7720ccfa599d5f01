"""Graceful shutdown: SIGTERM during a request lets it finish (and its write stick), refuses new
connections, then runs the lifespan's shutdown (the engine is disposed) and exits cleanly."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.infra.apps import alembic, running_app

pytestmark = pytest.mark.infra

WAIT_TIMEOUT_SECONDS = 60


async def _eventually(condition: Callable[[], Awaitable[bool]], what: str) -> None:
    deadline = time.monotonic() + WAIT_TIMEOUT_SECONDS
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for: {what}")
        await asyncio.sleep(0.05)


async def test_sigterm_lets_the_request_in_flight_finish(
    empty_database: str, tmp_path: Path
) -> None:
    alembic("upgrade", "head", database_url=empty_database)
    with running_app(empty_database, tmp_path, DB_COMMAND_TIMEOUT="45") as app:
        async with httpx.AsyncClient(base_url=app.base_url, timeout=WAIT_TIMEOUT_SECONDS) as http:
            signup = await http.post(
                "/api/auth/signup", json={"email": "bye@example.com", "password": "password123"}
            )
            body = signup.json()
            headers = {"Authorization": f"Bearer {body['access_token']}"}
            created = await http.post(
                f"/api/{body['user_id']}/tasks", json={"title": "t"}, headers=headers
            )
            task_id = created.json()["id"]

            # Hold the task's row lock, so the toggle is stuck in the database: a slow request.
            locker = await asyncpg.connect(empty_database)
            lock = locker.transaction()
            await lock.start()
            await locker.execute("SELECT 1 FROM tasks WHERE id = $1 FOR UPDATE", task_id)
            in_flight = asyncio.create_task(
                http.patch(f"/api/{body['user_id']}/tasks/{task_id}/complete", headers=headers)
            )

            async def toggle_is_waiting() -> bool:
                waiting = await locker.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                )
                return bool(waiting)

            await _eventually(toggle_is_waiting, "the toggle to wait for the row lock")
            app.process.send_signal(signal.SIGTERM)

            async def draining() -> bool:
                return "Waiting for connections to close" in app.log()

            await _eventually(draining, "uvicorn to start draining")
            with pytest.raises(httpx.ConnectError):
                async with httpx.AsyncClient(base_url=app.base_url) as newcomer:
                    await newcomer.get("/health")
            assert not in_flight.done()

            await lock.rollback()
            await locker.close()
            response = await in_flight

        exit_code = await asyncio.to_thread(app.process.wait, WAIT_TIMEOUT_SECONDS)

    assert response.status_code == 200, response.text
    assert response.json()["completed"] is True
    # uvicorn re-raises the signal once it has shut down cleanly, so it "dies" of SIGTERM.
    assert exit_code in (0, -signal.SIGTERM)
    assert "Application shutdown complete" in app.log()
    assert "Finished server process" in app.log()
    connection = await asyncpg.connect(empty_database)
    try:
        stored = await connection.fetchval("SELECT completed FROM tasks WHERE id = $1", task_id)
        # A closed connection's backend leaves pg_stat_activity a moment after the client exits.
        async with asyncio.timeout(10):
            while True:
                leftovers = await connection.fetchval(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                )
                if leftovers == 0:
                    break
                await asyncio.sleep(0.1)
    finally:
        await connection.close()
    assert stored is True
    assert leftovers == 0
