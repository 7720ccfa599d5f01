"""Many requests at once: every one gets its expected answer, on every backend (through a
transaction pooler too, where concurrent sessions swap server connections all the time)."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from httpx import AsyncClient, Response

from tests.helpers import Account, sign_up

CONCURRENCY = 12
LIFECYCLES = 36  # 7 requests each, plus the reads mixed in: well over 200 requests


class Recorder:
    """Counts requests and keeps every unexpected answer."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client
        self.requests = 0
        self.problems: list[str] = []

    async def call(self, expected: int, method: str, url: str, **kwargs: Any) -> Any:
        response = await self.client.request(method, url, **kwargs)
        self.requests += 1
        if response.status_code != expected:
            self.problems.append(f"{method} {url}: {response.status_code} {response.text[:200]}")
            return None
        return response.json() if response.content else None


async def _lifecycle(recorder: Recorder, account: Account, number: int) -> None:
    """Create, read, toggle, rename, list and delete one task, with other reads in between.

    (No GET of the deleted id: SQLite hands the newest rowid out again, so a concurrent create
    may legitimately own that id by then.)"""
    headers = account.headers
    task = await recorder.call(
        201, "POST", account.tasks_url, json={"title": f"task {number}"}, headers=headers
    )
    if not task:
        return
    url = f"{account.tasks_url}/{task['id']}"
    await recorder.call(200, "GET", url, headers=headers)
    toggled = await recorder.call(200, "PATCH", f"{url}/complete", headers=headers)
    if not toggled or toggled["completed"] is not True:
        recorder.problems.append(f"toggle of {url} gave {toggled}")
    await recorder.call(200, "PUT", url, json={"title": f"renamed {number}"}, headers=headers)
    if number % 3 == 0:
        await recorder.call(200, "GET", "/api/auth/me", headers=headers)
    completed_url = f"{account.tasks_url}?status=completed"
    listed = await recorder.call(200, "GET", completed_url, headers=headers)
    if number % 4 == 0:
        await recorder.call(200, "GET", "/health")
    if not any(item.get("id") == task["id"] for item in listed or []):
        recorder.problems.append(f"{url} missing from the completed list")
    await recorder.call(204, "DELETE", url, headers=headers)
    remaining = await recorder.call(200, "GET", account.tasks_url, headers=headers)
    if any(item.get("title") == f"renamed {number}" for item in remaining or []):
        recorder.problems.append(f"{url} still listed after its deletion")


async def test_mixed_concurrent_requests_all_succeed(client: AsyncClient) -> None:
    accounts = await asyncio.gather(*(sign_up(client) for _ in range(4)))
    recorder = Recorder(client)
    slots = asyncio.Semaphore(CONCURRENCY)

    async def run(number: int) -> None:
        async with slots:
            await _lifecycle(recorder, accounts[number % len(accounts)], number)

    await asyncio.gather(*(run(number) for number in range(LIFECYCLES)))

    assert recorder.problems == []
    assert recorder.requests >= 200
    for account in accounts:
        response = await client.get(account.tasks_url, headers=account.headers)
        assert response.status_code == 200
        assert response.json() == []


async def test_concurrent_toggles_of_one_task_are_atomic(client: AsyncClient) -> None:
    account = await sign_up(client)
    created = await client.post(account.tasks_url, json={"title": "t"}, headers=account.headers)
    url = f"{account.tasks_url}/{created.json()['id']}/complete"
    slots = asyncio.Semaphore(CONCURRENCY)

    async def toggle() -> bool:
        async with slots:
            response = await client.patch(url, headers=account.headers)
        assert response.status_code == 200, response.text
        return bool(response.json()["completed"])

    outcomes = Counter(await asyncio.gather(*(toggle() for _ in range(30))))

    # Each toggle flipped the state the previous one left: half saw True, half False.
    assert outcomes == Counter({True: 15, False: 15})


async def _racing_tag_replacements(
    client: AsyncClient, count: int
) -> tuple[Account, str, list[Response]]:
    """`count` PUTs racing to replace the tags of one new task (tagged `start`): the owner, the
    task's URL and the answers."""
    account = await sign_up(client)
    created = await client.post(
        account.tasks_url, json={"title": "raced", "tags": ["start"]}, headers=account.headers
    )
    url = f"{account.tasks_url}/{created.json()['id']}"
    responses = await asyncio.gather(
        *(
            client.put(url, json={"tags": [f"t{n}", "shared"]}, headers=account.headers)
            for n in range(count)
        )
    )
    return account, url, list(responses)


async def test_concurrent_tag_replacements_keep_the_tag_index_exact(client: AsyncClient) -> None:
    """Ten PUTs racing to replace one task's tags: whichever wins, filtering by tag finds the
    task under exactly the tags it ends up with (no tag row of a loser survives)."""
    account, url, responses = await _racing_tag_replacements(client, 10)
    assert [response.status_code for response in responses] == [200] * 10
    final = set((await client.get(url, headers=account.headers)).json()["tags"])
    for tag in [f"t{n}" for n in range(10)] + ["shared", "start"]:
        found = await client.get(account.tasks_url, params={"tag": tag}, headers=account.headers)
        assert (len(found.json()) == 1) == (tag in final), tag


async def test_forty_racing_writes_of_one_owner_all_succeed(client: AsyncClient) -> None:
    """However many writes of one owner queue behind each other, none is refused: a write that
    lost the race for the owner's counter is retried holding it (PostgreSQL), instead of racing
    again a fixed number of times."""
    account, url, responses = await _racing_tag_replacements(client, 40)
    assert Counter(response.status_code for response in responses) == Counter({200: 40})
    final = (await client.get(url, headers=account.headers)).json()
    changes = await client.get(f"{account.tasks_url}/changes", headers=account.headers)
    assert [task["tags"] for task in changes.json()["changes"]] == [final["tags"]]
