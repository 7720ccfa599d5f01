"""Database metrics: what kind of statement each is, and the checkouts that waited."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from observability.database import ObservedQueuePool, PoolGauges, observe_engine, statement_kind


class TestStatementKind:
    @pytest.mark.parametrize(
        ("sql", "kind"),
        [
            ("SELECT tasks.id FROM tasks", "select"),
            ("\n (SELECT 1) UNION (SELECT 2)", "select"),
            ("INSERT INTO tasks ... ON CONFLICT (key) DO UPDATE SET hits = 1", "insert"),
            ("UPDATE tasks SET title = $1", "update"),
            ("DELETE FROM tasks", "delete"),
            ("WITH counter AS (UPDATE change_counters SET seq = seq + 1) SELECT 1", "write"),
            ("WITH created AS (INSERT INTO tasks ...) SELECT 1", "write"),
            ("WITH page AS (SELECT updated_at FROM tasks FOR UPDATE) SELECT 1", "select"),
            ("BEGIN IMMEDIATE", "transaction"),
            ("PRAGMA busy_timeout = 15000", "other"),
            ("", "other"),
        ],
    )
    def test_kinds(self, sql: str, kind: str) -> None:
        assert statement_kind(sql) == kind


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class TestThePool:
    async def test_a_checkout_that_found_every_connection_busy_waited(self, tmp_path: Path) -> None:
        engine = create_async_engine(
            f"sqlite+aiosqlite:///{tmp_path / 'pool.db'}",
            poolclass=ObservedQueuePool,
            pool_size=1,
            max_overflow=0,
        )
        observe_engine(engine)
        gauges = PoolGauges(engine)
        waits = sample("todo_db_pool_checkout_waits_total")
        selects = sample("todo_db_statement_duration_seconds_count", kind="select")
        try:
            async with engine.connect() as first:
                await first.execute(text("SELECT 1"))
                gauges.update()
                assert sample("todo_db_pool_connections_in_use") == 1

                async def second() -> None:
                    async with engine.connect() as connection:
                        await connection.execute(text("SELECT 2"))

                waiting = asyncio.create_task(second())
                await asyncio.sleep(0.05)
                assert sample("todo_db_pool_checkout_waits_total") == waits
            await waiting
            gauges.update()
            assert sample("todo_db_pool_connections_in_use") == 0
        finally:
            await engine.dispose()
        assert sample("todo_db_pool_checkout_waits_total") == waits + 1
        assert sample("todo_db_pool_checkout_wait_seconds_count") >= 1
        assert sample("todo_db_statement_duration_seconds_count", kind="select") == selects + 2
