"""The Alembic revisions seen from the running application: the head the scripts lead to, where a
database stands against it, and the lock that lets one process at a time migrate.

The head is read from the scripts (`alembic/versions`, through Alembic's `ScriptDirectory`),
never written down here, so a new revision moves it by being added.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.ext.asyncio import AsyncConnection

logger = logging.getLogger("todo.migrations")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ALEMBIC_INI = PROJECT_ROOT / "alembic.ini"
VERSION_TABLE = "alembic_version"
UNDEFINED_TABLE = "42P01"
# One application-defined lock for "migrating this database" (PostgreSQL advisory locks live in
# the database they are taken in). The number is arbitrary and fixed: every version of the app
# must take the same one.
MIGRATION_LOCK_KEY = 7_318_012_404_019
LOCK_POLL_SECONDS = 0.5
# How long a migration waits for another process's before it gives up.
LOCK_WAIT_SECONDS = 600.0


def alembic_config() -> Config:
    """The project's `alembic.ini`, wherever the process was started from."""
    return Config(str(ALEMBIC_INI))


@cache
def _scripts() -> ScriptDirectory:
    """The revision scripts, read once per process (they do not change while it runs)."""
    return ScriptDirectory.from_config(alembic_config())


def head_revisions() -> frozenset[str]:
    """The revisions the scripts lead to (one, unless someone forgot to merge branches)."""
    return frozenset(_scripts().get_heads())


def _known_revision(revision: str) -> bool:
    try:
        return _scripts().get_revision(revision) is not None
    except CommandError:
        return False


async def database_revisions(connection: AsyncConnection) -> frozenset[str] | None:
    """The revisions recorded in the database, or None when it was never migrated (no
    `alembic_version` table; an empty one gives an empty set)."""
    try:
        rows = await connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    except ProgrammingError as exc:
        if getattr(exc.orig, "sqlstate", None) == UNDEFINED_TABLE:
            return None
        raise
    return frozenset(row[0] for row in rows)


@dataclass(frozen=True)
class SchemaStatus:
    """Where a database's schema stands against the scripts' head; `problem` is None at head."""

    revision: str | None
    problem: str | None

    @property
    def at_head(self) -> bool:
        return self.problem is None


def schema_status(current: frozenset[str] | None) -> SchemaStatus:
    """Compare the database's recorded revisions with the head, saying what is wrong if any."""
    heads = head_revisions()
    head = ", ".join(sorted(heads))
    if not current:
        return SchemaStatus(
            revision=None,
            problem=f"Database schema not migrated (head is {head}): run `alembic upgrade head`",
        )
    revision = ", ".join(sorted(current))
    if current == heads:
        return SchemaStatus(revision=revision, problem=None)
    unknown = sorted(rev for rev in current if not _known_revision(rev))
    if unknown:
        return SchemaStatus(
            revision=revision,
            problem=(
                f"Database schema at revision {revision}, which this version does not know "
                f"(its head is {head}; a newer version may have migrated it)"
            ),
        )
    return SchemaStatus(
        revision=revision,
        problem=(
            f"Database schema at revision {revision}, this version needs {head}: "
            "run `alembic upgrade head`"
        ),
    )


class MigrationLockTimeout(RuntimeError):
    """Another process kept the migration lock for longer than `LOCK_WAIT_SECONDS`."""


def lock_for_migration(connection: Connection, *, wait_seconds: float = LOCK_WAIT_SECONDS) -> None:
    """Hold the migration lock until the connection's transaction ends (PostgreSQL only).

    Taken inside the migration's transaction and before Alembic reads the current revision, so
    of several processes migrating at once one runs the revisions and the others, once it has
    committed, find the database at head and have nothing to do. A process that dies mid-way
    rolls back and frees the lock. Scoped to the transaction, it holds through a transaction
    pooler too. It is polled rather than awaited, so that the wait is bounded and logged, and no
    statement timeout cuts a long wait short.
    """
    if connection.dialect.name != "postgresql":
        return
    statement = text("SELECT pg_try_advisory_xact_lock(:key)")
    deadline = time.monotonic() + wait_seconds
    waiting = False
    while not connection.execute(statement, {"key": MIGRATION_LOCK_KEY}).scalar_one():
        if time.monotonic() >= deadline:
            raise MigrationLockTimeout(
                f"another process has been migrating this database for over {wait_seconds:.0f}"
                " s (it holds the migration lock); not migrating"
            )
        if not waiting:
            logger.info("another process is migrating this database: waiting for it")
            waiting = True
        time.sleep(LOCK_POLL_SECONDS)
    if waiting:
        logger.info("the other migration finished: checking what is left to do")
