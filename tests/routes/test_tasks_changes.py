"""`GET /api/{user_id}/tasks/changes`: the changes feed over the per-owner change log."""

from __future__ import annotations

import random
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, update

from models import change_counters, task_changes
from tests.helpers import Account, bearer, create_task, frontend_token, sign_up


async def _changes(
    client: AsyncClient, account: Account, since: str | None = None, limit: int | None = None
) -> dict[str, Any]:
    params: dict[str, Any] = {}
    if since is not None:
        params["since"] = since
    if limit is not None:
        params["limit"] = limit
    response = await client.get(
        f"{account.tasks_url}/changes", params=params, headers=account.headers
    )
    assert response.status_code == 200, response.text
    return response.json()


async def _follow(
    client: AsyncClient, account: Account, since: str | None, limit: int = 100
) -> tuple[list[dict[str, Any]], list[int], str]:
    """Every page from `since` on: (changes, deleted, last cursor)."""
    changes: list[dict[str, Any]] = []
    deleted: list[int] = []
    while True:
        page = await _changes(client, account, since, limit)
        changes += page["changes"]
        deleted += page["deleted"]
        since = page["cursor"]
        if not page["has_more"]:
            return changes, deleted, since


async def _all_tasks(client: AsyncClient, account: Account) -> list[dict[str, Any]]:
    response = await client.get(f"{account.tasks_url}?limit=500", headers=account.headers)
    return sorted(response.json(), key=lambda task: task["id"])


class TestAccess:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        response = await client.get(f"{alice.tasks_url}/changes")
        assert response.status_code == 401

    async def test_another_users_path(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        response = await client.get(f"{bob.tasks_url}/changes", headers=alice.headers)
        assert response.status_code == 403

    async def test_revoked_token(self, client: AsyncClient, alice: Account) -> None:
        await create_task(client, alice)
        first = await _changes(client, alice)
        await client.post("/api/auth/logout", headers=alice.headers)
        for params in ({}, {"since": first["cursor"]}):
            response = await client.get(
                f"{alice.tasks_url}/changes", params=params, headers=alice.headers
            )
            assert response.status_code == 401
            assert response.json() == {"detail": "Token has been revoked"}

    async def test_a_frontend_identity_without_account_has_a_feed(
        self, client: AsyncClient
    ) -> None:
        headers = bearer(frontend_token("frontend-user-1"))
        url = "/api/frontend-user-1/tasks"
        created = await client.post(url, json={"title": "from the frontend"}, headers=headers)
        assert created.status_code == 201
        response = await client.get(f"{url}/changes", headers=headers)
        assert [task["title"] for task in response.json()["changes"]] == ["from the frontend"]


class TestFullSync:
    async def test_empty(self, client: AsyncClient, alice: Account) -> None:
        page = await _changes(client, alice)
        assert page["changes"] == [] and page["deleted"] == [] and page["has_more"] is False
        later = await create_task(client, alice, title="later")
        assert [
            task["id"] for task in (await _changes(client, alice, page["cursor"]))["changes"]
        ] == [later["id"]]

    async def test_every_current_task_in_pages(self, client: AsyncClient, alice: Account) -> None:
        created = [await create_task(client, alice, title=f"t{n}") for n in range(7)]
        await client.delete(f"{alice.tasks_url}/{created[0]['id']}", headers=alice.headers)
        changes, deleted, _cursor = await _follow(client, alice, None, limit=3)
        assert [task["id"] for task in changes] == [task["id"] for task in created[1:]]
        assert deleted == []
        assert changes == await _all_tasks(client, alice)

    async def test_writes_during_a_full_sync_arrive_after_it(
        self, client: AsyncClient, alice: Account
    ) -> None:
        tasks = [await create_task(client, alice, title=f"t{n}") for n in range(4)]
        first = await _changes(client, alice, limit=2)
        assert first["has_more"] is True
        await client.put(
            f"{alice.tasks_url}/{tasks[0]['id']}", json={"title": "renamed"}, headers=alice.headers
        )
        changes, _deleted, _cursor = await _follow(client, alice, first["cursor"], limit=2)
        assert changes[-1]["title"] == "renamed"


class TestSince:
    async def test_each_changed_task_once_in_its_latest_state(
        self, client: AsyncClient, alice: Account
    ) -> None:
        kept = await create_task(client, alice, title="kept")
        cursor = (await _changes(client, alice))["cursor"]
        changed = await create_task(client, alice, title="v1")
        for title in ("v2", "v3"):
            await client.put(
                f"{alice.tasks_url}/{changed['id']}", json={"title": title}, headers=alice.headers
            )
        page = await _changes(client, alice, cursor)
        assert [task["title"] for task in page["changes"]] == ["v3"]
        assert page["deleted"] == []
        assert kept["id"] not in [task["id"] for task in page["changes"]]
        assert (await _changes(client, alice, page["cursor"]))["changes"] == []

    async def test_deletions_one_by_one_and_of_completed_tasks(
        self, client: AsyncClient, alice: Account
    ) -> None:
        tasks = [await create_task(client, alice, title=f"t{n}") for n in range(4)]
        cursor = (await _changes(client, alice))["cursor"]
        await client.delete(f"{alice.tasks_url}/{tasks[0]['id']}", headers=alice.headers)
        for task in tasks[1:3]:
            await client.patch(f"{alice.tasks_url}/{task['id']}/complete", headers=alice.headers)
        deleted = await client.delete(f"{alice.tasks_url}?status=completed", headers=alice.headers)
        assert deleted.headers["X-Deleted-Count"] == "2"
        page = await _changes(client, alice, cursor)
        assert sorted(page["deleted"]) == sorted(task["id"] for task in tasks[:3])
        assert page["changes"] == []

    async def test_paging_by_limit(self, client: AsyncClient, alice: Account) -> None:
        cursor = (await _changes(client, alice))["cursor"]
        created = [await create_task(client, alice, title=f"t{n}") for n in range(5)]
        first = await _changes(client, alice, cursor, limit=2)
        assert first["has_more"] is True and len(first["changes"]) == 2
        changes, _deleted, _cursor = await _follow(client, alice, first["cursor"], limit=2)
        assert [t["id"] for t in first["changes"] + changes] == [t["id"] for t in created]

    async def test_a_recurring_completion_brings_both_tasks(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, recurrence="weekly", due_at="2030-01-07T09:00:00Z")
        cursor = (await _changes(client, alice))["cursor"]
        completed = await client.patch(
            f"{alice.tasks_url}/{task['id']}/complete", headers=alice.headers
        )
        successor_id = completed.json()["next_task_id"]
        page = await _changes(client, alice, cursor)
        assert [t["id"] for t in page["changes"]] == [task["id"], successor_id]
        assert page["changes"][0] == completed.json()


class TestCursors:
    @pytest.mark.parametrize(
        "cursor", ["nonsense", "WC4xLjI", "", "x" * 65, "TC4xLjk5OTk5OTk5OTk5", "TC4tMS4y"]
    )
    async def test_a_malformed_cursor_is_422(
        self, client: AsyncClient, alice: Account, cursor: str
    ) -> None:
        response = await client.get(
            f"{alice.tasks_url}/changes", params={"since": cursor}, headers=alice.headers
        )
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "since"]

    @pytest.mark.parametrize("limit", [0, 501, -1, "x"])
    async def test_limit_is_1_to_500(self, client: AsyncClient, alice: Account, limit: Any) -> None:
        response = await client.get(
            f"{alice.tasks_url}/changes", params={"limit": limit}, headers=alice.headers
        )
        assert response.status_code == 422

    async def test_a_cursor_older_than_the_retention_is_410(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice)
        cursor = (await _changes(client, alice))["cursor"]
        await create_task(client, alice)
        await create_task(client, alice)
        async with app.state.engine.begin() as connection:
            await connection.execute(
                update(change_counters)
                .where(change_counters.c.user_id == alice.id)
                .values(purged_through=change_counters.c.seq)
            )
        response = await client.get(
            f"{alice.tasks_url}/changes", params={"since": cursor}, headers=alice.headers
        )
        assert response.status_code == 410
        assert "sync from scratch" in response.json()["detail"]
        fresh = await _changes(client, alice)
        assert len(fresh["changes"]) == 3

    async def test_deleting_the_account_deletes_its_log(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        account = await sign_up(client)
        await create_task(client, account)
        response = await client.request(
            "DELETE", "/api/auth/me", json={"password": account.password}, headers=account.headers
        )
        assert response.status_code == 204
        async with app.state.engine.connect() as connection:
            count = select(func.count()).where(task_changes.c.user_id == account.id)
            assert (await connection.execute(count)).scalar() == 0


class TestConvergence:
    async def test_a_client_copy_built_from_the_feed_equals_the_list(
        self, client: AsyncClient, alice: Account
    ) -> None:
        """1,000 random writes and deletes, synced now and then: the copy equals the list."""
        rng = random.Random(20261130)
        copy: dict[int, dict[str, Any]] = {}
        cursor: str | None = None
        ids: list[int] = []

        async def sync() -> None:
            nonlocal cursor
            changes, deleted, cursor = await _follow(client, alice, cursor, limit=50)
            for task in changes:
                copy[task["id"]] = task
            for task_id in deleted:
                copy.pop(task_id, None)

        for step in range(1000):
            roll = rng.random()
            if roll < 0.3 or not ids:
                body: dict[str, Any] = {"title": f"task {step}", "tags": rng.sample("abcde", 2)}
                if rng.random() < 0.2:
                    body |= {"recurrence": "daily", "due_at": "2031-01-01T08:00:00Z"}
                ids.append((await create_task(client, alice, **body))["id"])
            elif roll < 0.55:
                task_id = rng.choice(ids)
                change = {"title": f"edit {step}", "priority": rng.choice(["low", "high"])}
                await client.put(f"{alice.tasks_url}/{task_id}", json=change, headers=alice.headers)
            elif roll < 0.8:
                task_id = rng.choice(ids)
                response = await client.patch(
                    f"{alice.tasks_url}/{task_id}/complete", headers=alice.headers
                )
                if response.status_code == 200 and response.json()["next_task_id"]:
                    ids.append(response.json()["next_task_id"])
            elif roll < 0.97:
                task_id = ids.pop(rng.randrange(len(ids)))
                await client.delete(f"{alice.tasks_url}/{task_id}", headers=alice.headers)
            else:
                await client.delete(f"{alice.tasks_url}?status=completed", headers=alice.headers)
                ids = [task["id"] for task in await _all_tasks(client, alice)]
            if rng.random() < 0.05:
                await sync()
        await sync()
        assert sorted(copy.values(), key=lambda task: task["id"]) == await _all_tasks(client, alice)
