"""Alembic environment: migrates the database the application is configured for.

The URL and the driver arguments (TLS, timeouts, pooler settings) come from the application's
own settings (`DATABASE_URL`, or `.env`) through the same code the application uses, so the URL
pasted from Neon's console works here unchanged. Migrate through the direct endpoint, not the
`-pooler` one. On PostgreSQL every online run holds an advisory lock for its transaction
(`database.migrations`), so containers that start together migrate one at a time. Tests may pass
a `Settings` object as `config.attributes["settings"]`.
"""

from __future__ import annotations

import asyncio
from logging.config import fileConfig
from typing import Any, Literal

from alembic import context
from sqlalchemy.engine import Connection
from sqlmodel import SQLModel
from sqlmodel.sql.sqltypes import AutoString

import models  # noqa: F401  (registers the tables on SQLModel.metadata)
from database.migrations import lock_for_migration
from database.schema_comparison import comparison_options
from database.types import UTCDateTime
from db import create_engine_for, database_target
from models import PriorityRank
from settings import Settings, get_settings

config = context.config
if config.config_file_name is not None:
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = SQLModel.metadata


def _settings() -> Settings:
    # Migrating needs the database's settings only, not the secret a production server does.
    return config.attributes.get("settings") or get_settings(serving=False)


def render_item(type_: str, obj: Any, _autogen_context: Any) -> str | Literal[False]:
    """Write the application's column types as plain SQLAlchemy ones in new revisions, so a
    revision never imports application code (which keeps changing after it is written)."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    if type_ == "type" and isinstance(obj, PriorityRank):
        return "sa.SmallInteger()"
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _configure(dialect_name: str, **options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        render_item=render_item,
        **comparison_options(dialect_name),
        **options,
    )


def run_migrations_offline() -> None:
    """`alembic upgrade head --sql`: print the SQL instead of running it."""
    url = database_target(_settings()).url
    _configure(
        url.get_backend_name(),
        url=url,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_migrations(connection: Connection) -> None:
    # SQLite cannot ALTER most things in place: batch mode rebuilds the table instead.
    dialect_name = connection.dialect.name
    _configure(dialect_name, connection=connection, render_as_batch=dialect_name == "sqlite")
    with context.begin_transaction():
        # Before Alembic reads the current revision: several processes migrating at once take
        # turns, and the later ones find nothing left to do (PostgreSQL; no-op on SQLite).
        lock_for_migration(connection)
        context.run_migrations()


async def run_migrations_online() -> None:
    engine = create_engine_for(_settings())
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_migrations)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    asyncio.run(run_migrations_online())
