"""A comment on every open stream that has sent nothing for `KEEPALIVE_SECONDS`.

Proxies and browsers drop a connection that stays silent, so each stream gets `: ping` once it
has been quiet that long. Streams are filed by the moment their ping falls due, and one task
for the whole process takes the due ones several times a second: each stream is looked at about
once per interval, whatever the number open, and the pings of streams opened together (a
reconnect storm) go out spread over the ticks instead of in one burst that would hold up
requests. With no stream to look at, the task sleeps until one is filed (an idle process does
not wake fifty times a second for nothing).
"""

from __future__ import annotations

import asyncio
import math
from collections import defaultdict

from live.stream import LiveStream

KEEPALIVE_SECONDS = 15.0
TICK_SECONDS = 0.02
# Pings written before other work gets a turn.
PINGS_AT_A_TIME = 50
LONGEST_CATCH_UP_TICKS = 10_000


class KeepAlive:
    def __init__(self) -> None:
        self._due: defaultdict[int, list[LiveStream]] = defaultdict(list)
        self._next_tick: int | None = None
        self._filed = asyncio.Event()
        self.ticks = 0  # how many times the task woke to look (the tests count them)

    def watch(self, stream: LiveStream) -> None:
        """Ping `stream` whenever it has been quiet for the interval, until it ends."""
        self._file(stream, stream.last_write + KEEPALIVE_SECONDS)

    def _file(self, stream: LiveStream, due: float) -> None:
        tick = math.ceil(due / TICK_SECONDS)
        if self._next_tick is not None:
            tick = max(tick, self._next_tick)  # never behind the ticks already taken
        self._due[tick].append(stream)
        self._filed.set()

    async def run(self) -> None:
        """Take the streams that fall due, forever (a background task)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._due:
                self._filed.clear()
                self._next_tick = None
                await self._filed.wait()
            await asyncio.sleep(TICK_SECONDS)
            self.ticks += 1
            now = loop.time()
            written = 0
            current = math.floor(now / TICK_SECONDS)
            first = current if self._next_tick is None else self._next_tick
            if current - first > LONGEST_CATCH_UP_TICKS:  # the loop was held up for long
                first = min(self._due, default=current)
            self._next_tick = current + 1
            for tick in range(first, current + 1):
                for stream in self._due.pop(tick, ()):
                    if stream.ended:
                        continue
                    due = stream.last_write + KEEPALIVE_SECONDS
                    if due <= now and stream.joined:
                        stream.keep_alive()
                        due, written = now + KEEPALIVE_SECONDS, written + 1
                        if written % PINGS_AT_A_TIME == 0:
                            await asyncio.sleep(0)
                    self._file(stream, max(due, now + TICK_SECONDS))
