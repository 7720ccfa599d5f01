"""`database/url.py`: the database URLs people paste, normalised for asyncpg and aiosqlite."""

from __future__ import annotations

import re
import ssl

import pytest

from database.url import DatabaseURLError, parse_database_url


class TestDatabaseURL:
    @pytest.mark.parametrize(
        "raw",
        [
            "postgres://u:p@host:5432/db",
            "postgresql://u:p@host:5432/db",
            "postgresql+asyncpg://u:p@host:5432/db",
            "postgresql+psycopg2://u:p@host:5432/db",
        ],
    )
    def test_postgres_forms_become_asyncpg(self, raw: str) -> None:
        target = parse_database_url(raw)
        assert target.url.drivername == "postgresql+asyncpg"
        assert (target.url.host, target.url.database, target.url.password) == ("host", "db", "p")
        assert target.connect_args == {}

    def test_neon_console_url(self) -> None:
        target = parse_database_url(
            "postgresql://neondb_owner:pw@ep-cool-1234-pooler.eu-central-1.aws.neon.tech/neondb"
            "?sslmode=require&channel_binding=require"
        )
        assert target.url.drivername == "postgresql+asyncpg"
        assert dict(target.url.query) == {}
        assert target.connect_args == {"ssl": "require"}

    def test_verify_full_uses_a_verifying_context(self) -> None:
        target = parse_database_url("postgresql://u@h/db?sslmode=verify-full")
        context = target.connect_args["ssl"]
        assert isinstance(context, ssl.SSLContext)
        assert context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED

    def test_verify_ca_skips_hostname(self) -> None:
        context = parse_database_url("postgresql://u@h/db?sslmode=verify-ca").connect_args["ssl"]
        assert not context.check_hostname and context.verify_mode == ssl.CERT_REQUIRED

    def test_disable(self) -> None:
        assert parse_database_url("postgresql://u@h/db?sslmode=disable").connect_args == {
            "ssl": False
        }

    def test_other_query_keys_are_kept(self) -> None:
        target = parse_database_url("postgresql://u@h/db?sslmode=require&command_timeout=5")
        assert dict(target.url.query) == {"command_timeout": "5"}

    @pytest.mark.parametrize("raw", ["sqlite:///./todo.db", "sqlite+aiosqlite:///./todo.db"])
    def test_sqlite(self, raw: str) -> None:
        target = parse_database_url(raw)
        assert target.is_sqlite
        assert target.url.drivername == "sqlite+aiosqlite"

    @pytest.mark.parametrize(
        "raw", ["mysql://u@h/db", "postgresql://u@h/db?sslmode=sometimes", "::::"]
    )
    def test_rejects(self, raw: str) -> None:
        with pytest.raises(DatabaseURLError):
            parse_database_url(raw)

    @pytest.mark.parametrize(
        ("raw", "named"),
        [
            ("postgresql://u@h/db?pgbouncer=true", "pgbouncer (for PgBouncer set DB_POOLER=true"),
            ("postgresql://u@h/db?sslmode=require&connection_limit=5", "connection_limit"),
        ],
    )
    def test_rejects_keys_asyncpg_would_fail_on(self, raw: str, named: str) -> None:
        """asyncpg.connect() would raise on them at every connection: refuse them up front."""
        with pytest.raises(DatabaseURLError, match=re.escape(named)):
            parse_database_url(raw)

    def test_keeps_asyncpg_and_sqlalchemy_keys(self) -> None:
        target = parse_database_url(
            "postgresql://u@h/db?timeout=5&statement_cache_size=0&prepared_statement_cache_size=0"
        )
        assert set(target.url.query) == {
            "timeout",
            "statement_cache_size",
            "prepared_statement_cache_size",
        }
