"""Configuration: URL normalisation, secrets and production guards."""

from __future__ import annotations

import os
import re
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from database_url import DatabaseURLError, parse_database_url
from settings import ConfigurationError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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

    def test_settings_refuse_an_unusable_url_with_one_line(self) -> None:
        with pytest.raises(ConfigurationError, match=r"DATABASE_URL.*pgbouncer") as caught:
            load_settings(database_url="postgresql://u@h/db?pgbouncer=true")
        assert "\n" not in str(caught.value)


class TestSecrets:
    def test_jwt_secret_key_is_an_alias(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
        monkeypatch.setenv("JWT_SECRET_KEY", "from-the-old-variable-name-0123456789")
        assert load_settings().jwt_secret == "from-the-old-variable-name-0123456789"

    def test_development_generates_a_random_secret(
        self, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
    ) -> None:
        monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
        monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
        first = load_settings(environment="development", _env_file=None)
        second = load_settings(environment="development", _env_file=None)
        assert len(first.jwt_secret) >= 32
        assert first.jwt_secret != second.jwt_secret
        assert "BETTER_AUTH_SECRET is not set" in caplog.text

    @pytest.mark.parametrize("secret", [None, "too-short", "changeme"])
    def test_production_refuses_weak_secrets(
        self, monkeypatch: pytest.MonkeyPatch, secret: str | None
    ) -> None:
        monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
        monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
        with pytest.raises(ConfigurationError):
            load_settings(environment="production", better_auth_secret=secret, _env_file=None)

    def test_production_accepts_a_long_secret(self) -> None:
        settings = load_settings(environment="production", better_auth_secret="s" * 32)
        assert settings.jwt_secret == "s" * 32

    def test_production_without_secret_exits_with_one_line(self, tmp_path: Path) -> None:
        env = {
            key: value
            for key, value in os.environ.items()
            if key not in {"BETTER_AUTH_SECRET", "JWT_SECRET_KEY"}
        }
        env["ENVIRONMENT"] = "production"
        result = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys; sys.path.insert(0, {str(PROJECT_ROOT)!r}); import main",
            ],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1
        assert "BETTER_AUTH_SECRET" in lines[0]


class TestOtherSettings:
    def test_cors_origins_are_comma_separated(self) -> None:
        settings = load_settings(
            cors_allowed_origins="http://localhost:3000, https://app.example.com/"
        )
        assert settings.cors_allowed_origins == ["http://localhost:3000", "https://app.example.com"]

    def test_defaults(self) -> None:
        settings = load_settings(_env_file=None)
        assert settings.jwt_algorithm == "HS256"
        assert settings.jwt_expiration_delta == 604800
        assert (settings.db_pool_size, settings.db_max_overflow) == (5, 10)
        assert settings.db_pool_pre_ping is True
        assert settings.db_pool_recycle == 300

    def test_rejects_an_asymmetric_algorithm(self) -> None:
        with pytest.raises(ConfigurationError, match="JWT_ALGORITHM"):
            load_settings(jwt_algorithm="RS256")


class TestSecuritySettings:
    def test_limit_defaults(self) -> None:
        settings = load_settings()
        assert settings.login_max_failures_per_email == 5
        assert settings.login_max_failures_per_address == 20
        assert settings.login_failure_window_seconds == 900
        assert settings.signup_max_per_address == 20
        assert settings.signup_window_seconds == 3600
        assert settings.trusted_proxies == []
        assert settings.jwks_url is None

    def test_trusted_proxies_are_comma_separated_networks(self) -> None:
        settings = load_settings(trusted_proxies="10.0.0.0/8, 192.168.1.7,::1")
        assert [str(network) for network in settings.trusted_proxies] == [
            "10.0.0.0/8",
            "192.168.1.7/32",
            "::1/128",
        ]

    def test_rejects_a_bad_proxy(self) -> None:
        with pytest.raises(ConfigurationError, match="TRUSTED_PROXIES"):
            load_settings(trusted_proxies="10.0.0.0/8, proxy.internal")

    def test_better_auth_url_gives_jwks_issuer_and_audience(self) -> None:
        settings = load_settings(better_auth_url="https://app.example.com/")
        assert settings.jwks_url == "https://app.example.com/api/auth/jwks"
        assert settings.better_auth_issuer == "https://app.example.com"

    def test_explicit_jwks_url(self) -> None:
        settings = load_settings(better_auth_jwks_url="https://app.example.com/api/auth/jwks")
        assert settings.better_auth_issuer == "https://app.example.com"
        with pytest.raises(ConfigurationError, match="BETTER_AUTH_URL"):
            load_settings(better_auth_jwks_url="https://keys.example.com/jwks.json")
        settings = load_settings(
            better_auth_url="https://app.example.com",
            better_auth_jwks_url="https://keys.example.com/jwks.json",
        )
        assert settings.jwks_url == "https://keys.example.com/jwks.json"
        assert settings.better_auth_issuer == "https://app.example.com"

    def test_rejects_a_url_without_scheme(self) -> None:
        with pytest.raises(ConfigurationError, match="BETTER_AUTH_URL"):
            load_settings(better_auth_url="app.example.com")

    @pytest.mark.parametrize("name", ["login_max_failures_per_email", "signup_max_per_address"])
    def test_limits_must_be_positive(self, name: str) -> None:
        with pytest.raises(ConfigurationError):
            load_settings(**{name: 0})
