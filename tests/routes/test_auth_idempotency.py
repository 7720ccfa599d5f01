"""`Idempotency-Key` on `POST /api/auth/signup`, scoped by the client address."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select

from models import User, idempotency_records
from tests.helpers import PASSWORD

URL = "/api/auth/signup"


def _key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": f'"{value}"'}


async def _users(app: FastAPI) -> int:
    async with app.state.engine.connect() as connection:
        return await connection.scalar(select(func.count()).select_from(User.__table__))


async def test_a_retry_replays_the_same_answer_token_included(
    app: FastAPI, client: AsyncClient
) -> None:
    body = {"email": "retry@example.com", "password": PASSWORD}
    first = await client.post(URL, json=body, headers=_key("signup-1"))
    retry = await client.post(URL, json=body, headers=_key("signup-1"))
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    assert retry.headers["idempotent-replayed"] == "true"
    assert await _users(app) == 1
    me = await client.get(
        "/api/auth/me", headers={"Authorization": f"Bearer {retry.json()['access_token']}"}
    )
    assert me.status_code == 200


async def test_the_stored_answer_is_sealed(app: FastAPI, client: AsyncClient) -> None:
    response = await client.post(
        URL, json={"email": "sealed@example.com", "password": PASSWORD}, headers=_key("sealed")
    )
    async with app.state.engine.connect() as connection:
        stored = await connection.scalar(select(idempotency_records.c.body))
    assert stored and response.json()["access_token"] not in stored
    assert "sealed@example.com" not in stored


async def test_the_same_key_for_another_signup_is_422(app: FastAPI, client: AsyncClient) -> None:
    await client.post(
        URL, json={"email": "one@example.com", "password": PASSWORD}, headers=_key("k")
    )
    other = await client.post(
        URL, json={"email": "two@example.com", "password": PASSWORD}, headers=_key("k")
    )
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
    assert await _users(app) == 1


async def test_concurrent_retries_make_one_account(app: FastAPI, client: AsyncClient) -> None:
    body = {"email": "racing@example.com", "password": PASSWORD}
    responses = await asyncio.gather(
        *(client.post(URL, json=body, headers=_key("race")) for _ in range(5))
    )
    statuses = [response.status_code for response in responses]
    assert set(statuses) <= {201, 409} and 201 in statuses
    for response in responses:
        if response.status_code == 409:
            assert response.headers["retry-after"] == "1"
    tokens = {r.json()["access_token"] for r in responses if r.status_code == 201}
    assert len(tokens) == 1
    assert await _users(app) == 1


async def test_a_refused_signup_is_not_recorded(app: FastAPI, client: AsyncClient) -> None:
    body = {"email": "taken@example.com", "password": PASSWORD}
    assert (await client.post(URL, json=body)).status_code == 201
    for _ in range(2):
        refused = await client.post(URL, json=body, headers=_key("taken"))
        assert refused.status_code == 409
        assert "idempotent-replayed" not in refused.headers
    async with app.state.engine.connect() as connection:
        assert await connection.scalar(select(func.count()).select_from(idempotency_records)) == 0
