"""Priority, tags, due dates, recurrence and completion times on the task routes."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from database.types import utcnow
from models import Recurrence, Task
from tasks.completion import spawn_next_occurrence
from tests.helpers import Account, create_task

NOT_FOUND = {"detail": "Task not found"}


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def _list(client: AsyncClient, account: Account, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(account.tasks_url, params=params, headers=account.headers)
    assert response.status_code == 200, response.text
    return response.json()


class TestCreateWithFields:
    async def test_defaults_keep_old_bodies_valid(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, title="plain")
        assert task["priority"] == "medium"
        assert task["tags"] == []
        assert task["due_at"] is None
        assert task["recurrence"] == "none"
        assert task["completed_at"] is None
        assert task["next_task_id"] is None

    async def test_all_fields(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(
            client,
            alice,
            title="Pay rent",
            priority="high",
            tags=["  Home ", "money", "HOME", "bills"],
            due_at="2030-01-31T09:00:00+02:00",
            recurrence="monthly",
        )
        assert task["priority"] == "high"
        assert task["tags"] == ["home", "money", "bills"]
        assert _parse(task["due_at"]) == _parse("2030-01-31T07:00:00+00:00")
        assert _parse(task["due_at"]).utcoffset().total_seconds() == 0
        assert task["recurrence"] == "monthly"
        fetched = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert fetched.json() == task

    async def test_tag_boundaries(self, client: AsyncClient, alice: Account) -> None:
        tags = [f"t{i}" for i in range(9)] + ["x" * 30]
        task = await create_task(client, alice, tags=tags)
        assert task["tags"] == tags
        deduplicated = await create_task(client, alice, tags=[f"t{i % 10}" for i in range(15)])
        assert len(deduplicated["tags"]) == 10

    @pytest.mark.parametrize(
        "fields",
        [
            {"priority": "urgent"},
            {"priority": None},
            {"priority": 3},
            {"tags": "home"},
            {"tags": None},
            {"tags": [""]},
            {"tags": ["   "]},
            {"tags": ["x" * 31]},
            {"tags": ["İ" * 16]},  # 32 characters once lower-cased: the column holds 30
            {"tags": [f"t{i}" for i in range(11)]},
            {"tags": ["nul\x00"]},
            {"tags": [5]},
            {"due_at": "2030-01-01T09:00:00"},
            {"due_at": "tomorrow"},
            {"due_at": "9999-12-31T23:00:00-05:00"},
            {"recurrence": "yearly"},
            {"recurrence": None},
        ],
    )
    async def test_invalid_fields_are_422(
        self, client: AsyncClient, alice: Account, fields: dict[str, Any]
    ) -> None:
        response = await client.post(
            alice.tasks_url, json={"title": "x", **fields}, headers=alice.headers
        )
        assert response.status_code == 422
        assert isinstance(response.json()["detail"], list)
        assert await _list(client, alice) == []

    async def test_completed_at_is_read_only(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, completed_at="2020-01-01T00:00:00Z")
        assert task["completed_at"] is None


class TestUpdateFields:
    async def test_other_tenants_task_is_404_and_tags_unchanged(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob, tags=["bob"])
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}", json={"tags": ["stolen"]}, headers=alice.headers
        )
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        assert [t["id"] for t in await _list(client, bob, tag="bob")] == [task["id"]]
        assert await _list(client, bob, tag="stolen") == []

    async def test_sets_and_clears(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, tags=["a", "b"], due_at="2030-05-01T10:00:00Z")
        url = f"{alice.tasks_url}/{task['id']}"
        response = await client.put(
            url,
            json={"priority": "low", "tags": ["C", "b"], "recurrence": "weekly"},
            headers=alice.headers,
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["priority"], body["tags"], body["recurrence"]) == ("low", ["c", "b"], "weekly")
        assert body["due_at"] == task["due_at"]
        assert [t["id"] for t in await _list(client, alice, tag="c")] == [task["id"]]
        assert await _list(client, alice, tag="a") == []

        cleared = await client.put(url, json={"tags": [], "due_at": None}, headers=alice.headers)
        assert cleared.status_code == 200
        assert (cleared.json()["tags"], cleared.json()["due_at"]) == ([], None)
        assert await _list(client, alice, tag="b") == []

    async def test_omitted_tags_are_kept(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, tags=["keep"])
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}", json={"title": "renamed"}, headers=alice.headers
        )
        assert response.json()["tags"] == ["keep"]
        assert len(await _list(client, alice, tag="keep")) == 1

    @pytest.mark.parametrize(
        "body",
        [
            {"priority": None},
            {"tags": None},
            {"recurrence": None},
            {"priority": "HIGH"},
            {"due_at": "2030-01-01"},
            {"tags": ["ok", ""]},
        ],
    )
    async def test_invalid_is_422_and_unchanged(
        self, client: AsyncClient, alice: Account, body: dict[str, Any]
    ) -> None:
        task = await create_task(client, alice, tags=["a"])
        url = f"{alice.tasks_url}/{task['id']}"
        response = await client.put(url, json=body, headers=alice.headers)
        assert response.status_code == 422
        assert (await client.get(url, headers=alice.headers)).json() == task

    async def test_completing_by_put_sets_completed_at(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}"
        done = (await client.put(url, json={"completed": True}, headers=alice.headers)).json()
        assert done["completed_at"] is not None
        again = (await client.put(url, json={"completed": True}, headers=alice.headers)).json()
        assert again["completed_at"] == done["completed_at"]
        reopened = (await client.put(url, json={"completed": False}, headers=alice.headers)).json()
        assert reopened["completed_at"] is None


class TestCompletionTimes:
    async def test_toggle_sets_and_clears_completed_at(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}/complete"
        done = (await client.patch(url, headers=alice.headers)).json()
        assert done["completed"] is True
        assert _parse(done["completed_at"]) == _parse(done["updated_at"])
        reopened = (await client.patch(url, headers=alice.headers)).json()
        assert (reopened["completed"], reopened["completed_at"]) == (False, None)

    async def test_setting_completed_twice_keeps_the_first_time(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}/complete"
        first = (await client.patch(url, json={"completed": True}, headers=alice.headers)).json()
        second = (await client.patch(url, json={"completed": True}, headers=alice.headers)).json()
        assert second["completed_at"] == first["completed_at"]


class TestRecurrence:
    async def _complete(
        self, client: AsyncClient, account: Account, task_id: int, **kwargs: Any
    ) -> Any:
        return await client.patch(
            f"{account.tasks_url}/{task_id}/complete", headers=account.headers, **kwargs
        )

    async def test_other_tenant_cannot_complete(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        response = await self._complete(client, alice, task["id"])
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        assert len(await _list(client, bob)) == 1

    @pytest.mark.parametrize(
        ("recurrence", "due_at", "next_due_at"),
        [
            ("daily", "2030-03-01T09:00:00+00:00", "2030-03-02T09:00:00+00:00"),
            ("weekly", "2030-12-28T09:00:00+00:00", "2031-01-04T09:00:00+00:00"),
            ("monthly", "2031-01-31T09:00:00+00:00", "2031-02-28T09:00:00+00:00"),
            ("monthly", "2032-01-31T09:00:00+00:00", "2032-02-29T09:00:00+00:00"),
            ("monthly", "2030-12-31T23:30:00+00:00", "2031-01-31T23:30:00+00:00"),
        ],
    )
    async def test_completing_creates_the_next_occurrence(
        self,
        client: AsyncClient,
        alice: Account,
        recurrence: str,
        due_at: str,
        next_due_at: str,
    ) -> None:
        task = await create_task(
            client,
            alice,
            title="Water plants",
            description="all of them",
            priority="high",
            tags=["home", "garden"],
            due_at=due_at,
            recurrence=recurrence,
        )
        response = await self._complete(client, alice, task["id"])
        assert response.status_code == 200
        done = response.json()
        assert done["completed"] is True
        successor_id = done["next_task_id"]
        assert isinstance(successor_id, int) and successor_id != task["id"]
        assert response.headers["location"].endswith(f"{alice.tasks_url}/{successor_id}")

        successor = (
            await client.get(f"{alice.tasks_url}/{successor_id}", headers=alice.headers)
        ).json()
        assert _parse(successor["due_at"]) == _parse(next_due_at)
        assert {k: successor[k] for k in ("title", "description", "priority", "recurrence")} == {
            "title": "Water plants",
            "description": "all of them",
            "priority": "high",
            "recurrence": recurrence,
        }
        assert successor["tags"] == ["home", "garden"]
        assert (successor["completed"], successor["completed_at"]) == (False, None)
        assert successor["next_task_id"] is None
        garden = await _list(client, alice, tag="garden")
        assert {t["id"] for t in garden} == {task["id"], successor_id}

    async def test_reopen_keeps_it_and_toggling_again_never_makes_two(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        first = (await self._complete(client, alice, task["id"])).json()
        reopened = await self._complete(client, alice, task["id"])
        assert reopened.json()["completed"] is False
        assert reopened.json()["next_task_id"] == first["next_task_id"]
        assert "location" not in reopened.headers
        again = await self._complete(client, alice, task["id"], json={"completed": True})
        assert again.json()["next_task_id"] == first["next_task_id"]
        assert "location" not in again.headers
        assert len(await _list(client, alice)) == 2

    async def test_completing_by_put_also_recurs(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, recurrence="weekly", due_at="2030-01-01T09:00:00Z")
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}", json={"completed": True}, headers=alice.headers
        )
        assert response.status_code == 200
        assert response.json()["next_task_id"] is not None
        assert "location" in response.headers
        titles = await client.put(
            f"{alice.tasks_url}/{task['id']}", json={"title": "edited"}, headers=alice.headers
        )
        assert titles.json()["next_task_id"] == response.json()["next_task_id"]
        assert len(await _list(client, alice)) == 2

    @pytest.mark.parametrize(
        "fields",
        [
            {"recurrence": "daily"},
            {"due_at": "2030-01-01T09:00:00Z"},
            {"recurrence": "none", "due_at": "2030-01-01T09:00:00Z"},
        ],
    )
    async def test_needs_both_a_rule_and_a_due_date(
        self, client: AsyncClient, alice: Account, fields: dict[str, Any]
    ) -> None:
        task = await create_task(client, alice, **fields)
        response = await self._complete(client, alice, task["id"])
        assert response.json()["next_task_id"] is None
        assert "location" not in response.headers
        assert len(await _list(client, alice)) == 1

    async def test_series_ends_after_year_9999(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, recurrence="monthly", due_at="9999-12-15T00:00:00Z")
        response = await self._complete(client, alice, task["id"])
        assert response.status_code == 200
        assert response.json()["next_task_id"] is None

    async def test_deleting_the_successor_unlinks_it(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        successor_id = (await self._complete(client, alice, task["id"])).json()["next_task_id"]
        deleted = await client.delete(f"{alice.tasks_url}/{successor_id}", headers=alice.headers)
        assert deleted.status_code == 204
        fetched = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert fetched.json()["next_task_id"] is None

    async def test_20_concurrent_toggles_create_one_successor(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        responses = await asyncio.gather(
            *(self._complete(client, alice, task["id"]) for _ in range(20))
        )
        assert [r.status_code for r in responses] == [200] * 20
        assert sum("location" in r.headers for r in responses) == 1
        tasks = await _list(client, alice)
        assert len(tasks) == 2
        assert {t["next_task_id"] for t in tasks} == {None, tasks[0]["id"]}

    async def test_concurrent_completions_create_one_successor(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        responses = await asyncio.gather(
            *(
                self._complete(client, alice, task["id"], json={"completed": True})
                for _ in range(10)
            )
        )
        assert [r.status_code for r in responses] == [200] * 10
        assert len({r.json()["next_task_id"] for r in responses}) == 1
        assert len(await _list(client, alice)) == 2


class TestSuccessorClaim:
    async def test_a_stale_view_of_a_completed_task_does_not_spawn_a_second_successor(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        url = f"{alice.tasks_url}/{task['id']}/complete"
        successor_id = (await client.patch(url, headers=alice.headers)).json()["next_task_id"]
        now = utcnow()
        stale = Task(
            id=task["id"],
            user_id=alice.id,
            title=task["title"],
            completed=True,
            completed_at=now,
            due_at=datetime.fromisoformat(task["due_at"]),
            recurrence=Recurrence.daily,
        )
        async with app.state.database.transaction() as connection:
            assert await spawn_next_occurrence(connection, stale, now, seq=1) is None
        tasks = await _list(client, alice)
        assert [t["id"] for t in tasks] == [successor_id, task["id"]]
        assert tasks[1]["next_task_id"] == successor_id
