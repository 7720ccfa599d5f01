"""Request ids, security headers, the access log, last-resort 500s and logs free of secrets."""

from __future__ import annotations

import logging
import re

import pytest
from fastapi import FastAPI, Request
from httpx import AsyncClient
from starlette.routing import Route

from main import create_app
from settings import Settings
from tests.helpers import PASSWORD, TEST_SECRET, bearer, create_task, sign_up
from web.errors import database_unavailable_handler

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


def _access_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "todo.access"]


class TestRequestId:
    async def test_generated_when_absent(self, client: AsyncClient) -> None:
        first = await client.get("/")
        second = await client.get("/")
        assert GENERATED_ID.fullmatch(first.headers["x-request-id"])
        assert first.headers["x-request-id"] != second.headers["x-request-id"]

    @pytest.mark.parametrize(
        "value", ["abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "a.b:c_d"]
    )
    async def test_a_sane_client_id_is_kept(self, client: AsyncClient, value: str) -> None:
        response = await client.get("/", headers={"X-Request-ID": value})
        assert response.headers["x-request-id"] == value

    @pytest.mark.parametrize("value", ["x" * 129, "has space", "new\tline", "<script>", "é"])
    async def test_an_insane_client_id_is_replaced(self, client: AsyncClient, value: str) -> None:
        response = await client.get("/", headers={"X-Request-ID": value.encode()})
        assert GENERATED_ID.fullmatch(response.headers["x-request-id"])

    async def test_on_errors_too(self, client: AsyncClient) -> None:
        for response in (
            await client.get("/nope"),
            await client.get("/api/auth/me"),
            await client.post("/api/auth/signup", content=b"x" * 70_000),
        ):
            assert response.status_code in (401, 404, 413)
            assert GENERATED_ID.fullmatch(response.headers["x-request-id"])


class TestSecurityHeaders:
    async def test_nosniff_everywhere(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        for response in (
            await client.get("/"),
            await client.get("/nope"),
            await client.get(account.tasks_url, headers=account.headers),
            await client.post(account.tasks_url, json={}, headers=account.headers),
            await client.options(
                "/api/auth/login",
                headers={
                    "Origin": "http://localhost:3000",
                    "Access-Control-Request-Method": "POST",
                },
            ),
        ):
            assert response.headers["x-content-type-options"] == "nosniff"

    async def test_auth_responses_are_not_stored(self, client: AsyncClient) -> None:
        signup = await client.post(
            "/api/auth/signup", json={"email": "c@example.com", "password": PASSWORD}
        )
        login = await client.post(
            "/api/auth/login", json={"email": "c@example.com", "password": "wrong password"}
        )
        me = await client.get("/api/auth/me", headers=bearer(signup.json()["access_token"]))
        for response in (signup, login, me):
            assert response.headers["cache-control"] == "no-store"

    async def test_task_reads_are_revalidated_not_forbidden_to_store(
        self, client: AsyncClient
    ) -> None:
        account = await sign_up(client)
        response = await client.get(account.tasks_url, headers=account.headers)
        assert response.headers["cache-control"] == "private, no-cache"


class TestAccessLog:
    async def test_one_structured_line_per_request(
        self, client: AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        account = await sign_up(client)
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="todo.access"):
            response = await client.get(account.tasks_url, headers=account.headers)
        [record] = _access_records(caplog)
        assert record.method == "GET"
        assert record.route == "/api/{user_id}/tasks"
        assert record.status == 200
        assert record.duration_ms >= 0
        assert record.user_id == account.id
        assert record.request_id == response.headers["x-request-id"]
        message = record.getMessage()
        assert "route=/api/{user_id}/tasks status=200" in message
        assert f"user_id={account.id}" in message

    async def test_unauthenticated_and_unmatched_requests(
        self, client: AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="todo.access"):
            await client.get("/api/auth/me")
            await client.get("/nope?token=secret-query")
        first, second = _access_records(caplog)
        assert (first.route, first.status, first.user_id) == ("/api/auth/me", 401, None)
        assert (second.route, second.status) == ("-", 404)
        message = second.getMessage()
        assert "secret-query" not in message
        assert "/nope" not in message

    def test_uvicorns_own_access_line_is_off(self, settings: Settings) -> None:
        """It would be a second line per request, with the raw path and query string. (uvicorn
        configures its loggers before it imports the app, so the app switches it off when it is
        made; tests that start uvicorn in this process switch it on again, so a fresh app.)"""
        logging.getLogger("uvicorn.access").disabled = False
        create_app(settings)
        assert logging.getLogger("uvicorn.access").disabled


class TestUnhandledErrors:
    async def test_500_with_request_id_and_traceback_only_in_the_log(
        self,
        app: FastAPI,
        client: AsyncClient,
        caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        async def broken(_token: str) -> None:
            raise RuntimeError("internal detail that must stay private")

        monkeypatch.setattr(app.state.token_verifier, "verify", broken)
        with caplog.at_level(logging.INFO):
            response = await client.get(
                "/api/owner-7f3a/tasks", headers={**bearer("a.b.c"), "X-Request-ID": "req-42"}
            )
        assert response.status_code == 500
        assert response.json() == {"detail": "Internal server error", "request_id": "req-42"}
        assert response.headers["x-request-id"] == "req-42"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert "private" not in response.text
        errors = [r for r in caplog.records if r.name == "todo.errors"]
        assert len(errors) == 1
        assert errors[0].exc_info is not None
        assert "req-42" in errors[0].getMessage()
        assert "GET /api/{user_id}/tasks" in errors[0].getMessage()  # the route, not the path
        assert "owner-7f3a" not in errors[0].getMessage()
        [access] = _access_records(caplog)
        assert access.status == 500


class TestLogsCarryNoSecrets:
    async def test_full_flow(
        self, app: FastAPI, client: AsyncClient, caplog: pytest.LogCaptureFixture
    ) -> None:
        new_password = "another secret passphrase"
        wrong_password = "wrong guess passphrase"
        with caplog.at_level(logging.DEBUG):
            account = await sign_up(client, email="flow@example.com", password=PASSWORD)
            await client.post(
                "/api/auth/login", json={"email": account.email, "password": wrong_password}
            )
            login = await client.post(
                "/api/auth/login", json={"email": account.email, "password": PASSWORD}
            )
            token = login.json()["access_token"]
            task = await create_task(client, account, title="Buy milk")
            await client.get(account.tasks_url, headers=bearer(token))
            await client.put(
                f"{account.tasks_url}/{task['id']}",
                json={"completed": True},
                headers=account.headers,
            )
            changed = await client.put(
                "/api/auth/password",
                json={"current_password": PASSWORD, "new_password": new_password},
                headers=bearer(token),
            )
            fresh = changed.json()["access_token"]
            await client.get(account.tasks_url, headers=bearer(token))
            await client.post("/api/auth/logout", headers=bearer(fresh))
            again = await client.post(
                "/api/auth/login", json={"email": account.email, "password": new_password}
            )
            last = again.json()["access_token"]
            await client.request(
                "DELETE", "/api/auth/me", json={"password": new_password}, headers=bearer(last)
            )

        assert _access_records(caplog), "the flow was logged"
        text = "\n".join(
            f"{record.getMessage()} {record.exc_text or ''} {vars(record)}"
            for record in caplog.records
        )
        secrets = [PASSWORD, new_password, wrong_password, TEST_SECRET, "$2b$"]
        secrets += [account.token, token, fresh, last]
        secrets += [
            part for jwt in (account.token, token, fresh, last) for part in jwt.split(".")[1:]
        ]
        for secret in secrets:
            assert secret not in text, f"a secret leaked into the logs: {secret[:12]}..."


class TestDatabaseUnavailableLog:
    async def test_names_the_route_never_the_path(self, caplog: pytest.LogCaptureFixture) -> None:
        route = Route("/api/{user_id}/tasks", endpoint=lambda _request: None)
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/owner-7f3a/tasks",
            "headers": [],
            "route": route,
        }
        with caplog.at_level(logging.WARNING, logger="todo.errors"):
            response = await database_unavailable_handler(Request(scope), OSError("refused"))
        assert response.status_code == 503
        [record] = [r for r in caplog.records if r.name == "todo.errors"]
        assert "GET /api/{user_id}/tasks" in record.getMessage()
        assert "owner-7f3a" not in record.getMessage()
