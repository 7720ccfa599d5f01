"""`GET /api/{user_id}/tasks/stats` and `DELETE /api/{user_id}/tasks?status=completed`."""

from __future__ import annotations

from typing import Any

import pytest
from httpx import AsyncClient

from tests.helpers import Account, create_task

FORBIDDEN = {"detail": "You can only access your own tasks"}
PAST = "2000-01-01T00:00:00Z"
FUTURE = "2090-01-01T00:00:00Z"
EMPTY_STATS = {
    "total": 0,
    "pending": 0,
    "completed": 0,
    "overdue": 0,
    "by_priority": {"low": 0, "medium": 0, "high": 0},
}


async def _complete(client: AsyncClient, account: Account, task: dict[str, Any]) -> None:
    url = f"{account.tasks_url}/{task['id']}/complete"
    response = await client.patch(url, json={"completed": True}, headers=account.headers)
    assert response.status_code == 200


class TestStats:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        response = await client.get(f"{alice.tasks_url}/stats")
        assert response.status_code == 401

    async def test_other_users_path_is_403(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        response = await client.get(f"{bob.tasks_url}/stats", headers=alice.headers)
        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_empty(self, client: AsyncClient, alice: Account) -> None:
        response = await client.get(f"{alice.tasks_url}/stats", headers=alice.headers)
        assert response.status_code == 200
        assert response.json() == EMPTY_STATS

    async def test_counts_only_own_tasks(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        await create_task(client, alice, priority="high", due_at=PAST)
        await create_task(client, alice, priority="high", due_at=FUTURE)
        done_late = await create_task(client, alice, priority="low", due_at=PAST)
        done = await create_task(client, alice)
        await create_task(client, alice)
        await _complete(client, alice, done_late)
        await _complete(client, alice, done)
        await create_task(client, bob, priority="low", due_at=PAST)

        response = await client.get(f"{alice.tasks_url}/stats", headers=alice.headers)
        assert response.status_code == 200
        assert response.json() == {
            "total": 5,
            "pending": 3,
            "completed": 2,
            "overdue": 1,
            "by_priority": {"low": 1, "medium": 2, "high": 2},
        }
        bobs = await client.get(f"{bob.tasks_url}/stats", headers=bob.headers)
        assert bobs.json() == {
            **EMPTY_STATS,
            "total": 1,
            "pending": 1,
            "overdue": 1,
            "by_priority": {"low": 1, "medium": 0, "high": 0},
        }

    async def test_stats_is_not_read_as_a_task_id(
        self, client: AsyncClient, alice: Account
    ) -> None:
        response = await client.get(f"{alice.tasks_url}/stats", headers=alice.headers)
        assert response.status_code == 200
        assert "total" in response.json()


class TestDeleteCompleted:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        response = await client.delete(alice.tasks_url, params={"status": "completed"})
        assert response.status_code == 401

    async def test_other_users_path_is_403_and_nothing_is_deleted(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob)
        await _complete(client, bob, task)
        response = await client.delete(
            bob.tasks_url, params={"status": "completed"}, headers=alice.headers
        )
        assert response.status_code == 403
        assert response.json() == FORBIDDEN
        assert len((await client.get(bob.tasks_url, headers=bob.headers)).json()) == 1

    @pytest.mark.parametrize(
        "params", [{}, {"status": "all"}, {"status": "pending"}, {"status_filter": "completed"}]
    )
    async def test_without_the_completed_filter_is_422(
        self, client: AsyncClient, alice: Account, params: dict[str, str]
    ) -> None:
        task = await create_task(client, alice)
        await _complete(client, alice, task)
        response = await client.delete(alice.tasks_url, params=params, headers=alice.headers)
        assert response.status_code == 422
        assert isinstance(response.json()["detail"], list)
        assert len((await client.get(alice.tasks_url, headers=alice.headers)).json()) == 1

    async def test_deletes_only_the_callers_completed_tasks(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        for number in range(3):
            task = await create_task(client, alice, title=f"done {number}", tags=["x"])
            await _complete(client, alice, task)
        await create_task(client, alice, title="pending", tags=["x"])
        bobs = await create_task(client, bob, title="bob's done")
        await _complete(client, bob, bobs)

        response = await client.delete(
            alice.tasks_url, params={"status": "completed"}, headers=alice.headers
        )
        assert response.status_code == 204
        assert response.content == b""
        assert response.headers["x-deleted-count"] == "3"
        remaining = await client.get(alice.tasks_url, params={"tag": "x"}, headers=alice.headers)
        assert [t["title"] for t in remaining.json()] == ["pending"]
        kept = await client.get(f"{bob.tasks_url}/{bobs['id']}", headers=bob.headers)
        assert kept.status_code == 200

        again = await client.delete(
            alice.tasks_url, params={"status": "completed"}, headers=alice.headers
        )
        assert again.status_code == 204
        assert again.headers["x-deleted-count"] == "0"

    async def test_keeps_the_open_successor_of_a_recurring_task(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, recurrence="daily", due_at=FUTURE)
        await _complete(client, alice, task)
        response = await client.delete(
            alice.tasks_url, params={"status": "completed"}, headers=alice.headers
        )
        assert response.headers["x-deleted-count"] == "1"
        remaining = (await client.get(alice.tasks_url, headers=alice.headers)).json()
        assert [t["completed"] for t in remaining] == [False]
        assert remaining[0]["due_at"].startswith("2090-01-02")
