"""Turn the database URLs people paste (Neon console, Heroku-style, SQLAlchemy) into an
async SQLAlchemy URL plus the driver connect arguments it implies.

SQLAlchemy hands URL query keys straight to asyncpg, which rejects libpq-only keys such as
`sslmode` and `channel_binding`; those are translated or dropped here.
"""

from __future__ import annotations

import ssl
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.engine import URL, make_url

POSTGRES_SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+pg8000",
}
SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}
LIBPQ_ONLY_KEYS = (
    "channel_binding",
    "sslcert",
    "sslkey",
    "sslcrl",
    "target_session_attrs",
    "connect_timeout",
    "application_name",
    "gssencmode",
    "sslnegotiation",
)
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# What may remain in the query once libpq's keys are handled: asyncpg's connect() keywords that
# a URL can carry, SQLAlchemy's own asyncpg options, and multi-host `host`/`port`. Anything else
# would make every connection attempt fail, so it is refused when the settings load.
URL_QUERY_KEYS = frozenset(
    {
        "host",
        "port",
        "passfile",
        "service",
        "servicefile",
        "timeout",
        "statement_cache_size",
        "max_cached_statement_lifetime",
        "max_cacheable_statement_size",
        "command_timeout",
        "ssl",
        "direct_tls",
        "krbsrvname",
        "gsslib",
        "prepared_statement_cache_size",
        "async_fallback",
    }
)
POOLER_HOST_MARKER = "-pooler"


class DatabaseURLError(ValueError):
    """The URL cannot be used; the message says why in one line."""


@dataclass(frozen=True)
class DatabaseTarget:
    url: URL
    connect_args: dict[str, Any] = field(default_factory=dict)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def is_postgres(self) -> bool:
        return self.url.get_backend_name() == "postgresql"

    def without_pooler(self) -> DatabaseTarget:
        """The direct endpoint of a Neon pooled one: the same host without `-pooler`."""
        host = (self.url.host or "").replace(POOLER_HOST_MARKER, "", 1)
        return DatabaseTarget(url=self.url.set(host=host), connect_args=dict(self.connect_args))

    def asyncpg_dsn(self) -> str:
        """The URL as asyncpg's own `connect()` takes it."""
        return self.url.set(drivername="postgresql").render_as_string(hide_password=False)

    @property
    def behind_pooler(self) -> bool:
        """Neon names its PgBouncer endpoints `ep-<name>-pooler.<region>...`."""
        return self.is_postgres and POOLER_HOST_MARKER in (self.url.host or "").lower()


def direct_twin_url(raw: str) -> str | None:
    """A Neon pooled URL's direct endpoint as a URL text, the query (`sslmode`, ...) kept: the
    same host without `-pooler`. None for any other URL."""
    if not parse_database_url(raw).behind_pooler:
        return None
    url = make_url(raw.strip())
    host = url.host or ""
    at = host.lower().index(POOLER_HOST_MARKER)
    direct = url.set(host=host[:at] + host[at + len(POOLER_HOST_MARKER) :])
    return direct.render_as_string(hide_password=False)


def _unique_statement_name() -> str:
    return f"__asyncpg_{uuid.uuid4().hex}__"


def transaction_pooler_connect_args() -> dict[str, Any]:
    """asyncpg arguments for a transaction pooler that forgets prepared statements (PgBouncer
    before 1.21, or with `max_prepared_statements = 0`).

    Consecutive transactions of one client connection may run on different server
    connections, so nothing may rely on a statement prepared in an earlier transaction:
    asyncpg's and SQLAlchemy's statement caches are off, and the statements SQLAlchemy still
    prepares inside a transaction (to learn the result types) get unique names, so two clients
    sharing a server connection never collide (SQLAlchemy's documented PgBouncer recipe).
    """
    return {
        "statement_cache_size": 0,
        "prepared_statement_cache_size": 0,
        "prepared_statement_name_func": _unique_statement_name,
    }


def _ssl_argument(mode: str, root_cert: str | None) -> ssl.SSLContext | str | bool:
    """Map a libpq `sslmode` onto asyncpg's `ssl` connect argument."""
    if mode == "disable":
        return False
    if mode in ("allow", "prefer", "require"):
        return mode
    context = (
        ssl.create_default_context(cafile=root_cert) if root_cert else ssl.create_default_context()
    )
    if mode == "verify-ca":
        context.check_hostname = False
    return context


def parse_database_url(raw: str) -> DatabaseTarget:
    """Normalise `raw` to `postgresql+asyncpg` or `sqlite+aiosqlite` with its connect args."""
    try:
        url = make_url(raw.strip())
    except Exception as exc:
        raise DatabaseURLError(f"DATABASE_URL is not a valid URL: {exc}") from None

    scheme = url.drivername.lower()
    if scheme in SQLITE_SCHEMES:
        return DatabaseTarget(url=url.set(drivername="sqlite+aiosqlite"))
    if scheme not in POSTGRES_SCHEMES:
        raise DatabaseURLError(
            f"DATABASE_URL scheme {url.drivername!r} is not supported: use postgresql:// or sqlite://"
        )

    query = dict(url.query)
    for key in LIBPQ_ONLY_KEYS:
        query.pop(key, None)
    ssl_mode = query.pop("sslmode", None)
    root_cert = query.pop("sslrootcert", None)
    connect_args: dict[str, Any] = {}
    if ssl_mode is not None:
        ssl_mode = str(ssl_mode).lower()
        if ssl_mode not in SSL_MODES:
            raise DatabaseURLError(
                f"DATABASE_URL sslmode={ssl_mode!r} is not one of {', '.join(SSL_MODES)}"
            )
        connect_args["ssl"] = _ssl_argument(ssl_mode, str(root_cert) if root_cert else None)
    unknown = sorted(set(query) - URL_QUERY_KEYS)
    if unknown:
        hint = " (for PgBouncer set DB_POOLER=true instead)" if "pgbouncer" in unknown else ""
        raise DatabaseURLError(
            f"DATABASE_URL has query parameters asyncpg does not understand: "
            f"{', '.join(unknown)}{hint}"
        )
    normalised = url.set(drivername="postgresql+asyncpg", query=query)
    return DatabaseTarget(url=normalised, connect_args=connect_args)
