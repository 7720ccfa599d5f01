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

    def test_a_migration_needs_no_secret(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """`alembic upgrade head` as a release step, with only DATABASE_URL (alembic/env.py)."""
        monkeypatch.delenv("BETTER_AUTH_SECRET", raising=False)
        monkeypatch.delenv("JWT_SECRET_KEY", raising=False)
        settings = load_settings(serving=False, environment="production", _env_file=None)
        assert settings.is_production

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
        assert settings.db_pool_recycle == 1800

    @pytest.mark.parametrize(("value", "parsed"), [("", None), (" ", None), ("false", False)])
    def test_pooler_prepared_statements_empty_means_decide_by_host(
        self, value: str, parsed: bool | None
    ) -> None:
        assert load_settings(db_pooler_prepared_statements=value).db_pooler_prepared_statements is (
            parsed
        )

    def test_pooler_prepared_statements_must_be_a_boolean(self) -> None:
        with pytest.raises(ConfigurationError, match="DB_POOLER_PREPARED_STATEMENTS"):
            load_settings(db_pooler_prepared_statements="sometimes")

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
        assert settings.accepted_issuers == ("https://app.example.com",)
        assert settings.accepted_audiences == ("https://app.example.com",)
        assert settings.better_auth_issuer == settings.better_auth_audience == []

    def test_explicit_jwks_url(self) -> None:
        settings = load_settings(better_auth_jwks_url="https://app.example.com/api/auth/jwks")
        assert settings.accepted_issuers == ("https://app.example.com",)
        assert settings.accepted_audiences == ("https://app.example.com",)
        with pytest.raises(ConfigurationError, match="BETTER_AUTH_URL"):
            load_settings(better_auth_jwks_url="https://keys.example.com/jwks.json")
        settings = load_settings(
            better_auth_url="https://app.example.com",
            better_auth_jwks_url="https://keys.example.com/jwks.json",
        )
        assert settings.jwks_url == "https://keys.example.com/jwks.json"
        assert settings.accepted_issuers == ("https://app.example.com",)

    def test_rejects_a_url_without_scheme(self) -> None:
        with pytest.raises(ConfigurationError, match="BETTER_AUTH_URL"):
            load_settings(better_auth_url="app.example.com")

    @pytest.mark.parametrize("name", ["login_max_failures_per_email", "signup_max_per_address"])
    def test_limits_must_be_positive(self, name: str) -> None:
        with pytest.raises(ConfigurationError):
            load_settings(**{name: 0})


class TestBetterAuthClaims:
    """BETTER_AUTH_ISSUER / BETTER_AUTH_AUDIENCE mirror the JWT plugin's `jwt.issuer` and
    `jwt.audience`; unset, both are what Better Auth puts there: the origin of its `baseURL`."""

    @pytest.mark.parametrize(
        ("base_url", "origin", "jwks_url"),
        [
            ("https://app.example.com", "https://app.example.com", "/api/auth/jwks"),
            ("http://localhost:3000/", "http://localhost:3000", "/api/auth/jwks"),
            ("HTTPS://App.Example.COM:443", "https://app.example.com", "/api/auth/jwks"),
            ("http://127.0.0.1:80", "http://127.0.0.1", "/api/auth/jwks"),
            ("https://[::1]:8443", "https://[::1]:8443", "/api/auth/jwks"),
            ("https://user:pw@app.example.com", "https://app.example.com", "/api/auth/jwks"),
            ("https://bücher.example", "https://xn--bcher-kva.example", "/api/auth/jwks"),
            # A baseURL with a path: `iss` is still the origin, and the path is where Better
            # Auth mounts its routes (its `withPath`), so the keys are at {path}/jwks.
            ("https://app.example.com/api/auth", "https://app.example.com", "/jwks"),
            ("https://app.example.com/auth/", "https://app.example.com", "/jwks"),
        ],
    )
    def test_defaults_are_the_origin_of_better_auth_url(
        self, base_url: str, origin: str, jwks_url: str
    ) -> None:
        settings = load_settings(better_auth_url=base_url)
        assert settings.accepted_issuers == (origin,)
        assert settings.accepted_audiences == (origin,)
        assert settings.jwks_url == base_url.rstrip("/") + jwks_url

    def test_comma_separated_values(self) -> None:
        settings = load_settings(
            better_auth_url="https://app.example.com",
            better_auth_issuer=" https://auth.example.com , my-issuer,",
            better_auth_audience="https://api.example.com,https://api.example.com/,todo-api",
        )
        assert settings.accepted_issuers == ("https://auth.example.com", "my-issuer")
        # Compared exactly, as jose does on the frontend: a trailing slash is another value.
        assert settings.accepted_audiences == (
            "https://api.example.com",
            "https://api.example.com/",
            "todo-api",
        )

    def test_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("BETTER_AUTH_URL", "https://app.example.com/")
        monkeypatch.setenv("BETTER_AUTH_ISSUER", "https://app.example.com")
        monkeypatch.setenv("BETTER_AUTH_AUDIENCE", "https://api.example.com, urn:todo")
        settings = load_settings(_env_file=None)
        assert settings.accepted_issuers == ("https://app.example.com",)
        assert settings.accepted_audiences == ("https://api.example.com", "urn:todo")

    def test_only_one_of_them_set_keeps_the_default_for_the_other(self) -> None:
        settings = load_settings(
            better_auth_url="https://app.example.com",
            better_auth_audience="https://api.example.com",
        )
        assert settings.accepted_issuers == ("https://app.example.com",)
        assert settings.accepted_audiences == ("https://api.example.com",)

    def test_empty_values_mean_the_default(self) -> None:
        settings = load_settings(
            better_auth_url="https://app.example.com",
            better_auth_issuer=" , ",
            better_auth_audience="",
        )
        assert settings.accepted_issuers == ("https://app.example.com",)
        assert settings.accepted_audiences == ("https://app.example.com",)

    def test_jwks_url_alone_with_explicit_issuer_and_audience(self) -> None:
        settings = load_settings(
            better_auth_jwks_url="https://keys.example.com/jwks.json",
            better_auth_issuer="https://app.example.com",
            better_auth_audience="https://api.example.com",
        )
        assert settings.jwks_url == "https://keys.example.com/jwks.json"
        assert settings.accepted_issuers == ("https://app.example.com",)
        with pytest.raises(ConfigurationError, match="BETTER_AUTH_AUDIENCE"):
            load_settings(
                better_auth_jwks_url="https://keys.example.com/jwks.json",
                better_auth_issuer="https://app.example.com",
            )

    def test_claims_without_a_key_set_are_a_configuration_error(self) -> None:
        with pytest.raises(ConfigurationError, match="BETTER_AUTH_URL") as caught:
            load_settings(better_auth_audience="https://api.example.com", _env_file=None)
        assert "\n" not in str(caught.value)

    def test_control_characters_are_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="BETTER_AUTH_ISSUER"):
            load_settings(better_auth_url="https://app.example.com", better_auth_issuer="a\tb")

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://app.example.com",
            "https://",
            "https://app.example.com:99999",
            "https://app.example.com/?next=/",
            "https://app.example.com/#top",
        ],
    )
    def test_unusable_better_auth_urls(self, url: str) -> None:
        with pytest.raises(ConfigurationError, match="BETTER_AUTH_URL"):
            load_settings(better_auth_url=url)

    def test_a_jwks_url_may_have_a_query_string(self) -> None:
        url = "https://keys.example.com/jwks.json?v=2"
        settings = load_settings(
            better_auth_url="https://app.example.com", better_auth_jwks_url=url
        )
        assert settings.jwks_url == url


class TestMcp:
    def test_defaults_answer_this_machine_and_the_cors_origins(self) -> None:
        settings = load_settings(cors_allowed_origins="https://app.example.com")
        assert settings.mcp_host_protection is True
        assert {"localhost", "localhost:*", "127.0.0.1:*", "[::1]:*"} <= set(
            settings.mcp_allowed_hosts
        )
        assert "http://localhost:*" in settings.mcp_origins
        assert "https://app.example.com" in settings.mcp_origins
        assert settings.mcp_resource_url == "http://localhost:8000/mcp"
        assert settings.mcp_authorization_server == "http://localhost:8000"

    def test_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("MCP_ALLOWED_HOSTS", " api.example.com , api.example.com:* ")
        monkeypatch.setenv("MCP_ALLOWED_ORIGINS", "https://agent.example.com/")
        monkeypatch.setenv("MCP_RESOURCE_URL", "https://API.example.com/mcp/")
        settings = load_settings()
        assert settings.mcp_allowed_hosts == ["api.example.com", "api.example.com:*"]
        assert settings.mcp_allowed_origins == ["https://agent.example.com"]
        assert settings.mcp_resource_url == "https://API.example.com/mcp"
        assert settings.mcp_authorization_server == "https://api.example.com"

    def test_a_star_turns_the_host_check_off(self) -> None:
        assert load_settings(mcp_allowed_hosts="*").mcp_host_protection is False

    def test_empty_values_mean_the_defaults(self) -> None:
        settings = load_settings(mcp_allowed_hosts=" ", mcp_allowed_origins="")
        assert settings.mcp_allowed_hosts == load_settings().mcp_allowed_hosts
        assert settings.mcp_allowed_origins == load_settings().mcp_allowed_origins

    def test_better_auth_is_the_authorization_server_when_set(self) -> None:
        settings = load_settings(better_auth_url="https://app.example.com")
        assert settings.mcp_authorization_server == "https://app.example.com"

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("mcp_allowed_hosts", "https://api.example.com"),
            ("mcp_allowed_hosts", "api example.com"),
            ("mcp_allowed_origins", "api.example.com"),
            ("mcp_resource_url", "api.example.com/mcp"),
            ("mcp_resource_url", "ftp://api.example.com/mcp"),
            ("mcp_resource_url", "https://api.example.com/mcp?x=1"),
            ("mcp_resource_url", "https://api.example.com:99999/mcp"),
        ],
    )
    def test_unusable_values_are_one_line_errors(self, name: str, value: str) -> None:
        with pytest.raises(ConfigurationError, match=name.upper()):
            load_settings(**{name: value})


class TestDocumented:
    UNDOCUMENTED = frozenset({"app_name"})

    def test_every_setting_is_in_env_example_and_the_readme(self) -> None:
        """`.env.example` and the README's Configuration table name every variable (in
        `.env.example` set, or commented out where its default differs by place, as
        DATABASE_URL's does between a laptop and the container)."""
        from settings import Settings

        env_example = (PROJECT_ROOT / ".env.example").read_text()
        readme = (PROJECT_ROOT / "README.md").read_text()
        configuration = readme[readme.index("## Configuration") :]
        configuration = configuration[: configuration.index("\n## ", 1)]
        for name in sorted(set(Settings.model_fields) - self.UNDOCUMENTED):
            variable = name.upper()
            assert f"\n{variable}=" in env_example or f"\n# {variable}=" in env_example, variable
            assert f"`{variable}`" in configuration, variable
