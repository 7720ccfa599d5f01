"""Application settings, read from the environment and an optional `.env` file.

`get_settings()` is the single entry point: it validates the configuration once and, when
the configuration cannot be used (a production deployment without a strong secret), stops
the process with a one-line explanation instead of a traceback.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import sys
from functools import cached_property, lru_cache
from typing import Annotated

from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from database.url import DatabaseURLError, parse_database_url

logger = logging.getLogger("todo.settings")

MIN_SECRET_LENGTH = 32
PLACEHOLDER_SECRETS = frozenset(
    {
        "changeme",
        "change-me",
        "changethis",
        "secret",
        "your-secret-key",
        "your-secret-here",
        "your_secret_key",
        "replace-me",
        "replace-with-a-long-random-secret",
    }
)
SHARED_SECRET_ALGORITHMS = ("HS256", "HS384", "HS512")
BETTER_AUTH_JWKS_PATH = "/api/auth/jwks"

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigurationError(RuntimeError):
    """The configuration cannot be used; the message is a single line meant for operators."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        populate_by_name=True,
    )

    app_name: str = "Todo API"
    environment: str = "development"
    log_level: str = "INFO"

    database_url: str = "sqlite+aiosqlite:///./todo.db"
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_pre_ping: bool = True
    db_pool_recycle: int = Field(default=300, ge=-1)
    db_connect_timeout: float = Field(default=10.0, gt=0)
    db_command_timeout: float = Field(default=30.0, gt=0)
    db_pooler: bool = False

    better_auth_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("BETTER_AUTH_SECRET", "JWT_SECRET_KEY")
    )
    jwt_algorithm: str = "HS256"
    jwt_expiration_delta: int = Field(default=604800, ge=60)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)

    better_auth_url: str | None = None
    better_auth_jwks_url: str | None = None

    cors_allowed_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)

    login_max_failures_per_email: int = Field(default=5, ge=1)
    login_max_failures_per_address: int = Field(default=20, ge=1)
    login_failure_window_seconds: int = Field(default=15 * 60, ge=1)
    signup_max_per_address: int = Field(default=20, ge=1)
    signup_window_seconds: int = Field(default=60 * 60, ge=1)
    trusted_proxies: Annotated[list[IPNetwork], NoDecode] = []

    @field_validator("environment", "log_level", mode="before")
    @classmethod
    def _normalise_word(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("environment")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("database_url")
    @classmethod
    def _usable_database_url(cls, value: str) -> str:
        """Refuse at start what would fail every connection later (scheme, sslmode, keys)."""
        try:
            parse_database_url(value)
        except DatabaseURLError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("jwt_algorithm")
    @classmethod
    def _shared_secret_algorithm(cls, value: str) -> str:
        value = value.strip().upper()
        if value not in SHARED_SECRET_ALGORITHMS:
            raise ValueError(f"must be one of {', '.join(SHARED_SECRET_ALGORITHMS)}")
        return value

    @field_validator("cors_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        if isinstance(value, str):
            return [origin.strip().rstrip("/") for origin in value.split(",") if origin.strip()]
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [ipaddress.ip_network(str(part), strict=False) for part in value]
        return value

    @field_validator("better_auth_url", "better_auth_jwks_url", mode="before")
    @classmethod
    def _url_or_none(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            if not value:
                return None
            if not value.startswith(("http://", "https://")):
                raise ValueError("must be an http:// or https:// URL")
        return value

    @property
    def jwks_url(self) -> str | None:
        """Where the Better Auth JWT plugin publishes its keys, if asymmetric tokens are on."""
        if self.better_auth_jwks_url:
            return self.better_auth_jwks_url
        if self.better_auth_url:
            return self.better_auth_url + BETTER_AUTH_JWKS_PATH
        return None

    @property
    def better_auth_issuer(self) -> str | None:
        """The `iss` and `aud` of the plugin's tokens: its base URL."""
        if self.better_auth_url:
            return self.better_auth_url
        if self.better_auth_jwks_url and self.better_auth_jwks_url.endswith(BETTER_AUTH_JWKS_PATH):
            return self.better_auth_jwks_url.removesuffix(BETTER_AUTH_JWKS_PATH)
        return None

    @property
    def is_production(self) -> bool:
        return self.environment in {"production", "prod"}

    @cached_property
    def jwt_secret(self) -> str:
        """The HS256 shared secret; a random one (with a warning) in development if unset."""
        configured = self.better_auth_secret.get_secret_value() if self.better_auth_secret else ""
        if configured:
            return configured
        logger.warning(
            "BETTER_AUTH_SECRET is not set: using a random development secret. Tokens will not "
            "survive a restart and the frontend's tokens will be rejected; set it in .env."
        )
        return secrets.token_urlsafe(48)

    def check_production_readiness(self) -> None:
        """Refuse configurations that must never reach production."""
        if not self.is_production:
            return
        secret = self.better_auth_secret.get_secret_value() if self.better_auth_secret else ""
        if not secret:
            raise ConfigurationError(
                "ENVIRONMENT=production requires BETTER_AUTH_SECRET (or JWT_SECRET_KEY) to be set "
                f"to the frontend's shared secret of at least {MIN_SECRET_LENGTH} characters."
            )
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"BETTER_AUTH_SECRET is {len(secret)} characters long; ENVIRONMENT=production "
                f"requires at least {MIN_SECRET_LENGTH}."
            )
        if secret.lower() in PLACEHOLDER_SECRETS:
            raise ConfigurationError(
                "BETTER_AUTH_SECRET is a placeholder; set a long random secret for production."
            )


def load_settings(**overrides: object) -> Settings:
    """Build and validate settings, raising ConfigurationError with a one-line message."""
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"Invalid configuration: {problems}") from None
    if settings.jwks_url and not settings.better_auth_issuer:
        raise ConfigurationError(
            "BETTER_AUTH_JWKS_URL does not end with /api/auth/jwks: set BETTER_AUTH_URL too, "
            "it is the issuer and audience of the tokens."
        )
    settings.check_production_readiness()
    return settings


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; exits with a one-line explanation when they are unusable."""
    try:
        return load_settings()
    except ConfigurationError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
