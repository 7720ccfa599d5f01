"""Each tool through `/mcp`: its happy path, its refusals as readable tool errors (never a 500
or a traceback), and its effect as `GET /api/{user_id}/tasks` shows it. The tools run the REST
routes' task rules, so the limits, the recurrence and the change log are the same."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import select

from models import task_changes
from tests.helpers import Account, create_task
from tests.mcp_server.conftest import error_text, mcp_session, structured


async def _rest_tasks(client: AsyncClient, account: Account, **params: Any) -> list[dict]:
    response = await client.get(account.tasks_url, headers=account.headers, params=params)
    assert response.status_code == 200
    return response.json()


async def _rest_task(client: AsyncClient, account: Account, task_id: int) -> dict:
    response = await client.get(f"{account.tasks_url}/{task_id}", headers=account.headers)
    assert response.status_code == 200
    return response.json()


async def _call(app: FastAPI, account: Account, name: str, arguments: dict[str, Any]):
    async with mcp_session(app, account.token) as session:
        return await session.call_tool(name, arguments)


class TestAddTask:
    async def test_the_spec_shape(self, app: FastAPI, client: AsyncClient, alice: Account):
        result = await _call(app, alice, "add_task", {"title": "Buy milk", "description": "2 l"})
        created = structured(result)
        (task,) = await _rest_tasks(client, alice)
        assert created == {"task_id": task["id"], "status": "created", "title": "Buy milk"}
        assert (task["title"], task["description"], task["completed"]) == (
            "Buy milk",
            "2 l",
            False,
        )
        assert task["user_id"] == alice.id
        assert '"status": "created"' in result.content[0].text  # text for clients without it

    async def test_the_task_fields_beyond_the_spec(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        result = await _call(
            app,
            alice,
            "add_task",
            {
                "title": "  Pay rent  ",
                "priority": "high",
                "tags": ["Home", " money ", "home"],
                "due_at": "2030-01-31T09:00:00+01:00",
                "recurrence": "monthly",
            },
        )
        task = await _rest_task(client, alice, structured(result)["task_id"])
        assert task["title"] == "Pay rent"
        assert task["priority"] == "high"
        assert task["tags"] == ["home", "money"]
        assert task["due_at"] == "2030-01-31T08:00:00Z"
        assert task["recurrence"] == "monthly"

    async def test_tags_are_counted_after_deduplication_as_in_rest(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        tags = [f"t{n}" for n in range(10)] + ["T0", " t1 "]
        result = await _call(app, alice, "add_task", {"title": "Tagged", "tags": tags})
        task = await _rest_task(client, alice, structured(result)["task_id"])
        assert task["tags"] == [f"t{n}" for n in range(10)]
        rest = await client.post(
            alice.tasks_url, json={"title": "Tagged", "tags": tags}, headers=alice.headers
        )
        assert rest.status_code == 201

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({}, "title: Field required"),
            ({"title": ""}, "title: String should have at least 1 character"),
            ({"title": "   "}, "title: String should have at least 1 character"),
            ({"title": "x" * 201}, "title: String should have at most 200 characters"),
            ({"title": "a\x00b"}, "title: must not contain NUL characters"),
            ({"title": 42}, "title: Input should be a valid string"),
            ({"title": "a", "description": "d" * 1001}, "description: String should have at most"),
            ({"title": "a", "priority": "urgent"}, "priority: Input should be 'low', 'medium'"),
            (
                {"title": "a", "tags": [f"t{n}" for n in range(11)]},
                "tags: at most 10 distinct tags",
            ),
            ({"title": "a", "tags": ["x" * 31]}, "tags.0: String should have at most 30"),
            ({"title": "a", "due_at": "2030-01-31T09:00:00"}, "due_at: Input should have timezone"),
            ({"title": "a", "due_at": "next tuesday"}, "due_at: Input should be a valid datetime"),
            ({"title": "a", "recurrence": "hourly"}, "recurrence: Input should be 'none'"),
            ({"title": "a", "completed": True}, "Unknown argument completed: add_task takes"),
        ],
    )
    async def test_bad_arguments_are_readable_tool_errors(
        self,
        app: FastAPI,
        client: AsyncClient,
        alice: Account,
        arguments: dict[str, Any],
        message: str,
    ) -> None:
        text = error_text(await _call(app, alice, "add_task", arguments))
        assert message in text
        assert "Traceback" not in text and "pydantic" not in text and "\n" not in text
        assert await _rest_tasks(client, alice) == []


class TestListTasks:
    async def test_the_spec_shape_newest_first(
        self, app: FastAPI, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        first = await create_task(client, alice, title="First")
        second = await create_task(client, alice, title="Second")
        await create_task(client, bob, title="Bob's")
        listed = structured(await _call(app, alice, "list_tasks", {}))
        assert [(task["id"], task["title"], task["completed"]) for task in listed] == [
            (second["id"], "Second", False),
            (first["id"], "First", False),
        ]

    async def test_status(self, app: FastAPI, client: AsyncClient, alice: Account) -> None:
        done = await create_task(client, alice, title="Done")
        await client.patch(f"{alice.tasks_url}/{done['id']}/complete", headers=alice.headers)
        await create_task(client, alice, title="Open")
        async with mcp_session(app, alice.token) as session:
            for status, titles in [
                ("pending", ["Open"]),
                ("completed", ["Done"]),
                ("all", ["Open", "Done"]),
            ]:
                listed = structured(await session.call_tool("list_tasks", {"status": status}))
                assert [task["title"] for task in listed] == titles, status

    async def test_the_rest_filters_sorting_and_paging(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice, title="Rent", priority="high", tags=["home"])
        await create_task(client, alice, title="Late", due_at="2000-01-01T00:00:00Z")
        await create_task(client, alice, title="Soon", due_at="2999-01-01T00:00:00Z")
        await create_task(client, alice, title="Milk 100%", tags=["home", "shop"])
        cases = [
            ({"priority": "high"}, ["Rent"]),
            ({"tags": ["HOME", "shop"]}, ["Milk 100%"]),
            ({"search": "100%"}, ["Milk 100%"]),
            ({"overdue": True}, ["Late"]),
            ({"due_after": "2500-01-01T00:00:00+00:00"}, ["Soon"]),
            ({"due_before": "2500-01-01T00:00:00+00:00"}, ["Late"]),
            ({"sort": "title"}, ["Late", "Milk 100%", "Rent", "Soon"]),
            ({"sort": "due_at", "limit": 2}, ["Late", "Soon"]),
            ({"sort": "title", "order": "desc", "offset": 3}, ["Late"]),
        ]
        async with mcp_session(app, alice.token) as session:
            for arguments, titles in cases:
                listed = structured(await session.call_tool("list_tasks", arguments))
                assert [task["title"] for task in listed] == titles, arguments
        rest = await _rest_tasks(client, alice, sort="title")
        assert [task["title"] for task in rest] == ["Late", "Milk 100%", "Rent", "Soon"]

    async def test_items_carry_the_task_fields(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(
            client, alice, title="Rent", priority="high", tags=["home"], recurrence="monthly"
        )
        (item,) = structured(await _call(app, alice, "list_tasks", {}))
        assert item["priority"] == "high"
        assert item["tags"] == ["home"]
        assert item["recurrence"] == "monthly"
        assert item["due_at"] is None

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({"status": "done"}, "status: Input should be 'all', 'pending' or 'completed'"),
            ({"limit": 0}, "limit: Input should be greater than or equal to 1"),
            ({"limit": 501}, "limit: Input should be less than or equal to 500"),
            ({"offset": -1}, "offset: Input should be greater than or equal to 0"),
            ({"sort": "random"}, "sort: Input should be"),
            ({"tags": [""]}, "tags.0: String should have at least 1 character"),
            ({"search": ""}, "search: String should have at least 1 character"),
            ({"due_before": "tomorrow"}, "due_before: Input should be a valid datetime"),
        ],
    )
    async def test_bad_filters(
        self, app: FastAPI, alice: Account, arguments: dict[str, Any], message: str
    ) -> None:
        assert message in error_text(await _call(app, alice, "list_tasks", arguments))


class TestCompleteTask:
    async def test_completes_and_is_idempotent(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, title="Water plants")
        async with mcp_session(app, alice.token) as session:
            first = structured(await session.call_tool("complete_task", {"task_id": task["id"]}))
            done = await _rest_task(client, alice, task["id"])
            again = structured(await session.call_tool("complete_task", {"task_id": task["id"]}))
        expected = {"task_id": task["id"], "status": "completed", "title": "Water plants"}
        assert first == {**expected, "next_task_id": None}
        assert again == first
        assert done["completed"] is True
        after = await _rest_task(client, alice, task["id"])
        assert after["completed"] is True
        assert after["completed_at"] == done["completed_at"]  # never toggled back, not re-stamped

    async def test_a_recurring_task_creates_its_next_occurrence_once(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(
            client, alice, title="Pay rent", due_at="2030-01-31T09:00:00Z", recurrence="monthly"
        )
        async with mcp_session(app, alice.token) as session:
            first = structured(await session.call_tool("complete_task", {"task_id": task["id"]}))
            again = structured(await session.call_tool("complete_task", {"task_id": task["id"]}))
        successor = await _rest_task(client, alice, first["next_task_id"])
        assert successor["title"] == "Pay rent"
        assert successor["due_at"] == "2030-02-28T09:00:00Z"
        assert successor["completed"] is False
        assert again["next_task_id"] == first["next_task_id"]
        assert len(await _rest_tasks(client, alice)) == 2

    @pytest.mark.parametrize(
        ("task_id", "message"),
        [
            (0, "task_id: Input should be greater than or equal to 1"),
            (-5, "task_id: Input should be greater than or equal to 1"),
            (2**31, "task_id: Input should be less than or equal to 2147483647"),
            (10**30, "task_id: Input should be less than or equal to 2147483647"),
            (1.5, "task_id: Input should be a valid integer"),
            ("abc", "task_id: Input should be a valid integer"),
            (True, "task_id: must be a task id (a positive integer), not a boolean"),
            (None, "task_id: Input should be a valid integer"),
        ],
    )
    async def test_a_task_id_that_is_no_task_id(
        self, app: FastAPI, alice: Account, task_id: Any, message: str
    ) -> None:
        assert message in error_text(await _call(app, alice, "complete_task", {"task_id": task_id}))

    async def test_missing_task_id_and_unknown_task(self, app: FastAPI, alice: Account) -> None:
        async with mcp_session(app, alice.token) as session:
            missing = await session.call_tool("complete_task", {})
            unknown = await session.call_tool("complete_task", {"task_id": 2**31 - 1})
        assert error_text(missing) == "Invalid arguments: task_id: Field required"
        assert error_text(unknown) == "Task not found"


class TestDeleteTask:
    async def test_deletes_and_names_what_it_deleted(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice, title="Old note")
        keep = await create_task(client, alice, title="Keep")
        async with mcp_session(app, alice.token) as session:
            deleted = structured(await session.call_tool("delete_task", {"task_id": task["id"]}))
            twice = await session.call_tool("delete_task", {"task_id": task["id"]})
        assert deleted == {"task_id": task["id"], "status": "deleted", "title": "Old note"}
        assert error_text(twice) == "Task not found"
        gone = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert gone.status_code == 404
        assert [t["id"] for t in await _rest_tasks(client, alice)] == [keep["id"]]

    async def test_bad_task_id(self, app: FastAPI, alice: Account) -> None:
        text = error_text(await _call(app, alice, "delete_task", {"task_id": "1; DROP TABLE"}))
        assert text == (
            "Invalid arguments: task_id: "
            "Input should be a valid integer, unable to parse string as an integer"
        )


class TestUpdateTask:
    async def test_the_spec_shape(self, app: FastAPI, client: AsyncClient, alice: Account):
        task = await create_task(client, alice, title="Buy milk", description="2 l", priority="low")
        result = await _call(
            app, alice, "update_task", {"task_id": task["id"], "title": "Buy oat milk"}
        )
        assert structured(result) == {
            "task_id": task["id"],
            "status": "updated",
            "title": "Buy oat milk",
        }
        after = await _rest_task(client, alice, task["id"])
        assert (after["title"], after["description"], after["priority"]) == (
            "Buy oat milk",
            "2 l",
            "low",
        )

    async def test_fields_and_explicit_nulls(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(
            client, alice, title="Rent", description="d", tags=["a"], due_at="2030-01-01T00:00Z"
        )
        arguments = {
            "task_id": task["id"],
            "description": None,
            "due_at": None,
            "tags": ["Home"],
            "priority": "high",
            "recurrence": "weekly",
        }
        structured(await _call(app, alice, "update_task", arguments))
        after = await _rest_task(client, alice, task["id"])
        assert after["description"] is None and after["due_at"] is None
        assert (after["tags"], after["priority"], after["recurrence"]) == (
            ["home"],
            "high",
            "weekly",
        )
        assert after["title"] == "Rent" and after["completed"] is False

    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            ({}, "Nothing to update: pass at least one of title, description"),
            ({"title": None}, "Invalid arguments: title cannot be null"),
            ({"tags": None}, "Invalid arguments: tags cannot be null"),
            ({"title": ""}, "title: String should have at least 1 character"),
            ({"due_at": "2030-01-01"}, "due_at: Input should have timezone info"),
            ({"completed": True}, "Unknown argument completed: update_task takes task_id"),
        ],
    )
    async def test_refusals(
        self,
        app: FastAPI,
        client: AsyncClient,
        alice: Account,
        arguments: dict[str, Any],
        message: str,
    ) -> None:
        task = await create_task(client, alice, title="Unchanged")
        text = error_text(
            await _call(app, alice, "update_task", {"task_id": task["id"], **arguments})
        )
        assert message in text
        after = await _rest_task(client, alice, task["id"])
        assert (after["title"], after["completed"]) == ("Unchanged", False)

    async def test_unknown_task(self, app: FastAPI, alice: Account) -> None:
        result = await _call(app, alice, "update_task", {"task_id": 12345, "title": "x"})
        assert error_text(result) == "Task not found"


async def test_writes_land_in_the_change_log(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    """The tools run the same writes as the routes: every change is logged for the feed."""
    async with mcp_session(app, alice.token) as session:
        task_id = structured(await session.call_tool("add_task", {"title": "Logged"}))["task_id"]
        await session.call_tool("update_task", {"task_id": task_id, "title": "Logged again"})
        await session.call_tool("complete_task", {"task_id": task_id})
        await session.call_tool("delete_task", {"task_id": task_id})
    statement = (
        select(task_changes.c.kind, task_changes.c.title)
        .where(task_changes.c.user_id == alice.id, task_changes.c.task_id == task_id)
        .order_by(task_changes.c.seq)
    )
    async with app.state.database.read() as connection:
        entries = [
            (str(kind), title) for kind, title in (await connection.execute(statement)).all()
        ]
    assert entries == [
        ("created", "Logged"),
        ("updated", "Logged again"),
        ("updated", "Logged again"),
        ("deleted", "Logged again"),
    ]
