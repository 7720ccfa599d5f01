"""Behind PgBouncer in transaction mode, of both kinds.

One that forgets prepared statements (Debian 12's 1.18, or `max_prepared_statements = 0`): each
transaction runs on whichever server connection is free, so a prepared statement must never
outlive its transaction, and its name must be unique among every client of the pooler: asyncpg
numbers statements per process, so two app processes behind one pooler use the same names. The
scenario below makes both happen deterministically; the pooler settings survive it, the
defaults and "statement caches off" alone (what asyncpg's FAQ suggests) do not.

One that tracks them (1.21 and later with `max_prepared_statements`, as Neon's pooler): the same
scenario in autocommit, with the statement caches on and asyncpg's own names, as the app runs
there (`TEST_PGBOUNCER` names such a binary). The whole API suite also runs through each kind
(`TEST_POSTGRES=pgbouncer DB_POOLER=true [DB_POOLER_PREPARED_STATEMENTS=true] uv run pytest`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from db import Database, create_engine_for, database_target
from settings import load_settings
from tests.infra.conftest import require_tools, skip_or_fail
from tests.infra.servers import (
    PgBouncer,
    PostgresServer,
    pgbouncer,
    pgbouncer_binary,
    pgbouncer_tracks_prepared_statements,
)

pytestmark = pytest.mark.infra


@pytest.fixture(scope="module")
def bouncer(postgres: PostgresServer) -> Iterator[PgBouncer]:
    """A pooler that forgets prepared statements."""
    require_tools(pgbouncer=True)
    with pgbouncer(postgres, pool_size=2, track_prepared_statements=False) as running:
        yield running


@pytest.fixture(scope="module")
def tracking_bouncer(postgres: PostgresServer) -> Iterator[PgBouncer]:
    """A pooler that tracks prepared statements, as Neon's."""
    require_tools(pgbouncer=True)
    if not pgbouncer_tracks_prepared_statements(pgbouncer_binary()):
        skip_or_fail(f"{pgbouncer_binary()} is older than 1.21: set TEST_PGBOUNCER to a newer one")
    with pgbouncer(postgres, pool_size=2, track_prepared_statements=True) as running:
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


async def _autocommit_statements_meet_other_servers(
    first: AsyncEngine, second: AsyncEngine
) -> None:
    """An app's autocommit statements while another client holds server connections: each
    statement, prepared once on its client connection, runs on whichever server is free."""
    try:
        async with (
            first.execution_options(isolation_level="AUTOCOMMIT").connect() as a,
            second.connect() as b,
        ):
            await _select(a, 1)  # prepared and run on server connection 1, free again after it
            for number in range(2, 12):
                await _select(b, number)  # b's transaction takes the free server and keeps it
                await _select(a, number)  # so a's statement runs on the other one
                await b.commit()
    finally:
        await first.dispose()
        await second.dispose()


def _tracking_pooler_engine(url: str) -> AsyncEngine:
    settings = load_settings(database_url=url, db_pooler=True, db_pooler_prepared_statements=True)
    return create_engine_for(settings)


async def test_a_tracking_pooler_lets_the_app_keep_caches_and_autocommit(
    tracking_bouncer: PgBouncer,
) -> None:
    settings = load_settings(
        database_url=tracking_bouncer.url(), db_pooler=True, db_pooler_prepared_statements=True
    )
    assert "statement_cache_size" not in database_target(settings).connect_args
    engine = create_engine_for(settings)
    try:
        assert Database.for_settings(engine, settings).autocommits_statements
    finally:
        await engine.dispose()
    await _autocommit_statements_meet_other_servers(
        _tracking_pooler_engine(tracking_bouncer.url()),
        _tracking_pooler_engine(tracking_bouncer.url()),
    )


async def test_a_forgetting_pooler_breaks_the_same_autocommit_traffic(bouncer: PgBouncer) -> None:
    """What `DB_POOLER_PREPARED_STATEMENTS=true` must never be set for."""
    with pytest.raises(DBAPIError, match="does not exist"):
        await _autocommit_statements_meet_other_servers(
            _tracking_pooler_engine(bouncer.url()), _tracking_pooler_engine(bouncer.url())
        )
