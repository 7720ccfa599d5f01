"""Tasks: `/api/{user_id}/tasks`, grouped per endpoint.

Each group starts with the anonymous (401) and wrong-user (403) cases, then another tenant's
task (404, indistinguishable from a missing one), then the behaviour.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

import pytest
from httpx import AsyncClient

from tests.helpers import Account, bearer, create_task, frontend_token

TASK_FIELDS = {
    "id",
    "user_id",
    "title",
    "description",
    "completed",
    "priority",
    "tags",
    "due_at",
    "recurrence",
    "completed_at",
    "next_task_id",
    "created_at",
    "updated_at",
}
NOT_FOUND = {"detail": "Task not found"}
FORBIDDEN = {"detail": "You can only access your own tasks"}


def _aware(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.utcoffset() is not None and parsed.utcoffset().total_seconds() == 0
    return parsed


class TestListTasks:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        response = await client.get(alice.tasks_url)
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_other_users_path_is_403(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        response = await client.get(bob.tasks_url, headers=alice.headers)
        assert response.status_code == 403
        assert response.json() == FORBIDDEN

    async def test_empty(self, client: AsyncClient, alice: Account) -> None:
        response = await client.get(alice.tasks_url, headers=alice.headers)
        assert response.status_code == 200
        assert response.json() == []

    async def test_newest_first_and_only_own(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        titles = ["first", "second", "third"]
        for title in titles:
            await create_task(client, alice, title=title)
        await create_task(client, bob, title="bob's")
        response = await client.get(alice.tasks_url, headers=alice.headers)
        assert response.status_code == 200
        body = response.json()
        assert [t["title"] for t in body] == list(reversed(titles))
        assert all(t["user_id"] == alice.id for t in body)
        assert set(body[0]) == TASK_FIELDS

    @pytest.mark.parametrize("param", ["status", "status_filter"])
    async def test_status_filter(self, client: AsyncClient, alice: Account, param: str) -> None:
        done = await create_task(client, alice, title="done")
        await create_task(client, alice, title="todo")
        await client.patch(f"{alice.tasks_url}/{done['id']}/complete", headers=alice.headers)

        async def titles(value: str) -> list[str]:
            response = await client.get(
                alice.tasks_url, params={param: value}, headers=alice.headers
            )
            assert response.status_code == 200
            return [t["title"] for t in response.json()]

        assert await titles("all") == ["todo", "done"]
        assert await titles("pending") == ["todo"]
        assert await titles("completed") == ["done"]

    @pytest.mark.parametrize("param", ["status", "status_filter"])
    async def test_invalid_status_is_422(
        self, client: AsyncClient, alice: Account, param: str
    ) -> None:
        response = await client.get(alice.tasks_url, params={param: "done"}, headers=alice.headers)
        assert response.status_code == 422
        assert isinstance(response.json()["detail"], list)

    async def test_frontend_identity_manages_tasks(self, client: AsyncClient) -> None:
        headers = bearer(frontend_token("better-auth-user"))
        created = await client.post(
            "/api/better-auth-user/tasks", json={"title": "from the frontend"}, headers=headers
        )
        assert created.status_code == 201
        listed = await client.get("/api/better-auth-user/tasks", headers=headers)
        assert [t["title"] for t in listed.json()] == ["from the frontend"]


class TestCreateTask:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        response = await client.post(alice.tasks_url, json={"title": "x"})
        assert response.status_code == 401

    async def test_other_users_path_is_403(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        response = await client.post(bob.tasks_url, json={"title": "x"}, headers=alice.headers)
        assert response.status_code == 403
        assert (await client.get(bob.tasks_url, headers=bob.headers)).json() == []

    async def test_creates(self, client: AsyncClient, alice: Account) -> None:
        response = await client.post(
            alice.tasks_url,
            json={"title": "  Buy milk  ", "description": "2 litres"},
            headers=alice.headers,
        )
        assert response.status_code == 201
        task = response.json()
        assert set(task) == TASK_FIELDS
        assert isinstance(task["id"], int)
        assert task["user_id"] == alice.id
        assert task["title"] == "Buy milk"
        assert task["description"] == "2 litres"
        assert task["completed"] is False
        assert _aware(task["created_at"]) == _aware(task["updated_at"])
        fetched = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert fetched.json() == task

    async def test_description_is_optional(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, title="t")
        assert task["description"] is None

    async def test_boundaries_are_accepted(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, title="x" * 200, description="d" * 1000)
        assert len(task["title"]) == 200
        assert len(task["description"]) == 1000

    @pytest.mark.parametrize(
        "body",
        [
            {},
            {"title": ""},
            {"title": "   "},
            {"title": "x" * 201},
            {"title": None},
            {"title": 5},
            {"title": ["a"]},
            {"title": "ok", "description": "d" * 1001},
            {"title": "ok", "description": 7},
            {"title": "nul\x00byte"},
            {"title": "ok", "description": "nul\x00byte"},
        ],
    )
    async def test_invalid_bodies_are_422(
        self, client: AsyncClient, alice: Account, body: dict
    ) -> None:
        response = await client.post(alice.tasks_url, json=body, headers=alice.headers)
        assert response.status_code == 422
        assert isinstance(response.json()["detail"], list)

    async def test_40_concurrent_creates_all_succeed(
        self, client: AsyncClient, alice: Account
    ) -> None:
        responses = await asyncio.gather(
            *(
                client.post(alice.tasks_url, json={"title": f"t{i}"}, headers=alice.headers)
                for i in range(40)
            )
        )
        assert [r.status_code for r in responses] == [201] * 40
        assert len({r.json()["id"] for r in responses}) == 40
        listed = await client.get(alice.tasks_url, headers=alice.headers)
        assert len(listed.json()) == 40

    async def test_location_names_the_new_task(self, client: AsyncClient, alice: Account) -> None:
        response = await client.post(alice.tasks_url, json={"title": "x"}, headers=alice.headers)
        assert response.status_code == 201
        location = response.headers["location"]
        assert location == f"http://test{alice.tasks_url}/{response.json()['id']}"
        fetched = await client.get(location, headers=alice.headers)
        assert fetched.status_code == 200
        assert fetched.json() == response.json()

    async def test_location_escapes_an_owner_id_that_needs_it(self, client: AsyncClient) -> None:
        owner = "user name é@x"
        headers = bearer(frontend_token(owner))
        path = "/api/user%20name%20%C3%A9@x/tasks"
        response = await client.post(path, json={"title": "x"}, headers=headers)
        assert response.status_code == 201
        location = response.headers["location"]
        assert location == f"http://test{path}/{response.json()['id']}"
        fetched = await client.get(location, headers=headers)
        assert fetched.status_code == 200
        assert fetched.json()["user_id"] == owner


class TestGetTask:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        assert (await client.get(f"{alice.tasks_url}/{task['id']}")).status_code == 401

    async def test_other_users_path_is_403(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob)
        response = await client.get(f"{bob.tasks_url}/{task['id']}", headers=alice.headers)
        assert response.status_code == 403

    async def test_other_tenants_task_is_404(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob)
        response = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert response.status_code == 404
        assert response.json() == NOT_FOUND

    async def test_missing_is_404(self, client: AsyncClient, alice: Account) -> None:
        response = await client.get(f"{alice.tasks_url}/999999", headers=alice.headers)
        assert response.status_code == 404
        assert response.json() == NOT_FOUND

    async def test_returns_the_task(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, title="mine")
        response = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert response.status_code == 200
        assert response.json() == task

    @pytest.mark.parametrize("task_id", ["abc", "1.5", "1e3", "%20"])
    async def test_non_integer_id_is_422(
        self, client: AsyncClient, alice: Account, task_id: str
    ) -> None:
        response = await client.get(f"{alice.tasks_url}/{task_id}", headers=alice.headers)
        assert response.status_code == 422

    @pytest.mark.parametrize("task_id", ["0", "-1", "2147483648", "9223372036854775808", "9" * 40])
    async def test_out_of_range_id_is_never_500(
        self, client: AsyncClient, alice: Account, task_id: str
    ) -> None:
        response = await client.get(f"{alice.tasks_url}/{task_id}", headers=alice.headers)
        assert response.status_code in (404, 422)


class TestUpdateTask:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        response = await client.put(f"{alice.tasks_url}/{task['id']}", json={"title": "x"})
        assert response.status_code == 401

    async def test_other_users_path_is_403(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob)
        response = await client.put(
            f"{bob.tasks_url}/{task['id']}", json={"title": "hacked"}, headers=alice.headers
        )
        assert response.status_code == 403

    async def test_other_tenants_task_is_404_and_unchanged(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob, title="bob's")
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}", json={"title": "hacked"}, headers=alice.headers
        )
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        fetched = await client.get(f"{bob.tasks_url}/{task['id']}", headers=bob.headers)
        assert fetched.json()["title"] == "bob's"

    async def test_missing_is_404(self, client: AsyncClient, alice: Account) -> None:
        response = await client.put(
            f"{alice.tasks_url}/424242", json={"title": "x"}, headers=alice.headers
        )
        assert response.status_code == 404
        empty = await client.put(f"{alice.tasks_url}/424242", json={}, headers=alice.headers)
        assert empty.status_code == 404

    async def test_partial_update(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, title="old", description="keep")
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}", json={"title": " new "}, headers=alice.headers
        )
        assert response.status_code == 200
        body = response.json()
        assert body["title"] == "new"
        assert body["description"] == "keep"
        assert body["completed"] is False
        assert body["created_at"] == task["created_at"]
        assert _aware(body["updated_at"]) > _aware(task["updated_at"])

    async def test_all_fields(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice, description="x")
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}",
            json={"title": "t2", "description": None, "completed": True},
            headers=alice.headers,
        )
        assert response.status_code == 200
        body = response.json()
        assert (body["title"], body["description"], body["completed"]) == ("t2", None, True)

    async def test_empty_body_changes_nothing(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}", json={}, headers=alice.headers
        )
        assert response.status_code == 200
        assert response.json() == task

    @pytest.mark.parametrize(
        "body",
        [
            {"title": ""},
            {"title": None},
            {"completed": None},
            {"completed": "yes"},
            {"completed": 1},
            {"title": "x" * 201},
            {"description": "d" * 1001},
            {"description": "\x00"},
            [],
            "title",
        ],
    )
    async def test_invalid_bodies_are_422(
        self, client: AsyncClient, alice: Account, body: object
    ) -> None:
        task = await create_task(client, alice)
        response = await client.put(
            f"{alice.tasks_url}/{task['id']}", json=body, headers=alice.headers
        )
        assert response.status_code == 422


class TestCompleteTask:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        assert (await client.patch(f"{alice.tasks_url}/{task['id']}/complete")).status_code == 401

    async def test_other_users_path_is_403(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob)
        response = await client.patch(
            f"{bob.tasks_url}/{task['id']}/complete", headers=alice.headers
        )
        assert response.status_code == 403

    async def test_other_tenants_task_is_404(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob)
        response = await client.patch(
            f"{alice.tasks_url}/{task['id']}/complete", headers=alice.headers
        )
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        fetched = await client.get(f"{bob.tasks_url}/{task['id']}", headers=bob.headers)
        assert fetched.json()["completed"] is False

    async def test_toggles_without_body(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}/complete"
        first = await client.patch(url, headers=alice.headers)
        assert first.status_code == 200
        assert first.json()["completed"] is True
        assert _aware(first.json()["updated_at"]) > _aware(task["updated_at"])
        second = await client.patch(url, json={}, headers=alice.headers)
        assert second.json()["completed"] is False

    @pytest.mark.parametrize("value", [True, False])
    async def test_sets_explicitly(self, client: AsyncClient, alice: Account, value: bool) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}/complete"
        for _ in range(2):
            response = await client.patch(url, json={"completed": value}, headers=alice.headers)
            assert response.status_code == 200
            assert response.json()["completed"] is value

    async def test_invalid_body_is_422(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}/complete"
        response = await client.patch(url, json={"completed": "maybe"}, headers=alice.headers)
        assert response.status_code == 422

    async def test_20_concurrent_toggles_leave_it_as_it_was(
        self, client: AsyncClient, alice: Account
    ) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}/complete"
        responses = await asyncio.gather(
            *(client.patch(url, headers=alice.headers) for _ in range(20))
        )
        assert [r.status_code for r in responses] == [200] * 20
        assert sum(r.json()["completed"] for r in responses) == 10
        final = await client.get(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert final.json()["completed"] is False


class TestDeleteTask:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        assert (await client.delete(f"{alice.tasks_url}/{task['id']}")).status_code == 401

    async def test_other_users_path_is_403(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob)
        response = await client.delete(f"{bob.tasks_url}/{task['id']}", headers=alice.headers)
        assert response.status_code == 403

    async def test_other_tenants_task_is_404_and_kept(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        task = await create_task(client, bob)
        response = await client.delete(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
        assert response.status_code == 404
        assert response.json() == NOT_FOUND
        fetched = await client.get(f"{bob.tasks_url}/{task['id']}", headers=bob.headers)
        assert fetched.status_code == 200

    async def test_deletes(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}"
        response = await client.delete(url, headers=alice.headers)
        assert response.status_code == 204
        assert response.content == b""
        assert (await client.get(url, headers=alice.headers)).status_code == 404
        again = await client.delete(url, headers=alice.headers)
        assert again.status_code == 404
        assert again.json() == NOT_FOUND
