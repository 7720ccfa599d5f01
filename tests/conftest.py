"""Fixtures: a fresh database per test, on SQLite by default or on PostgreSQL when
`TEST_DATABASE_URL` is set (a throwaway database is created on that server for the run)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import text
from sqlmodel import SQLModel

from database_url import parse_database_url
from main import create_app
from settings import Settings, load_settings
from tests.helpers import TEST_SECRET

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    target = parse_database_url(url).url
    if database is not None:
        target = target.set(database=database)
    return target.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A database of its own on the server in TEST_DATABASE_URL, dropped after the run."""
    if not TEST_DATABASE_URL:
        yield None
        return
    name = f"todo_test_{uuid.uuid4().hex[:12]}"
    asyncio.run(_admin(TEST_DATABASE_URL, f'CREATE DATABASE "{name}"'))
    try:
        yield (
            parse_database_url(TEST_DATABASE_URL)
            .url.set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        asyncio.run(_admin(TEST_DATABASE_URL, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Settings a test module changes by overriding this fixture."""
    return {}


@pytest.fixture
def settings(tmp_path, postgres_url: str | None, settings_overrides: dict[str, object]) -> Settings:
    database_url = postgres_url or f"sqlite+aiosqlite:///{tmp_path / 'test.db'}"
    return load_settings(
        **{
            "database_url": database_url,
            "better_auth_secret": TEST_SECRET,
            "bcrypt_rounds": 4,
            "environment": "test",
            **settings_overrides,
        }
    )


async def _empty_all_tables(app: FastAPI) -> None:
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    async with app.state.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
async def app(settings: Settings, postgres_url: str | None) -> AsyncIterator[FastAPI]:
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        if postgres_url:
            await _empty_all_tables(application)
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://test") as http:
        yield http


@pytest.fixture
def client_from(app: FastAPI) -> Callable[[str], AsyncClient]:
    """A client whose socket address is `host` (close it with `async with`)."""

    def make(host: str) -> AsyncClient:
        return AsyncClient(
            transport=ASGITransport(app=app, client=(host, 40000)), base_url="http://test"
        )

    return make
