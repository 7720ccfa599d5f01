"""`alembic upgrade head` before the server starts, as the container does on PostgreSQL.

Through the direct endpoint, as the README says migrations should go: `DATABASE_DIRECT_URL`,
else a Neon `-pooler` host's direct twin, else `DATABASE_URL` itself.

It runs the project's own Alembic environment in this process (`alembic/env.py`), which holds
the migration lock (`database.migrations`): containers that start together migrate one at a
time and the later ones find nothing to do. A database that does not answer yet (a cold
compute, a server still starting) is waited for, for a while; any other failure is raised.
"""

from __future__ import annotations

import logging
import time

from alembic import command

from database.migrations import alembic_config
from database.url import direct_twin_url
from db import is_database_unavailable
from settings import Settings

logger = logging.getLogger("todo.migrations")

DATABASE_WAIT_SECONDS = 60.0
RETRY_SECONDS = 2.0


def migration_settings(settings: Settings) -> Settings:
    """The settings with the database URL migrations use (never a transaction pooler's)."""
    direct = settings.database_direct_url or direct_twin_url(settings.database_url)
    if direct is None:
        return settings
    return settings.model_copy(
        update={"database_url": direct, "db_pooler": False, "db_pooler_prepared_statements": None}
    )


def migrate_to_head(settings: Settings, *, wait_seconds: float = DATABASE_WAIT_SECONDS) -> None:
    config = alembic_config()
    config.attributes["settings"] = migration_settings(settings)
    deadline = time.monotonic() + wait_seconds
    while True:
        try:
            command.upgrade(config, "head")
        except Exception as exc:
            if not is_database_unavailable(exc) or time.monotonic() >= deadline:
                raise
            logger.warning(
                "database unavailable, migrating again in %.0f s: %r", RETRY_SECONDS, exc
            )
            time.sleep(RETRY_SECONDS)
        else:
            return
