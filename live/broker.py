"""The process's registry of open event streams, and how they are woken."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field


class TooManyStreams(Exception):
    """The owner already has the most streams one process keeps open for one owner."""


@dataclass(eq=False)
class Subscription:
    """One open stream: woken when its owner's change log may have grown."""

    user_id: str
    _woken: asyncio.Event = field(default_factory=asyncio.Event)

    def wake(self) -> None:
        self._woken.set()

    async def wait(self) -> None:
        """Until woken (callers bound it with `asyncio.timeout`); then ready for the next."""
        try:
            await self._woken.wait()
        finally:
            self._woken.clear()


class ChangeBroker:
    """Streams by owner, at most `max_streams_per_owner` each (per process)."""

    def __init__(self, max_streams_per_owner: int) -> None:
        self.max_streams_per_owner = max_streams_per_owner
        self._streams: dict[str, set[Subscription]] = defaultdict(set)
        self.closing = asyncio.Event()
        # Set while any stream is open: only then is it worth listening for other processes.
        self.in_demand = asyncio.Event()

    def subscribe(self, user_id: str) -> Subscription:
        """A new stream of `user_id`'s changes (hand it back with `unsubscribe`)."""
        streams = self._streams[user_id]
        if len(streams) >= self.max_streams_per_owner:
            raise TooManyStreams
        subscription = Subscription(user_id)
        streams.add(subscription)
        self.in_demand.set()
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        streams = self._streams.get(subscription.user_id)
        if streams is None:
            return
        streams.discard(subscription)
        if not streams:
            del self._streams[subscription.user_id]
        if not self._streams:
            self.in_demand.clear()

    def open_streams(self, user_id: str) -> int:
        return len(self._streams.get(user_id, ()))

    def publish(self, user_id: str) -> None:
        """The owner's log may have grown: wake their streams."""
        for subscription in self._streams.get(user_id, ()):
            subscription.wake()

    def wake_all(self) -> None:
        """Notifications may have been missed (the listener reconnected): everyone catches up."""
        for streams in self._streams.values():
            for subscription in streams:
                subscription.wake()

    def close(self) -> None:
        """The process is shutting down: every stream ends (clients reconnect elsewhere)."""
        self.closing.set()
        self.wake_all()
