"""The Alembic revisions build exactly the schema the models describe, on PostgreSQL and SQLite;
on PostgreSQL several migrations at once take turns (the advisory lock in `alembic/env.py`).

The comparison is Alembic's autogenerate diff between the migrated database and the complete
metadata of the application (every table any imported module declares), so any drift, a new
table, column, index, type, nullability or server default without its revision, fails here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel

import main  # noqa: F401  (the application: every table it uses is on SQLModel.metadata)
import models  # noqa: F401
from database.migrations import MIGRATION_LOCK_KEY
from database.schema_comparison import comparison_options
from db import SchemaNotMigratedError, create_engine_for
from deploy.migrate import migrate_to_head
from main import create_app
from settings import load_settings
from tests.helpers import TEST_SECRET
from tests.infra.apps import PROJECT_ROOT, alembic, alembic_cli
from tests.infra.servers import PostgresServer

pytestmark = pytest.mark.infra


@pytest.fixture(params=["postgresql", "sqlite"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'migrated.db'}"
        return
    postgres: PostgresServer = request.getfixturevalue("postgres")
    name = f"drift_{uuid.uuid4().hex[:12]}"
    postgres.psql(f'CREATE DATABASE "{name}"')
    yield postgres.url(name)
    postgres.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _inspect(database_url: str, examine: Any) -> Any:
    """Run `examine(sync_connection)` on the database, through the application's engine."""

    async def run() -> Any:
        engine = create_engine_for(load_settings(database_url=database_url))
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(examine)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def differences(database_url: str, metadata: MetaData = SQLModel.metadata) -> list[Any]:
    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts=comparison_options(connection.dialect.name)
        )
        return compare_metadata(context, metadata)

    return _inspect(database_url, diff)


def table_names(database_url: str) -> set[str]:
    return set(_inspect(database_url, lambda connection: inspect(connection).get_table_names()))


def test_the_revisions_form_one_line() -> None:
    scripts = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))
    assert len(scripts.get_heads()) == 1, "merge the Alembic branches into one head"


def test_the_cli_upgrades_the_database_in_database_url(empty_database: str) -> None:
    """`uv run alembic upgrade head`, exactly as the README says, then nothing left to do."""
    output = alembic_cli("upgrade", "head", database_url=empty_database)
    assert "Running upgrade  -> 0001" in output

    assert differences(empty_database) == []
    assert "No new upgrade operations detected" in alembic_cli("check", database_url=empty_database)


def test_upgrade_head_builds_exactly_the_models(empty_database: str) -> None:
    alembic("upgrade", "head", database_url=empty_database)

    assert differences(empty_database) == []
    assert set(SQLModel.metadata.tables) <= table_names(empty_database)


def test_the_comparison_sees_drift(empty_database: str) -> None:
    """Guards the guard: a model change without a revision is reported."""
    alembic("upgrade", "head", database_url=empty_database)
    drifted = MetaData()
    for table in SQLModel.metadata.tables.values():
        table.to_metadata(drifted)
    next(iter(drifted.tables.values())).append_column(Column("added_later", Integer))

    assert differences(empty_database, drifted) != []


def test_downgrade_base_removes_everything_and_upgrade_rebuilds(empty_database: str) -> None:
    alembic("upgrade", "head", database_url=empty_database)
    alembic("downgrade", "base", database_url=empty_database)

    assert table_names(empty_database) <= {"alembic_version"}

    alembic("upgrade", "head", database_url=empty_database)
    assert differences(empty_database) == []


async def test_startup_creates_no_tables_on_postgresql(postgres: PostgresServer) -> None:
    """On PostgreSQL the schema belongs to Alembic; the app sets up only the embedded SQLite,
    and refuses to start on a database that was never migrated, saying what to run."""
    name = f"startup_{uuid.uuid4().hex[:12]}"
    postgres.psql(f'CREATE DATABASE "{name}"')
    settings = load_settings(
        database_url=postgres.url(name), better_auth_secret=TEST_SECRET, bcrypt_rounds=4
    )
    application = create_app(settings)
    with pytest.raises(SchemaNotMigratedError, match="run `uv run alembic upgrade head`"):
        async with application.router.lifespan_context(application):
            pass

    assert await asyncio.to_thread(table_names, postgres.url(name)) == set()


async def test_startup_accepts_a_migrated_postgresql(postgres: PostgresServer) -> None:
    name = f"startup_{uuid.uuid4().hex[:12]}"
    postgres.psql(f'CREATE DATABASE "{name}"')
    alembic("upgrade", "head", database_url=postgres.url(name))
    settings = load_settings(
        database_url=postgres.url(name), better_auth_secret=TEST_SECRET, bcrypt_rounds=4
    )
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        pass


@pytest.fixture
def empty_postgres_database(postgres: PostgresServer) -> Iterator[str]:
    name = f"lock_{uuid.uuid4().hex[:12]}"
    postgres.psql(f'CREATE DATABASE "{name}"')
    yield postgres.url(name)
    postgres.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_several_migrating_at_once_run_the_revisions_once(empty_postgres_database: str) -> None:
    """Three `alembic upgrade head` processes on one empty database, as containers starting
    together: all succeed, one ran the revisions, the others found nothing to do."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        outputs = list(
            pool.map(
                lambda _: alembic_cli("upgrade", "head", database_url=empty_postgres_database),
                range(3),
            )
        )
    assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1
    assert differences(empty_postgres_database) == []


async def test_a_migration_waits_while_another_holds_the_lock(
    empty_postgres_database: str,
) -> None:
    holder = await asyncpg.connect(empty_postgres_database)
    try:
        transaction = holder.transaction()
        await transaction.start()
        await holder.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        migrating = asyncio.create_task(
            asyncio.to_thread(alembic, "upgrade", "head", database_url=empty_postgres_database)
        )
        done, _ = await asyncio.wait({migrating}, timeout=2)
        assert not done, "the migration ran while another process held the lock"
        assert await asyncio.to_thread(table_names, empty_postgres_database) == set()
        await transaction.commit()
        await asyncio.wait_for(migrating, timeout=60)
    finally:
        await holder.close()
    assert await asyncio.to_thread(differences, empty_postgres_database) == []


async def test_the_start_waits_for_a_database_that_comes_up(
    postgres: PostgresServer, empty_postgres_database: str
) -> None:
    """The container's migration retries a database that refuses connections (still starting,
    a cold compute) instead of failing at once."""
    settings = load_settings(database_url=empty_postgres_database, db_connect_timeout=2)
    postgres.stop("fast")
    try:
        migrating = asyncio.create_task(asyncio.to_thread(migrate_to_head, settings))
        done, _ = await asyncio.wait({migrating}, timeout=3)
        assert not done, "gave up on a database that does not answer yet"
    finally:
        postgres.start()
    await asyncio.wait_for(migrating, timeout=60)
    assert await asyncio.to_thread(differences, empty_postgres_database) == []
