"""`GET /metrics` from the app in process: who may read it, what it counts, and that no label
grows with what clients send."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.helpers import Account, bearer, create_task, sign_up
from tests.mcp_server.conftest import mcp_session
from tests.observability.helpers import grew, label_values, scrape, value
from tests.sse import WAIT, Stream, served

REQUESTS = "todo_http_requests_total"
LIST = "/api/{user_id}/tasks"
METRICS_TOKEN = "scraper-token-0123456789"


@pytest.fixture
def settings_overrides() -> dict[str, object]:
    return {"metrics_enabled": True}


class TestWhoMayRead:
    class TestOffByDefault:
        @pytest.fixture
        def settings_overrides(self) -> dict[str, object]:
            return {}

        async def test_404_like_any_unknown_path(self, client: AsyncClient) -> None:
            assert (await client.get("/metrics")).status_code == 404

    class TestWithABearerToken:
        @pytest.fixture
        def settings_overrides(self) -> dict[str, object]:
            return {"metrics_enabled": True, "metrics_bearer_token": METRICS_TOKEN}

        @pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {METRICS_TOKEN}"])
        async def test_401_without_it(self, client: AsyncClient, authorization: str | None) -> None:
            headers = {"Authorization": authorization} if authorization else {}
            response = await client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert "METRICS_BEARER_TOKEN" in response.json()["detail"]

        async def test_200_with_it(self, client: AsyncClient) -> None:
            response = await client.get("/metrics", headers=bearer(METRICS_TOKEN))
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/plain; version=0.0.4")

    async def test_openmetrics_when_asked_for(self, client: AsyncClient) -> None:
        accept = "application/openmetrics-text; version=1.0.0"
        response = await client.get("/metrics", headers={"Accept": accept})
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        assert response.text.endswith("# EOF\n")

    async def test_not_in_the_openapi_document(self, client: AsyncClient) -> None:
        assert "/metrics" not in (await client.get("/openapi.json")).json()["paths"]


class TestHttp:
    async def test_requests_by_route_template_and_status_class(
        self, client: AsyncClient, alice: Account
    ) -> None:
        before = await scrape(client)
        assert (
            await client.post(alice.tasks_url, headers=alice.headers, json={"title": "a"})
        ).status_code == 201
        for _ in range(3):
            assert (await client.get(alice.tasks_url, headers=alice.headers)).status_code == 200
        assert (await client.get(alice.tasks_url)).status_code == 401
        after = await scrape(client)
        assert grew(before, after, REQUESTS, method="GET", route=LIST, status="2xx") == 3
        assert grew(before, after, REQUESTS, method="GET", route=LIST, status="4xx") == 1
        assert grew(before, after, REQUESTS, method="POST", route=LIST, status="2xx") == 1
        duration = "todo_http_request_duration_seconds_count"
        assert grew(before, after, duration, method="GET", route=LIST) == 4
        # No label carries the user's id.
        assert not any(alice.id in str(key) for key in after)

    async def test_random_paths_add_no_label_values(self, client: AsyncClient) -> None:
        await client.get("/warm-up")
        before = await scrape(client)
        statuses = await asyncio.gather(
            *(client.request(method, f"/{uuid.uuid4().hex}/x") for method in ("GET", "PURGE") * 10)
        )
        assert {response.status_code for response in statuses} <= {404, 405}
        after = await scrape(client)
        assert label_values(after, REQUESTS, "route") == label_values(before, REQUESTS, "route")
        assert label_values(after, REQUESTS, "method") <= {
            "GET",
            "HEAD",
            "POST",
            "PUT",
            "PATCH",
            "DELETE",
            "OPTIONS",
            "OTHER",
        }
        assert grew(before, after, REQUESTS, method="GET", route="unmatched", status="4xx") == 10
        assert grew(before, after, REQUESTS, method="OTHER", route="unmatched", status="4xx") == 10

    async def test_scrapes_are_not_counted(self, client: AsyncClient) -> None:
        before = await scrape(client)
        after = await scrape(client)
        assert not any("metrics" in route for route in label_values(after, REQUESTS, "route"))
        assert sum(v for (name, _), v in after.items() if name == REQUESTS) == sum(
            v for (name, _), v in before.items() if name == REQUESTS
        )
        assert value(after, "todo_http_requests_in_flight") == 0

    async def test_another_account_is_not_a_new_series(self, client: AsyncClient) -> None:
        """The series depend on routes, never on who calls: a second user adds none."""
        first = await sign_up(client)
        await client.get(first.tasks_url, headers=first.headers)
        before = await scrape(client)
        second = await sign_up(client)
        await client.get(second.tasks_url, headers=second.headers)
        after = await scrape(client)
        assert set(after) == set(before)


class TestDatabase:
    async def test_statements_by_kind_and_the_pool_idle_again(
        self, client: AsyncClient, alice: Account
    ) -> None:
        before = await scrape(client)
        await client.post(alice.tasks_url, headers=alice.headers, json={"title": "a"})
        await client.get(alice.tasks_url, headers=alice.headers)
        await asyncio.sleep(0.6)  # a tick of the ticker, which copies the pool's gauges
        after = await scrape(client)
        assert grew(before, after, "todo_event_loop_lag_seconds_count") >= 1
        statements = "todo_db_statement_duration_seconds_count"
        assert grew(before, after, statements, kind="select") >= 1
        # A create: one `WITH ... INSERT` on PostgreSQL, an INSERT in a transaction on SQLite.
        assert (
            grew(before, after, statements, kind="write")
            + grew(before, after, statements, kind="insert")
            >= 1
        )
        assert value(after, "todo_db_pool_connections_in_use") == 0
        assert value(after, "todo_db_pool_overflow_connections") == 0


class TestAuth:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"metrics_enabled": True, "login_max_failures_per_email": 2}

    async def test_bcrypt_failures_and_429s_by_limit(
        self, client: AsyncClient, alice: Account
    ) -> None:
        before = await scrape(client)
        wrong = {"email": alice.email, "password": "not the password"}
        answers = [(await client.post("/api/auth/login", json=wrong)).status_code for _ in range(3)]
        assert answers == [401, 401, 429]
        unknown = {"email": "nobody@example.com", "password": "whatever1"}
        assert (await client.post("/api/auth/login", json=unknown)).status_code == 401
        after = await scrape(client)
        assert grew(before, after, "todo_login_failures_total", reason="wrong_password") == 2
        assert grew(before, after, "todo_login_failures_total", reason="unknown_email") == 1
        assert grew(before, after, "todo_rate_limited_total", limit="login-email") == 1
        assert grew(before, after, "todo_bcrypt_wait_seconds_count") == 3  # not the refused one
        assert value(after, "todo_bcrypt_in_flight") == 0


class TestSafeWrites:
    async def test_replays_and_412(self, client: AsyncClient, alice: Account) -> None:
        before = await scrape(client)
        key = {**alice.headers, "Idempotency-Key": '"metrics-1"'}
        first = await client.post(alice.tasks_url, headers=key, json={"title": "a"})
        again = await client.post(alice.tasks_url, headers=key, json={"title": "a"})
        assert again.headers["Idempotent-Replayed"] == "true"
        task = f"{alice.tasks_url}/{first.json()['id']}"
        stale = {**alice.headers, "If-Match": '"999.999"'}
        assert (await client.put(task, headers=stale, json={"title": "b"})).status_code == 412
        after = await scrape(client)
        assert grew(before, after, "todo_idempotent_replays_total", operation="task_write") == 1
        refused = "todo_write_refusals_total"
        assert grew(before, after, refused, status="412", reason="stale_if_match") == 1

    class TestIfMatchRequired:
        @pytest.fixture
        def settings_overrides(self) -> dict[str, object]:
            return {"metrics_enabled": True, "require_if_match": True}

        async def test_428(self, client: AsyncClient, alice: Account) -> None:
            created = await client.post(alice.tasks_url, headers=alice.headers, json={"title": "a"})
            before = await scrape(client)
            task = f"{alice.tasks_url}/{created.json()['id']}"
            assert (await client.delete(task, headers=alice.headers)).status_code == 428
            after = await scrape(client)
            refused = "todo_write_refusals_total"
            assert grew(before, after, refused, status="428", reason="if_match_required") == 1


@pytest.fixture
async def streaming(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """The app on a loopback port (httpx's ASGI transport buffers whole responses; a stream
    needs a server), its lifespan run by the `app` fixture."""
    async with (
        served(app) as url,
        httpx.AsyncClient(base_url=url, timeout=WAIT) as http,
    ):
        yield http


class TestLiveEvents:
    async def test_open_streams_and_events_delivered(
        self, streaming: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        before = await scrape(client)
        # The gauge is the process's: streams of other tests in this worker may count in it.
        already = value(before, "todo_live_streams_open")
        events = f"/api/{alice.id}/events"
        async with Stream(streaming, events, headers=alice.headers) as (_response, reader):
            await reader.next()
            assert value(await scrape(client), "todo_live_streams_open") == already + 1
            await create_task(client, alice, title="live")
            assert (await reader.next_event()) is not None
        for _ in range(100):  # the server sees the stream close a moment later
            after = await scrape(client)
            if value(after, "todo_live_streams_open") == already:
                break
            await asyncio.sleep(0.05)
        assert value(after, "todo_live_streams_open") == already
        assert grew(before, after, "todo_live_events_delivered_total") == 1


class TestMcp:
    async def test_tool_calls_by_tool_and_outcome(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        before = await scrape(client)
        async with mcp_session(app, alice.token) as session:
            assert not (await session.call_tool("add_task", {"title": "from an agent"})).is_error
            assert (await session.call_tool("delete_task", {"task_id": 999999})).is_error
        after = await scrape(client)
        calls = "todo_mcp_tool_calls_total"
        assert grew(before, after, calls, tool="add_task", outcome="ok") == 1
        assert grew(before, after, calls, tool="delete_task", outcome="error") == 1
