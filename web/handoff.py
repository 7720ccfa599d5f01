"""Pure-ASGI middleware: a long-lived response lives on outside the request's chain.

An answer that stays open for hours (an event stream) would keep every layer of its request
alive all that time: the middleware's frames and closures, routing, FastAPI's dependency exit
stacks, the endpoint's own frames. Measured with uvicorn, that is about 11 KB per open response
for a bare FastAPI route and 15 KB with this app's middleware, on top of uvicorn's own 10 KB
(README Performance). Such a response starts as any other (its status and headers, and a first
chunk, go through every layer), then calls `hand_off` with the rest of itself and returns; once
the inner application has returned, this middleware runs that rest with the `receive` and
`send` it was given, holding nothing but its own frame.

It sits just inside `RequestContextMiddleware`, so the access line still comes when the
response ends, with its full duration, and an error in the rest is still logged with the
request's id. Without this middleware (an app that does not install it) `hand_off` says so and
the response runs the rest itself.

Requests that open such responses (`long_lived(scope)`) are also set up at most
`opening_at_once` at a time, before any of the app's work: when thousands reconnect at once (an
instance restarted), the rest wait their turn cheaply instead of each holding the event loop for
a share of its setup, so the process keeps answering its other requests meanwhile.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Receive, Scope, Send

HANDOFF = "todo.handoff"

Rest = Callable[[Receive, Send], Awaitable[None]]
# Keys the inner layers add to the scope that outer ones read once the response has ended.
KEPT_KEYS = frozenset({"route"})


class _Handoff:
    __slots__ = ("rest",)

    def __init__(self) -> None:
        self.rest: Rest | None = None


def hand_off(scope: Scope, rest: Rest) -> bool:
    """Have `rest(receive, send)` run once the application has returned; False when no
    `HandoffMiddleware` is there to run it (the caller runs it)."""
    handoff = scope.get(HANDOFF)
    if not isinstance(handoff, _Handoff):
        return False
    handoff.rest = rest
    return True


class HandoffMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        long_lived: Callable[[Scope], bool] = lambda _scope: False,
        opening_at_once: int = 64,
    ) -> None:
        self.app = app
        self.long_lived = long_lived
        self.opening_at_once = opening_at_once
        self._opening: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def _opening_turns(self) -> asyncio.Semaphore:
        """The semaphore of the running loop (a test suite runs one app on several loops)."""
        loop = asyncio.get_running_loop()
        if self._opening is None or self._opening[0] is not loop:
            self._opening = (loop, asyncio.Semaphore(self.opening_at_once))
        return self._opening[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        handoff = scope[HANDOFF] = _Handoff()
        left = _Leftovers(scope)
        if self.long_lived(scope):
            async with self._opening_turns():
                await self.app(scope, receive, send)
        else:
            await self.app(scope, receive, send)
        rest, handoff.rest = handoff.rest, None
        if rest is None:
            return
        left.forget()
        del left
        await rest(receive, send)


class _Leftovers:
    """What the inner layers add to the scope. Once they have returned it is of no use (their
    closed exit stacks, the request's dependencies), so it goes with them; the route stays,
    for the access line."""

    __slots__ = ("entry_keys", "scope")

    def __init__(self, scope: Scope) -> None:
        self.scope = scope
        self.entry_keys = set(scope)

    def forget(self) -> None:
        for key in set(self.scope) - self.entry_keys - KEPT_KEYS:
            del self.scope[key]
