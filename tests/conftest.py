"""Fixtures: a fresh database per test, on SQLite by default or on PostgreSQL when
`TEST_DATABASE_URL` is set (a throwaway database is created on that server for the run).

What costs time is built once per run (per xdist worker) and handed out fresh per test: the
SQLite schema is created once and its file copied for each test; the PostgreSQL database is
created once and emptied (TRUNCATE) for each test; and tests with the default settings share one
application object (its routes, middleware and OpenAPI document; building them is most of what
a test used to cost), entering its lifespan anew each time, so the engine, pool, broker, MCP
session manager and background tasks are still made and ended per test. A test that overrides
settings gets an application of its own.

`TEST_ADMIN_DATABASE_URL` (default: `TEST_DATABASE_URL`) is where CREATE/DROP DATABASE run,
for URLs that cannot run them (a transaction pooler). `TEST_POSTGRES=tls` or
`TEST_POSTGRES=pgbouncer` runs the suite on a private server started for the run instead: a
TLS-only one reached through a Neon-style URL, or one behind PgBouncer in transaction mode.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, closing, contextmanager
from pathlib import Path

import asyncpg
import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient
from sqlalchemy import make_url, text
from sqlmodel import SQLModel

from database.migrations import VERSION_TABLE, head_revisions
from database.url import parse_database_url
from db import create_engine_for, create_tables
from main import create_app
from settings import Settings, load_settings
from tests.helpers import TEST_SECRET, Account, sign_up
from tests.infra.servers import missing_tools, pgbouncer, postgres_server

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "").strip()
TEST_ADMIN_DATABASE_URL = os.environ.get("TEST_ADMIN_DATABASE_URL", "").strip()
TEST_POSTGRES = os.environ.get("TEST_POSTGRES", "").strip().lower()


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (pyproject's default): a worker per core for the suite or a folder of it, but
    none when only files or single tests are named: starting a worker costs an import of the
    whole app, more than a file's tests take to run."""
    named = config.args if config.args_source is pytest.Config.ArgsSource.ARGS else []
    if named and all(arg.split("::", 1)[0].endswith(".py") for arg in named):
        return 0
    return None  # xdist's own count: the machine's cores


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-tests-only",
        action="store_true",
        help="run only the tests that use the suite's database (what another kind of server, "
        "TLS or a pooler, can change); the others run the same whatever the server",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not config.getoption("--database-tests-only"):
        return
    selected, deselected = [], []
    for item in items:
        uses_database = "postgres_url" in getattr(item, "fixturenames", ())
        (selected if uses_database else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = selected


def _asyncpg_dsn(url: str, database: str | None = None) -> str:
    target = parse_database_url(url).url
    if database is not None:
        target = target.set(database=database)
    return target.set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(
        _asyncpg_dsn(url), **parse_database_url(url).connect_args, timeout=30
    )
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def _create_schema(database_url: str) -> None:
    """The tables from the models; on PostgreSQL also recorded at the scripts' head, as
    `alembic upgrade head` leaves a database (the drift test proves both build the same schema),
    so the suite's database is one the app calls ready."""
    engine = create_engine_for(load_settings(database_url=database_url))
    try:
        await create_tables(engine)
        if engine.dialect.name == "postgresql":
            async with engine.begin() as connection:
                await connection.execute(
                    text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) PRIMARY KEY)")
                )
                for revision in head_revisions():
                    await connection.execute(
                        text(f"INSERT INTO {VERSION_TABLE} VALUES (:revision)"),
                        {"revision": revision},
                    )
    finally:
        await engine.dispose()


@contextmanager
def _suite_server() -> Iterator[tuple[str, str] | None]:
    """The PostgreSQL the suite runs on, as (URL for the app, URL for admin commands)."""
    if TEST_POSTGRES not in ("", "tls", "pgbouncer"):
        raise ValueError(f"TEST_POSTGRES={TEST_POSTGRES!r}: use tls or pgbouncer")
    if TEST_POSTGRES:
        reason = missing_tools(
            pgbouncer=TEST_POSTGRES == "pgbouncer", openssl=TEST_POSTGRES == "tls"
        )
        if reason:
            raise RuntimeError(f"TEST_POSTGRES={TEST_POSTGRES} needs a private server: {reason}")
    if TEST_POSTGRES == "tls":
        with postgres_server(tls=True) as server:
            yield server.neon_url(), server.neon_url()
    elif TEST_POSTGRES == "pgbouncer":
        # DB_POOLER_PREPARED_STATEMENTS=true needs a PgBouncer that tracks them (TEST_PGBOUNCER).
        tracking = load_settings().db_pooler_prepared_statements or None
        with (
            postgres_server() as server,
            pgbouncer(server, track_prepared_statements=tracking) as bouncer,
        ):
            yield bouncer.url(), server.url()
    elif TEST_DATABASE_URL:
        yield TEST_DATABASE_URL, TEST_ADMIN_DATABASE_URL or TEST_DATABASE_URL
    else:
        yield None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str | None]:
    """A database of its own on the suite's PostgreSQL server, dropped after the run.

    The URL keeps the query of the configured one (`sslmode`, ...), so the application parses
    it exactly as it would in production. Tables come from the models (`create_all`); the
    migration drift test proves the Alembic revisions build the same schema.
    """
    with _suite_server() as server:
        if server is None:
            yield None
            return
        url, admin_url = server
        name = f"todo_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(_admin(admin_url, f'CREATE DATABASE "{name}"'))
        try:
            database_url = make_url(url).set(database=name).render_as_string(hide_password=False)
            asyncio.run(_create_schema(database_url))
            yield database_url
        finally:
            asyncio.run(_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    """Settings a test module changes by overriding this fixture."""
    return {}


def _test_settings(database_url: str, overrides: dict[str, object]) -> Settings:
    return load_settings(
        **{
            "database_url": database_url,
            "better_auth_secret": TEST_SECRET,
            "bcrypt_rounds": 4,
            "environment": "test",
            "freeze_heap_at_startup": False,
            **overrides,
        }
    )


def _sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


@pytest.fixture(scope="session")
def sqlite_schema(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding the empty schema, made once and copied for each test."""
    path = tmp_path_factory.mktemp("schema") / "schema.db"
    asyncio.run(_create_schema(_sqlite_url(path)))
    return path


def _fresh_sqlite_file(schema: Path, path: Path) -> None:
    """`path` becomes a copy of the empty schema. Through SQLite's backup API, not by replacing
    the file: a connection an earlier test left open then sees the fresh content too, where a
    file swapped under it (and its WAL) would make it and the next test fail with I/O errors."""
    with closing(sqlite3.connect(schema)) as source, closing(sqlite3.connect(path)) as target:
        target.execute("PRAGMA synchronous = OFF")  # a throwaway file: no fsync
        source.backup(target)


@pytest.fixture(scope="session")
def shared_settings(tmp_path_factory: pytest.TempPathFactory, postgres_url: str | None) -> Settings:
    """The default test settings, one object for the run: the key of the shared application."""
    database = postgres_url or _sqlite_url(tmp_path_factory.mktemp("shared") / "test.db")
    return _test_settings(database, {})


@pytest.fixture
def settings(
    tmp_path: Path,
    postgres_url: str | None,
    settings_overrides: dict[str, object],
    shared_settings: Settings,
    sqlite_schema: Path,
) -> Settings:
    """The test's settings, with a fresh database behind them: the shared default settings,
    or settings of its own when the test overrides some."""
    if settings_overrides:
        database_url = settings_overrides.get("database_url") or postgres_url
        chosen = _test_settings(
            str(database_url or _sqlite_url(tmp_path / "test.db")), settings_overrides
        )
    else:
        chosen = shared_settings
    target = parse_database_url(chosen.database_url)
    if target.is_sqlite and target.url.database:
        _fresh_sqlite_file(sqlite_schema, Path(target.url.database))
    return chosen


@pytest.fixture(scope="session")
def shared_app(shared_settings: Settings) -> FastAPI:
    """The application every test with the default settings enters (see the module's doc)."""
    return create_app(shared_settings)


async def _empty_all_tables(app: FastAPI) -> None:
    tables = ", ".join(f'"{table.name}"' for table in SQLModel.metadata.sorted_tables)
    async with app.state.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@asynccontextmanager
async def serving(application: FastAPI) -> AsyncIterator[FastAPI]:
    """The app's lifespan, entered and left in a task of its own, as uvicorn runs it.

    pytest-asyncio finalizes a fixture in another task than the one that set it up, and the MCP
    session manager's task group (started in the lifespan) must end in the task that began it.
    """
    started = asyncio.Event()
    stop = asyncio.Event()

    async def lifespan() -> None:
        async with application.router.lifespan_context(application):
            started.set()
            await stop.wait()

    task = asyncio.create_task(lifespan())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():  # the startup failed: raise its error here
        waiter.cancel()
        task.result()
    try:
        yield application
    finally:
        stop.set()
        await task


@pytest.fixture(autouse=True)
def _purge_only_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every lifespan starts the change-log purge at a random moment of its first minute: it
    would add its statements, connections and metric series to whatever a test measures at
    that moment. Tests that are about the purge call `purge()` themselves."""
    monkeypatch.setattr("tasks.retention.FIRST_RUN_WITHIN_SECONDS", 1e9)


@pytest.fixture
async def app(
    request: pytest.FixtureRequest,
    settings: Settings,
    shared_settings: Settings,
    postgres_url: str | None,
) -> AsyncIterator[FastAPI]:
    shared = settings is shared_settings
    application = request.getfixturevalue("shared_app") if shared else create_app(settings)
    async with serving(application) as application:
        if postgres_url:
            await _empty_all_tables(application)
        yield application
        left_open = list(application.state.broker.streams())
        assert not left_open, f"event streams the test left registered: {left_open}"


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


@pytest.fixture
async def alice(client: AsyncClient) -> Account:
    """A signed-up user (the tenant under test)."""
    return await sign_up(client, email="alice@example.com")


@pytest.fixture
async def bob(client: AsyncClient) -> Account:
    """Another tenant, for isolation checks."""
    return await sign_up(client, email="bob@example.com")
