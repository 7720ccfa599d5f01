"""How the application connects: driver arguments per URL and what counts as "unavailable"."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from db import Database, create_engine_for, database_target, is_database_unavailable
from settings import load_settings

NEON_DIRECT = "postgresql://u:p@ep-cool-123.eu-central-1.aws.neon.tech/db?sslmode=require"
NEON_POOLER = "postgresql://u:p@ep-cool-123-pooler.eu-central-1.aws.neon.tech/db?sslmode=require"
POOLER_KEYS = {"statement_cache_size", "prepared_statement_cache_size"}


class TestConnectArguments:
    def test_timeouts_come_from_the_settings(self) -> None:
        target = database_target(
            load_settings(database_url=NEON_DIRECT, db_connect_timeout=4, db_command_timeout=9)
        )
        assert target.connect_args["timeout"] == 4
        assert target.connect_args["command_timeout"] == 9
        assert target.connect_args["ssl"] == "require"

    def test_direct_endpoint_keeps_statement_caches(self) -> None:
        target = database_target(load_settings(database_url=NEON_DIRECT, db_pooler=False))
        assert not POOLER_KEYS & set(target.connect_args)

    def test_neon_pooler_endpoint_keeps_them_as_it_tracks_prepared_statements(self) -> None:
        settings = load_settings(
            database_url=NEON_POOLER, db_pooler=False, db_pooler_prepared_statements=None
        )
        target = database_target(settings)
        assert not POOLER_KEYS & set(target.connect_args)

    def test_a_pooler_that_forgets_prepared_statements_turns_them_off(self) -> None:
        settings = load_settings(
            database_url=NEON_POOLER, db_pooler=False, db_pooler_prepared_statements=False
        )
        args = database_target(settings).connect_args
        assert args["statement_cache_size"] == 0
        assert args["prepared_statement_cache_size"] == 0
        name = args["prepared_statement_name_func"]
        assert name() != name()

    def test_db_pooler_turns_them_off_for_any_host(self) -> None:
        target = database_target(
            load_settings(
                database_url="postgresql://u@10.0.0.5:6432/db",
                db_pooler=True,
                db_pooler_prepared_statements=None,
            )
        )
        assert target.connect_args["statement_cache_size"] == 0

    def test_db_pooler_that_tracks_prepared_statements_keeps_them(self) -> None:
        settings = load_settings(
            database_url="postgresql://u@10.0.0.5:6432/db",
            db_pooler=True,
            db_pooler_prepared_statements=True,
        )
        assert not POOLER_KEYS & set(database_target(settings).connect_args)

    def test_sqlite_gets_none_of_it(self) -> None:
        target = database_target(load_settings(database_url="sqlite:///./x.db", db_pooler=True))
        assert not POOLER_KEYS & set(target.connect_args)
        assert "command_timeout" not in target.connect_args


class TestStatementsInAutocommit:
    """Where a task statement is its own transaction (one round trip) and where a transaction
    must keep the prepare and the execution on one server connection."""

    @pytest.mark.parametrize(
        ("url", "settings", "autocommits"),
        [
            pytest.param(NEON_DIRECT, {}, True, id="direct"),
            pytest.param(NEON_POOLER, {}, True, id="neon-pooler"),
            pytest.param(
                NEON_POOLER, {"db_pooler_prepared_statements": False}, False, id="forgetting-neon"
            ),
            pytest.param(NEON_DIRECT, {"db_pooler": True}, False, id="db-pooler"),
            pytest.param(
                NEON_DIRECT,
                {"db_pooler": True, "db_pooler_prepared_statements": True},
                True,
                id="tracking-db-pooler",
            ),
            pytest.param("sqlite+aiosqlite:///./x.db", {"db_pooler": True}, False, id="sqlite"),
        ],
    )
    async def test_per_database(self, url: str, settings: dict, autocommits: bool) -> None:
        unset = {"db_pooler": False, "db_pooler_prepared_statements": None}  # not the environment's
        loaded = load_settings(database_url=url, **(unset | settings))
        engine = create_engine_for(loaded)
        try:
            assert Database.for_settings(engine, loaded).autocommits_statements is autocommits
        finally:
            await engine.dispose()


class _ServerError(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(f"server said {sqlstate}")
        self.sqlstate = sqlstate


class TestUnavailable:
    @pytest.mark.parametrize(
        "sqlstate",
        [
            "08006",  # connection failure
            "28000",  # no pg_hba.conf entry (a non-TLS connection to a TLS-only server)
            "28P01",  # wrong password
            "53300",  # too many connections
            "57P01",  # server shutting down
            "57P03",  # server starting up
            "57014",  # statement timeout
            "3D000",  # database does not exist
        ],
    )
    def test_server_cannot_serve(self, sqlstate: str) -> None:
        assert is_database_unavailable(DBAPIError("SELECT 1", None, _ServerError(sqlstate)))

    @pytest.mark.parametrize("sqlstate", ["42P01", "42601", "22001"])
    def test_bugs_are_not_outages(self, sqlstate: str) -> None:
        assert not is_database_unavailable(DBAPIError("SELECT 1", None, _ServerError(sqlstate)))

    def test_network_errors_and_timeouts(self) -> None:
        assert is_database_unavailable(ConnectionRefusedError())
        assert is_database_unavailable(TimeoutError())
        assert is_database_unavailable(PoolTimeoutError("QueuePool limit reached"))

    def test_constraint_violation_is_not(self) -> None:
        assert not is_database_unavailable(IntegrityError("INSERT", None, _ServerError("23505")))
        assert not is_database_unavailable(ValueError("nope"))
