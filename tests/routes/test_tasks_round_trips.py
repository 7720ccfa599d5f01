"""Round trips per task request, counted exactly: statements sent, transactions opened,
connections checked out and opened (SQLAlchemy's engine and pool events).

On PostgreSQL reached directly every task route is one statement in autocommit (no BEGIN or
COMMIT), on one pooled connection, opening no new one; completing a recurring task included,
and so are the refusals (401 revoked, 404); so it is behind a pooler that tracks prepared
statements (Neon's). Behind one that forgets them the same statement runs inside a
transaction. On SQLite reads are one statement and writes one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from fastapi import FastAPI
from httpx import AsyncClient, Response
from sqlalchemy import event

from tasks.retention import TIDY_TASK_NAME
from tests.helpers import Account, create_task, sign_up


@dataclass
class Traffic:
    statements: list[str] = field(default_factory=list)
    transactions: int = 0
    checkouts: int = 0
    connections_opened: int = 0


def _in_background_job() -> bool:
    """The hourly change-log purge may run during a measurement: its traffic is not the
    request's."""
    task = asyncio.current_task()
    return task is not None and task.get_name() == TIDY_TASK_NAME


@contextmanager
def recorded(app: FastAPI) -> Iterator[Traffic]:
    engine = app.state.engine.sync_engine
    traffic = Traffic()

    def statement(_conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        if not _in_background_job():
            traffic.statements.append(text)

    def begin(connection: Any) -> None:
        autocommit = connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT"
        if not autocommit and not _in_background_job():
            traffic.transactions += 1

    def checkout(*_args: Any) -> None:
        if not _in_background_job():
            traffic.checkouts += 1

    def connect(*_args: Any) -> None:
        if not _in_background_job():
            traffic.connections_opened += 1

    listeners: list[tuple[Any, str, Callable[..., None]]] = [
        (engine, "before_cursor_execute", statement),
        (engine, "begin", begin),
        (engine.pool, "checkout", checkout),
        (engine.pool, "connect", connect),
    ]
    for target, name, listener in listeners:
        event.listen(target, name, listener)
    try:
        yield traffic
    finally:
        for target, name, listener in listeners:
            event.remove(target, name, listener)


def _kind(app: FastAPI) -> str:
    settings = app.state.settings
    if app.state.database.is_sqlite:
        return "sqlite"
    forgets_statements = settings.db_pooler and not settings.db_pooler_prepared_statements
    return "pooler" if forgets_statements else "postgresql"


@pytest.fixture
async def owner(client: AsyncClient) -> AsyncIterator[Account]:
    account = await sign_up(client)
    for number in range(3):
        await create_task(client, account, title=f"task {number}", tags=["work"])
    # Warm-up: every statement shape below is prepared once on its connection.
    yield account


async def _measure(app: FastAPI, send: Callable[[], Any]) -> tuple[Response, Traffic]:
    await send()  # the same request once more warms the connection's statement cache
    with recorded(app) as traffic:
        response = await send()
    return response, traffic


def _assert_one_round_trip(app: FastAPI, traffic: Traffic, *, writes: bool) -> None:
    kind = _kind(app)
    assert traffic.checkouts == 1
    assert traffic.connections_opened == 0
    if kind == "postgresql":
        assert len(traffic.statements) == 1, traffic.statements
        assert traffic.transactions == 0
    elif kind == "pooler":
        assert len(traffic.statements) == 1, traffic.statements
        assert traffic.transactions == 1
    elif writes:
        assert traffic.transactions == 1
    else:
        assert len(traffic.statements) == 1, traffic.statements
        assert traffic.transactions == 0


class TestOneRoundTrip:
    async def test_list(self, app: FastAPI, client: AsyncClient, owner: Account) -> None:
        response, traffic = await _measure(
            app, lambda: client.get(owner.tasks_url, headers=owner.headers)
        )
        assert response.status_code == 200
        assert len(response.json()) == 3
        assert response.headers["X-Total-Count"] == "3"
        _assert_one_round_trip(app, traffic, writes=False)

    async def test_list_of_a_full_page_counts_in_the_same_statement(
        self, app: FastAPI, client: AsyncClient, owner: Account
    ) -> None:
        response, traffic = await _measure(
            app, lambda: client.get(f"{owner.tasks_url}?limit=2", headers=owner.headers)
        )
        assert response.headers["X-Total-Count"] == "3"
        _assert_one_round_trip(app, traffic, writes=False)

    async def test_get(self, app: FastAPI, client: AsyncClient, owner: Account) -> None:
        task = await create_task(client, owner)
        response, traffic = await _measure(
            app, lambda: client.get(f"{owner.tasks_url}/{task['id']}", headers=owner.headers)
        )
        assert response.status_code == 200
        _assert_one_round_trip(app, traffic, writes=False)

    async def test_stats(self, app: FastAPI, client: AsyncClient, owner: Account) -> None:
        response, traffic = await _measure(
            app, lambda: client.get(f"{owner.tasks_url}/stats", headers=owner.headers)
        )
        assert response.json()["total"] == 3
        _assert_one_round_trip(app, traffic, writes=False)

    async def test_create_with_tags(
        self, app: FastAPI, client: AsyncClient, owner: Account
    ) -> None:
        body = {"title": "tagged", "tags": ["a", "b"], "priority": "high"}
        response, traffic = await _measure(
            app, lambda: client.post(owner.tasks_url, json=body, headers=owner.headers)
        )
        assert response.status_code == 201
        assert response.json()["tags"] == ["a", "b"]
        _assert_one_round_trip(app, traffic, writes=True)

    async def test_update_with_tags(
        self, app: FastAPI, client: AsyncClient, owner: Account
    ) -> None:
        task = await create_task(client, owner, tags=["a"])
        body = {"title": "renamed", "tags": ["b"]}
        url = f"{owner.tasks_url}/{task['id']}"
        response, traffic = await _measure(
            app, lambda: client.put(url, json=body, headers=owner.headers)
        )
        assert response.status_code == 200
        assert response.json()["tags"] == ["b"]
        _assert_one_round_trip(app, traffic, writes=True)

    async def test_toggle(self, app: FastAPI, client: AsyncClient, owner: Account) -> None:
        task = await create_task(client, owner)
        url = f"{owner.tasks_url}/{task['id']}/complete"
        response, traffic = await _measure(app, lambda: client.patch(url, headers=owner.headers))
        assert response.status_code == 200
        _assert_one_round_trip(app, traffic, writes=True)

    async def test_completing_a_recurring_task(
        self, app: FastAPI, client: AsyncClient, owner: Account
    ) -> None:
        first = await create_task(client, owner, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        await client.patch(f"{owner.tasks_url}/{first['id']}/complete", headers=owner.headers)
        task = await create_task(client, owner, recurrence="daily", due_at="2030-01-01T09:00:00Z")
        url = f"{owner.tasks_url}/{task['id']}/complete"
        with recorded(app) as traffic:
            response = await client.patch(url, headers=owner.headers)
        assert response.status_code == 200
        assert response.json()["next_task_id"] is not None
        assert "location" in response.headers
        _assert_one_round_trip(app, traffic, writes=True)

    async def test_delete(self, app: FastAPI, client: AsyncClient, owner: Account) -> None:
        doomed = [await create_task(client, owner) for _ in range(2)]
        await client.delete(f"{owner.tasks_url}/{doomed[0]['id']}", headers=owner.headers)
        url = f"{owner.tasks_url}/{doomed[1]['id']}"
        with recorded(app) as traffic:
            response = await client.delete(url, headers=owner.headers)
        assert response.status_code == 204
        _assert_one_round_trip(app, traffic, writes=True)


class TestRefusalsCostNoMore:
    async def test_missing_task_is_one_statement_on_postgresql(
        self, app: FastAPI, client: AsyncClient, owner: Account
    ) -> None:
        url = f"{owner.tasks_url}/999999"
        for send in (
            lambda: client.get(url, headers=owner.headers),
            lambda: client.put(url, json={"title": "x"}, headers=owner.headers),
            lambda: client.delete(url, headers=owner.headers),
        ):
            response, traffic = await _measure(app, send)
            assert response.status_code == 404
            if _kind(app) != "sqlite":
                assert len(traffic.statements) == 1, traffic.statements

    async def test_a_revoked_token_is_refused_by_the_task_statement_itself(
        self, app: FastAPI, client: AsyncClient, owner: Account
    ) -> None:
        task = await create_task(client, owner)
        assert (await client.post("/api/auth/logout", headers=owner.headers)).status_code == 200
        url = f"{owner.tasks_url}/{task['id']}"
        for send in (
            lambda: client.get(url, headers=owner.headers),
            lambda: client.patch(f"{url}/complete", headers=owner.headers),
            lambda: client.post(owner.tasks_url, json={"title": "x"}, headers=owner.headers),
        ):
            response, traffic = await _measure(app, send)
            assert response.status_code == 401
            assert response.json() == {"detail": "Token has been revoked"}
            if _kind(app) != "sqlite":
                assert len(traffic.statements) == 1, traffic.statements

    async def test_an_empty_list_asks_once_more_why(
        self, app: FastAPI, client: AsyncClient
    ) -> None:
        account = await sign_up(client)
        response, traffic = await _measure(
            app, lambda: client.get(account.tasks_url, headers=account.headers)
        )
        assert response.status_code == 200
        assert response.json() == []
        assert len(traffic.statements) == 2

    async def test_no_query_at_all_for_another_users_path(
        self, app: FastAPI, client: AsyncClient, owner: Account
    ) -> None:
        with recorded(app) as traffic:
            response = await client.get("/api/someone-else/tasks", headers=owner.headers)
        assert response.status_code == 403
        assert traffic.statements == []
        assert traffic.checkouts == 0
