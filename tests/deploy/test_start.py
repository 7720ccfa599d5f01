"""The container's command (`python -m deploy.start`): the server command it execs, and what
stops it before anything listens. Its runs against PostgreSQL (migrations, several at once) are
in tests/infra/test_migrations.py and, in the image, tests/infra/test_container.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.start import (
    GRACEFUL_SHUTDOWN_SECONDS,
    StartError,
    check_sqlite_location,
    listen_port,
    migrate_if_asked,
    server_command,
    server_environment,
)
from observability.logs import UVICORN_LOG_CONFIG
from settings import load_settings
from tests.helpers import TEST_SECRET

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


class TestListenPort:
    def test_8000_by_default(self) -> None:
        assert listen_port({}) == 8000
        assert listen_port({"PORT": " "}) == 8000

    def test_the_platforms_port(self) -> None:
        assert listen_port({"PORT": "7860"}) == 7860

    # The last: "80" in full-width digits, which int() would take.
    @pytest.mark.parametrize("value", ["http", "-1", "0", "65536", "80.5", "\uff18\uff10"])
    def test_anything_else_is_refused(self, value: str) -> None:
        with pytest.raises(StartError, match="is not a port number"):
            listen_port({"PORT": value})


class TestServerCommand:
    def test_uvicorn_on_every_interface_at_port(self) -> None:
        command = server_command(load_settings(), {"PORT": "7860"})
        assert command[:4] == [sys.executable, "-m", "uvicorn", "main:app"]
        assert option(command, "--host") == "0.0.0.0"
        assert option(command, "--port") == "7860"

    def test_the_bounded_http_protocol(self) -> None:
        # What bounds a request's head (README Security), as in the README's own command.
        command = server_command(load_settings(), {})
        assert option(command, "--http") == "web.protocol:BoundedHTTPProtocol"

    def test_requests_in_flight_get_less_than_dockers_grace_period(self) -> None:
        command = server_command(load_settings(), {})
        assert option(command, "--timeout-graceful-shutdown") == str(GRACEFUL_SHUTDOWN_SECONDS)
        assert GRACEFUL_SHUTDOWN_SECONDS < 10

    def test_uvicorns_own_variable_overrides_the_grace(self) -> None:
        environ = {"UVICORN_TIMEOUT_GRACEFUL_SHUTDOWN": "25"}
        assert "--timeout-graceful-shutdown" not in server_command(load_settings(), environ)

    def test_forwarded_headers_from_nobody_outside_by_default(self) -> None:
        # uvicorn's default then applies: 127.0.0.1 and ::1, inside the container only.
        assert "--forwarded-allow-ips" not in server_command(load_settings(), {})

    def test_forwarded_headers_from_the_trusted_proxies(self) -> None:
        settings = load_settings(trusted_proxies="10.0.0.0/8, 2001:db8::1")
        command = server_command(settings, {})
        assert option(command, "--forwarded-allow-ips") == "10.0.0.0/8,2001:db8::1/128"

    def test_forwarded_allow_ips_wins(self) -> None:
        settings = load_settings(trusted_proxies="10.0.0.0/8")
        command = server_command(settings, {"FORWARDED_ALLOW_IPS": "*"})
        assert "--forwarded-allow-ips" not in command  # uvicorn reads its variable itself


class TestJsonLogs:
    def test_uvicorns_own_lines_too(self) -> None:
        command = server_command(load_settings(log_format="json"), {})
        assert option(command, "--log-config") == str(UVICORN_LOG_CONFIG)
        assert UVICORN_LOG_CONFIG.is_file()

    def test_the_readable_format_needs_no_config(self) -> None:
        assert "--log-config" not in server_command(load_settings(), {})


class TestMetricsDirectory:
    """Emptied or made here, before the server starts: no worker runs yet."""

    def test_nothing_without_metrics(self) -> None:
        environ = {"UVICORN_WORKERS": "4"}
        assert server_environment(load_settings(), environ) == environ

    def test_one_worker_needs_none(self) -> None:
        environment = server_environment(load_settings(metrics_enabled=True), {})
        assert "PROMETHEUS_MULTIPROC_DIR" not in environment

    @pytest.mark.parametrize("variable", ["UVICORN_WORKERS", "WEB_CONCURRENCY"])
    def test_several_workers_get_a_new_empty_one(self, variable: str) -> None:
        environment = server_environment(load_settings(metrics_enabled=True), {variable: "2"})
        directory = Path(environment["PROMETHEUS_MULTIPROC_DIR"])
        try:
            assert directory.is_dir()
            assert list(directory.iterdir()) == []
        finally:
            directory.rmdir()

    def test_the_given_one_is_emptied(self, tmp_path: Path) -> None:
        (tmp_path / "counter_123.db").write_bytes(b"old run")
        (tmp_path / "gauge_livesum_123.db").write_bytes(b"old run")
        environ = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path), "UVICORN_WORKERS": "2"}
        environment = server_environment(load_settings(metrics_enabled=True), environ)
        assert environment["PROMETHEUS_MULTIPROC_DIR"] == str(tmp_path)
        assert list(tmp_path.iterdir()) == []


class TestSQLiteLocation:
    def test_a_writable_directory_passes(self, tmp_path: Path) -> None:
        check_sqlite_location(load_settings(database_url=f"sqlite:///{tmp_path / 'todo.db'}"))

    def test_an_unwritable_one_is_named(self, tmp_path: Path) -> None:
        missing = tmp_path / "missing"
        settings = load_settings(database_url=f"sqlite+aiosqlite:///{missing / 'todo.db'}")
        with pytest.raises(StartError, match=f"is in {missing}, which does not exist or"):
            check_sqlite_location(settings)

    def test_memory_and_postgresql_are_not_files(self) -> None:
        check_sqlite_location(load_settings(database_url="sqlite+aiosqlite:///:memory:"))
        check_sqlite_location(load_settings(database_url="postgresql://u@db.invalid/x"))


class TestMigrateIfAsked:
    def test_sqlite_builds_its_own_schema(self, tmp_path: Path) -> None:
        database = tmp_path / "todo.db"
        migrate_if_asked(load_settings(database_url=f"sqlite:///{database}"))
        assert not database.exists()

    def test_migrate_on_start_false_touches_nothing(self) -> None:
        # A host that cannot resolve: any attempt to migrate would fail.
        settings = load_settings(database_url="postgresql://u@db.invalid/x", migrate_on_start=False)
        migrate_if_asked(settings)


def start(**environment: str) -> subprocess.CompletedProcess[str]:
    """`python -m deploy.start` as the image runs it (from the project's directory)."""
    return subprocess.run(
        [sys.executable, "-m", "deploy.start"],
        cwd=PROJECT_ROOT,
        env={"PATH": os.environ.get("PATH", ""), "BETTER_AUTH_SECRET": TEST_SECRET, **environment},
        capture_output=True,
        text=True,
        timeout=60,
    )


class TestTheCommand:
    """Each refusal is one line on stderr and exit status 1, before anything listens."""

    def test_a_bad_port(self, tmp_path: Path) -> None:
        result = start(PORT="http", DATABASE_URL=f"sqlite:///{tmp_path / 'todo.db'}")
        assert result.returncode == 1
        assert result.stderr.strip().splitlines()[-1] == (
            "Not starting: PORT='http' is not a port number (1 to 65535)"
        )

    def test_a_bad_configuration(self, tmp_path: Path) -> None:
        result = start(ENVIRONMENT="production", BETTER_AUTH_SECRET="short")
        assert result.returncode == 1
        assert "Configuration error: BETTER_AUTH_SECRET is 5 characters long" in result.stderr

    def test_a_sqlite_file_it_cannot_write(self, tmp_path: Path) -> None:
        url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'todo.db'}"
        result = start(DATABASE_URL=url)
        assert result.returncode == 1
        assert f"Not starting: DATABASE_URL={url} is in" in result.stderr
        assert "mount a volume at /data" in result.stderr
