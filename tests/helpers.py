"""Helpers shared by the tests: accounts, tokens and header builders."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from httpx import AsyncClient

TEST_SECRET = "test-shared-secret-that-is-long-enough-0123456789"
PASSWORD = "correct horse battery"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def frontend_token(
    sub: str | None = None, *, secret: str = TEST_SECRET, algorithm: str = "HS256", **claims: Any
) -> str:
    """A token as the frontend's Better Auth mints it: only `sub` and `exp` unless told."""
    payload: dict[str, Any] = {"exp": datetime.now(UTC) + timedelta(hours=1)}
    if sub is not None:
        payload["sub"] = sub
    payload.update(claims)
    payload = {key: value for key, value in payload.items() if value is not None}
    return jwt.encode(payload, secret, algorithm=algorithm)


class Account:
    """A signed-up user with a token."""

    def __init__(self, body: dict[str, Any], password: str) -> None:
        self.id: str = body["user_id"]
        self.email: str = body["email"]
        self.token: str = body["access_token"]
        self.password = password

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    @property
    def tasks_url(self) -> str:
        return f"/api/{self.id}/tasks"


async def sign_up(
    client: AsyncClient, email: str | None = None, password: str = PASSWORD, name: str | None = None
) -> Account:
    email = email or f"user-{uuid.uuid4().hex[:8]}@example.com"
    body: dict[str, Any] = {"email": email, "password": password}
    if name is not None:
        body["name"] = name
    response = await client.post("/api/auth/signup", json=body)
    assert response.status_code == 201, response.text
    return Account(response.json(), password)


async def create_task(client: AsyncClient, account: Account, **body: Any) -> dict[str, Any]:
    body.setdefault("title", "A task")
    response = await client.post(account.tasks_url, json=body, headers=account.headers)
    assert response.status_code == 201, response.text
    return response.json()
