"""`live/listener.py` on PostgreSQL: LISTEN while streams are open; a change notified reads the
owner's log (unless already read through its `seq`), a revocation notified checks the
subject's streams; a killed connection comes back and asks for a check of every stream."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from fastapi import FastAPI

from auth.scope import REVOCATIONS_CHANNEL
from db import listen_target
from live.broker import ChangeBroker
from live.listener import LISTENER_NAME, ChangeListener
from live.revalidation import Revalidation
from tasks.changelog import CHANGES_CHANNEL
from tests.live.test_broker import KeptStream, _encode


@pytest.fixture
def target(app: FastAPI):  # type: ignore[no-untyped-def]
    found = listen_target(app.state.settings)
    if found is None:
        pytest.skip("needs a direct PostgreSQL connection (set TEST_DATABASE_URL)")
    return found


class Calls:
    """What the listener asked of the broker and the checks."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.arrived = asyncio.Event()

    def recorder(self, name: str) -> Callable[..., None]:
        def record(*args: Any) -> None:
            self.calls.append((name, *args))
            self.arrived.set()

        return record

    async def next(self, within: float = 5.0) -> tuple[Any, ...]:
        async with asyncio.timeout(within):
            while not self.calls:
                self.arrived.clear()
                await self.arrived.wait()
        return self.calls.pop(0)


async def test_listens_while_a_stream_is_open_and_passes_on_what_it_hears(
    app: FastAPI,
    target,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    broker = ChangeBroker(app.state.database, max_streams_per_owner=5, encode=_encode)
    revalidation = Revalidation(broker, interval=3600)
    calls = Calls()
    monkeypatch.setattr(broker, "publish", calls.recorder("publish"))
    monkeypatch.setattr(revalidation, "check_owner", calls.recorder("check_owner"))
    monkeypatch.setattr(revalidation, "check_now", calls.recorder("check_now"))
    listener = ChangeListener(target, broker, revalidation)
    listener.start()
    try:
        await asyncio.sleep(0.2)
        assert not listener.listening.is_set(), "no stream: no connection"
        stream = KeptStream("owner-1")
        broker.register(stream)
        async with asyncio.timeout(10):
            await listener.listening.wait()
        assert await calls.next() == ("check_now",), "what LISTEN did not hear yet"
        notifier = await asyncpg.connect(target.asyncpg_dsn(), ssl=target.connect_args.get("ssl"))
        try:
            await notifier.execute(f"NOTIFY {CHANGES_CHANNEL}, '7 owner-1'")
            assert await calls.next() == ("publish", "owner-1", 7)
            await notifier.execute(f"NOTIFY {REVOCATIONS_CHANNEL}, 'owner-1'")
            assert await calls.next() == ("check_owner", "owner-1")
            killed = await notifier.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE application_name = '{LISTENER_NAME}'"
            )
            assert killed >= 1
            assert await calls.next(within=10) == ("check_now",), "a lost connection"
            assert await calls.next(within=10) == ("check_now",), "listening again"
            await notifier.execute(f"NOTIFY {CHANGES_CHANNEL}, '9 owner-1'")
            assert await calls.next() == ("publish", "owner-1", 9)
        finally:
            await notifier.close()
        broker.unregister(stream)
    finally:
        await listener.stop()
