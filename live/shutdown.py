"""Ending open event streams when the process is asked to stop.

uvicorn, on SIGTERM or SIGINT, stops accepting connections and waits for the open ones to finish
before it runs the lifespan's shutdown; an event stream never finishes on its own, so the
process would wait for it forever (or until `--timeout-graceful-shutdown` cuts everything).
This hook sees the signal first: it tells the streams to end (their clients reconnect, to
another instance), then hands the signal on to whoever had it (uvicorn), which drains as usual.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def on_termination(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` (on the running loop) when SIGTERM or SIGINT arrives, then pass the
    signal on to the previous handler. Outside the main thread signals cannot be caught: no-op."""
    loop = asyncio.get_running_loop()
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(callback)
        earlier = previous.get(signum)
        if callable(earlier):
            earlier(signum, frame)
        elif earlier == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    try:
        for sig in SIGNALS:
            previous[sig] = signal.signal(sig, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        for sig, earlier in previous.items():
            signal.signal(sig, earlier)
