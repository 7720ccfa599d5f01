"""Configuration: URL normalisation, secrets and production guards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from settings import ConfigurationError, load_settings

PROJECT_ROOT = Path(__file__).resolve().parent.parent


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
    def test_settings_refuse_an_unusable_url_with_one_line(self) -> None:
        with pytest.raises(ConfigurationError, match=r"DATABASE_URL.*pgbouncer") as caught:
            load_settings(database_url="postgresql://u@h/db?pgbouncer=true")
        assert "\n" not in str(caught.value)

    def test_cors_origins_are_comma_separated(self) -> None:
        settings = load_settings(
            cors_allowed_origins="http://localhost:3000, https://app.example.com/"
        )
        assert settings.cors_allowed_origins == ["http://localhost:3000", "https://app.example.com"]

    def test_defaults(self) -> None:
        settings = load_settings(_env_file=None)
        assert settings.jwt_algorithm == "HS256"
        assert settings.jwt_expiration_delta == 604800
        assert (settings.db_pool_size, settings.db_max_overflow) == (20, 10)
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
