"""The image built from the real Dockerfile, run as users run it (`bash .ci/container`).

On the SQLite default with only a secret: it serves as uid 1000 a signup, tasks and `/docs`
(every asset from itself), refuses to start without a secret (the image says
`ENVIRONMENT=production`), honours `PORT`, and `docker stop` with an event stream open exits 0
(uvicorn exits by itself before Docker's kill). On PostgreSQL (a private server; the containers
share the host's network to reach it on loopback): two containers started together on an empty
database both become ready, the revisions ran once, a task written through one is read through
the other, and `/readyz` follows the database down and back; `MIGRATE_ON_START=false` leaves the
schema to a release step (`docker run --rm <image> alembic upgrade head`); a failing migration
stops the container with its reason before anything listens. Each container costs a start (a
few seconds), so the checks share them.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid

import asyncpg
import httpx
import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory

from tests.helpers import TEST_SECRET
from tests.infra.apps import PROJECT_ROOT
from tests.infra.conftest import skip_or_fail
from tests.infra.containers import Container, create, docker, image, missing_docker, removed, start
from tests.infra.servers import PostgresServer, free_port
from tests.sse import Stream

pytestmark = pytest.mark.infra

SECRET = ("-e", f"BETTER_AUTH_SECRET={TEST_SECRET}", "-e", "BCRYPT_ROUNDS=4")
PASSWORD = "correct horse battery"
FIRST_REVISION_LINE = "Running upgrade  -> 0001"


@pytest.fixture(autouse=True, scope="module")
def _docker() -> None:
    reason = missing_docker()
    if reason is not None:
        skip_or_fail(reason)


def script_head() -> str:
    head = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini"))).get_current_head()
    assert head is not None
    return head


def sqlite_container(*arguments: str, container_port: int = 8000) -> Container:
    """The SQLite default on Docker's bridge network, published on a free loopback port."""
    port = free_port()
    return create("-p", f"127.0.0.1:{port}:{container_port}", *arguments, port=port)


def postgres_container(database_url: str, *arguments: str) -> Container:
    port = free_port()
    return create(
        "--network",
        "host",
        "-e",
        f"PORT={port}",
        "-e",
        f"DATABASE_URL={database_url}",
        *SECRET,
        *arguments,
        port=port,
    )


def sign_up(http: httpx.Client) -> tuple[str, dict[str, str]]:
    response = http.post(
        "/api/auth/signup",
        json={"email": f"{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user_id"], {"Authorization": f"Bearer {body['access_token']}"}


def process_one(container: Container) -> tuple[str, list[str]]:
    """PID 1's real uid and command line."""
    status = container.exec("cat", "/proc/1/status")
    uid = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
    command_line = container.exec("sh", "-c", "tr '\\0' ' ' < /proc/1/cmdline").split()
    return uid, command_line


class TestSQLiteDefault:
    def test_serves_signup_tasks_and_docs_as_uid_1000(self) -> None:
        container = sqlite_container(*SECRET)
        with removed(container):
            start(container)
            ready = container.wait_ready()
            assert ready.json() == {"status": "ready", "database": "ok", "revision": None}
            with httpx.Client(base_url=container.base_url, timeout=30) as http:
                assert http.get("/health").json() == {"status": "ok", "database": "ok"}
                user_id, headers = sign_up(http)
                created = http.post(
                    f"/api/{user_id}/tasks", json={"title": "Ship it"}, headers=headers
                )
                assert created.status_code == 201, created.text
                listed = http.get(f"/api/{user_id}/tasks", headers=headers)
                assert [task["title"] for task in listed.json()] == ["Ship it"]

                docs = http.get("/docs")
                assert docs.status_code == 200
                assert "swagger-ui" in docs.text
                references = re.findall(r'(?:src|href)="([^"]+)"', docs.text)
                assert references, "the page loads its assets"
                assert all(reference.startswith("/") for reference in references), references
                for reference in references:
                    assert http.get(reference).status_code == 200, reference

            uid, command_line = process_one(container)
            assert uid == "1000"
            assert "uvicorn" in command_line and "main:app" in command_line
            assert command_line[command_line.index("--host") + 1] == "0.0.0.0"
            assert container.exec("stat", "-c", "%u", "/data/todo.db") == "1000"
            assert container.exec("sh", "-c", "test -w /app && echo yes || echo no") == "no"

    def test_refuses_to_start_without_a_secret(self) -> None:
        container = sqlite_container()
        with removed(container):
            start(container)
            assert container.wait_exit() == 1
            assert "ENVIRONMENT=production requires BETTER_AUTH_SECRET" in container.logs()

    async def test_port_is_honoured_and_docker_stop_with_a_stream_open_exits_0(self) -> None:
        container = sqlite_container(*SECRET, "-e", "PORT=7860", container_port=7860)
        with removed(container):
            start(container)
            container.wait_ready()
            _uid, command_line = process_one(container)
            assert command_line[command_line.index("--port") + 1] == "7860"
            async with httpx.AsyncClient(base_url=container.base_url, timeout=30) as http:
                signup = await http.post(
                    "/api/auth/signup", json={"email": "stream@example.com", "password": PASSWORD}
                )
                body = signup.json()
                headers = {"Authorization": f"Bearer {body['access_token']}"}
                stream = Stream(http, f"/api/{body['user_id']}/events", headers=headers)
                response, reader = await stream.__aenter__()
                assert response.status_code == 200
                await reader.next()
                started = time.monotonic()
                stopping = asyncio.create_task(asyncio.to_thread(docker, "stop", container.id))
                while await reader.next(within=15) is not None:
                    pass  # the stream ends when the server stops
                await stopping
                elapsed = time.monotonic() - started
                await stream.__aexit__()
            print(f"docker stop with a stream open: {elapsed:.2f} s")
            # 0: uvicorn exited by itself; Docker's SIGKILL after 10 s would be 137.
            assert container.state("ExitCode") == "0"
            assert "Finished server process" in container.logs()


def query(database_url: str, sql: str) -> list[tuple[object, ...]]:
    async def run() -> list[tuple[object, ...]]:
        connection = await asyncpg.connect(database_url)
        try:
            return [tuple(row) for row in await connection.fetch(sql)]
        finally:
            await connection.close()

    return asyncio.run(run())


def revisions(database_url: str) -> list[object]:
    return [row[0] for row in query(database_url, "SELECT version_num FROM alembic_version")]


class TestPostgreSQL:
    def test_two_containers_started_together_migrate_once_share_tasks_and_follow_the_database(
        self, postgres: PostgresServer, empty_database: str
    ) -> None:
        first, second = postgres_container(empty_database), postgres_container(empty_database)
        with removed(first, second):
            start(first, second)
            for container in (first, second):
                ready = container.wait_ready()
                assert ready.json() == {
                    "status": "ready",
                    "database": "ok",
                    "revision": script_head(),
                }
            assert revisions(empty_database) == [script_head()]
            migrated = [c for c in (first, second) if FIRST_REVISION_LINE in c.logs()]
            assert len(migrated) == 1, "exactly one container ran the revisions"

            with (
                httpx.Client(base_url=first.base_url, timeout=30) as one,
                httpx.Client(base_url=second.base_url, timeout=30) as other,
            ):
                user_id, headers = sign_up(one)
                created = one.post(
                    f"/api/{user_id}/tasks", json={"title": "via one"}, headers=headers
                )
                assert created.status_code == 201, created.text
                seen = other.get(f"/api/{user_id}/tasks/{created.json()['id']}", headers=headers)
                assert seen.status_code == 200
                assert seen.json()["title"] == "via one"

            # /readyz follows the database down and back.
            postgres.stop("fast")
            try:
                down = [httpx.get(f"{c.base_url}/readyz", timeout=30) for c in (first, second)]
            finally:
                postgres.start()
            for answer in down:
                assert answer.status_code == 503
                assert answer.json()["reason"] == "database_unavailable"
            for container in (first, second):
                container.wait_ready()

    def test_migrate_on_start_false_leaves_it_to_a_release_step(self, empty_database: str) -> None:
        container = postgres_container(empty_database, "-e", "MIGRATE_ON_START=false")
        with removed(container):
            start(container)
            assert container.wait_exit() != 0
            assert "alembic upgrade head" in container.logs()
            tables = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            assert query(empty_database, tables) == []

            docker(
                "run",
                "--rm",
                "--network",
                "host",
                "-e",
                f"DATABASE_URL={empty_database}",
                image() or "",
                "alembic",
                "upgrade",
                "head",
            )
            assert revisions(empty_database) == [script_head()]

            start(container)
            container.wait_ready()

    def test_a_failing_migration_stops_the_container_with_its_reason(
        self, empty_database: str
    ) -> None:
        query(empty_database, "CREATE TABLE users (id integer)")
        container = postgres_container(empty_database)
        with removed(container):
            start(container)
            assert container.wait_exit() == 1
            logs = container.logs()
            assert "Not starting: migration failed" in logs
            assert 'relation "users" already exists' in logs
            assert "Uvicorn running" not in logs
