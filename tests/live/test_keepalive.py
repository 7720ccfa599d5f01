"""`live/keepalive.py`: quiet streams get a comment each interval; busy and ended ones do not."""

from __future__ import annotations

import asyncio

import pytest

from live.keepalive import KeepAlive
from tasks.changelog import Cursor
from tests.live.test_broker import KeptStream


async def test_only_quiet_streams_are_pinged(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("live.keepalive.KEEPALIVE_SECONDS", 0.5)  # busy: a write each 0.02 s
    monkeypatch.setattr("live.keepalive.TICK_SECONDS", 0.01)
    quiet, busy, ended = KeptStream("a"), KeptStream("b"), KeptStream("c")
    keepalive = KeepAlive()
    for stream in (quiet, busy, ended):
        stream.joined = True
        keepalive.watch(stream)
    ended.end()
    running = asyncio.create_task(keepalive.run())
    try:
        async with asyncio.timeout(10):
            while quiet.ids.count("ping") < 2:
                busy.deliver(b"event\n", Cursor(1))  # traffic keeps a stream from being quiet
                await asyncio.sleep(0.02)
    finally:
        running.cancel()
    assert "ping" not in busy.ids
    assert ended.ids == []
    assert all(ended not in streams for streams in keepalive._due.values()), "forgotten"


async def test_with_no_stream_to_look_at_the_task_sleeps(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("live.keepalive.KEEPALIVE_SECONDS", 0.05)
    monkeypatch.setattr("live.keepalive.TICK_SECONDS", 0.01)
    keepalive = KeepAlive()
    running = asyncio.create_task(keepalive.run())
    try:
        await asyncio.sleep(0.2)
        assert keepalive.ticks == 0, "no stream: no tick"
        stream = KeptStream("a")
        stream.joined = True
        keepalive.watch(stream)
        async with asyncio.timeout(10):
            while "ping" not in stream.ids:  # noqa: ASYNC110 (the stream's own list)
                await asyncio.sleep(0.01)
        stream.end()
        async with asyncio.timeout(10):
            while keepalive._due:  # noqa: ASYNC110 (the ended stream is dropped at its tick)
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        ticks = keepalive.ticks
        await asyncio.sleep(0.2)
        assert keepalive.ticks == ticks, "asleep again once the last stream ended"
    finally:
        running.cancel()
