"""Two uvicorn processes on one PostgreSQL: nothing lives in one process's memory."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx
import pytest

from tests.infra.apps import RunningApp

pytestmark = pytest.mark.infra

TOGGLES = 40
CONCURRENCY = 10


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_logged_out_on_one_is_rejected_by_the_other(
    two_instances: tuple[RunningApp, RunningApp],
) -> None:
    first, second = two_instances
    async with httpx.AsyncClient(timeout=30) as http:
        signup = await http.post(
            f"{first.base_url}/api/auth/signup",
            json={"email": "twice@example.com", "password": "password123"},
        )
        assert signup.status_code == 201, signup.text
        headers = _bearer(signup.json()["access_token"])
        before = await http.get(f"{second.base_url}/api/auth/me", headers=headers)
        assert before.status_code == 200

        logout = await http.post(f"{first.base_url}/api/auth/logout", headers=headers)
        assert logout.status_code == 200

        for instance in (second, first):
            response = await http.get(f"{instance.base_url}/api/auth/me", headers=headers)
            assert response.status_code == 401, instance.base_url
            assert response.headers["WWW-Authenticate"].startswith("Bearer")

        login = await http.post(
            f"{second.base_url}/api/auth/login",
            json={"email": "twice@example.com", "password": "password123"},
        )
        assert login.status_code == 200
        fresh = _bearer(login.json()["access_token"])
        assert (await http.get(f"{first.base_url}/api/auth/me", headers=fresh)).status_code == 200


async def test_concurrent_toggles_split_across_both_stay_atomic(
    two_instances: tuple[RunningApp, RunningApp],
) -> None:
    first, second = two_instances
    async with httpx.AsyncClient(timeout=30) as http:
        signup = await http.post(
            f"{first.base_url}/api/auth/signup",
            json={"email": "toggles@example.com", "password": "password123"},
        )
        body = signup.json()
        headers = _bearer(body["access_token"])
        path = f"/api/{body['user_id']}/tasks"
        created = await http.post(f"{second.base_url}{path}", json={"title": "t"}, headers=headers)
        assert created.status_code == 201, created.text
        toggle_path = f"{path}/{created.json()['id']}/complete"
        slots = asyncio.Semaphore(CONCURRENCY)

        async def toggle(instance: RunningApp) -> bool:
            async with slots:
                response = await http.patch(f"{instance.base_url}{toggle_path}", headers=headers)
            assert response.status_code == 200, response.text
            return bool(response.json()["completed"])

        outcomes = Counter(
            await asyncio.gather(
                *(toggle(first if number % 2 else second) for number in range(TOGGLES))
            )
        )
        final = await http.get(f"{first.base_url}{path}/{created.json()['id']}", headers=headers)

    # Every toggle flipped the state the one before it left, whichever process served it.
    assert outcomes == Counter({True: TOGGLES // 2, False: TOGGLES // 2})
    assert final.json()["completed"] is False


async def test_a_retry_on_the_other_replays_the_first_answer(
    two_instances: tuple[RunningApp, RunningApp],
) -> None:
    """An Idempotency-Key's record lives in the database: a retry that lands on the other
    process replays the first answer instead of creating a second task."""
    first, second = two_instances
    async with httpx.AsyncClient(timeout=30) as http:
        signup = await http.post(
            f"{first.base_url}/api/auth/signup",
            json={"email": "retries@example.com", "password": "password123"},
        )
        body = signup.json()
        headers = {**_bearer(body["access_token"]), "Idempotency-Key": '"retry-across"'}
        path = f"/api/{body['user_id']}/tasks"
        original = await http.post(
            f"{first.base_url}{path}", json={"title": "once"}, headers=headers
        )
        retry = await http.post(f"{second.base_url}{path}", json={"title": "once"}, headers=headers)
        listed = await http.get(f"{second.base_url}{path}", headers=_bearer(body["access_token"]))
    assert original.status_code == retry.status_code == 201
    assert retry.json() == original.json()
    assert retry.headers["Idempotent-Replayed"] == "true"
    # Absolute, under the host the retry was sent to.
    assert httpx.URL(retry.headers["Location"]).path == httpx.URL(original.headers["Location"]).path
    assert [task["title"] for task in listed.json()] == ["once"]
