"""Observability on the wire: metrics summed over `uvicorn --workers 2`, traces exported to a
real OTLP/HTTP receiver, JSON log lines of a whole flow."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from tests.helpers import TEST_SECRET
from tests.infra.apps import PROJECT_ROOT, RunningApp, alembic, running_app
from tests.infra.otlp import ReceivedSpan, otlp_receiver
from tests.infra.servers import PostgresServer, free_port
from web.protocol import UVICORN_OPTIONS

pytestmark = pytest.mark.infra

LISTS = 30
CREATES = 12
UNKNOWN_PATHS = 25
CONCURRENCY = 8
PASSWORD = "correct horse battery"
OTEL_VARIABLES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)


@pytest.fixture(scope="module")
def migrated(postgres: PostgresServer) -> str:
    alembic("upgrade", "head", database_url=postgres.url())
    return postgres.url()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(scrape: dict, name: str, **labels: str) -> float:
    return scrape.get((name, tuple(sorted(labels.items()))), 0.0)


def label_values(scrape: dict, name: str, label: str) -> set[str]:
    return {dict(key)[label] for metric, key in scrape if metric == name and label in dict(key)}


def per_worker(directory: Path, scratch: Path) -> dict[int, dict]:
    """Each process's own values, read from its files alone (copied to a folder of their own)."""
    by_pid: dict[int, dict] = {}
    pids = {
        int(match.group(1))
        for file in directory.glob("*.db")
        if (match := re.search(r"_(\d+)\.db$", file.name))
    }
    for pid in pids:
        folder = scratch / str(pid)
        folder.mkdir()
        for file in directory.glob(f"*_{pid}.db"):
            shutil.copy(file, folder / file.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(folder))
        by_pid[pid] = {
            (sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in registry.collect()
            for sample in family.samples
        }
    return by_pid


def _served(directory: Path, scratch: Path) -> dict[int, float]:
    """The HTTP requests each worker counted, from its own files."""
    scratch.mkdir()
    return {
        pid: sum(v for (name, _), v in values.items() if name == "todo_http_requests_total")
        for pid, values in per_worker(directory, scratch).items()
    }


def _busy(directory: Path, scratch: Path) -> list[int]:
    return [pid for pid, count in _served(directory, scratch).items() if count > 0]


async def _signup(http: httpx.AsyncClient, base_url: str) -> tuple[str, dict[str, str]]:
    response = await http.post(
        f"{base_url}/api/auth/signup",
        json={"email": f"m-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
    )
    assert response.status_code == 201, response.text
    body = response.json()
    return body["user_id"], {"Authorization": f"Bearer {body['access_token']}"}


async def _ready(base_url: str) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        for _ in range(100):
            try:
                if (await http.get(f"{base_url}/livez")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the server never answered /livez")


def _two_workers(
    database_url: str, log_dir: Path, directory: Path
) -> AbstractContextManager[RunningApp]:
    """uvicorn --workers 2 with metrics on, their files in `directory`."""
    return running_app(
        database_url,
        log_dir,
        options=("--workers", "2"),
        METRICS_ENABLED="true",
        PROMETHEUS_MULTIPROC_DIR=str(directory),
    )


class TestMetricsAcrossWorkers:
    @pytest.fixture
    def workers(self, migrated: str, tmp_path: Path) -> Iterator[tuple[RunningApp, Path]]:
        directory = tmp_path / "metrics"
        directory.mkdir()
        with _two_workers(migrated, tmp_path, directory) as app:
            yield app, directory

    async def test_one_scrape_sums_both_workers(
        self, workers: tuple[RunningApp, Path], tmp_path: Path
    ) -> None:
        app, directory = workers
        await _ready(app.base_url)
        limits = httpx.Limits(max_keepalive_connections=0)  # a new connection each: both workers
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            user_id, headers = await _signup(http, app.base_url)
            tasks_url = f"{app.base_url}/api/{user_id}/tasks"
            gate = asyncio.Semaphore(CONCURRENCY)

            async def call(method: str, url: str, **kwargs: object) -> int:
                async with gate:
                    return (await http.request(method, url, **kwargs)).status_code

            created = await asyncio.gather(
                *(
                    call("POST", tasks_url, headers=headers, json={"title": f"t{n}"})
                    for n in range(CREATES)
                )
            )
            listed = await asyncio.gather(
                *(call("GET", tasks_url, headers=headers) for _ in range(LISTS))
            )
            # The kernel hands each new connection to either worker: more batches until both
            # have served (counted, so the expected totals stay exact).
            batches = 1
            while len(_busy(directory, tmp_path / f"peek{batches}")) < 2 and batches < 5:
                listed += await asyncio.gather(
                    *(call("GET", tasks_url, headers=headers) for _ in range(LISTS))
                )
                batches += 1
            assert set(created) == {201} and set(listed) == {200}
            before_burst = samples((await http.get(f"{app.base_url}/metrics")).text)
            unknown = await asyncio.gather(
                *(
                    call("GET", f"{app.base_url}/{uuid.uuid4().hex}/{n}")
                    for n in range(UNKNOWN_PATHS)
                )
            )
            assert set(unknown) == {404}
            # Each worker copies its pool's gauges at its ticker's next tick.
            async with asyncio.timeout(10):
                while True:
                    scrapes = [
                        samples((await http.get(f"{app.base_url}/metrics")).text) for _ in range(4)
                    ]
                    if all(value(s, "todo_db_pool_connections_in_use") == 0 for s in scrapes):
                        break
                    await asyncio.sleep(0.2)

        requests = "todo_http_requests_total"
        for scrape in scrapes:  # whichever worker answers, the same sums
            assert (
                value(scrape, requests, method="GET", route="/api/{user_id}/tasks", status="2xx")
                == LISTS * batches
            )
            assert (
                value(scrape, requests, method="POST", route="/api/{user_id}/tasks", status="2xx")
                == CREATES
            )
            assert (
                value(scrape, requests, method="POST", route="/api/auth/signup", status="2xx") == 1
            )
            assert (
                value(scrape, requests, method="GET", route="unmatched", status="4xx")
                == UNKNOWN_PATHS
            )
            assert (
                value(
                    scrape,
                    "todo_http_request_duration_seconds_count",
                    method="GET",
                    route="/api/{user_id}/tasks",
                )
                == LISTS * batches
            )
            # Idle: no connection checked out, no request in flight (scrapes are not counted).
            assert value(scrape, "todo_db_pool_connections_in_use") == 0
            assert value(scrape, "todo_http_requests_in_flight") == 0
            assert not any("metrics" in route for route in label_values(scrape, requests, "route"))
        # The burst of random paths added no label value but `unmatched`'s count.
        assert label_values(scrapes[-1], requests, "route") == label_values(
            before_burst, requests, "route"
        ) | {"unmatched"}
        # Both workers served some of them, and the scrape is their sum.
        served = _served(directory, tmp_path / "final")
        assert len([pid for pid, count in served.items() if count > 0]) == 2, served
        assert sum(served.values()) == sum(
            v for (name, _), v in scrapes[-1].items() if name == requests
        )

    async def test_a_stopped_server_leaves_no_live_gauges(
        self, migrated: str, tmp_path: Path
    ) -> None:
        directory = tmp_path / "metrics"
        with _two_workers(migrated, tmp_path, directory) as app:
            await _ready(app.base_url)
            assert list(directory.glob("gauge_livesum_*.db"))
        # Each worker marked itself dead on its way out; their counters stay.
        assert not list(directory.glob("gauge_live*.db"))
        assert list(directory.glob("counter_*.db"))

    def test_several_workers_without_the_directory_refuse_to_start(
        self, migrated: str, tmp_path: Path
    ) -> None:
        port = free_port()
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "main:app",
                *UVICORN_OPTIONS,
                "--workers",
                "2",
                "--port",
                str(port),
            ],
            cwd=PROJECT_ROOT,
            env={
                **{k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"},
                "DATABASE_URL": migrated,
                "BETTER_AUTH_SECRET": TEST_SECRET,
                "METRICS_ENABLED": "true",
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
        # The workers refuse at startup, so uvicorn stops by itself (its process manager exits
        # with 0 even then), having said why and what to do.
        assert "failed to start, stopping the parent process" in result.stderr
        assert "without PROMETHEUS_MULTIPROC_DIR" in result.stderr
        assert 'export PROMETHEUS_MULTIPROC_DIR="$(mktemp -d)"' in result.stderr


class TestTraces:
    def test_a_list_is_a_server_span_with_one_statement_span(
        self, migrated: str, tmp_path: Path
    ) -> None:
        with (
            otlp_receiver() as receiver,
            running_app(
                migrated,
                tmp_path,
                OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
                OTEL_SERVICE_NAME="todo-traced",
                OTEL_BSP_SCHEDULE_DELAY="100",
            ) as app,
        ):
            with httpx.Client(base_url=app.base_url, timeout=30) as http:
                signup = http.post(
                    "/api/auth/signup",
                    json={"email": f"t-{uuid.uuid4().hex[:8]}@example.com", "password": PASSWORD},
                )
                user_id = signup.json()["user_id"]
                headers = {"Authorization": f"Bearer {signup.json()['access_token']}"}
                # A page with a task: one statement (an empty page costs a second, to tell a
                # revoked token from no tasks).
                created = http.post(
                    f"/api/{user_id}/tasks", headers=headers, json={"title": "a secret plan"}
                )
                assert created.status_code == 201
                listed = http.get(f"/api/{user_id}/tasks?status=pending&q=secret", headers=headers)
                assert len(listed.json()) == 1
                assert listed.status_code == 200
                request_id = listed.headers["X-Request-ID"]
                preflight = http.options(
                    f"/api/{user_id}/tasks",
                    headers={
                        "Origin": "http://localhost:3000",
                        "Access-Control-Request-Method": "GET",
                    },
                )
                assert preflight.status_code == 200

            def is_list(span: ReceivedSpan) -> bool:
                return span.attributes.get("todo.request_id") == request_id

            spans = receiver.wait_for(is_list)
            [server] = [span for span in spans if is_list(span)]
            assert server.name == "GET /api/{user_id}/tasks"
            assert server.kind == "SPAN_KIND_SERVER"
            assert server.attributes["http.route"] == "/api/{user_id}/tasks"
            assert server.resource["service.name"] == "todo-traced"
            statements = [
                span
                for span in spans
                if span.parent_span_id == server.span_id and "db.statement" in span.attributes
            ]
            assert len(statements) == 1, [
                span.name for span in spans if span.trace_id == server.trace_id
            ]
            assert statements[0].trace_id == server.trace_id
            # No raw path or query on any span: they hold user ids (the same rule as the log).
            for span in spans:
                for key, text in span.attributes.items():
                    assert key not in {
                        "http.target",
                        "http.url",
                        "url.path",
                        "url.query",
                        "url.full",
                    }
                    assert user_id not in str(text) and "secret" not in str(text), (span.name, key)
            assert set(receiver.paths) == {"/v1/traces"}
        access = [line for line in app.log().splitlines() if f"request_id={request_id}" in line]
        assert len(access) == 1 and f"trace_id={server.trace_id}" in access[0]


class TestJsonLogs:
    def test_every_line_of_a_whole_flow_is_one_json_object(self, tmp_path: Path) -> None:
        database = f"sqlite+aiosqlite:///{tmp_path / 'json.db'}"
        email = f"j-{uuid.uuid4().hex[:8]}@example.com"
        with running_app(database, tmp_path, LOG_FORMAT="json") as app:
            with httpx.Client(base_url=app.base_url, timeout=30) as http:
                signup = http.post("/api/auth/signup", json={"email": email, "password": PASSWORD})
                token = signup.json()["access_token"]
                headers = {"Authorization": f"Bearer {token}"}
                tasks = f"/api/{signup.json()['user_id']}/tasks"
                assert (
                    http.post(tasks, headers=headers, json={"title": "Buy milk"}).status_code == 201
                )
                assert http.get(tasks, headers=headers).status_code == 200
                assert (
                    http.get(tasks, headers={"Authorization": "Bearer not-a-token"}).status_code
                    == 401
                )
                assert http.post("/api/auth/logout", headers=headers).status_code == 200
            time.sleep(0.2)
        lines = [line for line in app.log().splitlines() if line.strip()]
        entries = [json.loads(line) for line in lines]  # every line parses
        for entry in entries:
            assert {"time", "level", "logger", "message", "request_id", "trace_id"} <= set(entry)
        access = [entry for entry in entries if entry["logger"] == "todo.access"]
        assert [(entry["method"], entry["route"], entry["status"]) for entry in access] == [
            ("POST", "/api/auth/signup", 201),
            ("POST", "/api/{user_id}/tasks", 201),
            ("GET", "/api/{user_id}/tasks", 200),
            ("GET", "/api/{user_id}/tasks", 401),
            ("POST", "/api/auth/logout", 200),
        ]
        assert all(entry["request_id"] and "duration_ms" in entry for entry in access)
        assert any(entry["logger"].startswith("uvicorn") for entry in entries)
        text = "\n".join(lines)
        for secret in (PASSWORD, token, TEST_SECRET):
            assert secret not in text
