"""An open event stream on its HTTP connection: the `text/event-stream` response and its writer.

The response sends its status, headers and first comment through the whole request chain like
any other, then hands the rest of itself off (`web.handoff`): from there the connection costs
the server's own objects and this stream, not a suspended request chain. The stream waits for
the client to go away; what it sends is pushed to it (the broker's shared reads, the keep-alive)
and written by a short task only while there is something to write. Ending it writes the end of
the body; the server then answers its pending `receive` with a disconnect and the stream is
gone.

The wire format is `fastapi.sse`'s (`format_sse_event`): events `task.created`, `task.updated`
(the task) and `task.deleted` (`{"id": ...}`), each with its log position as `id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from fastapi.sse import KEEPALIVE_COMMENT, format_sse_event
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from auth.scope import OwnerScope
from live.broker import ChangeBroker
from live.stream import LiveStream
from models import ChangeKind
from schemas import DeletedTask, TaskRead
from tasks.feed import LogEntry
from web.handoff import hand_off

logger = logging.getLogger("todo.events")

# How long a client waits before reconnecting.
RETRY_MILLISECONDS = 2_000
FIRST_CHUNK = format_sse_event(comment="live", retry=RETRY_MILLISECONDS)
# A client that reads slower than its events come is let go past this much unsent data (it
# reconnects and catches up from the log).
MAX_UNSENT_BYTES = 1024 * 1024


def encode_event(entry: LogEntry) -> bytes:
    """One change as an SSE event (encoded once per process, whatever the number of streams)."""
    if entry.kind is ChangeKind.deleted:
        data = DeletedTask(id=entry.task["id"]).model_dump_json()
    else:
        data = TaskRead.model_validate(entry.task).model_dump_json()
    return format_sse_event(
        data_str=data, event=f"task.{entry.kind.value}", id=entry.cursor.encode()
    )


class EventStream(LiveStream):
    """A stream written to an ASGI connection."""

    __slots__ = ("_complete", "_send", "_unsent", "_unsent_bytes", "_writing", "broker")
    keepalive_comment = KEEPALIVE_COMMENT

    def __init__(self, broker: ChangeBroker, scope: OwnerScope, expires_at: datetime) -> None:
        super().__init__(scope, expires_at)
        self.broker = broker
        self._send: Send | None = None
        self._unsent: list[bytes] = []
        self._unsent_bytes = 0
        self._writing: asyncio.Task[None] | None = None
        self._complete = False

    def write(self, data: bytes) -> None:
        self._unsent.append(data)
        self._unsent_bytes += len(data)
        if self._unsent_bytes > MAX_UNSENT_BYTES:
            self.end()
            return
        self._start_writing()

    def finish(self) -> None:
        self._start_writing()

    def _start_writing(self) -> None:
        if self._writing is None and self._send is not None and not self._complete:
            self._writing = asyncio.create_task(self._write(self._send))

    async def _write(self, send: Send) -> None:
        """Write what is queued, then the body's end if the stream ended."""
        try:
            while self._unsent and not self.ended:
                chunk = b"".join(self._unsent)
                self._unsent.clear()
                self._unsent_bytes = 0
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if self.ended:
                self._complete = True
                self._unsent.clear()
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        except Exception as exc:  # the connection is gone: `receive` says so to `run`
            logger.debug("event stream write failed: %r", exc)
            self._complete = True
        finally:
            self._writing = None

    async def run(self, receive: Receive, send: Send) -> None:
        """Catch up, then live until the client leaves or the stream ends."""
        self._send = send
        try:
            await self.broker.join(self)
            self._start_writing()
            while (await receive())["type"] != "http.disconnect":
                pass
        finally:
            self.ended = True
            self.broker.unregister(self)
            if self._writing is not None:
                self._writing.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._writing


class EventStreamResponse(Response):
    """`text/event-stream`: the first comment, then the stream (none for `HEAD`)."""

    media_type = "text/event-stream"

    def __init__(self, stream: EventStream | None) -> None:
        self.stream = stream
        self.status_code = 200
        self.background = None
        self.init_headers({"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        stream = self.stream
        try:
            await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
            if stream is None:
                await send({"type": "http.response.body", "body": b"", "more_body": False})
                return
            await send({"type": "http.response.body", "body": FIRST_CHUNK, "more_body": True})
        except BaseException:
            if stream is not None:
                stream.broker.unregister(stream)
            raise
        if not hand_off(scope, stream.run):
            await stream.run(receive, send)
