"""Event-loop lag: a ticker asks to wake every half second and records how late it woke. A
loop held by blocking work (or too much of it) shows here before it shows anywhere else. Each
tick also runs `each_tick` (the pool's gauges are copied then)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from observability.metrics import LOOP_LAG

TICK_SECONDS = 0.5
TICKER_TASK_NAME = "event-loop-lag"


async def measure_loop_lag(
    each_tick: Callable[[], None] | None = None, tick_seconds: float = TICK_SECONDS
) -> None:
    """Runs until cancelled (a background task of the lifespan)."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + tick_seconds
        await asyncio.sleep(tick_seconds)
        LOOP_LAG.observe(max(0.0, loop.time() - due))
        if each_tick is not None:
            each_tick()
