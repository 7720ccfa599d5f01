"""Whether this instance should get traffic (`GET /readyz`).

Ready means: not shutting down, the database answers, and on PostgreSQL its schema is at the
head of the revision scripts (a database migrated by nobody, or to another revision, would fail
requests at run time). SQLite's schema is built from the models at startup, so there the
database answering is enough. From the first SIGTERM on, the answer is 503 without looking, so a
load balancer drains the instance while it finishes what it is doing.

`READINESS_CACHE_SECONDS` lets answers about the database be reused for that long: probes from
several balancers cost one query, and a long value lets a scale-to-zero database sleep between
looks (README "Deploy").
"""

from __future__ import annotations

import logging
import time

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from database.migrations import database_revisions, schema_status
from db import is_database_unavailable
from schemas import NotReady, Ready

logger = logging.getLogger("todo.readiness")

SHUTTING_DOWN = "Shutting down"
DATABASE_UNAVAILABLE = "Database unavailable"


class Readiness:
    def __init__(self, *, cache_seconds: float = 0.0) -> None:
        self.cache_seconds = cache_seconds
        self._shutting_down = False
        self._last: tuple[float, Ready | NotReady] | None = None

    def begin_shutdown(self) -> None:
        """From now on the answer is 503 (SIGTERM arrived, or the lifespan is ending)."""
        self._shutting_down = True

    async def check(self, engine: AsyncEngine) -> Ready | NotReady:
        if self._shutting_down:
            return NotReady(status="unavailable", reason="shutting_down", detail=SHUTTING_DOWN)
        now = time.monotonic()
        if self._last is not None and now - self._last[0] < self.cache_seconds:
            return self._last[1]
        answer = await self._look(engine)
        self._last = (now, answer)
        return answer

    @staticmethod
    async def _look(engine: AsyncEngine) -> Ready | NotReady:
        try:
            async with engine.connect() as connection:
                if engine.dialect.name == "sqlite":
                    await connection.execute(text("SELECT 1"))
                    return Ready(status="ready", database="ok", revision=None)
                revisions = await database_revisions(connection)
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            logger.warning("readiness: database unavailable: %r", exc)
            return NotReady(
                status="unavailable", reason="database_unavailable", detail=DATABASE_UNAVAILABLE
            )
        status = schema_status(revisions)
        if status.problem is not None:
            logger.warning("readiness: %s", status.problem)
            return NotReady(
                status="unavailable",
                reason="schema_not_at_head",
                detail=status.problem,
                revision=status.revision,
            )
        return Ready(status="ready", database="ok", revision=status.revision)
