"""One open event stream as live sync sees it: whose it is, how far it has got, when it ends.

How its bytes reach the client is its subclass's (`routes/events.py` writes them to the HTTP
connection); the broker, the checks and the keep-alive only call `deliver`, `keep_alive` and
`end`. Kept small: a process holds one per open stream.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar

from auth.scope import OwnerScope
from database.types import utcnow
from tasks.changelog import END_OF_WRITE, Cursor


def complete_through(cursor: Cursor) -> int:
    """The last `seq` whose every entry is at or before `cursor` (a write's entries share it)."""
    return cursor.seq if cursor.task_id == END_OF_WRITE else cursor.seq - 1


class LiveStream(ABC):
    """`cursor`: the last event given (the client's `Last-Event-ID`). `through`: every change
    up to this `seq` has been given, so any entry after `cursor` belongs to a later write.
    Both are set when the stream is admitted (`ChangeBroker.admit`)."""

    __slots__ = (
        "cursor",
        "ended",
        "expires_at",
        "expiry",
        "joined",
        "last_write",
        "log_end",
        "scope",
        "through",
    )
    # What `keep_alive` writes (the subclass's wire format).
    keepalive_comment: ClassVar[bytes]

    def __init__(self, scope: OwnerScope, expires_at: datetime) -> None:
        self.scope = scope
        self.expires_at = expires_at
        self.cursor = Cursor(0)
        self.through = 0
        # The owner's last `seq` when the stream was admitted.
        self.log_end = 0
        # Handed every change the owner's shared reads find (after its own catch-up).
        self.joined = False
        self.ended = False
        self.last_write = asyncio.get_running_loop().time()
        # Ends the stream at its token's `exp` (set by the broker while it is registered).
        self.expiry: asyncio.TimerHandle | None = None

    @property
    def owner(self) -> str:
        return self.scope.user_id

    def seconds_left(self) -> float:
        """Until the token expires."""
        return (self.expires_at - utcnow()).total_seconds()

    def deliver(self, events: bytes, cursor: Cursor) -> None:
        """Encoded events, the last of which is at `cursor`."""
        if self.ended:
            return
        self.cursor = cursor
        self._emit(events)

    def keep_alive(self) -> None:
        """A comment that keeps proxies from dropping a quiet connection."""
        if not self.ended:
            self._emit(self.keepalive_comment)

    def end(self) -> None:
        """The stream ends (its token expired or was revoked, the process stops, its position
        left the log): the client reconnects, elsewhere perhaps, and resumes from its cursor."""
        if not self.ended:
            self.ended = True
            self.finish()

    def _emit(self, data: bytes) -> None:
        self.last_write = asyncio.get_running_loop().time()
        self.write(data)

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Queue `data` for the client, without waiting."""

    @abstractmethod
    def finish(self) -> None:
        """Close the stream once what is queued has been written, without waiting."""
