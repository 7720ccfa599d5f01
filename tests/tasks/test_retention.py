"""`tasks/retention.py`: the change log keeps its retention, expired records go."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import func, select, update

from database.types import utcnow
from models import idempotency_records, task_changes
from tasks.retention import purge
from tests.helpers import Account, create_task

RETENTION = timedelta(days=30)


async def _changes(client: AsyncClient, account: Account, since: str | None = None) -> object:
    params = {"since": since} if since else {}
    return await client.get(f"{account.tasks_url}/changes", params=params, headers=account.headers)


async def test_old_entries_go_and_older_cursors_get_410(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    task = await create_task(client, alice, title="old")
    old_cursor = (await _changes(client, alice)).json()["cursor"]
    await client.delete(f"{alice.tasks_url}/{task['id']}", headers=alice.headers)
    async with app.state.engine.begin() as connection:
        await connection.execute(
            update(task_changes).values(changed_at=utcnow() - timedelta(days=40))
        )
    recent = await create_task(client, alice, title="recent")
    purged = await purge(app.state.database, RETENTION)
    assert purged is not None
    assert (purged.log_entries, purged.owners) == (2, 1)
    async with app.state.engine.connect() as connection:
        left = await connection.scalar(
            select(func.count()).where(task_changes.c.user_id == alice.id)
        )
    assert left == 1
    gone = await _changes(client, alice, old_cursor)
    assert gone.status_code == 410
    fresh = (await _changes(client, alice)).json()
    assert [t["id"] for t in fresh["changes"]] == [recent["id"]]
    assert (await _changes(client, alice, fresh["cursor"])).status_code == 200


async def test_a_cursor_after_the_purge_still_works(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    await create_task(client, alice)
    async with app.state.engine.begin() as connection:
        await connection.execute(
            update(task_changes).values(changed_at=utcnow() - timedelta(days=40))
        )
    cursor = (await _changes(client, alice)).json()["cursor"]
    await purge(app.state.database, RETENTION)
    later = await create_task(client, alice)
    page = (await _changes(client, alice, cursor)).json()
    assert [t["id"] for t in page["changes"]] == [later["id"]]


async def test_expired_idempotency_records_go(
    app: FastAPI, client: AsyncClient, alice: Account
) -> None:
    for key in ('"a"', '"b"'):
        await client.post(
            alice.tasks_url, json={"title": "x"}, headers={**alice.headers, "Idempotency-Key": key}
        )
    async with app.state.engine.begin() as connection:
        await connection.execute(
            update(idempotency_records)
            .where(idempotency_records.c.key == "a")
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
    purged = await purge(app.state.database, RETENTION)
    assert purged is not None and purged.idempotency_records == 1
    async with app.state.engine.connect() as connection:
        keys = (await connection.execute(select(idempotency_records.c.key))).scalars().all()
    assert keys == ["b"]
