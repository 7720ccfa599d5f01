"""`tasks/stream_checks.py`: many streams' tokens and log positions, checked in one statement."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

from auth.scope import OwnerScope
from models import RevokedToken, SubjectRevocation, change_counters
from tasks.changelog import Cursor
from tasks.stream_checks import StreamCheck, check_streams, notable_streams
from tests.helpers import Account, create_task
from tests.routes.test_tasks_round_trips import recorded

ISSUED = datetime(2030, 1, 1, tzinfo=UTC)


def _scope(owner: str, key: str, legacy: str | None = None) -> OwnerScope:
    return OwnerScope(owner, key, ISSUED, legacy)


async def _revoke(app: FastAPI, *keys: str, subject: str | None = None) -> None:
    async with app.state.engine.begin() as connection:
        for key in keys:
            await connection.execute(
                RevokedToken.__table__.insert().values(jti=key, expires_at=ISSUED)
            )
        if subject is not None:
            await connection.execute(
                SubjectRevocation.__table__.insert().values(
                    sub=subject, not_before=ISSUED + timedelta(seconds=1)
                )
            )


class TestCheckStreams:
    async def test_tokens_and_positions_in_one_statement(
        self, app: FastAPI, client: AsyncClient, alice: Account
    ) -> None:
        first = await create_task(client, alice)
        await create_task(client, alice)
        await _revoke(app, "logged-out", "old-key", subject="password-changed")
        checks = [
            StreamCheck(_scope(alice.id, "fine"), Cursor(0)),
            StreamCheck(_scope(alice.id, "fine"), Cursor(2)),
            StreamCheck(_scope(alice.id, "fine"), Cursor(1, first["id"])),
            StreamCheck(_scope(alice.id, "logged-out"), Cursor(2)),
            StreamCheck(_scope(alice.id, "new-key", legacy="old-key"), Cursor(2)),
            StreamCheck(_scope("password-changed", "any"), Cursor(0)),
            StreamCheck(_scope("nobody", "any"), Cursor(0)),
        ]
        with recorded(app) as traffic:
            states = await check_streams(app.state.database, checks)
        assert len(traffic.statements) == 1
        assert [state.allowed for state in states] == [True, True, True, False, False, False, True]
        assert [state.seq for state in states] == [2, 2, 2, 2, 2, 0, 0]
        assert [state.newer for state in states] == [True, False, True, False, False, False, False]
        assert all(state.purged_through == 0 for state in states)

    async def test_a_revocation_older_than_the_token_does_not_count(self, app: FastAPI) -> None:
        await _revoke(app, subject="changed-long-ago")
        later = OwnerScope("changed-long-ago", "key", ISSUED + timedelta(days=1))
        earlier = OwnerScope("changed-long-ago", "key", ISSUED)
        states = await check_streams(
            app.state.database, [StreamCheck(later, Cursor(0)), StreamCheck(earlier, Cursor(0))]
        )
        assert [state.allowed for state in states] == [True, False]

    async def test_nothing_to_check_costs_nothing(self, app: FastAPI) -> None:
        with recorded(app) as traffic:
            assert await check_streams(app.state.database, []) == []
            assert await notable_streams(app.state.database, []) == {}
        assert traffic.statements == []


class TestNotableStreams:
    async def test_only_what_calls_for_something(
        self, app: FastAPI, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        await create_task(client, alice)
        await create_task(client, bob)
        await _revoke(app, "logged-out")
        async with app.state.engine.begin() as connection:
            await connection.execute(
                update(change_counters)
                .where(change_counters.c.user_id == bob.id)
                .values(purged_through=1)
            )
        checks = [
            StreamCheck(_scope(alice.id, "fine"), Cursor(1)),  # up to date
            StreamCheck(_scope(alice.id, "fine"), Cursor(0)),  # behind
            StreamCheck(_scope(alice.id, "logged-out"), Cursor(1)),  # revoked
            StreamCheck(_scope(bob.id, "fine"), Cursor(0)),  # purged past its position
            StreamCheck(_scope("quiet", "fine"), Cursor(0)),  # no log at all
        ]
        with recorded(app) as traffic:
            notable = await notable_streams(app.state.database, checks)
        assert len(traffic.statements) == 1
        assert sorted(notable) == [1, 2, 3]
        assert notable[1].newer and notable[1].allowed
        assert not notable[2].allowed
        assert notable[3].purged_through == 1
