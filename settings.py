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
from contextlib import suppress
from functools import cached_property, lru_cache
from typing import Annotated, Literal
from urllib.parse import SplitResult, urlsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
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
# Better Auth mounts its routes at `basePath` (default /api/auth) below a `baseURL` without a
# path, and at the `baseURL` itself when it has one; the JWT plugin's keys are at `/jwks` there.
BETTER_AUTH_BASE_PATH = "/api/auth"
BETTER_AUTH_JWKS_ENDPOINT = "/jwks"
BETTER_AUTH_JWKS_PATH = BETTER_AUTH_BASE_PATH + BETTER_AUTH_JWKS_ENDPOINT
DEFAULT_PORTS = {"http": 80, "https": 443}
# What the MCP endpoint answers by default: requests addressed to this machine, with or without a
# port (the SDK's own default allowlist, plus the port-less forms), and pages served from it.
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
MCP_DEFAULT_ALLOWED_HOSTS = [spelling for host in LOCAL_HOSTS for spelling in (host, f"{host}:*")]
MCP_DEFAULT_ALLOWED_ORIGINS = [
    spelling for host in LOCAL_HOSTS for spelling in (f"http://{host}", f"http://{host}:*")
]
MCP_ANY_HOST = "*"

# The chat message limit: its default, and the most CHAT_MAX_MESSAGE_CHARS may allow.
DEFAULT_CHAT_MESSAGE_CHARS = 4000
CHAT_MESSAGE_MAX_CHARS_CAP = 32000

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _http_url(value: str) -> SplitResult | None:
    """`value`'s parts when it is an http:// or https:// URL with a host (and a port in range)."""
    try:
        parts = urlsplit(value)
        _ = parts.port  # a port out of range is a ValueError
    except ValueError:
        return None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        return None
    return parts


def url_origin(url: str) -> str:
    """`new URL(url).origin`: scheme and host lower-cased, the default port dropped, no path.

    Better Auth's JWT plugin puts exactly this (of its `baseURL`) in `iss` and `aud` by default.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    host = parts.hostname or ""
    if not host.isascii():
        with suppress(UnicodeError):
            host = host.encode("idna").decode("ascii")
    if ":" in host:
        host = f"[{host}]"
    port = parts.port
    if port is None or port == DEFAULT_PORTS.get(scheme):
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


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
    # `text`: the readable lines (the default); `json`: one JSON object per line (observability/).
    log_format: Literal["text", "json"] = "text"
    # Prometheus metrics at GET /metrics: off unless asked for (a public API does not publish its
    # internals by accident); with a bearer token set, a scrape without it is 401.
    metrics_enabled: bool = False
    metrics_bearer_token: SecretStr | None = None
    # Collect, then freeze, what startup made, so full collections never walk it (README
    # Performance). A process that starts many apps (the test suite) turns it off: each
    # collection there walks everything the earlier apps left behind.
    freeze_heap_at_startup: bool = True

    database_url: str = "sqlite+aiosqlite:///./todo.db"
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_pre_ping: bool = True
    db_pool_recycle: int = Field(default=1800, ge=-1)
    db_connect_timeout: float = Field(default=10.0, gt=0)
    db_command_timeout: float = Field(default=30.0, gt=0)
    db_pooler: bool = False
    db_pooler_prepared_statements: bool | None = None
    # The container's start (`python -m deploy.start`): `alembic upgrade head` before serving.
    migrate_on_start: bool = True
    # How long `/readyz` may answer from its last look at the database (0: every probe looks).
    readiness_cache_seconds: float = Field(default=0.0, ge=0, le=3600)

    better_auth_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("BETTER_AUTH_SECRET", "JWT_SECRET_KEY")
    )
    jwt_algorithm: str = "HS256"
    jwt_expiration_delta: int = Field(default=604800, ge=60)
    bcrypt_rounds: int = Field(default=12, ge=4, le=16)

    better_auth_url: str | None = None
    better_auth_jwks_url: str | None = None
    better_auth_issuer: Annotated[list[str], NoDecode] = []
    better_auth_audience: Annotated[list[str], NoDecode] = []

    cors_allowed_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Bounds on what a client sends before the app sees it (web/protocol.py, web/body_limit.py).
    http_max_request_line_bytes: int = Field(default=8 * 1024, ge=1024)
    http_max_head_bytes: int = Field(default=32 * 1024, ge=4 * 1024)
    http_max_headers: int = Field(default=100, ge=16)
    http_head_timeout_seconds: float = Field(default=10.0, gt=0)
    http_body_timeout_seconds: float = Field(default=30.0, gt=0)
    change_log_retention_days: int = Field(default=30, ge=1)
    database_direct_url: str | None = None
    events_max_streams_per_user: int = Field(default=20, ge=1)
    # Open event streams per process, then 503 (unset: what its file-descriptor limit allows;
    # live/capacity.py).
    events_max_streams: int | None = Field(default=None, ge=1)
    # How often a process checks all its open event streams together (one statement): tokens
    # revoked without a notification, changes whose notification was lost.
    events_check_seconds: float = Field(default=15.0, gt=0, le=3600)
    events_max_tickets_per_token: int = Field(default=30, ge=1)
    idempotency_key_lifetime_hours: int = Field(default=24, ge=1)
    require_if_match: bool = False

    mcp_allowed_hosts: Annotated[list[str], NoDecode] = MCP_DEFAULT_ALLOWED_HOSTS
    mcp_allowed_origins: Annotated[list[str], NoDecode] = MCP_DEFAULT_ALLOWED_ORIGINS
    mcp_resource_url: str = "http://localhost:8000/mcp"

    # The chat assistant (`chat/`): any model behind the Chat Completions wire protocol.
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    chat_model: str = "gpt-4o-mini"
    chat_model_timeout: float = Field(default=60.0, gt=0)
    chat_model_max_retries: int = Field(default=2, ge=0, le=10)
    chat_max_turns: int = Field(default=8, ge=1, le=50)
    chat_history_messages: int = Field(default=20, ge=1, le=500)
    chat_max_message_chars: int = Field(
        default=DEFAULT_CHAT_MESSAGE_CHARS, ge=1, le=CHAT_MESSAGE_MAX_CHARS_CAP
    )
    chat_turns_per_window: int = Field(default=20, ge=1)
    chat_turn_window_seconds: int = Field(default=60, ge=1)
    chat_tracing: bool = False

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

    @field_validator("log_format", mode="before")
    @classmethod
    def _format_word(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("metrics_bearer_token", mode="before")
    @classmethod
    def _token_or_none(cls, value: object) -> object:
        """`METRICS_BEARER_TOKEN=` (as in `.env.example`) means "no token asked for"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("environment")
    @classmethod
    def _lower(cls, value: str) -> str:
        return value.lower()

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @field_validator("database_direct_url", mode="before")
    @classmethod
    def _direct_url_or_none(cls, value: object) -> object:
        if isinstance(value, str) and not value.strip():
            return None
        if isinstance(value, str):
            try:
                target = parse_database_url(value)
            except DatabaseURLError as exc:
                raise ValueError(str(exc).replace("DATABASE_URL", "DATABASE_DIRECT_URL")) from None
            if not target.is_postgres:
                raise ValueError("must be a PostgreSQL URL (it is only used to LISTEN)")
        return value

    @field_validator("db_pooler_prepared_statements", mode="before")
    @classmethod
    def _unset_when_empty(cls, value: object) -> object:
        """`DB_POOLER_PREPARED_STATEMENTS=` (as in `.env.example`) means "decide by the host"."""
        return None if isinstance(value, str) and not value.strip() else value

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

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins", mode="before")
    @classmethod
    def _split_mcp_values(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = [part for part in value.split(",") if part.strip()]
            if not value:  # empty: the default
                return (
                    MCP_DEFAULT_ALLOWED_HOSTS
                    if info.field_name == "mcp_allowed_hosts"
                    else MCP_DEFAULT_ALLOWED_ORIGINS
                )
        if isinstance(value, list | tuple):
            return [part.strip().rstrip("/") if isinstance(part, str) else part for part in value]
        return value

    @field_validator("mcp_allowed_hosts", "mcp_allowed_origins")
    @classmethod
    def _mcp_values(cls, value: list[str], info: ValidationInfo) -> list[str]:
        """Host and Origin header values, compared exactly; `name:*` allows any port."""
        for part in value:
            if not part or any(char.isspace() or not char.isprintable() for char in part):
                raise ValueError("each value must be non-empty, without spaces or control chars")
            if info.field_name == "mcp_allowed_origins":
                if not part.lower().startswith(("http://", "https://")):
                    raise ValueError(
                        f"{part!r} is not an origin (http://host[:port] or https://...)"
                    )
            elif "/" in part:
                raise ValueError(f"{part!r} is not a Host header value (host[:port], no scheme)")
        return list(dict.fromkeys(value))

    @field_validator("mcp_resource_url", mode="before")
    @classmethod
    def _resource_url(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            parts = _http_url(value)
            if parts is None or parts.query or parts.fragment:
                raise ValueError(
                    "must be the public http:// or https:// URL of the MCP endpoint, without a "
                    "query string or fragment (e.g. https://api.example.com/mcp)"
                )
        return value

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [ipaddress.ip_network(str(part), strict=False) for part in value]
        return value

    @field_validator("openai_api_key", mode="before")
    @classmethod
    def _key_or_none(cls, value: object) -> object:
        """`OPENAI_API_KEY=` (as in `.env.example`) means "no chat"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("openai_base_url", mode="before")
    @classmethod
    def _base_url_or_none(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            if not value:
                return None
            if _http_url(value) is None:
                raise ValueError(
                    "must be the http:// or https:// base URL of a Chat Completions API, e.g. "
                    "https://api.openai.com/v1 or http://localhost:11434/v1"
                )
        return value

    @field_validator("chat_model", mode="before")
    @classmethod
    def _model_name(cls, value: object) -> object:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("must name a model, e.g. gpt-4o-mini")
        return value

    @field_validator("better_auth_url", "better_auth_jwks_url", mode="before")
    @classmethod
    def _url_or_none(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            value = value.strip().rstrip("/")
            if not value:
                return None
            if not value.lower().startswith(("http://", "https://")):
                raise ValueError("must be an http:// or https:// URL")
            try:
                parts = urlsplit(value)
                _ = parts.port  # a port out of range is a ValueError
            except ValueError:
                raise ValueError("must be an http:// or https:// URL") from None
            if not parts.hostname:
                raise ValueError("must be an http:// or https:// URL with a host")
            if "#" in value or (info.field_name == "better_auth_url" and "?" in value):
                # BETTER_AUTH_URL is a prefix: `{BETTER_AUTH_URL}/api/auth/jwks`.
                raise ValueError("must not have a query string or a fragment")
        return value

    @field_validator("better_auth_issuer", "better_auth_audience", mode="before")
    @classmethod
    def _split_claim_values(cls, value: object) -> object:
        """Comma-separated; each value is compared exactly (Better Auth's may be any string)."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list | tuple):
            return [part.strip() if isinstance(part, str) else part for part in value]
        return value

    @field_validator("better_auth_issuer", "better_auth_audience")
    @classmethod
    def _non_empty_values(cls, value: list[str]) -> list[str]:
        for part in value:
            if not part or any(ord(char) < 32 or ord(char) == 127 for char in part):
                raise ValueError("each value must be a non-empty string without control characters")
        return list(dict.fromkeys(value))

    @property
    def jwks_url(self) -> str | None:
        """Where the Better Auth JWT plugin publishes its keys, if asymmetric tokens are on."""
        if self.better_auth_jwks_url:
            return self.better_auth_jwks_url
        if self.better_auth_url:
            if urlsplit(self.better_auth_url).path.strip("/"):
                # A baseURL with a path is where Better Auth mounts its routes.
                return self.better_auth_url + BETTER_AUTH_JWKS_ENDPOINT
            return self.better_auth_url + BETTER_AUTH_JWKS_PATH
        return None

    @property
    def better_auth_origin(self) -> str | None:
        """What Better Auth puts in `iss` and `aud` by default: the origin of its `baseURL`."""
        if self.better_auth_url:
            return url_origin(self.better_auth_url)
        if self.better_auth_jwks_url and self.better_auth_jwks_url.endswith(BETTER_AUTH_JWKS_PATH):
            return url_origin(self.better_auth_jwks_url)
        return None

    @property
    def accepted_issuers(self) -> tuple[str, ...]:
        """The `iss` values a plugin token may carry (`jwt.issuer`, default the origin)."""
        if self.better_auth_issuer:
            return tuple(self.better_auth_issuer)
        origin = self.better_auth_origin
        return (origin,) if origin else ()

    @property
    def accepted_audiences(self) -> tuple[str, ...]:
        """The `aud` values of which a plugin token must carry one (`jwt.audience`)."""
        if self.better_auth_audience:
            return tuple(self.better_auth_audience)
        origin = self.better_auth_origin
        return (origin,) if origin else ()

    @property
    def mcp_host_protection(self) -> bool:
        """Whether `/mcp` checks Host and Origin (DNS-rebinding protection); `MCP_ALLOWED_HOSTS=*`
        turns it off, for a reverse proxy that already controls the Host header."""
        return MCP_ANY_HOST not in self.mcp_allowed_hosts

    @property
    def mcp_origins(self) -> list[str]:
        """The browser origins `/mcp` accepts: `MCP_ALLOWED_ORIGINS` and the CORS origins."""
        return list(dict.fromkeys([*self.mcp_allowed_origins, *self.cors_allowed_origins]))

    @property
    def mcp_authorization_server(self) -> str:
        """Where the tokens `/mcp` accepts come from, for its protected-resource metadata:
        Better Auth when it is configured, else this API (`POST /api/auth/login`)."""
        return self.better_auth_url or url_origin(self.mcp_resource_url)

    @property
    def chat_enabled(self) -> bool:
        """Whether the chat routes can call a model (`OPENAI_API_KEY` is set)."""
        return self.openai_api_key is not None

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


def load_settings(*, serving: bool = True, **overrides: object) -> Settings:
    """Build and validate settings, raising ConfigurationError with a one-line message.

    `serving=False` (a migration): without the checks only a server needs (production's secret).
    """
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']).upper()}: {error['msg']}"
            for error in exc.errors()
        )
        raise ConfigurationError(f"Invalid configuration: {problems}") from None
    if settings.jwks_url:
        if not (settings.accepted_issuers and settings.accepted_audiences):
            raise ConfigurationError(
                "BETTER_AUTH_JWKS_URL does not end with /api/auth/jwks: set BETTER_AUTH_URL too "
                "(its origin is the tokens' default issuer and audience), or BETTER_AUTH_ISSUER "
                "and BETTER_AUTH_AUDIENCE."
            )
    elif settings.better_auth_issuer or settings.better_auth_audience:
        raise ConfigurationError(
            "BETTER_AUTH_ISSUER/BETTER_AUTH_AUDIENCE are set but there is no key set to verify "
            "such tokens: set BETTER_AUTH_URL (or BETTER_AUTH_JWKS_URL) too."
        )
    if serving:
        settings.check_production_readiness()
    return settings


@lru_cache
def get_settings(*, serving: bool = True) -> Settings:
    """The process-wide settings; exits with a one-line explanation when they are unusable."""
    try:
        return load_settings(serving=serving)
    except ConfigurationError as exc:
        print(f"Configuration error: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
