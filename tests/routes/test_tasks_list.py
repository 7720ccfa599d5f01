"""`GET /api/{user_id}/tasks`: filters, search, sorting, paging and their headers."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from httpx import AsyncClient, Response

from tests.helpers import Account, create_task

PAST = "2000-01-01T00:00:00Z"
FUTURE = "2090-01-01T00:00:00Z"


async def _get(client: AsyncClient, account: Account, params: Any = None) -> Response:
    return await client.get(account.tasks_url, params=params, headers=account.headers)


async def _titles(client: AsyncClient, account: Account, params: Any = None) -> list[str]:
    response = await _get(client, account, params)
    assert response.status_code == 200, response.text
    return [task["title"] for task in response.json()]


async def _complete(client: AsyncClient, account: Account, task: dict[str, Any]) -> None:
    url = f"{account.tasks_url}/{task['id']}/complete"
    response = await client.patch(url, json={"completed": True}, headers=account.headers)
    assert response.status_code == 200


def _links(response: Response) -> dict[str, dict[str, list[str]]]:
    """rel → parsed query of the RFC 8288 `Link` header's URLs."""
    links = {}
    for part in response.headers.get("link", "").split(", "):
        if part:
            target, rel = part.split("; ")
            assert target.startswith("<") and target.endswith(">")
            links[rel.removeprefix('rel="').removesuffix('"')] = parse_qs(
                urlsplit(target[1:-1]).query
            )
    return links


class TestFilters:
    async def test_anonymous(self, client: AsyncClient, alice: Account) -> None:
        response = await client.get(alice.tasks_url, params={"tag": "x", "sort": "priority"})
        assert response.status_code == 401

    async def test_filters_never_reach_another_tenant(
        self, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        await create_task(client, bob, title="bob's", tags=["shared"], priority="high")
        await create_task(client, alice, title="alice's", tags=["shared"])
        assert await _titles(client, alice, {"tag": "shared"}) == ["alice's"]
        assert await _titles(client, alice, {"priority": "high"}) == []
        assert await _titles(client, alice, {"search": "bob"}) == []
        response = await _get(client, alice, {"tag": "shared"})
        assert response.headers["x-total-count"] == "1"

    async def test_priority(self, client: AsyncClient, alice: Account) -> None:
        for priority in ("low", "high", "medium", "high"):
            await create_task(client, alice, title=priority, priority=priority)
        assert await _titles(client, alice, {"priority": "high"}) == ["high", "high"]
        assert await _titles(client, alice, {"priority": "low"}) == ["low"]

    async def test_tags_all_of_them_case_insensitively(
        self, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice, title="both", tags=["work", "urgent"])
        await create_task(client, alice, title="work only", tags=["work"])
        await create_task(client, alice, title="none")
        assert await _titles(client, alice, {"tag": "work"}) == ["work only", "both"]
        assert await _titles(client, alice, {"tag": ["work", "urgent"]}) == ["both"]
        assert await _titles(client, alice, {"tag": [" URGENT ", "urgent"]}) == ["both"]
        assert await _titles(client, alice, {"tag": ["work", "missing"]}) == []

    async def test_search_title_or_description_case_insensitively(
        self, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice, title="Buy MILK")
        await create_task(client, alice, title="Groceries", description="oat milk, eggs")
        await create_task(client, alice, title="Call mum")
        assert await _titles(client, alice, {"search": "milk"}) == ["Groceries", "Buy MILK"]
        assert await _titles(client, alice, {"q": "Milk"}) == ["Groceries", "Buy MILK"]
        assert await _titles(client, alice, {"search": "mum", "q": "milk"}) == ["Call mum"]

    async def test_search_folds_case_beyond_ascii(
        self, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice, title="ÄPFEL kaufen")
        await create_task(client, alice, title="Birnen", description="Crème BRÛLÉE")
        await create_task(client, alice, title="apfel ohne umlaut")
        assert await _titles(client, alice, {"search": "äpfel"}) == ["ÄPFEL kaufen"]
        assert await _titles(client, alice, {"q": "crème brûlée"}) == ["Birnen"]

    @pytest.mark.parametrize(
        ("term", "expected"),
        [("100%", ["100% done"]), ("a_b", ["a_b"]), ("%", ["100% done"]), ("_", ["a_b"])],
    )
    async def test_search_wildcards_match_literally(
        self, client: AsyncClient, alice: Account, term: str, expected: list[str]
    ) -> None:
        for title in ("100% done", "1000 done", "a_b", "axb", "back\\slash/"):
            await create_task(client, alice, title=title)
        assert await _titles(client, alice, {"search": term}) == expected

    async def test_search_escape_characters_match_literally(
        self, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice, title="back\\slash/")
        await create_task(client, alice, title="plain")
        assert await _titles(client, alice, {"search": "\\"}) == ["back\\slash/"]
        assert await _titles(client, alice, {"search": "/"}) == ["back\\slash/"]

    async def test_status_and_overdue(self, client: AsyncClient, alice: Account) -> None:
        late = await create_task(client, alice, title="late", due_at=PAST)
        done_late = await create_task(client, alice, title="done late", due_at=PAST)
        await create_task(client, alice, title="later", due_at=FUTURE)
        await create_task(client, alice, title="undated")
        await _complete(client, alice, done_late)
        assert await _titles(client, alice, {"overdue": "true"}) == [late["title"]]
        assert await _titles(client, alice, {"overdue": "false"}) == [
            "undated",
            "later",
            "done late",
        ]
        assert await _titles(client, alice, {"status": "completed"}) == ["done late"]
        assert await _titles(client, alice, {"status_filter": "pending", "overdue": "true"}) == [
            "late"
        ]

    async def test_due_window(self, client: AsyncClient, alice: Account) -> None:
        for day in (1, 2, 3):
            await create_task(client, alice, title=f"day {day}", due_at=f"2030-01-0{day}T12:00:00Z")
        await create_task(client, alice, title="undated")
        window = {"due_after": "2030-01-02T12:00:00Z", "due_before": "2030-01-03T12:00:00Z"}
        assert await _titles(client, alice, window) == ["day 2"]
        assert await _titles(client, alice, {"due_before": "2030-01-02T13:30:00+01:00"}) == [
            "day 2",
            "day 1",
        ]
        assert await _titles(client, alice, {"due_after": "2030-01-02T00:00:00Z"}) == [
            "day 3",
            "day 2",
        ]

    async def test_everything_combined(self, client: AsyncClient, alice: Account) -> None:
        await create_task(
            client, alice, title="Pay rent", priority="high", tags=["home"], due_at=PAST
        )
        await create_task(client, alice, title="Pay gas", priority="high", tags=["home"])
        await create_task(
            client, alice, title="Pay fine", priority="low", tags=["home"], due_at=PAST
        )
        await create_task(client, alice, title="Pay tax", priority="high", due_at=PAST)
        params = {
            "status": "pending",
            "priority": "high",
            "tag": "home",
            "q": "pay",
            "overdue": "true",
            "due_before": "2001-01-01T00:00:00Z",
            "sort": "title",
        }
        response = await _get(client, alice, params)
        assert [t["title"] for t in response.json()] == ["Pay rent"]
        assert response.headers["x-total-count"] == "1"

    @pytest.mark.parametrize(
        "params",
        [
            {"priority": "urgent"},
            {"tag": ""},
            {"tag": "x" * 31},
            {"tag": "nul\x00"},
            {"tag": [f"t{i}" for i in range(11)]},
            {"search": ""},
            {"search": "nul\x00"},
            {"q": "x" * 1001},
            {"due_before": "2030-01-01T00:00:00"},
            {"due_after": "yesterday"},
            {"overdue": "maybe"},
            {"sort": "colour"},
            {"sort_by": "priority desc"},
            {"order": "up"},
            {"limit": "0"},
            {"limit": "501"},
            {"limit": "ten"},
            {"offset": "-1"},
            {"offset": "9223372036854775808"},
            {"status": "done"},
        ],
    )
    async def test_invalid_values_are_422(
        self, client: AsyncClient, alice: Account, params: dict[str, Any]
    ) -> None:
        response = await _get(client, alice, params)
        assert response.status_code == 422
        assert isinstance(response.json()["detail"], list)


class TestSorting:
    @pytest.fixture
    async def tasks(self, client: AsyncClient, alice: Account) -> None:
        for title, priority, due_at in [
            ("banana", "low", "2030-01-02T00:00:00Z"),
            ("apple", "high", None),
            ("cherry", "medium", "2030-01-01T00:00:00Z"),
            ("date", "high", "2030-01-03T00:00:00Z"),
        ]:
            await create_task(client, alice, title=title, priority=priority, due_at=due_at)

    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({}, ["date", "cherry", "apple", "banana"]),
            ({"sort": "created_at", "order": "asc"}, ["banana", "apple", "cherry", "date"]),
            ({"sort": "created"}, ["date", "cherry", "apple", "banana"]),
            ({"sort": "title"}, ["apple", "banana", "cherry", "date"]),
            ({"sort_by": "title", "order": "desc"}, ["date", "cherry", "banana", "apple"]),
            ({"sort": "priority"}, ["date", "apple", "cherry", "banana"]),
            ({"sort": "priority", "order": "asc"}, ["banana", "cherry", "apple", "date"]),
            ({"sort": "due_at"}, ["cherry", "banana", "date", "apple"]),
            ({"sort": "due_date", "order": "desc"}, ["date", "banana", "cherry", "apple"]),
            ({"sort": "title", "sort_by": "priority"}, ["apple", "banana", "cherry", "date"]),
        ],
    )
    async def test_orders(
        self,
        client: AsyncClient,
        alice: Account,
        tasks: None,
        params: dict[str, str],
        expected: list[str],
    ) -> None:
        assert await _titles(client, alice, params) == expected

    async def test_updated_at(self, client: AsyncClient, alice: Account, tasks: None) -> None:
        listed = (await _get(client, alice, {"sort": "title"})).json()
        await client.put(
            f"{alice.tasks_url}/{listed[1]['id']}", json={"priority": "low"}, headers=alice.headers
        )
        titles = await _titles(client, alice, {"sort": "updated_at"})
        assert titles[0] == "banana"
        assert (await _titles(client, alice, {"sort": "updated_at", "order": "asc"}))[-1] == (
            "banana"
        )


class TestPaging:
    @pytest.fixture
    async def five(self, client: AsyncClient, alice: Account) -> None:
        for number in range(1, 6):
            await create_task(client, alice, title=f"t{number}", tags=["x"])

    async def test_total_count_and_links(
        self, client: AsyncClient, alice: Account, five: None
    ) -> None:
        params = {"limit": "2", "offset": "2", "tag": "x", "sort": "title"}
        response = await _get(client, alice, params)
        assert [t["title"] for t in response.json()] == ["t3", "t4"]
        assert response.headers["x-total-count"] == "5"
        links = _links(response)
        assert links["next"] == {"limit": ["2"], "offset": ["4"], "tag": ["x"], "sort": ["title"]}
        assert links["prev"]["offset"] == ["0"]
        next_url = response.headers["link"].split(">;")[0].removeprefix("<")
        last = await client.get(next_url, headers=alice.headers)
        assert [t["title"] for t in last.json()] == ["t5"]
        assert set(_links(last)) == {"prev"}

    async def test_first_and_last_pages(
        self, client: AsyncClient, alice: Account, five: None
    ) -> None:
        first = await _get(client, alice, {"limit": "3"})
        assert set(_links(first)) == {"next"}
        last = await _get(client, alice, {"limit": "3", "offset": "3"})
        assert [t["title"] for t in last.json()] == ["t2", "t1"]
        assert set(_links(last)) == {"prev"}
        everything = await _get(client, alice)
        assert len(everything.json()) == 5
        assert "link" not in everything.headers
        assert everything.headers["x-total-count"] == "5"

    async def test_offset_past_the_end(
        self, client: AsyncClient, alice: Account, five: None
    ) -> None:
        response = await _get(client, alice, {"limit": "2", "offset": "50"})
        assert response.json() == []
        assert response.headers["x-total-count"] == "5"
        assert _links(response) == {"prev": {"limit": ["2"], "offset": ["3"]}}

    async def test_repeated_tags_survive_in_links(
        self, client: AsyncClient, alice: Account
    ) -> None:
        for number in range(3):
            await create_task(client, alice, title=f"t{number}", tags=["a", "b"])
        response = await _get(client, alice, {"tag": ["a", "b"], "limit": "1"})
        assert _links(response)["next"]["tag"] == ["a", "b"]

    async def test_default_limit_is_100(self, client: AsyncClient, alice: Account) -> None:
        for number in range(101):
            await create_task(client, alice, title=f"t{number}")
        response = await _get(client, alice)
        assert len(response.json()) == 100
        assert response.headers["x-total-count"] == "101"
        assert _links(response)["next"]["offset"] == ["100"]

    async def test_browsers_may_read_the_paging_headers(
        self, client: AsyncClient, alice: Account, five: None
    ) -> None:
        response = await client.get(
            alice.tasks_url,
            params={"limit": "2"},
            headers={**alice.headers, "Origin": "http://localhost:3000"},
        )
        exposed = response.headers["access-control-expose-headers"].lower().split(", ")
        assert {"x-total-count", "link", "location", "x-deleted-count"} <= set(exposed)


class TestOpenAPI:
    async def test_every_list_parameter_is_documented(self, client: AsyncClient) -> None:
        spec = (await client.get("/openapi.json")).json()
        parameters = {
            p["name"]: p for p in spec["paths"]["/api/{user_id}/tasks"]["get"]["parameters"]
        }
        expected = {
            "status", "status_filter", "priority", "tag", "search", "q", "due_before",
            "due_after", "overdue", "sort", "sort_by", "order", "limit", "offset",
        }  # fmt: skip
        assert expected <= set(parameters)
        assert all(parameters[name].get("description") for name in expected)
        assert "priority" in parameters["sort"]["description"]
