"""`web/handoff.py`: a response goes on after the application that started it has returned."""

from __future__ import annotations

import asyncio
from typing import Any

from httpx import ASGITransport, AsyncClient
from starlette.types import Receive, Scope, Send

from web.handoff import HandoffMiddleware, hand_off


class LongLived:
    """Starts a response, hands the rest of it off, returns; notes what the rest saw."""

    def __init__(self) -> None:
        self.returned = False
        self.handed_off: bool | None = None
        self.scope_in_rest: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = "the route"
        scope["inner_stack"] = object()

        async def rest(_receive: Receive, rest_send: Send) -> None:
            self.scope_in_rest = dict(scope)
            assert self.returned, "the rest runs once the application has returned"
            await rest_send({"type": "http.response.body", "body": b"rest", "more_body": False})

        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"first ", "more_body": True})
            self.handed_off = hand_off(scope, rest)
            if not self.handed_off:
                await rest(receive, send)
        finally:
            self.returned = True


async def test_the_rest_runs_after_the_application_returned() -> None:
    app = LongLived()
    async with AsyncClient(
        transport=ASGITransport(HandoffMiddleware(app)), base_url="http://t"
    ) as client:
        response = await client.get("/")
    assert response.text == "first rest"
    assert app.handed_off is True
    assert app.scope_in_rest["route"] == "the route", "kept for the access line"
    assert "inner_stack" not in app.scope_in_rest, "what the inner layers left goes"


async def test_without_the_middleware_the_response_runs_the_rest_itself() -> None:
    app = LongLived()
    app.returned = True  # nothing returns before the rest here
    async with AsyncClient(transport=ASGITransport(app), base_url="http://t") as client:
        response = await client.get("/")
    assert response.text == "first rest"
    assert app.handed_off is False


async def test_long_lived_requests_are_set_up_a_few_at_a_time() -> None:
    """In a reconnect storm the opens beyond the limit wait before any of the app's work;
    other requests do not wait for them."""
    setting_up = most = 0
    release = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal setting_up, most
        if scope["path"] == "/stream":
            setting_up += 1
            most = max(most, setting_up)
            await release.wait()
            setting_up -= 1
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    middleware = HandoffMiddleware(
        app, long_lived=lambda scope: scope["path"] == "/stream", opening_at_once=2
    )
    async with AsyncClient(transport=ASGITransport(middleware), base_url="http://t") as client:
        opening = [asyncio.create_task(client.get("/stream")) for _ in range(5)]
        async with asyncio.timeout(5):
            while setting_up < 2:  # noqa: ASYNC110 (a counter of the app's, no event to wait on)
                await asyncio.sleep(0.01)
        other = await asyncio.wait_for(client.get("/other"), 5)
        assert other.status_code == 200
        assert (setting_up, most) == (2, 2)
        release.set()
        assert [(await response).status_code for response in opening] == [200] * 5
    assert most == 2
