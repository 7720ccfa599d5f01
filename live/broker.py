"""The process's registry of open event streams, and the one read of each change they share.

Streams are grouped by owner. When an owner's log grows (a write in this process, a
notification from another, the periodic check finding it moved), the owner's group reads the
new entries once, encodes each once, and hands the same bytes to every stream of the owner in
this process: one read of a change per process, however many tabs are open. A stream that
opens behind the group (a reconnect with `Last-Event-ID` after changes it missed) first catches
up from the log on its own, then joins. A wake-up carries no data, so a lost one only delays
an event: the log is the truth, this is a cache of reads.

Whether a stream may open (its token, its cursor's age) is asked in `admit`, in one statement
shared by every stream opening at that moment (`live.checks`).
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from auth.scope import TokenRevoked
from db import Database, is_database_unavailable
from live.checks import BatchedChecks
from live.keepalive import KeepAlive
from live.stream import LiveStream, complete_through
from observability import metrics as live_metrics
from tasks.changelog import Cursor
from tasks.errors import CursorExpired
from tasks.feed import LogEntry, OwnerLog, read_owner_log
from tasks.stream_checks import StreamCheck

logger = logging.getLogger("todo.live")

# Entries per read of the log (a stream far behind catches up in pages).
READ_PAGE = 500

Encoder = Callable[[LogEntry], bytes]


class TooManyStreams(Exception):
    """The owner already has the most streams one process keeps open for one owner."""


class InstanceFull(Exception):
    """This process already holds the most streams it can (`live.capacity`)."""


@dataclass(eq=False, slots=True)
class OwnerStreams:
    """One owner's streams in this process and their shared position in the owner's log.

    `cursor` is where the next shared read starts: every entry up to it has been handed to the
    joined streams (None until the first stream is admitted). A wake with a `seq` the group
    already read through costs nothing; one without (a write in this process) reads.
    """

    owner: str
    streams: list[LiveStream] = field(default_factory=list)
    cursor: Cursor | None = None
    reading: asyncio.Task[None] | None = None
    read_again: bool = False
    wanted_seq: int = 0

    def joined(self) -> list[LiveStream]:
        return [stream for stream in self.streams if stream.joined]


class ChangeBroker:
    """Streams by owner, at most `max_streams_per_owner` each and `max_streams` in all (per
    process)."""

    def __init__(
        self,
        db: Database,
        max_streams_per_owner: int,
        encode: Encoder,
        max_streams: int = sys.maxsize,
    ) -> None:
        self.db = db
        self.max_streams_per_owner = max_streams_per_owner
        self.max_streams = max_streams
        self.open_count = 0
        self.encode = encode
        self.checks = BatchedChecks(db)
        self.keepalive = KeepAlive()
        self._owners: dict[str, OwnerStreams] = {}
        self.closing = asyncio.Event()
        # Set while any stream is open: only then is it worth listening for other processes.
        self.in_demand = asyncio.Event()
        # Set while this process hears every write's notification, its own included (LISTEN).
        self.listening = asyncio.Event()

    # ---- opening and closing ---------------------------------------------------------------

    def register(self, stream: LiveStream) -> None:
        """Count `stream` against its owner's limit (hand it back with `unregister`)."""
        if self.open_count >= self.max_streams:
            raise InstanceFull
        owner = self._owners.get(stream.owner)
        if owner is None:
            owner = self._owners[stream.owner] = OwnerStreams(stream.owner)
        if len(owner.streams) >= self.max_streams_per_owner:
            raise TooManyStreams
        owner.streams.append(stream)
        self.open_count += 1
        live_metrics.stream_opened()
        self.in_demand.set()
        loop = asyncio.get_running_loop()
        stream.expiry = loop.call_at(loop.time() + stream.seconds_left(), stream.end)
        self.keepalive.watch(stream)

    def unregister(self, stream: LiveStream) -> None:
        if stream.expiry is not None:
            stream.expiry.cancel()
            stream.expiry = None
        stream.joined = False
        owner = self._owners.get(stream.owner)
        if owner is None or stream not in owner.streams:
            return
        owner.streams.remove(stream)
        self.open_count -= 1
        live_metrics.stream_closed()
        if not owner.streams:
            del self._owners[stream.owner]
        if not self._owners:
            self.in_demand.clear()

    async def admit(self, stream: LiveStream, since: Cursor | None) -> None:
        """Check the stream's token and starting point (a statement shared with the streams
        opening meanwhile) and set where it starts: after `since`, or at the log's end.

        Raises `TokenRevoked`, or `CursorExpired` when the log no longer reaches `since`.
        """
        state = await self.checks.check(StreamCheck(stream.scope, since or Cursor(0, 0)))
        if not state.allowed:
            raise TokenRevoked
        stream.log_end = state.seq
        if since is None:
            stream.cursor, stream.through = Cursor(state.seq), state.seq
            return
        if since.seq < state.purged_through:
            raise CursorExpired
        stream.cursor = since
        stream.through = complete_through(since) if state.newer else max(state.seq, since.seq)

    async def join(self, stream: LiveStream) -> None:
        """Catch `stream` up with its owner's group (from the log, if it is behind), then hand
        it every change the group reads from now on."""
        owner = self._owners.get(stream.owner)
        if owner is None or stream not in owner.streams:
            return
        if owner.cursor is None:
            owner.cursor = Cursor(stream.through)
        while not stream.ended and stream.through < complete_through(owner.cursor):
            if not await self._catch_up(stream):
                return
        if stream.ended or self.closing.is_set():
            stream.end()
            return
        stream.joined = True
        if stream.log_end > complete_through(owner.cursor):
            # The log had changes the group has not read (or the group starts behind with this
            # stream): the group's read hands them to it.
            self.publish(stream.owner)

    async def _catch_up(self, stream: LiveStream) -> bool:
        """One page of what `stream` missed; False when it ended instead."""
        log = await self._read(stream.owner, stream.cursor, [stream])
        if log is None:
            return False
        self._deliver(log.entries, [stream])
        if len(log.entries) < READ_PAGE:
            stream.through = max(stream.through, log.seq)
        elif log.entries:
            stream.through = max(stream.through, log.entries[-1].cursor.seq - 1)
        return True

    def close(self) -> None:
        """The process is shutting down: every stream ends (clients reconnect elsewhere)."""
        self.closing.set()
        for stream in list(self.streams()):
            stream.end()

    # ---- what the rest of the process asks -------------------------------------------------

    def open_streams(self, user_id: str) -> int:
        owner = self._owners.get(user_id)
        return len(owner.streams) if owner is not None else 0

    def streams(self) -> Iterator[LiveStream]:
        for owner in list(self._owners.values()):
            yield from owner.streams

    def groups(self) -> Iterator[tuple[str, Cursor | None, list[LiveStream]]]:
        """Each owner's shared position (None before its first stream joined) and streams."""
        for owner in list(self._owners.values()):
            yield owner.owner, owner.cursor, list(owner.streams)

    def streams_of(self, user_id: str) -> list[LiveStream]:
        owner = self._owners.get(user_id)
        return list(owner.streams) if owner is not None else []

    # ---- the shared reads ------------------------------------------------------------------

    def changed_here(self, user_id: str) -> None:
        """A write of this process committed. While listening, its notification (which says
        how far the log went) is what reads; otherwise (SQLite, no LISTEN) read now."""
        if not self.listening.is_set():
            self.publish(user_id)

    def publish(self, user_id: str, seq: int | None = None) -> None:
        """The owner's log may have grown (to `seq`, when known): read it, once."""
        owner = self._owners.get(user_id)
        if owner is None or owner.cursor is None:
            return
        if seq is None:
            owner.read_again = True
        elif seq > complete_through(owner.cursor):
            owner.wanted_seq = max(owner.wanted_seq, seq)
        else:
            return
        if owner.reading is None:
            owner.reading = asyncio.create_task(self._reads(owner), name="todo-live-read")

    def _wanted(self, owner: OwnerStreams) -> bool:
        assert owner.cursor is not None
        return owner.read_again or owner.wanted_seq > complete_through(owner.cursor)

    async def _reads(self, owner: OwnerStreams) -> None:
        try:
            while self._wanted(owner) and self._owners.get(owner.owner) is owner:
                owner.read_again = False
                if not await self._shared_read(owner):
                    return
        finally:
            owner.reading = None

    async def _shared_read(self, owner: OwnerStreams) -> bool:
        """Read the owner's log after the group's position, page by page, and hand it to every
        joined stream; False when the reading failed (its streams were ended)."""
        while True:
            assert owner.cursor is not None
            log = await self._read(owner.owner, owner.cursor, owner.joined())
            if log is None:
                return False
            self._deliver(log.entries, owner.joined())
            if len(log.entries) == READ_PAGE:
                owner.cursor = log.entries[-1].cursor
                continue
            end_of_log = Cursor(log.seq)
            last = log.entries[-1].cursor if log.entries else owner.cursor
            owner.cursor = max(last, end_of_log, owner.cursor)
            return True

    async def _read(
        self, user_id: str, after: Cursor, readers: list[LiveStream]
    ) -> OwnerLog | None:
        """The log after `after`; None, with `readers` ended, when it cannot be read or no
        longer reaches back to `after` (they reconnect and are told why)."""
        try:
            log = await read_owner_log(self.db, user_id, after, READ_PAGE)
        except Exception as exc:
            if is_database_unavailable(exc):
                logger.warning("event streams end: database unavailable: %r", exc)
            else:
                logger.exception("event streams end: the change log could not be read")
            for stream in readers:
                stream.end()
            return None
        if after.seq < log.purged_through:
            for stream in readers:
                stream.end()
            return None
        return log

    def _deliver(self, entries: list[LogEntry], streams: list[LiveStream]) -> None:
        """Encode each entry once; every stream gets those after its own cursor."""
        if not entries or not streams:
            return
        encoded = [self.encode(entry) for entry in entries]
        everything = b"".join(encoded)
        last = entries[-1].cursor
        delivered = 0
        for stream in streams:
            if stream.cursor < entries[0].cursor:
                stream.deliver(everything, last)
                delivered += len(encoded)
            elif stream.cursor < last:
                after = stream.cursor
                later = [
                    data
                    for entry, data in zip(entries, encoded, strict=True)
                    if entry.cursor > after
                ]
                stream.deliver(b"".join(later), last)
                delivered += len(later)
        live_metrics.events_delivered(delivered)
