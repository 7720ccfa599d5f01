"""Fixtures for the tests that start their own servers (marked `infra`; `uv run pytest -m infra`).

They skip when PostgreSQL's server binaries (or pgbouncer, openssl, node and npm) are missing,
except under CI (`CI` set), where a missing tool is a failure rather than a silently skipped proof.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import NoReturn

import pytest

from tests.infra.apps import RunningApp, alembic, running_app
from tests.infra.servers import PostgresServer, missing_tools, postgres_server


def skip_or_fail(reason: str) -> NoReturn:
    """Skip, or under CI fail: there a test that cannot run is a missing proof."""
    if os.environ.get("CI"):
        pytest.fail(f"CI needs this test to run: {reason}")
    pytest.skip(reason)


def require_tools(*, pgbouncer: bool = False, openssl: bool = False) -> None:
    reason = missing_tools(pgbouncer=pgbouncer, openssl=openssl)
    if reason is not None:
        skip_or_fail(reason)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresServer]:
    """A private PostgreSQL for this module's tests."""
    require_tools()
    with postgres_server() as server:
        yield server


@pytest.fixture
def empty_database(postgres: PostgresServer) -> Iterator[str]:
    """The URL of a new, empty database on the module's private server."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    postgres.psql(f'CREATE DATABASE "{name}"')
    yield postgres.url(name)
    postgres.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def two_instances(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[RunningApp, RunningApp]]:
    """Two `uvicorn main:app` processes on the module's private server, migrated first."""
    alembic("upgrade", "head", database_url=postgres.url())
    logs = tmp_path_factory.mktemp("uvicorn")
    with ExitStack() as stack:
        first = stack.enter_context(running_app(postgres.url(), logs))
        second = stack.enter_context(running_app(postgres.url(), logs))
        yield first, second
