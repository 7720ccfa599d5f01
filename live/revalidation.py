"""Every open stream checked together: one statement every `EVENTS_CHECK_SECONDS`, however many.

It asks, for each token the open streams carry, whether it still holds, and for each owner
whether the log moved past the position this process has read. So a token revoked without a
notification reaching this process (another instance's revocation while LISTEN was down, a
deployment behind a pooler without `DATABASE_DIRECT_URL`) ends its streams within the
interval, and a change whose notification was lost reaches its streams within it too. Nothing
runs while no stream is open. A revocation that is notified (this process's own, or another's
through LISTEN) checks that owner's streams at once, and a LISTEN connection that was lost and
is back asks for a check at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from auth.scope import OwnerScope
from db import is_database_unavailable
from live.broker import ChangeBroker
from live.stream import LiveStream
from tasks.changelog import END_OF_WRITE, Cursor
from tasks.stream_checks import StreamCheck, StreamState, notable_streams

logger = logging.getLogger("todo.live")

# Owners gathered for the check before other work gets a turn.
OWNERS_AT_A_TIME = 250
# After every entry any log can hold (`seq` has 18 digits at most).
END_OF_TIME = Cursor(10**18, END_OF_WRITE)


class Revalidation:
    def __init__(self, broker: ChangeBroker, interval: float) -> None:
        self.broker = broker
        self.interval = interval
        # Completed checks of every stream (tests count the statements between two of them).
        self.completed = 0
        self._asked = asyncio.Event()
        self._owner_checks: set[asyncio.Task[None]] = set()

    def check_now(self) -> None:
        """Check every stream without waiting for the interval."""
        self._asked.set()

    def check_owner(self, user_id: str) -> None:
        """A revocation of `user_id`'s tokens may have been committed: check their streams."""
        if not self.broker.streams_of(user_id):
            return
        task = asyncio.create_task(self._check_owner(user_id), name="todo-live-revocation")
        self._owner_checks.add(task)
        task.add_done_callback(self._owner_checks.discard)

    async def run(self) -> None:
        """The check every `interval` while streams are open (a background task)."""
        while True:
            await self.broker.in_demand.wait()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._asked.wait(), self.interval)
            self._asked.clear()
            if not self.broker.in_demand.is_set():
                continue
            try:
                await self.check_all()
            except Exception as exc:
                if is_database_unavailable(exc):
                    logger.warning("open event streams not checked: database unavailable: %r", exc)
                else:
                    logger.exception("open event streams not checked")

    async def check_all(self) -> None:
        """One statement for every open stream's token and owner."""
        checks: list[StreamCheck] = []
        for number, (_owner, cursor, streams) in enumerate(self.broker.groups(), 1):
            # A group not yet started has no position to compare: its streams' tokens only.
            after = cursor or END_OF_TIME
            checks.extend(StreamCheck(scope, after) for scope in _scopes(streams))
            if number % OWNERS_AT_A_TIME == 0:
                await asyncio.sleep(0)  # thousands of owners: let requests in meanwhile
        notable = await notable_streams(self.broker.db, checks)
        for index, state in notable.items():
            self._apply(checks[index], state)
        self.completed += 1

    async def _check_owner(self, user_id: str) -> None:
        scopes = _scopes(self.broker.streams_of(user_id))
        checks = [StreamCheck(scope, END_OF_TIME) for scope in scopes]
        try:
            states = await asyncio.gather(*(self.broker.checks.check(check) for check in checks))
        except Exception as exc:
            if is_database_unavailable(exc):
                logger.warning("a revocation not checked: database unavailable: %r", exc)
            else:
                logger.exception("a revocation not checked")
            return
        for check, state in zip(checks, states, strict=True):
            if not state.allowed:
                self._end(check.scope)

    def _apply(self, check: StreamCheck, state: StreamState) -> None:
        owner = check.scope.user_id
        if not state.allowed:
            self._end(check.scope)
        if state.purged_through > check.after.seq:
            for stream in self.broker.streams_of(owner):
                stream.end()
        elif state.newer:
            self.broker.publish(owner, state.seq)

    def _end(self, scope: OwnerScope) -> None:
        for stream in self.broker.streams_of(scope.user_id):
            if stream.scope == scope:
                stream.end()


def _scopes(streams: list[LiveStream]) -> list[OwnerScope]:
    return list(dict.fromkeys(stream.scope for stream in streams))
