"""`routes/event_stream.py`: how a stream's bytes reach its connection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI
from starlette.types import Message

from auth.scope import OwnerScope
from routes.event_stream import MAX_UNSENT_BYTES, EventStream
from tasks.changelog import Cursor


class SlowClient:
    """A connection that takes whatever is sent only when told to."""

    def __init__(self) -> None:
        self.sent: list[Message] = []
        self.reading = asyncio.Event()

    async def send(self, message: Message) -> None:
        await self.reading.wait()
        self.sent.append(message)


def _stream(app: FastAPI) -> EventStream:
    scope = OwnerScope("slow", "key", datetime.now(UTC))
    return EventStream(app.state.broker, scope, datetime.now(UTC) + timedelta(hours=1))


async def _written(stream: EventStream) -> None:
    while stream._writing is not None:
        await stream._writing


async def test_what_is_queued_goes_out_in_one_write(app: FastAPI) -> None:
    stream, client = _stream(app), SlowClient()
    stream._send = client.send
    stream.deliver(b"one\n\n", Cursor(1, 1))
    stream.deliver(b"two\n\n", Cursor(2, 1))
    client.reading.set()
    await _written(stream)
    assert client.sent == [
        {"type": "http.response.body", "body": b"one\n\ntwo\n\n", "more_body": True}
    ]


async def test_an_ended_stream_writes_its_end_and_nothing_it_had_queued(app: FastAPI) -> None:
    """A revoked token gets nothing more; after SIGTERM the client resumes from its last id."""
    stream, client = _stream(app), SlowClient()
    stream._send = client.send
    stream.deliver(b"one\n\n", Cursor(1, 1))
    stream.end()
    stream.deliver(b"two\n\n", Cursor(2, 1))
    client.reading.set()
    await _written(stream)
    assert client.sent == [{"type": "http.response.body", "body": b"", "more_body": False}]


async def test_a_client_that_does_not_read_is_let_go(app: FastAPI) -> None:
    stream, client = _stream(app), SlowClient()
    stream._send = client.send
    event = b"x" * 1024
    for seq in range(MAX_UNSENT_BYTES // len(event) + 2):
        stream.deliver(event, Cursor(seq + 1, 1))
    assert stream.ended
    client.reading.set()
    await _written(stream)
    assert client.sent[-1] == {"type": "http.response.body", "body": b"", "more_body": False}
