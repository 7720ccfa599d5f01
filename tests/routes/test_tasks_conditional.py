"""Entity tags and conditional requests on the task routes (RFC 9110 §8.8.3, §13)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from httpx import AsyncClient

from tests.helpers import Account, create_task

CACHE_CONTROL = "private, no-cache"


def _weak(tag: str) -> str:
    return f"W/{tag}"


class TestTaskTags:
    async def test_get_put_complete_and_post_answer_a_strong_tag(
        self, client: AsyncClient, alice: Account
    ) -> None:
        created = await client.post(alice.tasks_url, json={"title": "a"}, headers=alice.headers)
        tag = created.headers["etag"]
        assert tag.startswith('"') and not tag.startswith("W/")
        url = f"{alice.tasks_url}/{created.json()['id']}"
        got = await client.get(url, headers=alice.headers)
        assert got.headers["etag"] == tag
        assert got.headers["cache-control"] == CACHE_CONTROL
        put = await client.put(url, json={"title": "b"}, headers=alice.headers)
        assert put.headers["etag"] not in (None, tag)
        completed = await client.patch(f"{url}/complete", headers=alice.headers)
        assert completed.headers["etag"] not in (tag, put.headers["etag"])
        assert (await client.get(url, headers=alice.headers)).headers["etag"] == completed.headers[
            "etag"
        ]
        assert set(completed.json()) >= {"id", "title", "completed", "updated_at"}


class TestIfNoneMatch:
    async def test_a_task(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}"
        tag = (await client.get(url, headers=alice.headers)).headers["etag"]
        for value in (tag, _weak(tag), f'"other", {tag}', "*"):
            response = await client.get(url, headers={**alice.headers, "If-None-Match": value})
            assert response.status_code == 304, value
            assert response.content == b""
            assert response.headers["etag"] == tag
            assert response.headers["cache-control"] == CACHE_CONTROL
        for value in ('"other"', "garbage", '"999999.1"'):
            response = await client.get(url, headers={**alice.headers, "If-None-Match": value})
            assert response.status_code == 200, value

    async def test_the_list_with_its_headers(self, client: AsyncClient, alice: Account) -> None:
        for number in range(3):
            await create_task(client, alice, title=f"t{number}")
        url = f"{alice.tasks_url}?limit=2"
        first = await client.get(url, headers=alice.headers)
        again = await client.get(
            url, headers={**alice.headers, "If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        for header in ("etag", "x-total-count", "link", "cache-control"):
            assert again.headers[header] == first.headers[header]

    async def test_another_query_has_another_tag(self, client: AsyncClient, alice: Account) -> None:
        await create_task(client, alice)
        one = await client.get(f"{alice.tasks_url}?limit=5", headers=alice.headers)
        two = await client.get(f"{alice.tasks_url}?limit=6", headers=alice.headers)
        assert one.json() == two.json()
        assert one.headers["etag"] != two.headers["etag"]

    @pytest.mark.parametrize("write", ["create", "update", "toggle", "delete", "clear", "other"])
    async def test_every_kind_of_write_changes_the_list_and_stats_tags(
        self, client: AsyncClient, alice: Account, write: str
    ) -> None:
        tasks = [await create_task(client, alice, title=f"t{n}") for n in range(3)]
        await client.patch(f"{alice.tasks_url}/{tasks[2]['id']}/complete", headers=alice.headers)
        # The first page holds tasks[2] and tasks[1]: a write on tasks[0] is off the page.
        page_url = f"{alice.tasks_url}?limit=2"
        stats_url = f"{alice.tasks_url}/stats"
        before = {
            url: (await client.get(url, headers=alice.headers)).headers["etag"]
            for url in (page_url, stats_url)
        }
        task_url = f"{alice.tasks_url}/{tasks[0]['id']}"
        actions: dict[str, Any] = {
            "create": lambda: client.post(
                alice.tasks_url, json={"title": "n"}, headers=alice.headers
            ),
            "update": lambda: client.put(task_url, json={"title": "x"}, headers=alice.headers),
            "toggle": lambda: client.patch(f"{task_url}/complete", headers=alice.headers),
            "delete": lambda: client.delete(task_url, headers=alice.headers),
            "clear": lambda: client.delete(
                f"{alice.tasks_url}?status=completed", headers=alice.headers
            ),
            "other": lambda: client.put(task_url, json={"priority": "high"}, headers=alice.headers),
        }
        assert (await actions[write]()).status_code in (200, 201, 204)
        for url, tag in before.items():
            response = await client.get(url, headers={**alice.headers, "If-None-Match": tag})
            assert response.status_code == 200, (write, url)
            assert response.headers["etag"] != tag

    async def test_stats(self, client: AsyncClient, alice: Account) -> None:
        url = f"{alice.tasks_url}/stats"
        first = await client.get(url, headers=alice.headers)
        again = await client.get(
            url, headers={**alice.headers, "If-None-Match": first.headers["etag"]}
        )
        assert again.status_code == 304
        assert again.headers["cache-control"] == CACHE_CONTROL


class TestIfMatch:
    async def _task_and_tag(self, client: AsyncClient, account: Account) -> tuple[str, str]:
        task = await create_task(client, account)
        url = f"{account.tasks_url}/{task['id']}"
        return url, (await client.get(url, headers=account.headers)).headers["etag"]

    async def test_the_current_tag_lets_each_change_through(
        self, client: AsyncClient, alice: Account
    ) -> None:
        url, tag = await self._task_and_tag(client, alice)
        put = await client.put(url, json={"title": "b"}, headers={**alice.headers, "If-Match": tag})
        assert put.status_code == 200
        tag = put.headers["etag"]
        done = await client.patch(f"{url}/complete", headers={**alice.headers, "If-Match": tag})
        assert done.status_code == 200
        gone = await client.delete(url, headers={**alice.headers, "If-Match": done.headers["etag"]})
        assert gone.status_code == 204

    @pytest.mark.parametrize("method", ["put", "patch", "delete"])
    async def test_a_stale_tag_is_412_with_the_current_one(
        self, client: AsyncClient, alice: Account, method: str
    ) -> None:
        url, stale = await self._task_and_tag(client, alice)
        current = (await client.put(url, json={"title": "b"}, headers=alice.headers)).headers[
            "etag"
        ]
        headers = {**alice.headers, "If-Match": stale}
        if method == "put":
            response = await client.put(url, json={"title": "c"}, headers=headers)
        elif method == "patch":
            response = await client.patch(f"{url}/complete", headers=headers)
        else:
            response = await client.delete(url, headers=headers)
        assert response.status_code == 412
        assert response.headers["etag"] == current
        assert "detail" in response.json()
        assert (await client.get(url, headers=alice.headers)).json()["title"] == "b"

    @pytest.mark.parametrize(
        "value", ["W/{tag}", '"elsewhere"', "garbage", '"999.1"', '"{id}.999999"']
    )
    async def test_weak_and_foreign_tags_never_match(
        self, client: AsyncClient, alice: Account, value: str
    ) -> None:
        url, tag = await self._task_and_tag(client, alice)
        task_id = url.rsplit("/", 1)[1]
        value = value.format(tag=tag, id=task_id)
        response = await client.put(
            url, json={"title": "x"}, headers={**alice.headers, "If-Match": value}
        )
        assert response.status_code == 412

    @pytest.mark.parametrize("method", ["put", "patch", "delete"])
    @pytest.mark.parametrize("version", [2**63, 2**64 + 1, 10**19 - 1])
    async def test_versions_past_64_bits_are_412_or_404(
        self, client: AsyncClient, alice: Account, method: str, version: int
    ) -> None:
        """Versions are 64-bit columns: a bigger number in a tag names no version (412, or
        404 for a missing task), never a statement the database cannot bind."""
        url, _tag = await self._task_and_tag(client, alice)
        task_id = url.rsplit("/", 1)[1]
        for target, tag, expected in (
            (url, f'"{task_id}.{version}"', 412),
            (f"{alice.tasks_url}/987654", f'"987654.{version}"', 404),
        ):
            headers = {**alice.headers, "If-Match": tag}
            if method == "put":
                response = await client.put(target, json={"title": "c"}, headers=headers)
            elif method == "patch":
                response = await client.patch(f"{target}/complete", headers=headers)
            else:
                response = await client.delete(target, headers=headers)
            assert response.status_code == expected, (tag, response.text)

    async def test_any_of_a_list_and_star(self, client: AsyncClient, alice: Account) -> None:
        url, tag = await self._task_and_tag(client, alice)
        response = await client.put(
            url, json={"title": "x"}, headers={**alice.headers, "If-Match": f'"nope", {tag}'}
        )
        assert response.status_code == 200
        star = await client.put(
            url, json={"title": "y"}, headers={**alice.headers, "If-Match": "*"}
        )
        assert star.status_code == 200

    async def test_an_empty_update_checks_the_tag_too(
        self, client: AsyncClient, alice: Account
    ) -> None:
        url, tag = await self._task_and_tag(client, alice)
        assert (
            await client.put(url, json={}, headers={**alice.headers, "If-Match": tag})
        ).status_code == 200
        await client.put(url, json={"title": "moved on"}, headers=alice.headers)
        stale = await client.put(url, json={}, headers={**alice.headers, "If-Match": tag})
        assert stale.status_code == 412

    async def test_404_and_401_come_before_412(self, client: AsyncClient, alice: Account) -> None:
        url, _tag = await self._task_and_tag(client, alice)
        missing = await client.put(
            f"{alice.tasks_url}/987654",
            json={"title": "x"},
            headers={**alice.headers, "If-Match": '"1.1"'},
        )
        assert missing.status_code == 404
        await client.post("/api/auth/logout", headers=alice.headers)
        revoked = await client.delete(url, headers={**alice.headers, "If-Match": '"1.1"'})
        assert revoked.status_code == 401

    async def test_two_clients_racing_with_one_tag(
        self, client: AsyncClient, alice: Account
    ) -> None:
        url, tag = await self._task_and_tag(client, alice)
        responses = await asyncio.gather(
            *(
                client.put(
                    url, json={"title": f"by {n}"}, headers={**alice.headers, "If-Match": tag}
                )
                for n in range(2)
            )
        )
        assert sorted(response.status_code for response in responses) == [200, 412]
        winner = next(response for response in responses if response.status_code == 200)
        assert (await client.get(url, headers=alice.headers)).json()["title"] == winner.json()[
            "title"
        ]

    async def test_without_if_match_writes_work_as_before(
        self, client: AsyncClient, alice: Account
    ) -> None:
        url, _tag = await self._task_and_tag(client, alice)
        assert (
            await client.put(url, json={"title": "z"}, headers=alice.headers)
        ).status_code == 200


class TestRequiredIfMatch:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"require_if_match": True}

    async def test_428_without_it(self, client: AsyncClient, alice: Account) -> None:
        task = await create_task(client, alice)
        url = f"{alice.tasks_url}/{task['id']}"
        for response in (
            await client.put(url, json={"title": "x"}, headers=alice.headers),
            await client.patch(f"{url}/complete", headers=alice.headers),
            await client.delete(url, headers=alice.headers),
        ):
            assert response.status_code == 428
            assert "If-Match" in response.json()["detail"]
        tag = (await client.get(url, headers=alice.headers)).headers["etag"]
        ok = await client.put(url, json={"title": "x"}, headers={**alice.headers, "If-Match": tag})
        assert ok.status_code == 200


class TestCorsAndDocs:
    async def test_cors_exposes_the_tag_and_allows_the_conditions(
        self, client: AsyncClient, alice: Account
    ) -> None:
        origin = {"Origin": "http://localhost:3000"}
        preflight = await client.options(
            alice.tasks_url,
            headers={
                **origin,
                "Access-Control-Request-Method": "PUT",
                "Access-Control-Request-Headers": "if-match, if-none-match, idempotency-key",
            },
        )
        assert preflight.status_code == 200
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert {"if-match", "if-none-match", "idempotency-key"} <= {
            h.strip() for h in allowed.split(",")
        }
        response = await client.get(alice.tasks_url, headers={**alice.headers, **origin})
        exposed = response.headers["access-control-expose-headers"]
        assert "ETag" in exposed and "Idempotent-Replayed" in exposed

    async def test_openapi_documents_304_412_428(self, client: AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        item = paths["/api/{user_id}/tasks/{task_id}"]
        assert {"304"} <= set(item["get"]["responses"])
        assert {"412", "428"} <= set(item["put"]["responses"])
        assert {"412", "428"} <= set(item["delete"]["responses"])
        assert "304" in paths["/api/{user_id}/tasks"]["get"]["responses"]
