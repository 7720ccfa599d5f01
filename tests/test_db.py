"""Connection handling: a pooled connection the server dropped is replaced before use."""

from __future__ import annotations

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import text

import db
from database.url import parse_database_url


@pytest.fixture
def postgres_only(settings) -> None:
    """A direct PostgreSQL connection: behind a transaction pooler a client connection has no
    backend of its own to kill."""
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL (set TEST_DATABASE_URL)")
    if settings.db_pooler or parse_database_url(settings.database_url).behind_pooler:
        pytest.skip("needs a direct connection, not one through a transaction pooler")


async def _pooled_backend_pid(app: FastAPI) -> int:
    async with app.state.engine.connect() as connection:
        return (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()


async def _terminate_from_outside(app: FastAPI, pid: int) -> None:
    """Kill a backend over a connection of its own, as a server restart or Neon would."""
    url = parse_database_url(app.state.settings.database_url).url
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    try:
        assert await connection.fetchval("SELECT pg_terminate_backend($1)", pid)
    finally:
        await connection.close()


class TestIdleConnectionPing:
    async def test_a_killed_idle_connection_is_replaced(
        self,
        postgres_only: None,
        app: FastAPI,
        client: AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        victim = await _pooled_backend_pid(app)
        await _terminate_from_outside(app, victim)
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)

        response = await client.get("/health")

        assert response.status_code == 200
        assert response.json() == {"status": "ok", "database": "ok"}
        assert await _pooled_backend_pid(app) != victim

    async def test_without_the_ping_the_dead_connection_gives_503_not_500(
        self,
        postgres_only: None,
        app: FastAPI,
        client: AsyncClient,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 3600.0)
        victim = await _pooled_backend_pid(app)
        await _terminate_from_outside(app, victim)

        first = await client.get("/health")
        second = await client.get("/health")

        assert first.status_code == 503
        assert first.json() == {
            "status": "unavailable",
            "database": "unavailable",
            "detail": "Database unavailable",
        }
        assert second.status_code == 200
