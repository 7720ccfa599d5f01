"""Behind PgBouncer in transaction mode (Debian's 1.18: no prepared-statement support at all).

Each transaction runs on whichever server connection is free, so a prepared statement must never
outlive its transaction, and its name must be unique among every client of the pooler: asyncpg
numbers statements per process, so two app processes behind one pooler use the same names. The
scenario below makes both happen deterministically; the pooler settings survive it, the
defaults and "statement caches off" alone (what asyncpg's FAQ suggests) do not. The whole API
suite also runs through such a PgBouncer (`TEST_POSTGRES=pgbouncer DB_POOLER=true uv run pytest`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db import create_engine_for, database_target
from settings import load_settings
from tests.infra.conftest import require_tools
from tests.infra.servers import PgBouncer, PostgresServer, pgbouncer

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def bouncer(postgres: PostgresServer) -> Iterator[PgBouncer]:
    require_tools(pgbouncer=True)
    with pgbouncer(postgres, pool_size=2) as running:
        yield running


async def _select(connection: AsyncConnection, number: int) -> None:
    assert await connection.scalar(text("SELECT :n + 1"), {"n": number}) == number + 1


async def _two_clients_swap_servers(first: AsyncEngine, second: AsyncEngine) -> None:
    """Two clients (think: two app processes) on a pool of two server connections."""
    try:
        async with first.connect() as a, second.connect() as b:
            await _select(a, 1)
            await a.commit()  # a's transaction ran on server connection 1, which is free again
            await _select(b, 2)  # b's transaction takes server connection 1 and keeps it...
            await _select(a, 3)  # ...so a's next one runs on server connection 2
            await a.commit()
            await b.commit()
            for number in range(10):
                client = a if number % 2 else b
                await _select(client, number)
                await client.commit()
    finally:
        await first.dispose()
        await second.dispose()


def _pooler_engine(url: str) -> AsyncEngine:
    return create_engine_for(load_settings(database_url=url, db_pooler=True))


async def test_the_pooler_settings_survive(bouncer: PgBouncer) -> None:
    await _two_clients_swap_servers(_pooler_engine(bouncer.url()), _pooler_engine(bouncer.url()))


def _per_process_names() -> Callable[[], str]:
    """Statement names numbered the way asyncpg numbers them: one counter per process."""
    counter = itertools.count(1)
    return lambda: f"__asyncpg_stmt_{next(counter):x}__"


@pytest.mark.parametrize(
    ("make_connect_args", "error"),
    [
        pytest.param(dict, "does not exist", id="defaults"),
        pytest.param(
            lambda: {
                "statement_cache_size": 0,
                "prepared_statement_cache_size": 0,
                "prepared_statement_name_func": _per_process_names(),
            },
            "already exists",
            id="statement-caches-off-only",
        ),
    ],
)
async def test_without_them_the_same_traffic_fails(
    bouncer: PgBouncer, make_connect_args: Callable[[], dict[str, Any]], error: str
) -> None:
    url = database_target(load_settings(database_url=bouncer.url())).url
    first = create_async_engine(url, connect_args=make_connect_args())
    second = create_async_engine(url, connect_args=make_connect_args())

    with pytest.raises(DBAPIError, match=error):
        await _two_clients_swap_servers(first, second)
