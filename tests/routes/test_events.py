"""`GET /api/{user_id}/events` (Server-Sent Events) and `POST …/events/tickets`.

httpx's ASGI transport buffers a whole response, so these tests serve the app with uvicorn on a
loopback port (in this process, without its own lifespan: the `app` fixture runs it) and read
the stream as a browser would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from httpx import AsyncClient
from sqlalchemy import update

import routes.events
from models import change_counters, event_tickets
from tests.helpers import Account, bearer, create_task, frontend_token
from tests.sse import WAIT, Stream


async def _eventually(condition: Callable[[], bool], within: float = WAIT) -> None:
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 (a condition of another object, no event to wait on)
            await asyncio.sleep(0.02)


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        lifespan="off",
        log_level="warning",
        timeout_graceful_shutdown=2,
    )
    serving = uvicorn.Server(config)
    task = asyncio.create_task(serving.serve())
    await _eventually(lambda: serving.started)
    port = serving.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    serving.should_exit = True
    await task


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
        monkeypatch.setattr("fastapi.routing._PING_INTERVAL", 0.2)
        async with Stream(http, events_url(alice), headers=alice.headers) as (_response, reader):
            await reader.next()
            ping = await reader.next(within=5)
            assert ping is not None and ping.event is None and ping.comments


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


class TestStreamEnds:
    async def test_when_its_token_is_revoked(
        self,
        http: httpx.AsyncClient,
        client: AsyncClient,
        alice: Account,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setattr(routes.events, "REVALIDATE_SECONDS", 0.3)
        async with Stream(http, events_url(alice), headers=alice.headers) as (_response, reader):
            await reader.next()
            await client.post("/api/auth/logout", headers=alice.headers)
            assert await reader.next_event(within=5) is None

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
