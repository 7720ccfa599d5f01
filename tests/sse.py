"""Reading Server-Sent Events as a browser does (shared by the live-event tests)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx

WAIT = 10.0


@dataclass
class Event:
    event: str | None = None
    id: str | None = None
    data: Any = None
    retry: int | None = None
    comments: list[str] = field(default_factory=list)


class EventReader:
    """Parses a text/event-stream response into events (comment-only blocks included)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.aiter_lines()

    async def next(self, within: float = WAIT) -> Event | None:
        """The next event, or None when the stream ended."""
        event = Event()
        seen = False
        async with asyncio.timeout(within):
            async for line in self._lines:
                if line == "":
                    if seen:
                        return event
                    continue
                seen = True
                name, _, value = line.partition(":")
                value = value.removeprefix(" ")
                if name == "":
                    event.comments.append(value)
                elif name == "data":
                    event.data = json.loads(value)
                elif name == "retry":
                    event.retry = int(value)
                else:
                    setattr(event, name, value)
        return event if seen else None

    async def next_event(self, within: float = WAIT) -> Event | None:
        """The next event that is not only a comment."""
        while True:
            event = await self.next(within)
            if event is None or event.event is not None:
                return event


class Stream:
    def __init__(self, http: httpx.AsyncClient, url: str, **kwargs: Any) -> None:
        self.http, self.url, self.kwargs = http, url, kwargs
        self.response: httpx.Response | None = None

    async def __aenter__(self) -> tuple[httpx.Response, EventReader]:
        request = self.http.build_request("GET", self.url, **self.kwargs)
        self.response = await self.http.send(request, stream=True)
        return self.response, EventReader(self.response)

    async def __aexit__(self, *_exc: object) -> None:
        assert self.response is not None
        await self.response.aclose()
