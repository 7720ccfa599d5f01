"""Account lifecycle: `PUT /api/auth/password` and `DELETE /api/auth/me` revoke every earlier
token of the account (the task routes' single statement refuses them: test_tasks_round_trips)."""

from __future__ import annotations

from fastapi import FastAPI
from httpx import AsyncClient
from sqlmodel import select

from models import SubjectRevocation, Task, User
from tests.helpers import PASSWORD, bearer, create_task, frontend_token, sign_up
from tests.routes.test_auth import TOKEN_FIELDS

NEW_PASSWORD = "a brand new passphrase"


async def _login(client: AsyncClient, email: str, password: str) -> str:
    response = await client.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


async def _not_before(app: FastAPI, sub: str) -> float:
    async with app.state.sessionmaker() as session:
        row = await session.get(SubjectRevocation, sub)
    assert row is not None
    return row.not_before.timestamp()


class TestChangePassword:
    URL = "/api/auth/password"

    async def test_anonymous(self, client: AsyncClient) -> None:
        response = await client.put(
            self.URL, json={"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
        assert response.status_code == 401
        assert response.json() == {"detail": "Not authenticated"}

    async def test_changes_the_password_and_returns_a_fresh_token(
        self, client: AsyncClient
    ) -> None:
        account = await sign_up(client)
        response = await client.put(
            self.URL,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=account.headers,
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert set(body) == TOKEN_FIELDS
        assert body["user_id"] == account.id
        me = await client.get("/api/auth/me", headers=bearer(body["access_token"]))
        assert me.status_code == 200

        old = await client.post(
            "/api/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert old.status_code == 401
        assert await _login(client, account.email, NEW_PASSWORD)

    async def test_revokes_every_earlier_token(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        second = await _login(client, account.email, PASSWORD)
        response = await client.put(
            self.URL,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=account.headers,
        )
        assert response.status_code == 200
        for token in (account.token, second):
            revoked = await client.get(account.tasks_url, headers=bearer(token))
            assert revoked.status_code == 401
            assert revoked.json() == {"detail": "Token has been revoked"}
        fresh = response.json()["access_token"]
        assert (await client.get(account.tasks_url, headers=bearer(fresh))).status_code == 200
        later = await _login(client, account.email, NEW_PASSWORD)
        assert (await client.get(account.tasks_url, headers=bearer(later))).status_code == 200

    async def test_tokens_of_the_same_second_are_told_apart(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        """`iat` is compared with sub-second precision, around the instant of the change."""
        account = await sign_up(client)
        response = await client.put(
            self.URL,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=account.headers,
        )
        assert response.status_code == 200
        not_before = await _not_before(app, account.id)
        just_before = frontend_token(account.id, iat=not_before - 0.001)
        just_after = frontend_token(account.id, iat=not_before + 0.001)
        without_iat = frontend_token(account.id)
        assert (await client.get(account.tasks_url, headers=bearer(just_after))).status_code == 200
        for token in (just_before, without_iat):
            rejected = await client.get(account.tasks_url, headers=bearer(token))
            assert rejected.status_code == 401
            assert rejected.json() == {"detail": "Token has been revoked"}

    async def test_wrong_current_password_is_403_and_changes_nothing(
        self, client: AsyncClient
    ) -> None:
        account = await sign_up(client)
        response = await client.put(
            self.URL,
            json={"current_password": "not the password", "new_password": NEW_PASSWORD},
            headers=account.headers,
        )
        assert response.status_code == 403
        assert response.json() == {"detail": "The password is incorrect"}
        assert (await client.get(account.tasks_url, headers=account.headers)).status_code == 200
        assert await _login(client, account.email, PASSWORD)

    async def test_frontend_identity_without_account_is_404(self, client: AsyncClient) -> None:
        response = await client.put(
            self.URL,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(frontend_token("ba-1")),
        )
        assert response.status_code == 404
        assert "No local account" in response.json()["detail"]

    async def test_rejects_a_weak_new_password(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        response = await client.put(
            self.URL,
            json={"current_password": PASSWORD, "new_password": "short"},
            headers=account.headers,
        )
        assert response.status_code == 422
        assert "at least 8 characters" in response.text

    async def test_is_not_cached(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        response = await client.put(
            self.URL,
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=account.headers,
        )
        assert response.headers["cache-control"] == "no-store"


class TestDeleteAccount:
    URL = "/api/auth/me"

    async def test_anonymous(self, client: AsyncClient) -> None:
        response = await client.request("DELETE", self.URL, json={"password": PASSWORD})
        assert response.status_code == 401
        assert response.json() == {"detail": "Not authenticated"}

    async def test_deletes_the_account_its_tasks_and_revokes_its_tokens(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        account = await sign_up(client)
        other = await sign_up(client)
        await create_task(client, account)
        await create_task(client, other)
        second = await _login(client, account.email, PASSWORD)

        response = await client.request(
            "DELETE", self.URL, json={"password": PASSWORD}, headers=account.headers
        )
        assert response.status_code == 204
        assert response.content == b""

        for token in (account.token, second):
            revoked = await client.get("/api/auth/me", headers=bearer(token))
            assert revoked.status_code == 401
            assert revoked.json() == {"detail": "Token has been revoked"}
        login = await client.post(
            "/api/auth/login", json={"email": account.email, "password": PASSWORD}
        )
        assert login.status_code == 401
        async with app.state.sessionmaker() as session:
            users = (await session.exec(select(User.id))).all()
            owners = (await session.exec(select(Task.user_id))).all()
        assert users == [other.id]
        assert owners == [other.id]
        assert (await client.get(other.tasks_url, headers=other.headers)).json()[0]["title"]

    async def test_the_email_can_sign_up_again(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        await client.request(
            "DELETE", self.URL, json={"password": PASSWORD}, headers=account.headers
        )
        again = await sign_up(client, email=account.email)
        assert again.id != account.id
        assert (await client.get(again.tasks_url, headers=again.headers)).json() == []

    async def test_wrong_password_is_403_and_deletes_nothing(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        response = await client.request(
            "DELETE", self.URL, json={"password": "not the password"}, headers=account.headers
        )
        assert response.status_code == 403
        assert response.json() == {"detail": "The password is incorrect"}
        assert (await client.get("/api/auth/me", headers=account.headers)).status_code == 200

    async def test_missing_confirmation_is_422(self, client: AsyncClient) -> None:
        account = await sign_up(client)
        response = await client.request("DELETE", self.URL, headers=account.headers)
        assert response.status_code == 422
        assert isinstance(response.json()["detail"], list)

    async def test_frontend_identity_without_account_is_404(self, client: AsyncClient) -> None:
        response = await client.request(
            "DELETE", self.URL, json={"password": PASSWORD}, headers=bearer(frontend_token("x"))
        )
        assert response.status_code == 404
