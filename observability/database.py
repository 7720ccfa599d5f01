"""Database metrics, on the engine `db.create_engine_for` makes (only with METRICS_ENABLED):
every statement's kind and time (SQLAlchemy's cursor events), checkouts that had to wait (the
pool class), and the pool's connections in use and beyond its size (read from the pool twice a
second: no checkout pays for them).

The gauges are this process's; in multiprocess mode `/metrics` sums them over the workers.
"""

from __future__ import annotations

import logging
import re
import time
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import AsyncAdaptedQueuePool, QueuePool

from observability.metrics import (
    DB_CHECKOUT_WAIT,
    DB_CHECKOUT_WAITS,
    DB_IN_USE,
    DB_OVERFLOW,
    DB_STATEMENTS,
)

STARTED = "todo.statement_started"
PLAIN_KINDS = frozenset({"select", "insert", "update", "delete"})
TRANSACTION_WORDS = frozenset({"begin", "commit", "rollback", "savepoint", "release", "start"})
# A data-modifying keyword (SQLAlchemy writes keywords in capitals, names in lower case), but not
# a row lock (`FOR UPDATE`, `FOR NO KEY UPDATE`).
CHANGES_DATA = re.compile(r"(?<!FOR )(?<!KEY )\b(?:INSERT|UPDATE|DELETE)\b")


@lru_cache(maxsize=1024)
def statement_kind(sql: str) -> str:
    """`select`, `insert`, `update`, `delete`; `write` for a `WITH` whose CTEs change data
    (every task write on PostgreSQL is one); `transaction` (BEGIN, COMMIT, ...); `other`."""
    words = sql.lstrip(" \n\t(").split(None, 1)
    first = words[0].lower() if words else ""
    if first in PLAIN_KINDS:
        return first
    if first == "with":
        return "write" if CHANGES_DATA.search(sql) else "select"
    return "transaction" if first in TRANSACTION_WORDS else "other"


class ObservedQueuePool(AsyncAdaptedQueuePool):
    """The async engine's usual pool, counting the checkouts that found every connection in use
    (`DB_POOL_SIZE + DB_MAX_OVERFLOW` of them) and so waited for one to come back."""

    def __init__(self, creator: Any, pool_size: int = 5, max_overflow: int = 10, **kw: Any):
        super().__init__(creator, pool_size=pool_size, max_overflow=max_overflow, **kw)
        self._capacity = pool_size + max_overflow if max_overflow >= 0 else None

    def connect(self) -> Any:
        if self._capacity is None or self.checkedout() < self._capacity:
            return super().connect()
        started = time.perf_counter()
        try:
            return super().connect()
        finally:
            DB_CHECKOUT_WAITS.inc()
            DB_CHECKOUT_WAIT.observe(time.perf_counter() - started)


# SQLAlchemy names a pool's logger after its class and keeps its own namespace (`sqlalchemy`) at
# WARNING (else every dispose logs at INFO); this class lives outside it, so the same here.
logging.getLogger(f"{__name__}.{ObservedQueuePool.__name__}").setLevel(logging.WARNING)


def observe_engine(engine: AsyncEngine | Engine) -> None:
    """Time the engine's statements (SQLAlchemy's cursor events, on an async engine's
    `sync_engine`); the pool's gauges are read from the pool itself (`PoolGauges.update`), so
    no checkout pays for them."""
    target = engine.sync_engine if isinstance(engine, AsyncEngine) else engine
    statement_histograms: dict[str, Any] = {}

    @event.listens_for(target, "before_cursor_execute")
    def _before(connection: Any, *_args: Any) -> None:
        connection.info[STARTED] = time.perf_counter()

    @event.listens_for(target, "after_cursor_execute")
    def _after(connection: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        started = connection.info.pop(STARTED, None)
        if started is None:
            return
        kind = statement_kind(statement)
        histogram = statement_histograms.get(kind)
        if histogram is None:
            histogram = statement_histograms[kind] = DB_STATEMENTS.labels(kind)
        histogram.observe(time.perf_counter() - started)


class PoolGauges:
    """The pool's connections in use and beyond its size, copied into this process's gauges
    by `update` (the lifespan's ticker calls it twice a second; a scrape reads the copies)."""

    def __init__(self, engine: AsyncEngine | Engine) -> None:
        self.engine = engine.sync_engine if isinstance(engine, AsyncEngine) else engine

    def update(self) -> None:
        pool = self.engine.pool  # a disposed engine gets a new pool
        if isinstance(pool, QueuePool):
            DB_IN_USE.set(pool.checkedout())
            DB_OVERFLOW.set(max(0, pool.overflow()))
