"""`GET /api/{user_id}/events` (Server-Sent Events) and `POST …/events/tickets`.

httpx's ASGI transport buffers a whole response, so these tests serve the app with uvicorn on a
loopback port (in this process, without its own lifespan: the `app` fixture runs it) and read
the stream as a browser would.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import event, update

from models import RevokedToken, change_counters, event_tickets
from settings import Settings
from tasks.feed import _owner_log
from tasks.stream_checks import _statement
from tests.helpers import Account, bearer, create_task, frontend_token
from tests.routes.test_tasks_round_trips import recorded
from tests.sse import WAIT, Stream, open_raw_streams, served


async def _eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (a condition of another object, no event to wait on)
            await asyncio.sleep(0.02)


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    async with served(app) as url:
        yield url


@pytest.fixture
async def http(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=WAIT) as client:
        yield client


def events_url(account: Account) -> str:
    return f"/api/{account.id}/events"


class TestAccess:
    async def test_anonymous_is_401(self, http: httpx.AsyncClient, alice: Account) -> None:
        response = await http.get(events_url(alice))
        assert response.status_code == 401

    async def test_another_users_stream_is_403(
        self, http: httpx.AsyncClient, alice: Account, bob: Account
    ) -> None:
        response = await http.get(events_url(bob), headers=alice.headers)
        assert response.status_code == 403

    async def test_a_revoked_token_is_401(self, http: httpx.AsyncClient, alice: Account) -> None:
        await http.post("/api/auth/logout", headers=alice.headers)
        response = await http.get(events_url(alice), headers=alice.headers)
        assert response.status_code == 401

    @pytest.mark.parametrize("cursor", ["garbage", "TC4tMS4y"])
    async def test_a_malformed_last_event_id_is_422(
        self, http: httpx.AsyncClient, alice: Account, cursor: str
    ) -> None:
        response = await http.get(
            events_url(alice), headers={**alice.headers, "Last-Event-ID": cursor}
        )
        assert response.status_code == 422
        assert [error["loc"] for error in response.json()["detail"]] == [
            ["header", "last-event-id"]
        ]
        since = await http.get(events_url(alice), params={"since": cursor}, headers=alice.headers)
        assert [error["loc"] for error in since.json()["detail"]] == [["query", "since"]]

    async def test_a_cursor_past_the_retention_is_410(
        self, app: FastAPI, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice)
        cursor = (await client.get(f"{alice.tasks_url}/changes", headers=alice.headers)).json()[
            "cursor"
        ]
        await create_task(client, alice)
        async with app.state.engine.begin() as connection:
            await connection.execute(
                update(change_counters).values(purged_through=change_counters.c.seq)
            )
        response = await http.get(
            events_url(alice), params={"since": cursor}, headers=alice.headers
        )
        assert response.status_code == 410


class TestEvents:
    async def test_created_updated_deleted_in_order(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        async with Stream(http, events_url(alice), headers=alice.headers) as (response, reader):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            first = await reader.next()
            assert first is not None and first.retry is not None
            task = await create_task(client, alice, title="live")
            created = await reader.next_event()
            assert created is not None and created.event == "task.created"
            assert created.data == task
            url = f"{alice.tasks_url}/{task['id']}"
            updated_task = (
                await client.put(url, json={"title": "renamed"}, headers=alice.headers)
            ).json()
            updated = await reader.next_event()
            assert updated is not None and updated.event == "task.updated"
            assert updated.data == updated_task
            await client.delete(url, headers=alice.headers)
            deleted = await reader.next_event()
            assert deleted is not None and deleted.event == "task.deleted"
            assert deleted.data == {"id": task["id"]}
            assert len({created.id, updated.id, deleted.id}) == 3

    async def test_only_the_owners_changes(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        async with Stream(http, events_url(alice), headers=alice.headers) as (_response, reader):
            await reader.next()
            await create_task(client, bob, title="bob's")
            await create_task(client, alice, title="alice's")
            event = await reader.next_event()
            assert event is not None and event.data["title"] == "alice's"

    async def test_resume_with_last_event_id_replays_what_was_missed(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        async with Stream(http, events_url(alice), headers=alice.headers) as (_response, reader):
            await reader.next()
            await create_task(client, alice, title="seen")
            seen = await reader.next_event()
        assert seen is not None
        missed = [await create_task(client, alice, title=f"missed {n}") for n in range(3)]
        headers = {**alice.headers, "Last-Event-ID": seen.id or ""}
        async with Stream(http, events_url(alice), headers=headers) as (_response, reader):
            replayed = [await reader.next_event() for _ in missed]
            assert [event.data["id"] for event in replayed if event] == [t["id"] for t in missed]
            await create_task(client, alice, title="live again")
            live = await reader.next_event()
            assert live is not None and live.data["title"] == "live again"

    async def test_since_a_changes_feed_cursor(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        await create_task(client, alice, title="before")
        cursor = (await client.get(f"{alice.tasks_url}/changes", headers=alice.headers)).json()[
            "cursor"
        ]
        after = await create_task(client, alice, title="after")
        async with Stream(
            http, events_url(alice), params={"since": cursor}, headers=alice.headers
        ) as (_response, reader):
            event = await reader.next_event()
            assert event is not None and event.data["id"] == after["id"]

    async def test_a_frontend_identity_streams_too(
        self, http: httpx.AsyncClient, client: AsyncClient
    ) -> None:
        headers = bearer(frontend_token("frontend-streamer"))
        async with Stream(http, "/api/frontend-streamer/events", headers=headers) as (_r, reader):
            await reader.next()
            await client.post(
                "/api/frontend-streamer/tasks", json={"title": "hello"}, headers=headers
            )
            event = await reader.next_event()
            assert event is not None and event.data["title"] == "hello"

    async def test_keep_alive_comments(
        self, http: httpx.AsyncClient, alice: Account, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr("live.keepalive.KEEPALIVE_SECONDS", 0.2)
        async with Stream(http, events_url(alice), headers=alice.headers) as (_response, reader):
            await reader.next()
            ping = await reader.next(within=5)
            assert ping is not None and ping.event is None and ping.comments


class TestSharedReads:
    """One read of each change per process, however many of the owner's streams want it."""

    async def test_one_read_for_five_streams_of_an_owner(
        self, app: FastAPI, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        streams = [Stream(http, events_url(alice), headers=alice.headers) for _ in range(5)]
        readers = []
        for stream in streams:
            _response, reader = await stream.__aenter__()
            await reader.next()
            readers.append(reader)
        read = str(_owner_log().compile(dialect=app.state.engine.dialect))
        try:
            with recorded(app) as traffic:
                task = await create_task(client, alice, title="for every tab")
                events = [await reader.next_event() for reader in readers]
        finally:
            for stream in streams:
                await stream.__aexit__()
        assert [event.data for event in events if event] == [task] * 5
        assert len({event.id for event in events if event}) == 1
        assert traffic.statements.count(read) == 1

    async def test_a_stream_behind_catches_up_beside_a_live_one(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        async with Stream(http, events_url(alice), headers=alice.headers) as (_r, live):
            await live.next()
            first = await create_task(client, alice, title="seen by both")
            seen = await live.next_event()
            assert seen is not None and seen.data == first
            missed = [await create_task(client, alice, title=f"missed {n}") for n in range(3)]
            headers = {**alice.headers, "Last-Event-ID": seen.id or ""}
            async with Stream(http, events_url(alice), headers=headers) as (_r, behind):
                caught_up = [await behind.next_event() for _ in missed]
                assert [event.data for event in caught_up if event] == missed
                after = await create_task(client, alice, title="after the reconnect")
                assert (await behind.next_event()).data == after  # type: ignore[union-attr]
                both = [await live.next_event() for _ in range(4)]
                assert [event.data for event in both if event] == [*missed, after]


class TestTickets:
    async def _ticket(self, client: AsyncClient, account: Account) -> str:
        response = await client.post(f"/api/{account.id}/events/tickets", headers=account.headers)
        assert response.status_code == 201
        body = response.json()
        assert body["expires_in"] == 60
        return body["ticket"]

    async def test_a_ticket_opens_one_stream_once(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        ticket = await self._ticket(client, alice)
        async with Stream(http, events_url(alice), params={"ticket": ticket}) as (response, reader):
            assert response.status_code == 200
            await reader.next()
            await create_task(client, alice, title="via ticket")
            event = await reader.next_event()
            assert event is not None and event.data["title"] == "via ticket"
        again = await http.get(events_url(alice), params={"ticket": ticket})
        assert again.status_code == 401

    async def test_an_expired_ticket(
        self, app: FastAPI, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        ticket = await self._ticket(client, alice)
        async with app.state.engine.begin() as connection:
            await connection.execute(
                update(event_tickets).values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
            )
        response = await http.get(events_url(alice), params={"ticket": ticket})
        assert response.status_code == 401

    async def test_another_users_path(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account, bob: Account
    ) -> None:
        ticket = await self._ticket(client, alice)
        response = await http.get(events_url(bob), params={"ticket": ticket})
        assert response.status_code == 403

    async def test_a_revoked_token_gets_no_ticket_and_its_tickets_open_nothing(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        ticket = await self._ticket(client, alice)
        await client.post("/api/auth/logout", headers=alice.headers)
        refused = await client.post(f"/api/{alice.id}/events/tickets", headers=alice.headers)
        assert refused.status_code == 401
        response = await http.get(events_url(alice), params={"ticket": ticket})
        assert response.status_code == 401

    async def test_an_unknown_ticket(self, http: httpx.AsyncClient, alice: Account) -> None:
        response = await http.get(events_url(alice), params={"ticket": "made-up"})
        assert response.status_code == 401


class TestTicketLimit:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"events_max_tickets_per_token": 3}

    async def test_per_token_then_429_with_retry_after(
        self, client: AsyncClient, alice: Account
    ) -> None:
        url = f"/api/{alice.id}/events/tickets"
        for _ in range(3):
            assert (await client.post(url, headers=alice.headers)).status_code == 201
        refused = await client.post(url, headers=alice.headers)
        assert refused.status_code == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.json()["detail"].startswith("Too many event tickets; try again in")
        # Another token of the same user has a count of its own.
        other = frontend_token(alice.id, jti="another-token")
        assert (await client.post(url, headers=bearer(other))).status_code == 201

    async def test_documented(self, client: AsyncClient) -> None:
        operation = (await client.get("/openapi.json")).json()["paths"][
            "/api/{user_id}/events/tickets"
        ]["post"]
        assert "Retry-After" in operation["responses"]["429"]["headers"]


class TestStreamEnds:
    async def test_when_its_token_is_revoked(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        async with Stream(http, events_url(alice), headers=alice.headers) as (_response, reader):
            await reader.next()
            await client.post("/api/auth/logout", headers=alice.headers)
            assert await reader.next_event(within=5) is None

    async def test_when_its_password_changes(
        self, http: httpx.AsyncClient, client: AsyncClient, alice: Account
    ) -> None:
        """Every token of the user is revoked: the streams end at once (the default check is
        15 s away)."""
        other = frontend_token(alice.id, jti="another-device", iat=datetime.now(UTC))
        streams = [
            Stream(http, events_url(alice), headers=alice.headers),
            Stream(http, events_url(alice), headers=bearer(other)),
        ]
        readers = []
        for stream in streams:
            _response, reader = await stream.__aenter__()
            await reader.next()
            readers.append(reader)
        try:
            changed = await client.put(
                "/api/auth/password",
                json={"current_password": alice.password, "new_password": "a new passphrase"},
                headers=alice.headers,
            )
            assert changed.status_code == 200
            for reader in readers:
                assert await reader.next_event(within=10) is None
        finally:
            for stream in streams:
                await stream.__aexit__()

    async def test_when_its_token_expires(
        self, http: httpx.AsyncClient, client: AsyncClient
    ) -> None:
        token = frontend_token("short-lived", exp=datetime.now(UTC) + timedelta(seconds=2))
        async with Stream(http, "/api/short-lived/events", headers=bearer(token)) as (_r, reader):
            await reader.next()
            assert await reader.next_event(within=8) is None

    async def test_when_the_process_shuts_down(
        self, app: FastAPI, http: httpx.AsyncClient, alice: Account
    ) -> None:
        async with Stream(http, events_url(alice), headers=alice.headers) as (_response, reader):
            await reader.next()
            app.state.broker.close()
            assert await reader.next_event(within=5) is None

    async def test_at_most_twenty_streams_per_user(
        self, app: FastAPI, http: httpx.AsyncClient, alice: Account
    ) -> None:
        streams = [Stream(http, events_url(alice), headers=alice.headers) for _ in range(20)]
        opened = [await stream.__aenter__() for stream in streams]
        try:
            for response, reader in opened:
                assert response.status_code == 200
                await reader.next()
            refused = await http.get(events_url(alice), headers=alice.headers)
            assert refused.status_code == 429
            assert "Retry-After" in refused.headers
            other = await sign_up_and_open(http)
            assert other == 200
        finally:
            for stream in streams:
                await stream.__aexit__()
        # Each closed connection frees its slot (the server sees the disconnect).
        await _eventually(lambda: app.state.broker.open_streams(alice.id) == 0)


class TestInstanceFull:
    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"events_max_streams": 2}

    async def test_past_the_process_limit_503_with_retry_after_then_a_freed_slot_serves(
        self, app: FastAPI, http: httpx.AsyncClient, alice: Account, bob: Account
    ) -> None:
        first, second = (
            Stream(http, events_url(account), headers=account.headers) for account in (alice, bob)
        )
        for stream in (first, second):
            response, reader = await stream.__aenter__()
            assert response.status_code == 200
            await reader.next()
        try:
            refused = await http.get(events_url(alice), headers=alice.headers)
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "5"
            assert "the most open event streams it can (2)" in refused.json()["detail"]
            other_routes = await http.get(alice.tasks_url, headers=alice.headers)
            assert other_routes.status_code == 200
        finally:
            await first.__aexit__()
        await _eventually(lambda: app.state.broker.open_count == 1)
        try:
            async with Stream(http, events_url(alice), headers=alice.headers) as (response, reader):
                assert response.status_code == 200
                await reader.next()
        finally:
            await second.__aexit__()
        await _eventually(lambda: app.state.broker.open_count == 0)


async def sign_up_and_open(http: httpx.AsyncClient) -> int:
    """Another user is not limited by the first one's streams."""
    response = await http.post(
        "/api/auth/signup", json={"email": "other-streamer@example.com", "password": "a password 1"}
    )
    body = response.json()
    async with Stream(
        http, f"/api/{body['user_id']}/events", headers=bearer(body["access_token"])
    ) as (
        opened,
        reader,
    ):
        await reader.next()
        return opened.status_code


IDLE_STREAMS = 1_000
CHECKS = 5


class TestPeriodicCheck:
    """Every open stream is checked in one statement per `EVENTS_CHECK_SECONDS` (here 0.1 s):
    what no notification told this process still reaches its streams."""

    @pytest.fixture
    def settings_overrides(self) -> dict[str, object]:
        return {"events_check_seconds": 0.1}

    async def test_a_change_nobody_announced_arrives_at_the_next_check(
        self,
        app: FastAPI,
        http: httpx.AsyncClient,
        client: AsyncClient,
        alice: Account,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """As a write of another process whose notification was lost: the process-wide check
        finds the owner's log ahead of what it read."""
        async with Stream(http, events_url(alice), headers=alice.headers) as (_r, reader):
            await reader.next()
            monkeypatch.setattr(app.state.database, "changed", lambda _user_id: None)
            task = await create_task(client, alice, title="unannounced")
            event = await reader.next_event(within=5)
            assert event is not None and event.data == task

    async def test_when_a_revocation_reaches_the_process_unannounced(
        self, app: FastAPI, http: httpx.AsyncClient, alice: Account
    ) -> None:
        """A revocation this process was not told of (another instance's, while LISTEN was
        down): the process-wide check ends the stream."""
        claims = await app.state.token_verifier.verify(alice.token)
        async with Stream(http, events_url(alice), headers=alice.headers) as (_r, reader):
            await reader.next()
            async with app.state.engine.begin() as connection:
                await connection.execute(
                    RevokedToken.__table__.insert().values(
                        jti=claims.revocation_key, expires_at=claims.expires_at
                    )
                )
            assert await reader.next_event(within=5) is None

    async def test_an_idle_process_with_1000_streams_issues_one_statement_per_check(
        self, app: FastAPI, server: str
    ) -> None:
        """Nothing per stream on a timer: over five checks, five statements (one each), so a
        minute at the default 15 s costs four, whatever the number of streams."""
        _allow_open_files(4 * IDLE_STREAMS)
        requests = []
        for number in range(IDLE_STREAMS):
            sub = f"idle-{number}"
            requests.append((f"/api/{sub}/events", bearer(frontend_token(sub))))
        streams = await open_raw_streams(server, requests)
        broker, revalidation = app.state.broker, app.state.revalidation
        try:
            await _eventually(
                lambda: sum(stream.joined for stream in broker.streams()) == IDLE_STREAMS
            )
            issued: list[tuple[int, str]] = []

            def statement(_conn: object, _cursor: object, text: str, *_args: object) -> None:
                issued.append((revalidation.completed, text))

            engine = app.state.engine.sync_engine
            event.listen(engine, "before_cursor_execute", statement)
            try:
                first = revalidation.completed + 1
                await _eventually(lambda: revalidation.completed >= first + CHECKS)
            finally:
                event.remove(engine, "before_cursor_execute", statement)
        finally:
            for stream in streams:
                stream.close()
        # Issued after check `first` completed and before check `first + CHECKS` did.
        window = [text for completed, text in issued if first <= completed < first + CHECKS]
        check = str(
            _statement(app.state.database.is_postgresql, True).compile(
                dialect=app.state.engine.dialect
            )
        )
        assert window == [check] * CHECKS
        default_interval = Settings.model_fields["events_check_seconds"].default
        assert len(window) / CHECKS * 60 / default_interval == 4


def _allow_open_files(count: int) -> None:
    """Both ends of every connection live in this process."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < count:
        assert hard >= count, f"this test needs {count} open files; the hard limit is {hard}"
        resource.setrlimit(resource.RLIMIT_NOFILE, (count, hard))
