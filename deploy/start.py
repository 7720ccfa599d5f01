"""The container's command: `python -m deploy.start`.

1. The configuration is loaded and checked (a bad one stops here with a one-line reason).
2. On PostgreSQL, with `MIGRATE_ON_START` (the default), the schema is brought to head; a
   failure stops the container with the reason before anything listens.
3. With `METRICS_ENABLED`, the metrics directory of prometheus_client's multiprocess mode is
   made ready (`server_environment()`): the one given in `PROMETHEUS_MULTIPROC_DIR` emptied, or
   a new one when there are several workers. Only here is that safe: no worker runs yet.
4. The process becomes the server: `server_command()` is exec'd, so uvicorn keeps this PID (1
   in a container) and receives the platform's SIGTERM itself.

`server_command()` is the one place the container's server command is written.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

from database.url import parse_database_url
from observability.logs import UVICORN_LOG_CONFIG
from observability.multiprocess import VARIABLE as MULTIPROC_VARIABLE
from observability.multiprocess import empty_directory, multiprocess_directory
from settings import Settings, get_settings
from web.log_config import configure_logging
from web.protocol import UVICORN_OPTIONS

logger = logging.getLogger("todo.start")

DEFAULT_PORT = 8000
CONTAINER_SQLITE_URL = "sqlite+aiosqlite:////data/todo.db"
# Below `docker stop`'s 10 s: requests in flight get this long, then uvicorn exits by itself
# (event streams end at SIGTERM anyway). `UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN` overrides it.
GRACEFUL_SHUTDOWN_SECONDS = 8


class StartError(RuntimeError):
    """The container cannot start; the message says why in one line."""


def listen_port(environ: Mapping[str, str]) -> int:
    """`PORT` (Railway, Render and others inject it; Spaces' default is 7860), else 8000."""
    raw = environ.get("PORT", "").strip()
    if not raw:
        return DEFAULT_PORT
    if not (raw.isascii() and raw.isdigit()) or not 0 < int(raw) < 65536:
        raise StartError(f"PORT={raw!r} is not a port number (1 to 65535)")
    return int(raw)


def server_command(settings: Settings, environ: Mapping[str, str]) -> list[str]:
    """uvicorn on every interface at `PORT`, with the bounded HTTP protocol (the head's size and
    time limits of `web.protocol`, README Security). Any other uvicorn option can be set through its
    `UVICORN_<OPTION>` environment variable (e.g. `UVICORN_WORKERS`; `WEB_CONCURRENCY` too),
    except those given here.

    Forwarded headers (`X-Forwarded-For`, `-Proto`) are believed only from `FORWARDED_ALLOW_IPS`
    (uvicorn's setting), else from the app's `TRUSTED_PROXIES`, else from nobody outside the
    container (uvicorn's default: 127.0.0.1 and ::1).
    """
    command = [
        sys.executable,
        "-m",
        "uvicorn",
        "main:app",
        *UVICORN_OPTIONS,
        "--host",
        "0.0.0.0",
        "--port",
        str(listen_port(environ)),
    ]
    if "UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN" not in environ:
        command += ["--timeout-graceful-shutdown", str(GRACEFUL_SHUTDOWN_SECONDS)]
    if settings.trusted_proxies and "FORWARDED_ALLOW_IPS" not in environ:
        networks = ",".join(str(network) for network in settings.trusted_proxies)
        command += ["--forwarded-allow-ips", networks]
    if settings.log_format == "json" and "UVICORN_LOG_CONFIG" not in environ:
        # uvicorn's own lines in JSON too, its process manager's (`--workers N`) included.
        command += ["--log-config", str(UVICORN_LOG_CONFIG)]
    return command


def worker_count(environ: Mapping[str, str]) -> int:
    """uvicorn's workers: `UVICORN_WORKERS`, else `WEB_CONCURRENCY` (as uvicorn reads them)."""
    raw = (environ.get("UVICORN_WORKERS") or environ.get("WEB_CONCURRENCY") or "1").strip()
    return int(raw) if raw.isascii() and raw.isdigit() else 1


def server_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """The server's environment: with METRICS_ENABLED, the multiprocess directory emptied (the
    one given), or made (several workers and none given; one worker needs none)."""
    environment = dict(environ)
    if not settings.metrics_enabled:
        return environment
    given = multiprocess_directory(environ)
    if given is not None:
        removed = empty_directory(given)
        logger.info("metrics directory %s emptied (%d files)", given, removed)
    elif worker_count(environ) > 1:
        environment[MULTIPROC_VARIABLE] = tempfile.mkdtemp(prefix="todo-metrics-")
        logger.info("metrics directory %s made", environment[MULTIPROC_VARIABLE])
    return environment


def check_sqlite_location(settings: Settings) -> None:
    """The embedded database's directory must be writable by this user (uid 1000 in the image,
    which owns /data and nothing else): say so now rather than fail at the first request."""
    target = parse_database_url(settings.database_url)
    database = target.url.database
    if not target.is_sqlite or not database or database == ":memory:":
        return
    directory = Path(database).resolve().parent
    if not os.access(directory, os.W_OK | os.X_OK):
        raise StartError(
            f"DATABASE_URL={settings.database_url} is in {directory}, which does not exist or "
            f"this user (uid {os.getuid()}) cannot write: in the container keep the default "
            f"({CONTAINER_SQLITE_URL}, mount a volume at /data) or use PostgreSQL"
        )


def migrate_if_asked(settings: Settings) -> None:
    """`alembic upgrade head` on PostgreSQL unless `MIGRATE_ON_START=false` (a release step
    migrates instead); SQLite's schema is built by the app itself."""
    if not parse_database_url(settings.database_url).is_postgres:
        return
    if not settings.migrate_on_start:
        logger.info("MIGRATE_ON_START=false: not migrating (a release step does)")
        return
    # Loaded only when needed: the SQLite default starts without them.
    from db import is_database_unavailable
    from deploy.migrate import migrate_to_head

    try:
        migrate_to_head(settings)
    except Exception as exc:
        if is_database_unavailable(exc):
            raise StartError(f"migration failed, the database did not answer: {exc!r}") from exc
        logger.exception("migration failed")
        raise StartError(f"migration failed: {exc!r}") from exc


def main(environ: Mapping[str, str] = os.environ) -> NoReturn:
    settings = get_settings()
    configure_logging(settings.log_level, settings.log_format)
    # Alembic's own logging configuration (alembic.ini) replaces the root logger's; ours keep
    # their level.
    logging.getLogger("todo").setLevel(settings.log_level)
    try:
        command = server_command(settings, environ)
        check_sqlite_location(settings)
        migrate_if_asked(settings)
        environment = server_environment(settings, environ)
    except StartError as exc:
        print(f"Not starting: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    except OSError as exc:  # the metrics directory
        print(f"Not starting: {MULTIPROC_VARIABLE}: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    logging.shutdown()
    os.execve(command[0], command, environment)


if __name__ == "__main__":
    main()
