"""`live/broker.py`: the per-owner groups, their one read per change, catching up, the limit.

A broker of the test's own on the app's database (no HTTP: streams that keep what they are
given); writes go through the API, and the test says when the log grew, as a notification
would.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

from auth.scope import OwnerScope, TokenRevoked
from live.broker import ChangeBroker, TooManyStreams
from live.stream import LiveStream
from models import RevokedToken, change_counters
from tasks.changelog import Cursor
from tasks.errors import CursorExpired
from tasks.feed import LogEntry, _owner_log
from tests.helpers import Account, create_task
from tests.routes.test_tasks_round_trips import recorded


class KeptStream(LiveStream):
    """Keeps the ids of the events it is given."""

    __slots__ = ("finished", "ids")
    keepalive_comment = b"ping\n"

    def __init__(self, owner: str, key: str = "key", expires_in: float = 3600) -> None:
        issued = datetime.now(UTC) - timedelta(minutes=1)
        expires = datetime.now(UTC) + timedelta(seconds=expires_in)
        super().__init__(OwnerScope(owner, key, issued), expires)
        self.ids: list[str] = []
        self.finished = False

    def write(self, data: bytes) -> None:
        self.ids.extend(line for line in data.decode().split("\n") if line)

    def finish(self) -> None:
        self.finished = True


def _encode(entry: LogEntry) -> bytes:
    return f"{entry.cursor.encode()}\n".encode()


@pytest.fixture
def broker(app: FastAPI) -> Iterator[ChangeBroker]:
    """A broker whose streams are all handed back afterwards (as the event route's do)."""
    broker = ChangeBroker(app.state.database, max_streams_per_owner=3, encode=_encode)
    yield broker
    for stream in list(broker.streams()):
        broker.unregister(stream)


async def _open(broker: ChangeBroker, stream: KeptStream, since: Cursor | None = None) -> None:
    broker.register(stream)
    await broker.admit(stream, since)
    await broker.join(stream)


async def _settled(broker: ChangeBroker, owner: str) -> None:
    """Until the owner's group has no read running."""
    group = broker._owners[owner]
    while group.reading is not None:
        await group.reading


def _ids(tasks: list[dict[str, object]], first_seq: int) -> list[str]:
    return [Cursor(first_seq + n, int(task["id"])).encode() for n, task in enumerate(tasks)]  # type: ignore[call-overload]


class TestSharedReads:
    async def test_one_read_per_change_for_all_of_an_owners_streams(
        self, app: FastAPI, broker: ChangeBroker, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        tabs = [KeptStream(alice.id) for _ in range(3)]
        other = KeptStream(bob.id)
        for stream in (*tabs, other):
            await _open(broker, stream)
        task = await create_task(client, alice)
        read = str(_owner_log().compile(dialect=app.state.engine.dialect))
        with recorded(app) as traffic:
            broker.publish(alice.id)
            await _settled(broker, alice.id)
            broker.publish(alice.id, 1)  # the same change, notified: already read
            await _settled(broker, alice.id)
        assert traffic.statements == [read]
        assert [stream.ids for stream in tabs] == [_ids([task], 1)] * 3
        assert other.ids == []

    async def test_a_stream_behind_catches_up_then_joins(
        self, broker: ChangeBroker, client: AsyncClient, alice: Account
    ) -> None:
        live = KeptStream(alice.id)
        await _open(broker, live)
        tasks = [await create_task(client, alice) for _ in range(3)]
        broker.publish(alice.id)
        await _settled(broker, alice.id)
        behind = KeptStream(alice.id)
        await _open(broker, behind, since=Cursor(1, int(tasks[0]["id"])))
        assert behind.ids == _ids(tasks, 1)[1:]
        tasks.append(await create_task(client, alice))
        broker.publish(alice.id)
        await _settled(broker, alice.id)
        assert live.ids == _ids(tasks, 1)
        assert behind.ids == _ids(tasks, 1)[1:]

    async def test_the_first_stream_of_an_owner_may_start_behind(
        self, broker: ChangeBroker, client: AsyncClient, alice: Account
    ) -> None:
        tasks = [await create_task(client, alice) for _ in range(2)]
        stream = KeptStream(alice.id)
        await _open(broker, stream, since=Cursor(0))
        await _settled(broker, alice.id)
        assert stream.ids == _ids(tasks, 1)


class TestAdmission:
    async def test_a_revoked_token_and_a_purged_cursor_are_refused(
        self, app: FastAPI, broker: ChangeBroker, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice)
        async with app.state.engine.begin() as connection:
            await connection.execute(
                RevokedToken.__table__.insert().values(
                    jti="logged-out", expires_at=datetime.now(UTC) + timedelta(hours=1)
                )
            )
            await connection.execute(
                update(change_counters)
                .where(change_counters.c.user_id == alice.id)
                .values(purged_through=1)
            )
        revoked = KeptStream(alice.id, key="logged-out")
        broker.register(revoked)
        with pytest.raises(TokenRevoked):
            await broker.admit(revoked, None)
        expired = KeptStream(alice.id)
        broker.register(expired)
        with pytest.raises(CursorExpired):
            await broker.admit(expired, Cursor(0))

    async def test_streams_opening_together_share_one_statement(
        self, app: FastAPI, broker: ChangeBroker
    ) -> None:
        broker.max_streams_per_owner = 1
        streams = [KeptStream(f"owner-{n}") for n in range(50)]
        for stream in streams:
            broker.register(stream)
        await broker.admit(streams[0], None)  # the statement is prepared
        with recorded(app) as traffic:
            await asyncio.gather(*(broker.admit(stream, None) for stream in streams[1:]))
        assert len(traffic.statements) == 1


class TestLifetime:
    async def test_the_limit_per_owner_and_the_demand_for_listening(
        self, broker: ChangeBroker
    ) -> None:
        assert not broker.in_demand.is_set()
        streams = [KeptStream("alice") for _ in range(3)]
        for stream in streams:
            broker.register(stream)
        assert broker.in_demand.is_set()
        with pytest.raises(TooManyStreams):
            broker.register(KeptStream("alice"))
        bob = KeptStream("bob")
        broker.register(bob)
        for stream in (*streams, bob):
            broker.unregister(stream)
        assert broker.open_streams("alice") == 0
        assert not broker.in_demand.is_set()
        broker.unregister(bob)  # twice is harmless

    async def test_a_stream_ends_when_its_token_expires(self, broker: ChangeBroker) -> None:
        stream = KeptStream("alice", expires_in=0.1)
        await _open(broker, stream)
        async with asyncio.timeout(10):
            while not (stream.ended and stream.finished):  # noqa: ASYNC110 (the expiry timer's doing)
                await asyncio.sleep(0.02)

    async def test_close_ends_every_stream_and_those_that_join_later(
        self, broker: ChangeBroker
    ) -> None:
        open_one, joining = KeptStream("alice"), KeptStream("bob")
        await _open(broker, open_one)
        broker.register(joining)
        await broker.admit(joining, None)
        broker.close()
        assert open_one.finished
        await broker.join(joining)
        assert joining.finished
