"""`live/listener.py` on PostgreSQL: LISTEN while streams are open, wake on NOTIFY, reconnect
and catch up when the connection is killed."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from fastapi import FastAPI

from db import listen_target
from live.broker import ChangeBroker
from live.listener import LISTENER_NAME, ChangeListener
from tasks.changelog import CHANGES_CHANNEL


@pytest.fixture
def target(app: FastAPI):  # type: ignore[no-untyped-def]
    found = listen_target(app.state.settings)
    if found is None:
        pytest.skip("needs a direct PostgreSQL connection (set TEST_DATABASE_URL)")
    return found


async def _woken(subscription: object, within: float = 5.0) -> bool:
    try:
        async with asyncio.timeout(within):
            await subscription.wait()  # type: ignore[attr-defined]
    except TimeoutError:
        return False
    return True


async def test_listens_only_while_a_stream_is_open_and_wakes_its_owner(target) -> None:  # type: ignore[no-untyped-def]
    broker = ChangeBroker(max_streams_per_owner=5)
    listener = ChangeListener(target, broker)
    listener.start()
    try:
        await asyncio.sleep(0.2)
        assert not listener.listening.is_set(), "no stream: no connection"
        subscription = broker.subscribe("owner-1")
        async with asyncio.timeout(10):
            await listener.listening.wait()
        assert await _woken(subscription), "connecting wakes every stream (catch-up)"
        notifier = await asyncpg.connect(target.asyncpg_dsn(), ssl=target.connect_args.get("ssl"))
        try:
            await notifier.execute(f"NOTIFY {CHANGES_CHANNEL}, '7 someone-else'")
            assert not await _woken(subscription, within=0.3)
            await notifier.execute(f"NOTIFY {CHANGES_CHANNEL}, '8 owner-1'")
            assert await _woken(subscription)

            killed = await notifier.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                f"WHERE application_name = '{LISTENER_NAME}'"
            )
            assert killed >= 1
            assert await _woken(subscription), "a lost connection wakes every stream"
            async with asyncio.timeout(10):
                while not listener.listening.is_set():  # noqa: ASYNC110 (reconnect in progress)
                    await asyncio.sleep(0.05)
            await notifier.execute(f"NOTIFY {CHANGES_CHANNEL}, '9 owner-1'")
            assert await _woken(subscription), "listening again after reconnecting"
        finally:
            await notifier.close()
        broker.unsubscribe(subscription)
    finally:
        await listener.stop()
