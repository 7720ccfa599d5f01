"""Stream checks that arrive together share one statement.

The first check starts a statement at once; the checks that arrive while it runs wait and go
together in the next one. One stream opening alone costs one statement, as before; ten thousand
reconnecting at once (an instance restarted) cost a few dozen, and never more than one is in
flight for them, so the pool stays free for other requests.
"""

from __future__ import annotations

import asyncio

from db import Database
from tasks.stream_checks import StreamCheck, StreamState, check_streams

# The most checks one statement carries.
BATCH = 1_000


class BatchedChecks:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._waiting: list[tuple[StreamCheck, asyncio.Future[StreamState]]] = []
        self._running: asyncio.Task[None] | None = None

    async def check(self, check: StreamCheck) -> StreamState:
        future: asyncio.Future[StreamState] = asyncio.get_running_loop().create_future()
        self._waiting.append((check, future))
        if self._running is None:
            self._running = asyncio.create_task(self._run(), name="todo-live-checks")
        return await future

    async def _run(self) -> None:
        batch: list[tuple[StreamCheck, asyncio.Future[StreamState]]] = []
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:BATCH], self._waiting[BATCH:]
                try:
                    states = await check_streams(self.db, [check for check, _ in batch])
                except Exception as exc:  # each waiting caller sees it (a 503, most likely)
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), state in zip(batch, states, strict=True):
                    if not future.done():
                        future.set_result(state)
        except asyncio.CancelledError:  # the process stops: nobody waits forever
            for _, future in [*batch, *self._waiting]:
                future.cancel()
            self._waiting = []
            raise
        finally:
            self._running = None
