"""LISTEN on PostgreSQL for the changes other processes commit, on one dedicated connection.

Every task write sends `NOTIFY todo_task_changes, '<seq> <owner>'` from its own statement
(delivered when it commits); this process's listener wakes that owner's streams. It listens only
while this process has open streams (and a little after the last one closes), so an idle API
does not keep a scale-to-zero database awake. LISTEN needs a
direct connection: a transaction-mode pooler (Neon's `-pooler` endpoint, PgBouncer) hands each
transaction another server connection and silently drops it. When the connection drops (a
restart, Neon suspending an idle compute, `pg_terminate_backend`), the listener reconnects with
backoff and wakes every stream, which then catches up from its cursor: a notification is a
hint, never the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from database.url import DatabaseTarget
from live.broker import ChangeBroker
from tasks.changelog import CHANGES_CHANNEL

logger = logging.getLogger("todo.live")

FIRST_RETRY_SECONDS = 0.5
LONGEST_RETRY_SECONDS = 30.0
# A connection lost without a word (a network gone, a suspended compute) shows at the next ping.
PING_EVERY_SECONDS = 15.0
PING_TIMEOUT_SECONDS = 5.0
# The listener's `application_name` in pg_stat_activity.
LISTENER_NAME = "todo-listener"
# How long the connection stays after the last stream closed (streams come and go in bursts).
LINGER_SECONDS = 60.0


class ChangeListener:
    def __init__(self, target: DatabaseTarget, broker: ChangeBroker) -> None:
        self.target = target
        self.broker = broker
        self.listening = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="todo-change-listener")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        _seq, _, owner = payload.partition(" ")
        self.broker.publish(owner)

    async def _connect(self) -> asyncpg.Connection:
        arguments = {
            key: value
            for key, value in self.target.connect_args.items()
            if key in ("ssl", "timeout", "direct_tls")
        }
        return await asyncpg.connect(
            self.target.asyncpg_dsn(),
            server_settings={"application_name": LISTENER_NAME},
            **arguments,
        )

    async def _run(self) -> None:
        delay = FIRST_RETRY_SECONDS
        while not self._stopping.is_set():
            if not await self._until(self.broker.in_demand):
                return
            try:
                connection = await self._connect()
            except Exception as exc:  # any failure to connect is retried the same way
                logger.warning("cannot LISTEN yet (retrying in %.1f s): %r", delay, exc)
                await self._pause(delay)
                delay = min(delay * 2, LONGEST_RETRY_SECONDS)
                continue
            delay = FIRST_RETRY_SECONDS
            try:
                await self._listen(connection)
            finally:
                self.listening.clear()
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)
            # Whatever was committed while nobody listened: every stream looks again.
            self.broker.wake_all()

    async def _listen(self, connection: asyncpg.Connection) -> None:
        """Listen until the connection is lost, the process stops, or no stream has been open
        for LINGER_SECONDS."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(CHANGES_CHANNEL, self._notified)
        self.listening.set()
        # Changes committed before LISTEN took effect reach no one otherwise.
        self.broker.wake_all()
        logger.info("listening for task changes on %s", CHANGES_CHANNEL)
        idle_since: float | None = None
        while not lost.is_set() and not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(lost.wait(), PING_EVERY_SECONDS)
                continue
            if self.broker.in_demand.is_set():
                idle_since = None
            else:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since >= LINGER_SECONDS:
                    logger.info("no stream open: no longer listening")
                    return
            try:
                await connection.execute("SELECT 1", timeout=PING_TIMEOUT_SECONDS)
            except Exception as exc:
                logger.warning("the LISTEN connection failed its ping: %r", exc)
                return
        if lost.is_set():
            logger.warning("the LISTEN connection was lost; reconnecting")

    async def _until(self, event: asyncio.Event) -> bool:
        """Wait for `event`; False when the listener is stopped first."""
        stopped = asyncio.create_task(self._stopping.wait())
        wanted = asyncio.create_task(event.wait())
        await asyncio.wait({stopped, wanted}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        wanted.cancel()
        return not self._stopping.is_set()

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
