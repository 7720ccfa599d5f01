"""Accounts: `/api/auth/signup`, `/login`, `/logout`, `/me`."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from httpx import AsyncClient

from tests.helpers import PASSWORD, bearer, frontend_token, sign_up

TOKEN_FIELDS = {"access_token", "token_type", "expires_in", "user_id", "email", "name", "user"}


class TestSignup:
    async def test_creates_an_account_and_returns_a_token(self, client: AsyncClient) -> None:
        response = await client.post(
            "/api/auth/signup",
            json={"email": "Ada@Example.com", "password": PASSWORD, "name": "Ada"},
        )
        assert response.status_code == 201
        body = response.json()
        assert set(body) == TOKEN_FIELDS
        assert body["token_type"] == "bearer"
        assert body["expires_in"] == 604800
        assert body["email"] == "ada@example.com"
        assert body["name"] == "Ada"
        assert str(uuid.UUID(body["user_id"])) == body["user_id"]
        user = body["user"]
        assert (user["id"], user["email"], user["name"]) == (body["user_id"], body["email"], "Ada")
        assert user["created_at"].endswith(("Z", "+00:00"))
        me = await client.get("/api/auth/me", headers=bearer(body["access_token"]))
        assert me.status_code == 200
        assert me.json()["id"] == body["user_id"]

    async def test_name_is_optional(self, client: AsyncClient) -> None:
        response = await client.post(
            "/api/auth/signup", json={"email": "b@example.com", "password": PASSWORD}
        )
        assert response.status_code == 201
        assert response.json()["name"] is None

    async def test_user_ids_are_opaque_and_distinct(self, client: AsyncClient) -> None:
        first = await sign_up(client)
        second = await sign_up(client)
        assert first.id != second.id
        assert not first.id.isdigit()

    @pytest.mark.parametrize("email", ["dup@example.com", "DUP@example.com", "Dup@Example.COM"])
    async def test_duplicate_email_is_409_whatever_the_case(
        self, client: AsyncClient, email: str
    ) -> None:
        await sign_up(client, email="dup@example.com")
        response = await client.post(
            "/api/auth/signup", json={"email": email, "password": PASSWORD}
        )
        assert response.status_code == 409
        assert response.json() == {"detail": "An account with this email already exists"}

    async def test_concurrent_duplicate_signups_create_one_account(
        self, client: AsyncClient
    ) -> None:
        body = {"email": "race@example.com", "password": PASSWORD}
        responses = await asyncio.gather(
            *(client.post("/api/auth/signup", json=body) for _ in range(5))
        )
        codes = sorted(r.status_code for r in responses)
        assert codes == [201, 409, 409, 409, 409]

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("short", "at least 8 characters"),
            ("日本語のパス", "at least 8 characters"),  # 6 characters, 18 bytes
            ("x" * 73, "at most 72 characters"),
            ("é" * 37, "at most 72 bytes"),  # 37 characters, 74 bytes
            ("password\x00suffix", "NUL"),
        ],
    )
    async def test_rejects_bad_passwords(
        self, client: AsyncClient, password: str, reason: str
    ) -> None:
        response = await client.post(
            "/api/auth/signup", json={"email": "p@example.com", "password": password}
        )
        assert response.status_code == 422
        assert reason in response.text

    async def test_accepts_a_password_of_exactly_72_bytes(self, client: AsyncClient) -> None:
        account = await sign_up(client, password="é" * 36)
        login = await client.post(
            "/api/auth/login", json={"email": account.email, "password": "é" * 36}
        )
        assert login.status_code == 200

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "not-an-email", "password": PASSWORD},
            {"password": PASSWORD},
            {"email": "a@example.com"},
            {"email": "a@example.com", "password": 12345678},
            {"email": "a@example.com", "password": PASSWORD, "name": "x" * 101},
            {"email": "a@example.com", "password": PASSWORD, "name": "a\x00b"},
        ],
    )
    async def test_rejects_invalid_bodies(self, client: AsyncClient, body: dict) -> None:
        response = await client.post("/api/auth/signup", json=body)
        assert response.status_code == 422
        assert isinstance(response.json()["detail"], list)

    async def test_never_returns_password_material(self, client: AsyncClient) -> None:
        response = await client.post(
            "/api/auth/signup", json={"email": "s@example.com", "password": PASSWORD}
        )
        assert "password" not in response.text
        assert "$2b$" not in response.text


class TestLogin:
    async def test_returns_a_token(self, client: AsyncClient) -> None:
        account = await sign_up(client, email="log@example.com", name="Lo")
        response = await client.post(
            "/api/auth/login", json={"email": "LOG@example.com", "password": account.password}
        )
        assert response.status_code == 200
        body = response.json()
        assert set(body) == TOKEN_FIELDS
        assert body["user_id"] == account.id
        assert body["email"] == "log@example.com"
        assert body["name"] == "Lo"
        assert body["access_token"] != account.token
        tasks = await client.get(f"/api/{account.id}/tasks", headers=bearer(body["access_token"]))
        assert tasks.status_code == 200

    async def test_wrong_password_and_unknown_email_look_the_same(
        self, client: AsyncClient
    ) -> None:
        account = await sign_up(client)
        wrong_password = await client.post(
            "/api/auth/login", json={"email": account.email, "password": "not the password"}
        )
        unknown_email = await client.post(
            "/api/auth/login", json={"email": "nobody@example.com", "password": PASSWORD}
        )
        assert wrong_password.status_code == unknown_email.status_code == 401
        assert wrong_password.json() == unknown_email.json()
        assert wrong_password.json() == {"detail": "Invalid email or password"}

    async def test_unknown_email_still_runs_bcrypt(self, app, client: AsyncClient) -> None:
        hasher = app.state.password_hasher
        calls: list[str] = []
        original = hasher.verify

        async def counting_verify(password: str, password_hash: str) -> bool:
            calls.append(password_hash[:7])
            return await original(password, password_hash)

        hasher.verify = counting_verify
        await client.post(
            "/api/auth/login", json={"email": "ghost@example.com", "password": PASSWORD}
        )
        assert calls == ["$2b$04$"]

    @pytest.mark.parametrize(
        "body",
        [
            {"email": "a@example.com"},
            {"password": PASSWORD},
            {"email": "a@example.com", "password": ""},
            {"email": "a@example.com", "password": "x\x00y"},
            {"email": "a@example.com", "password": "x" * 73},
        ],
    )
    async def test_rejects_invalid_bodies(self, client: AsyncClient, body: dict) -> None:
        response = await client.post("/api/auth/login", json=body)
        assert response.status_code == 422


class TestLogout:
    async def test_anonymous(self, client: AsyncClient) -> None:
        response = await client.post("/api/auth/logout")
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_revokes_only_that_token(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        other = await client.post(
            "/api/auth/login", json={"email": account.email, "password": account.password}
        )
        other_token = other.json()["access_token"]

        response = await client.post("/api/auth/logout", headers=account.headers)
        assert response.status_code == 200
        assert response.json() == {"detail": "Logged out"}

        revoked = await client.get(account.tasks_url, headers=account.headers)
        assert revoked.status_code == 401
        assert revoked.json() == {"detail": "Token has been revoked"}
        assert revoked.headers["www-authenticate"] == "Bearer"
        again = await client.post("/api/auth/logout", headers=account.headers)
        assert again.status_code == 401

        still_valid = await client.get(account.tasks_url, headers=bearer(other_token))
        assert still_valid.status_code == 200

    async def test_revokes_a_frontend_token_without_jti(self, client: AsyncClient) -> None:
        token = frontend_token("fe-user")
        assert (await client.get("/api/fe-user/tasks", headers=bearer(token))).status_code == 200
        assert (await client.post("/api/auth/logout", headers=bearer(token))).status_code == 200
        response = await client.get("/api/fe-user/tasks", headers=bearer(token))
        assert response.status_code == 401
        fresh = frontend_token("fe-user", iat=1)
        assert (await client.get("/api/fe-user/tasks", headers=bearer(fresh))).status_code == 200

    async def test_concurrent_logouts_of_one_token_do_not_fail(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        responses = await asyncio.gather(
            *(client.post("/api/auth/logout", headers=account.headers) for _ in range(5))
        )
        assert all(r.status_code in (200, 401) for r in responses)
        assert any(r.status_code == 200 for r in responses)


class TestMe:
    async def test_anonymous(self, client: AsyncClient) -> None:
        response = await client.get("/api/auth/me")
        assert response.status_code == 401
        assert response.json() == {"detail": "Not authenticated"}

    async def test_returns_the_account(self, client: AsyncClient) -> None:
        account = await sign_up(client, email="me@example.com", name="Me")
        response = await client.get("/api/auth/me", headers=account.headers)
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"id", "email", "name", "created_at"}
        assert body["id"] == account.id
        assert body["email"] == "me@example.com"
        assert body["name"] == "Me"
        assert body["created_at"].endswith(("Z", "+00:00"))

    async def test_frontend_identity_without_local_account(self, client: AsyncClient) -> None:
        token = frontend_token("ba-123", email="fe@example.com", name="Front End")
        response = await client.get("/api/auth/me", headers=bearer(token))
        assert response.status_code == 200
        assert response.json() == {
            "id": "ba-123",
            "email": "fe@example.com",
            "name": "Front End",
            "created_at": None,
        }

    async def test_minimal_frontend_token(self, client: AsyncClient) -> None:
        response = await client.get("/api/auth/me", headers=bearer(frontend_token("ba-9")))
        assert response.status_code == 200
        assert response.json()["id"] == "ba-9"
        assert response.json()["email"] is None
