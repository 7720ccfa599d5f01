"""LISTEN on PostgreSQL for what other processes commit, on one dedicated connection.

Every task write sends `NOTIFY todo_task_changes, '<seq> <owner>'` from its own statement
(delivered when it commits); the listener has that owner's streams read the log, once, unless
this process already read through `seq`. Every revocation (logout, password change, account
deletion) sends `NOTIFY todo_token_revocations, '<subject>'`; the listener has that subject's
streams checked. It listens only while this process has open streams (and a little after the
last one closes), so an idle API does not keep a scale-to-zero database awake. LISTEN needs a
direct connection: a transaction-mode pooler (Neon's `-pooler` endpoint, PgBouncer) hands each
transaction another server connection and silently drops it. When the connection drops (a
restart, Neon suspending an idle compute, `pg_terminate_backend`), the listener reconnects with
backoff and asks for a check of every stream, which finds the owners whose log moved and the
tokens revoked meanwhile: a notification is a hint, never the data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from auth.scope import REVOCATIONS_CHANNEL
from database.url import DatabaseTarget
from live.broker import ChangeBroker
from live.revalidation import Revalidation
from observability import metrics as live_metrics
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
    def __init__(
        self, target: DatabaseTarget, broker: ChangeBroker, revalidation: Revalidation
    ) -> None:
        self.target = target
        self.broker = broker
        self.revalidation = revalidation
        self.listening = broker.listening
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

    def _changed(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        seq, _, owner = payload.partition(" ")
        self.broker.publish(owner, int(seq) if seq.isdigit() else None)

    def _revoked(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        self.revalidation.check_owner(payload)

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
                live_metrics.listen_reconnects("connect_failed")
                await self._pause(delay)
                delay = min(delay * 2, LONGEST_RETRY_SECONDS)
                continue
            delay = FIRST_RETRY_SECONDS
            try:
                await self._listen(connection)
            finally:
                self.listening.clear()
                live_metrics.listening(False)
                with contextlib.suppress(Exception):
                    await connection.close(timeout=1)
            # Whatever was committed while nobody listened: every stream is checked.
            self.revalidation.check_now()

    async def _listen(self, connection: asyncpg.Connection) -> None:
        """Listen until the connection is lost, the process stops, or no stream has been open
        for LINGER_SECONDS."""
        lost = asyncio.Event()
        connection.add_termination_listener(lambda _connection: lost.set())
        await connection.add_listener(CHANGES_CHANNEL, self._changed)
        await connection.add_listener(REVOCATIONS_CHANNEL, self._revoked)
        self.listening.set()
        live_metrics.listening(True)
        # What was committed before LISTEN took effect reaches no one otherwise.
        self.revalidation.check_now()
        logger.info("listening for task changes and revocations")
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
                live_metrics.listen_reconnects("ping_failed")
                return
        if lost.is_set():
            logger.warning("the LISTEN connection was lost; reconnecting")
            live_metrics.listen_reconnects("lost")

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
