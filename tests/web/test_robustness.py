"""Hostile and malformed input: always a 4xx with a JSON `detail`, never a 500."""

from __future__ import annotations

import pytest
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
