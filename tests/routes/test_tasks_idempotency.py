"""`Idempotency-Key` on the task writes (draft-ietf-httpapi-idempotency-key-header-07)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

from models import idempotency_records
from tests.helpers import Account, create_task

REPLAYED = "idempotent-replayed"


def _key(value: str | None = None) -> dict[str, str]:
    return {"Idempotency-Key": f'"{value or uuid.uuid4()}"'}


async def _titles(client: AsyncClient, account: Account) -> list[str]:
    response = await client.get(account.tasks_url, headers=account.headers)
    return [task["title"] for task in response.json()]


class TestCreate:
    async def test_a_retry_replays_the_first_answer(
        self, client: AsyncClient, alice: Account
    ) -> None:
        headers = {**alice.headers, **_key()}
        first = await client.post(alice.tasks_url, json={"title": "once"}, headers=headers)
        assert first.status_code == 201
        assert REPLAYED not in first.headers
        retry = await client.post(alice.tasks_url, json={"title": "once"}, headers=headers)
        assert retry.status_code == 201
        assert retry.json() == first.json()
        assert retry.headers[REPLAYED] == "true"
        for header in ("location", "etag"):
            assert retry.headers[header] == first.headers[header]
        assert await _titles(client, alice) == ["once"]

    async def test_the_same_key_with_another_body_is_422(
        self, client: AsyncClient, alice: Account
    ) -> None:
        headers = {**alice.headers, **_key()}
        await client.post(alice.tasks_url, json={"title": "first"}, headers=headers)
        other = await client.post(alice.tasks_url, json={"title": "second"}, headers=headers)
        assert other.status_code == 422
        assert other.json()["detail"][0]["loc"] == ["header", "idempotency-key"]
        assert await _titles(client, alice) == ["first"]

    async def test_twenty_concurrent_requests_with_one_key_make_one_task(
        self, client: AsyncClient, alice: Account
    ) -> None:
        headers = {**alice.headers, **_key()}
        responses = await asyncio.gather(
            *(client.post(alice.tasks_url, json={"title": "x"}, headers=headers) for _ in range(20))
        )
        assert {response.status_code for response in responses} <= {201, 409}
        bodies = [response.json() for response in responses if response.status_code == 201]
        assert bodies and all(body == bodies[0] for body in bodies)
        assert await _titles(client, alice) == ["x"]

    async def test_keys_are_scoped_by_user(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        key = _key("shared-key")
        for account in (alice, bob):
            response = await client.post(
                account.tasks_url, json={"title": account.email}, headers={**account.headers, **key}
            )
            assert response.status_code == 201
            assert REPLAYED not in response.headers
        assert await _titles(client, alice) == [alice.email]
        assert await _titles(client, bob) == [bob.email]

    async def test_a_refused_request_is_not_recorded(
        self, client: AsyncClient, alice: Account
    ) -> None:
        headers = {**alice.headers, **_key()}
        invalid = await client.post(alice.tasks_url, json={"title": ""}, headers=headers)
        assert invalid.status_code == 422
        valid = await client.post(alice.tasks_url, json={"title": "ok"}, headers=headers)
        assert valid.status_code == 201
        assert REPLAYED not in valid.headers

    async def test_an_expired_record_no_longer_replays(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        headers = {**alice.headers, **_key()}
        await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
        async with app.state.engine.begin() as connection:
            await connection.execute(
                update(idempotency_records).values(expires_at=idempotency_records.c.created_at)
            )
        again = await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
        assert again.status_code == 201
        assert REPLAYED not in again.headers
        assert await _titles(client, alice) == ["x", "x"]

    async def test_a_revoked_token_is_refused_before_any_replay(
        self, client: AsyncClient, alice: Account
    ) -> None:
        headers = {**alice.headers, **_key()}
        await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
        await client.post("/api/auth/logout", headers=alice.headers)
        retry = await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
        assert retry.status_code == 401


class TestOtherWrites:
    async def test_a_retried_toggle_stays_toggled_once(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}/complete"
        headers = {**alice.headers, **_key()}
        answers = [await client.patch(url, headers=headers) for _ in range(3)]
        assert [answer.json()["completed"] for answer in answers] == [True, True, True]
        assert [REPLAYED in answer.headers for answer in answers] == [False, True, True]
        current = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert current.json()["completed"] is True

    async def test_a_retried_recurring_completion_keeps_its_location(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        url = f"{alice.tasks_url}/{task['id']}/complete"
        headers = {**alice.headers, **_key()}
        first = await client.patch(url, headers=headers)
        retry = await client.patch(url, headers=headers)
        assert retry.json() == first.json()
        assert retry.headers["location"] == first.headers["location"]
        assert len(await _titles(client, alice)) == 2

    async def test_put(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}"
        headers = {**alice.headers, **_key()}
        first = await client.put(url, json={"title": "v2"}, headers=headers)
        await client.put(url, json={"title": "v3"}, headers=alice.headers)
        retry = await client.put(url, json={"title": "v2"}, headers=headers)
        assert retry.status_code == 200
        assert retry.json() == first.json()
        assert retry.headers[REPLAYED] == "true"
        assert (await client.get(url, headers=alice.headers)).json()["title"] == "v3"

    async def test_delete_replays_204_not_404(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}"
        headers = {**alice.headers, **_key()}
        assert (await client.delete(url, headers=headers)).status_code == 204
        retry = await client.delete(url, headers=headers)
        assert retry.status_code == 204
        assert retry.headers[REPLAYED] == "true"

    async def test_delete_completed_replays_its_count(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice)
        await client.patch(f"{alice.tasks_url}/{task['id']}/complete", headers=alice.headers)
        url = f"{alice.tasks_url}?status=completed"
        headers = {**alice.headers, **_key()}
        first = await client.delete(url, headers=headers)
        assert first.headers["x-deleted-count"] == "1"
        done = await create_task(client, alice)
        await client.patch(f"{alice.tasks_url}/{done['id']}/complete", headers=alice.headers)
        retry = await client.delete(url, headers=headers)
        assert retry.headers["x-deleted-count"] == "1"
        assert retry.headers[REPLAYED] == "true"
        assert len(await _titles(client, alice)) == 1

    async def test_a_404_is_not_recorded(self, client: AsyncClient, alice: Account) -> None:
        headers = {**alice.headers, **_key()}
        missing_url = f"{alice.tasks_url}/424242"
        for _ in range(2):
            missing = await client.put(missing_url, json={"title": "x"}, headers=headers)
            assert missing.status_code == 404
            assert REPLAYED not in missing.headers
        task = await create_task(client, alice)
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}", json={"title": "x"}, headers=headers
        )
        assert response.status_code == 200

    @pytest.mark.parametrize(
        "value",
        ["unquoted", '""', '"' + "k" * 256 + '"', '"tab\there"', '"half', '"a"b"', "é"],
    )
    async def test_a_malformed_key_is_400(
        self, client: AsyncClient, alice: Account, value: str
    ) -> None:
        response = await client.post(
            alice.tasks_url,
            json={"title": "x"},
            headers={**alice.headers, "Idempotency-Key": value.encode()},
        )
        assert response.status_code == 400
        assert "structured-field string" in response.json()["detail"]
        assert await _titles(client, alice) == []

    async def test_escapes_in_a_key(self, client: AsyncClient, alice: Account) -> None:
        headers: dict[str, Any] = {**alice.headers, "Idempotency-Key": r'"a \"quoted\" \\ key"'}
        first = await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
        retry = await client.post(alice.tasks_url, json={"title": "x"}, headers=headers)
        assert first.status_code == retry.status_code == 201
        assert retry.headers[REPLAYED] == "true"
