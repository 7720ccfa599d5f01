"""What is kept only for a while, and the hourly job that forgets it.

- The change log keeps `CHANGE_LOG_RETENTION_DAYS` (30) days. Purging an owner's entries
  raises their `purged_through`, so a cursor from before it gets 410 and the client syncs from
  scratch instead of silently missing the deletions that were forgotten.
- Idempotency records expire after `IDEMPOTENCY_KEY_LIFETIME_HOURS`, event tickets after a
  minute, logged-out tokens when they would have expired anyway.

Every instance runs the job; on PostgreSQL an advisory lock lets one at a time do the work.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, case, func, select, text

from database.types import UTCDateTime, utcnow
from db import Database, is_database_unavailable
from models import (
    RevokedToken,
    change_counters,
    event_tickets,
    idempotency_records,
    task_changes,
)
from observability.metrics import PURGE_RUNS

logger = logging.getLogger("todo.retention")

EVERY_SECONDS = 3600.0
FIRST_RUN_WITHIN_SECONDS = 60.0
# The name of the background task that runs `keep_tidy` (tests tell its statements apart).
TIDY_TASK_NAME = "change-log-retention"
# pg_try_advisory_xact_lock key: "todo" + "purge".
PURGE_LOCK = 0x746F646F_7075
revoked_tokens = RevokedToken.__table__


@dataclass(frozen=True, slots=True)
class Purged:
    log_entries: int
    owners: int
    idempotency_records: int
    event_tickets: int
    revoked_tokens: int


OLD_ENOUGH = (
    select(task_changes.c.user_id, func.max(task_changes.c.seq).label("upto"))
    .where(task_changes.c.changed_at < bindparam("cutoff", type_=UTCDateTime()))
    .group_by(task_changes.c.user_id)
)
RAISE_FLOOR = (
    change_counters.update()
    .where(change_counters.c.user_id == bindparam("owner"))
    .values(
        purged_through=case(
            (change_counters.c.purged_through < bindparam("upto"), bindparam("upto")),
            else_=change_counters.c.purged_through,
        )
    )
)
FORGET_ENTRIES = task_changes.delete().where(
    task_changes.c.user_id == bindparam("owner"), task_changes.c.seq <= bindparam("upto")
)


async def purge(db: Database, retention: timedelta, now: datetime | None = None) -> Purged | None:
    """One pass; None when another instance holds the purge lock."""
    now = now or utcnow()
    async with db.transaction() as connection:
        if db.is_postgresql:
            locked = await connection.scalar(
                text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": PURGE_LOCK}
            )
            if not locked:
                return None
        owners = (await connection.execute(OLD_ENOUGH, {"cutoff": now - retention})).all()
        entries = 0
        if owners:
            values = [{"owner": owner, "upto": upto} for owner, upto in owners]
            await connection.execute(RAISE_FLOOR, values)
            entries = (await connection.execute(FORGET_ENTRIES, values)).rowcount
        counts = []
        for table in (idempotency_records, event_tickets, revoked_tokens):
            result = await connection.execute(table.delete().where(table.c.expires_at <= now))
            counts.append(result.rowcount)
    return Purged(entries, len(owners), *counts)


async def keep_tidy(db: Database, retention: timedelta) -> None:
    """Purge at a random moment of the first minute, then every hour (a background task)."""
    await asyncio.sleep(random.uniform(0, FIRST_RUN_WITHIN_SECONDS))
    while True:
        try:
            purged = await purge(db, retention)
        except Exception as exc:
            if not is_database_unavailable(exc):
                PURGE_RUNS.labels("failed").inc()
                logger.exception("purge failed")
            else:
                PURGE_RUNS.labels("unavailable").inc()
                logger.warning("purge skipped, database unavailable: %r", exc)
        else:
            PURGE_RUNS.labels("skipped" if purged is None else "purged").inc()
            if purged is not None:
                logger.info("purged %s", purged)
        await asyncio.sleep(EVERY_SECONDS)
