"""The async engine and the request-scoped session.

One engine per application (created in the lifespan), one `AsyncSession` per request that
commits once when the endpoint succeeds and rolls back when it raises.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import event, inspect
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    async_sessionmaker,
    create_async_engine,
)
from sqlmodel import SQLModel
from sqlmodel.ext.asyncio.session import AsyncSession

import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from database.url import DatabaseTarget, parse_database_url, transaction_pooler_connect_args
from observability.database import ObservedQueuePool, observe_engine
from settings import Settings

logger = logging.getLogger("todo.db")

SQLITE_BUSY_TIMEOUT_MS = 15_000
# A pooled connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 2.0
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})
AUTOCOMMIT = "AUTOCOMMIT"


def _unicode_lower(value: str | None) -> str | None:
    return value.lower() if isinstance(value, str) else value


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL, a busy timeout and `BEGIN IMMEDIATE` so concurrent writers queue instead of failing.

    A deferred transaction that reads and then writes cannot wait for the lock (SQLite reports
    `database is locked` at once), so every transaction takes the write lock up front.
    SQLite's own `lower()` only folds ASCII; it is replaced by Python's so that
    case-insensitive search (`ILIKE`, rendered as `lower(x) LIKE lower(y)`) matches
    PostgreSQL's for all of Unicode.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("lower", 1, _unicode_lower, deterministic=True)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("isolation_level") != AUTOCOMMIT:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def _ping_idle_connections(engine: AsyncEngine) -> None:
    """Pessimistic disconnect handling that costs nothing on a busy pool.

    SQLAlchemy's `pool_pre_ping` spends three round trips (BEGIN, `;`, ROLLBACK) on every
    checkout. Connections that were handed back moments ago are alive; the ones that sat idle
    (where a server restart, Neon's scale-to-zero or a dropped link show up) are pinged. A
    failed ping raises `DisconnectionError`, so the pool discards every connection opened
    before it and retries with a fresh one; a connection that dies mid-request anyway is
    detected as a disconnect by SQLAlchemy and the request gets a 503.
    """

    @event.listens_for(engine.sync_engine, "checkin")
    def _remember_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")
        if checked_in_at is None or time.monotonic() - checked_in_at < PING_AFTER_IDLE_SECONDS:
            return
        try:
            dbapi_connection.ping()
        except Exception as exc:
            raise DisconnectionError("connection failed its ping") from exc


def pooler_forgets_prepared_statements(settings: Settings, target: DatabaseTarget) -> bool:
    """Behind a transaction pooler that does not track prepared statements (PgBouncer before
    1.21, or with `max_prepared_statements = 0`): a statement prepared in one exchange may be
    gone, or another client's, in the next, so nothing may outlive its transaction.

    Neon's pooler (PgBouncer 1.22+ with `max_prepared_statements`) tracks the protocol-level
    prepared statements of each client and prepares them again on whichever server connection
    runs the next one: there the app works as on a direct connection, statement caches and
    autocommit included. `DB_POOLER_PREPARED_STATEMENTS` says which kind another pooler is
    (default: tracking for Neon `-pooler` hosts, not for `DB_POOLER=true`).
    """
    if not target.is_postgres or not (settings.db_pooler or target.behind_pooler):
        return False
    tracks = settings.db_pooler_prepared_statements
    return not (target.behind_pooler if tracks is None else tracks)


def database_target(settings: Settings) -> DatabaseTarget:
    """The normalised URL and every driver argument: what the app and Alembic connect with."""
    target = parse_database_url(settings.database_url)
    if target.is_sqlite:
        return replace(
            target,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        )
    connect_args = {
        **target.connect_args,
        "timeout": settings.db_connect_timeout,
        "command_timeout": settings.db_command_timeout,
    }
    if pooler_forgets_prepared_statements(settings, target):
        connect_args |= transaction_pooler_connect_args()
    return replace(target, connect_args=connect_args)


def listen_target(settings: Settings) -> DatabaseTarget | None:
    """Where to LISTEN for other processes' changes: a direct PostgreSQL connection, never one
    through a transaction pooler (it drops LISTEN). `DATABASE_DIRECT_URL`, else a Neon pooled
    host without its `-pooler`, else the database itself; None on SQLite, or behind another
    pooler without `DATABASE_DIRECT_URL` (streams then only see other processes' writes when
    they look again on their own)."""
    if settings.database_direct_url:
        return parse_database_url(settings.database_direct_url)
    target = parse_database_url(settings.database_url)
    if not target.is_postgres:
        return None
    if target.behind_pooler:
        return target.without_pooler()
    return None if settings.db_pooler else target


def create_engine_for(settings: Settings) -> AsyncEngine:
    """`hide_parameters`: error messages (and so logs) never carry bound values such as hashes.
    With METRICS_ENABLED its pool and statements are measured (`observability.database`)."""
    target = database_target(settings)
    # The usual pool, which also counts the checkouts that waited.
    measured: dict[str, Any] = {"poolclass": ObservedQueuePool} if settings.metrics_enabled else {}
    if target.is_sqlite:
        engine = create_async_engine(
            target.url, connect_args=target.connect_args, hide_parameters=True, **measured
        )
        _configure_sqlite(engine)
    else:
        engine = _create_postgresql_engine(target, settings, measured)
    if settings.metrics_enabled:
        observe_engine(engine)
    return engine


def _create_postgresql_engine(
    target: DatabaseTarget, settings: Settings, measured: dict[str, Any]
) -> AsyncEngine:
    engine = create_async_engine(
        target.url,
        connect_args=target.connect_args,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_recycle=settings.db_pool_recycle,
        # The most recently used connection first: a busy pool keeps using warm connections and
        # the rest idle out (pinged before reuse), instead of every connection aging in turn.
        pool_use_lifo=True,
        hide_parameters=True,
        **measured,
    )
    if settings.db_pool_pre_ping:
        _ping_idle_connections(engine)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


def create_read_sessionmaker(
    engine: AsyncEngine, settings: Settings
) -> async_sessionmaker[AsyncSession]:
    """Sessions for GET/HEAD: on PostgreSQL they run in autocommit, without BEGIN/COMMIT.

    A read needs no transaction: under READ COMMITTED each statement takes its own snapshot
    inside a transaction too, so this only saves two round trips. SQLite keeps transactions
    (its `BEGIN IMMEDIATE` hook serialises writers), and so does a transaction-mode pooler
    that forgets prepared statements: asyncpg prepares and executes a statement in two
    exchanges that must then reach the same server connection.
    """
    target = database_target(settings)
    if target.is_sqlite or pooler_forgets_prepared_statements(settings, target):
        return create_sessionmaker(engine)
    return create_sessionmaker(engine.execution_options(isolation_level="AUTOCOMMIT"))


class Database:
    """The engine, and how self-contained statements run on it.

    A task request is one statement that carries its own guard and bookkeeping (see `tasks/`).
    On PostgreSQL reached directly it runs in autocommit: the statement is its own transaction,
    so the request costs one round trip instead of BEGIN, statement and COMMIT; so it does
    behind a pooler that tracks prepared statements (Neon's). Behind one that forgets them a
    transaction is kept around it (asyncpg prepares and executes in two exchanges that must
    reach the same server connection). SQLite runs what needs several statements in one
    `BEGIN IMMEDIATE` transaction (round trips cost nothing there), and reads in autocommit, so
    they never wait for the write lock.
    """

    def __init__(self, engine: AsyncEngine, *, autocommit_statements: bool) -> None:
        self.engine = engine
        self.autocommits_statements = autocommit_statements
        self._change_listeners: list[Callable[[str], None]] = []
        self._revocation_listeners: list[Callable[[str], None]] = []
        self.is_postgresql = engine.dialect.name == "postgresql"
        self.is_sqlite = engine.dialect.name == "sqlite"
        self._statement_engine = (
            engine.execution_options(isolation_level=AUTOCOMMIT)
            if autocommit_statements
            else engine
        )
        self._reading_engine = (
            engine.execution_options(isolation_level=AUTOCOMMIT)
            if autocommit_statements or self.is_sqlite
            else engine
        )

    @classmethod
    def for_settings(cls, engine: AsyncEngine, settings: Settings) -> Database:
        target = database_target(settings)
        return cls(
            engine,
            autocommit_statements=target.is_postgres
            and not pooler_forgets_prepared_statements(settings, target),
        )

    def on_change(self, listener: Callable[[str], None]) -> None:
        """Call `listener(owner id)` after each committed write of an owner's tasks."""
        self._change_listeners.append(listener)

    def changed(self, user_id: str) -> None:
        """A write of `user_id`'s tasks committed (in this process)."""
        for listener in self._change_listeners:
            listener(user_id)

    def on_revocation(self, listener: Callable[[str], None]) -> None:
        """Call `listener(subject)` after each committed revocation of a subject's tokens."""
        self._revocation_listeners.append(listener)

    def revoked(self, subject: str) -> None:
        """A revocation of `subject`'s tokens (one, or all) committed (in this process)."""
        for listener in self._revocation_listeners:
            listener(subject)

    @asynccontextmanager
    async def statement(self) -> AsyncIterator[AsyncConnection]:
        """A connection for one statement that must be atomic on its own."""
        async with self._statement_engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A connection for statements that only read (no snapshot spans them)."""
        async with self._reading_engine.begin() as connection:
            yield connection

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A connection in a transaction, for writes that need several statements."""
        async with self.engine.begin() as connection:
            yield connection


async def create_tables(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.run_sync(SQLModel.metadata.create_all)


class SchemaNotMigratedError(RuntimeError):
    """PostgreSQL answers but lacks the application's tables: `alembic upgrade head` was not run."""


def _missing_tables(connection: Connection) -> list[str]:
    present = set(inspect(connection).get_table_names())
    return sorted(set(SQLModel.metadata.tables) - present)


async def ensure_schema_migrated(engine: AsyncEngine) -> None:
    """Refuse to serve a PostgreSQL database that was never migrated (every request would fail
    with "relation does not exist"). A database that does not answer yet is not refused: the
    app starts and answers 503 until it does (a cold Neon compute, an outage)."""
    try:
        async with engine.connect() as connection:
            missing = await connection.run_sync(_missing_tables)
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        logger.warning("database unavailable at startup, answering 503 until it is: %r", exc)
        return
    if missing:
        raise SchemaNotMigratedError(
            f"The database has no table {', '.join(missing)}: run `uv run alembic upgrade head` "
            "(against the direct, non-pooler URL) before starting the API."
        )


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request: commit once on success, roll back on any error."""
    state = request.app.state
    reads_only = request.method in READ_ONLY_METHODS
    sessionmaker: async_sessionmaker[AsyncSession] = (
        state.read_sessionmaker if reads_only else state.sessionmaker
    )
    async with sessionmaker() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


def insert_for(dialect_name: str) -> Any:
    """The `insert` construct of a dialect, for `ON CONFLICT` upserts."""
    return postgresql_insert if dialect_name == "postgresql" else sqlite_insert


def dialect_insert(session: AsyncSession) -> Any:
    """The `insert` construct of the session's dialect."""
    return insert_for(session.bind.dialect.name)


# `scope="function"` commits before the response is sent, so a 2xx always means "stored".
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_database(request: Request) -> Database:
    return request.app.state.database


DatabaseDep = Annotated[Database, Depends(get_database)]


# Failures that mean "the database did not answer", as opposed to a bug in a query.
database_errors: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    OSError,
    TimeoutError,
    PoolTimeoutError,  # every pooled connection stayed busy (e.g. all waiting to connect)
)

# SQLSTATE classes the server answers with when it cannot serve us, rather than because a
# query is wrong: connection exceptions, authentication, insufficient resources (too many
# connections), operator intervention (shutting down, starting up, statement timeout), and a
# database that does not exist.
UNAVAILABLE_SQLSTATES = ("08", "28", "53", "57", "3D000")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` means "the database cannot serve this request now" (a 503, not a 500)."""
    if isinstance(exc, database_errors):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    return isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES)
