"""bcrypt hashing, always off the event loop.

A bcrypt-12 hash costs about a quarter of a second of CPU; running it on the loop would stall
every other request, so both hashing and verification run in worker threads: at most one fewer
than the machine has cores, so a login storm always leaves a core to the event loop (and the
requests it serves) instead of queueing them behind bcrypt.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import anyio
from passlib.context import CryptContext

from observability.metrics import BCRYPT_IN_FLIGHT, BCRYPT_WAIT

T = TypeVar("T")


def hashing_threads() -> int:
    return max(1, (os.cpu_count() or 2) - 1)


class PasswordHasher:
    def __init__(self, rounds: int = 12, max_threads: int | None = None) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        self._limiter = anyio.CapacityLimiter(max_threads or hashing_threads())
        self._dummy_hash: str | None = None

    async def _in_thread(self, work: Callable[[], T]) -> T:
        """`work` in one of the hashing threads, measured: in flight from the ask to the end,
        and how long it waited for its thread."""
        asked = time.perf_counter()

        def measured() -> T:
            BCRYPT_WAIT.observe(time.perf_counter() - asked)
            return work()

        BCRYPT_IN_FLIGHT.inc()
        try:
            return await anyio.to_thread.run_sync(measured, limiter=self._limiter)
        finally:
            BCRYPT_IN_FLIGHT.dec()

    async def hash(self, password: str) -> str:
        return await self._in_thread(partial(self._context.hash, password))

    async def verify(self, password: str, password_hash: str) -> bool:
        return await self._in_thread(partial(self._context.verify, password, password_hash))

    async def prepare(self) -> None:
        """Compute the dummy hash used to equalise the cost of logins for unknown emails."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(os.urandom(16).hex())

    async def burn_verify(self, password: str) -> None:
        """Spend the same time as a real verification, for an email that has no account."""
        await self.prepare()
        assert self._dummy_hash is not None
        await self.verify(password, self._dummy_hash)
