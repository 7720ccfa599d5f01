"""Hostile and malformed input: always a 4xx with a JSON `detail`, never a 500."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.helpers import Account, create_task, sign_up


@pytest.fixture
async def account(client: AsyncClient) -> Account:
    return await sign_up(client)


class TestMalformedBodies:
    @pytest.mark.parametrize(
        "raw",
        [b"{", b"not json", b'{"title": "x",}', b"\xff\xfe", b"", b"null", b"[]", b"42"],
    )
    async def test_create_rejects(self, client: AsyncClient, account: Account, raw: bytes) -> None:
        response = await client.post(
            account.tasks_url,
            content=raw,
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500
        assert "detail" in response.json()

    async def test_deep_nesting(self, client: AsyncClient, account: Account) -> None:
        depth = 20_000
        raw = b'{"title": ' + b"[" * depth + b"]" * depth + b"}"
        response = await client.post(
            account.tasks_url,
            content=raw,
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500

    async def test_signup_with_array_body(self, client: AsyncClient) -> None:
        response = await client.post("/api/auth/signup", json=[{"email": "a@b.co"}])
        assert response.status_code == 422


class TestBodySize:
    async def test_over_64_kib_is_413(self, client: AsyncClient, account: Account) -> None:
        response = await client.post(
            account.tasks_url,
            json={"title": "x", "description": "d" * (65 * 1024)},
            headers=account.headers,
        )
        assert response.status_code == 413
        assert "detail" in response.json()

    async def test_streamed_body_over_limit_is_413(
        self, client: AsyncClient, account: Account
    ) -> None:
        async def chunks():
            for _ in range(80):
                yield b" " * 1024

        response = await client.post(
            account.tasks_url,
            content=chunks(),
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 413
        assert response.json()["detail"].startswith("Request body is larger than")

    async def test_just_under_the_limit_is_processed(
        self, client: AsyncClient, account: Account
    ) -> None:
        response = await client.post(
            account.tasks_url,
            json={"title": "x", "padding": "p" * (60 * 1024)},
            headers=account.headers,
        )
        assert response.status_code == 201


class TestBodyTime:
    """A body still arriving `HTTP_BODY_TIMEOUT_SECONDS` after its head is 408 (any server)."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        # Generous beside the pieces' pauses: a loaded machine (CI, xdist) delays the loop.
        return {"http_body_timeout_seconds": 0.5}

    @staticmethod
    def _slow(pause: float, *parts: bytes):
        async def chunks():
            for number, part in enumerate(parts):
                if number:
                    await asyncio.sleep(pause)
                yield part

        return chunks()

    async def test_a_body_that_stalls_is_408_and_closes(
        self, client: AsyncClient, account: Account
    ) -> None:
        response = await client.post(
            account.tasks_url,
            content=self._slow(1.0, b'{"title": ', b'"late"}'),
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 408
        assert response.json() == {"detail": "The request body did not arrive within 0.5 seconds"}
        assert response.headers["connection"] == "close"

    async def test_on_mcp_too(self, client: AsyncClient, account: Account) -> None:
        response = await client.post(
            "http://localhost/mcp",
            content=self._slow(1.0, b'{"jsonrpc": "2.0", ', b'"id": 1, "method": "ping"}'),
            headers={
                **account.headers,
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
        )
        assert response.status_code == 408
        assert "detail" in response.json()


class TestBodyInTime:
    """Pieces with pauses between them, well within the time: served (a busy machine may pause
    a test for long, so the bound here is generous)."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"http_body_timeout_seconds": 30}

    async def test_a_body_in_pieces_within_the_time_is_served(
        self, client: AsyncClient, account: Account
    ) -> None:
        response = await client.post(
            account.tasks_url,
            content=TestBodyTime._slow(0.2, b'{"title": ', b'"in time"', b"}"),
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 201
        assert response.json()["title"] == "in time"


class TestNulCharacters:
    async def test_in_update(self, client: AsyncClient, account: Account) -> None:
        task = await create_task(client, account)
        response = await client.put(
            f"{account.tasks_url}/{task['id']}", json={"title": "a\x00"}, headers=account.headers
        )
        assert response.status_code == 422

    async def test_in_email(self, client: AsyncClient) -> None:
        response = await client.post(
            "/api/auth/signup", json={"email": "a\x00@example.com", "password": "password123"}
        )
        assert response.status_code == 422

    async def test_in_path_user_id(self, client: AsyncClient, account: Account) -> None:
        response = await client.get("/api/a%00b/tasks", headers=account.headers)
        assert response.status_code == 403


class TestMethods:
    async def test_wrong_method_is_json_405(self, client: AsyncClient, account: Account) -> None:
        response = await client.post(f"{account.tasks_url}/1", headers=account.headers)
        assert response.status_code == 405
        assert response.json() == {"detail": "Method Not Allowed"}


class TestHead:
    """HEAD wherever GET is (RFC 9110 §9.3.2): GET's status and headers, no body."""

    async def test_every_get_route_answers_head(
        self, app: FastAPI, client: AsyncClient, account: Account
    ) -> None:
        task = await create_task(client, account)
        documented = {
            "/": "/",
            "/health": "/health",
            "/livez": "/livez",
            "/readyz": "/readyz",
            "/api/auth/me": "/api/auth/me",
            "/api/{user_id}/conversations": f"/api/{account.id}/conversations",
            "/api/{user_id}/tasks": account.tasks_url,
            "/api/{user_id}/tasks/stats": f"{account.tasks_url}/stats",
            "/api/{user_id}/tasks/changes": f"{account.tasks_url}/changes",
            "/api/{user_id}/tasks/{task_id}": f"{account.tasks_url}/{task['id']}",
        }
        gets = {path for path, operations in app.openapi()["paths"].items() if "get" in operations}
        # The stream: the test below; a conversation's messages: the one after it.
        messages = "/api/{user_id}/conversations/{conversation_id}/messages"
        assert gets == {*documented, "/api/{user_id}/events", messages}
        paths = [*documented.values(), "/openapi.json", "/docs", "/docs/oauth2-redirect"]
        for path in paths:
            get = await client.get(path, headers=account.headers)
            head = await client.head(path, headers=account.headers)
            assert head.status_code == get.status_code == 200, path
            assert head.content == b"", path
            for name in ("content-type", "content-length", "etag", "x-total-count"):
                assert head.headers.get(name) == get.headers.get(name), (path, name)

    async def test_the_event_stream_answers_its_headers_and_ends(
        self, client: AsyncClient, account: Account
    ) -> None:
        head = await client.head(f"/api/{account.id}/events", headers=account.headers)
        assert head.status_code == 200
        assert head.headers["content-type"].startswith("text/event-stream")
        assert head.content == b""

    async def test_a_missing_conversation_is_the_same_404(
        self, client: AsyncClient, account: Account
    ) -> None:
        path = f"/api/{account.id}/conversations/1/messages"
        get = await client.get(path, headers=account.headers)
        head = await client.head(path, headers=account.headers)
        assert head.status_code == get.status_code == 404
        assert head.content == b""
        assert head.headers["content-length"] == get.headers["content-length"]

    async def test_errors_are_the_same_as_for_get(
        self, client: AsyncClient, account: Account
    ) -> None:
        assert (await client.head(account.tasks_url)).status_code == 401
        assert (await client.head("/nope")).status_code == 404
        refused = await client.head("/api/auth/login")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "POST"
        assert refused.content == b""

    async def test_the_access_line_says_head(
        self, client: AsyncClient, account: Account, caplog: pytest.LogCaptureFixture
    ) -> None:
        with caplog.at_level(logging.INFO, logger="todo.access"):
            await client.head(account.tasks_url, headers=account.headers)
        [record] = [r for r in caplog.records if r.name == "todo.access"]
        assert (record.method, record.route, record.status) == (
            "HEAD",
            "/api/{user_id}/tasks",
            200,
        )

    async def test_head_is_not_a_documented_operation(self, app: FastAPI) -> None:
        assert not [
            path for path, operations in app.openapi()["paths"].items() if "head" in operations
        ]


# JSON a client may send that Python's parser reads but that has no JSON (or UTF-8) form:
# non-finite numbers, a float past the double range (read as infinity), a number past any
# column, and lone surrogates (valid escapes, but no Unicode scalar value).
NON_JSON_VALUES = {
    "NaN": b"NaN",
    "Infinity": b"Infinity",
    "-Infinity": b"-Infinity",
    "1e400": b"1e400",
    "10**400": b"1" + b"0" * 400,
    "lone high surrogate": b'"\\ud800"',
    "lone low surrogate": b'"ok \\udfff"',
    "surrogate in a list": b'["\\udbff"]',
}
CREDENTIALS = {"email": "x@example.com", "password": "long enough 1"}
# (method, path template, the body's other fields, the field the value replaces)
BODY_FIELDS = [
    ("POST", "/api/auth/signup", CREDENTIALS, "email"),
    ("POST", "/api/auth/signup", CREDENTIALS, "password"),
    ("POST", "/api/auth/signup", CREDENTIALS, "name"),
    ("POST", "/api/auth/login", CREDENTIALS, "email"),
    ("POST", "/api/auth/login", CREDENTIALS, "password"),
    ("POST", "{tasks}", {"title": "t"}, "title"),
    ("POST", "{tasks}", {"title": "t"}, "description"),
    ("POST", "{tasks}", {"title": "t"}, "tags"),
    ("POST", "{tasks}", {"title": "t"}, "priority"),
    ("POST", "{tasks}", {"title": "t"}, "due_at"),
    ("PUT", "{task}", {}, "title"),
    ("PUT", "{task}", {}, "completed"),
    ("PATCH", "{task}/complete", {}, "completed"),
    ("PUT", "/api/auth/password", {"new_password": "long enough 2"}, "current_password"),
    ("PUT", "/api/auth/password", {"current_password": "long enough 1"}, "new_password"),
    ("DELETE", "/api/auth/me", {}, "password"),
]


def _body_with(fields: dict[str, object], name: str, raw_value: bytes) -> bytes:
    placeholder = "__value__"
    text = json.dumps({**fields, name: placeholder})
    return text.replace(f'"{placeholder}"', raw_value.decode()).encode()


class TestNonJsonNumbersAndSurrogates:
    """Refused with 422 naming the field, with the value echoed in a form JSON can carry, and
    no traceback in the log (a client's mistake is not our error)."""

    @pytest.mark.parametrize(
        ("method", "path", "fields", "name"),
        BODY_FIELDS,
        ids=[f"{method} {path} {name}" for method, path, _, name in BODY_FIELDS],
    )
    async def test_each_value_in_a_field(
        self,
        client: AsyncClient,
        account: Account,
        caplog: pytest.LogCaptureFixture,
        method: str,
        path: str,
        fields: dict[str, object],
        name: str,
    ) -> None:
        task = await create_task(client, account)
        url = path.format(tasks=account.tasks_url, task=f"{account.tasks_url}/{task['id']}")
        for label, raw_value in NON_JSON_VALUES.items():
            with caplog.at_level(logging.WARNING):
                response = await client.request(
                    method,
                    url,
                    content=_body_with(fields, name, raw_value),
                    headers={**account.headers, "Content-Type": "application/json"},
                )
            assert response.status_code == 422, (label, response.text)
            errors = [error for error in response.json()["detail"] if name in error["loc"]]
            assert errors and errors[0]["loc"][0] == "body", (label, response.text)
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR], label

    async def test_the_echo_spells_what_json_cannot_carry(
        self, client: AsyncClient, account: Account
    ) -> None:
        raw = b'{"title": "t", "completed": NaN, "priority": "\\ud800", "tags": [1e400]}'
        response = await client.post(
            account.tasks_url,
            content=raw,
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert response.status_code == 422
        inputs = {error["loc"][1]: error["input"] for error in response.json()["detail"]}
        assert inputs["priority"] == "\\ud800"
        assert inputs["tags"] == "Infinity"

    @pytest.mark.parametrize("raw", [b'{"title": ' + b"[" * 800 + b"]" * 800 + b"}"])
    async def test_nesting_pydantic_refuses_is_echoed_safely(
        self, client: AsyncClient, account: Account, raw: bytes
    ) -> None:
        response = await client.post(
            account.tasks_url,
            content=raw,
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert 400 <= response.status_code < 500


class TestMcpBodies:
    async def test_a_streamed_body_past_the_limit_is_413(
        self, client: AsyncClient, account: Account
    ) -> None:
        async def chunks():
            yield b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "'
            for _ in range(80):
                yield b"p" * 1024
            yield b'"}}'

        response = await client.post(
            "http://localhost/mcp",
            content=chunks(),
            headers={
                **account.headers,
                "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream",
            },
        )
        assert response.status_code == 413
        assert response.json()["detail"].startswith("Request body is larger than")
