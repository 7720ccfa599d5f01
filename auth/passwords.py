"""bcrypt hashing, always off the event loop.

A bcrypt-12 hash costs about a quarter of a second of CPU; running it on the loop would stall
every other request, so both hashing and verification run in worker threads, bounded so a login
storm cannot occupy every core.
"""

from __future__ import annotations

import os
from functools import partial

import anyio
from passlib.context import CryptContext


class PasswordHasher:
    def __init__(self, rounds: int = 12, max_threads: int | None = None) -> None:
        self._context = CryptContext(schemes=["bcrypt"], bcrypt__rounds=rounds)
        self._limiter = anyio.CapacityLimiter(max_threads or os.cpu_count() or 2)
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self._context.hash, password, limiter=self._limiter)

    async def verify(self, password: str, password_hash: str) -> bool:
        return await anyio.to_thread.run_sync(
            partial(self._context.verify, password, password_hash), limiter=self._limiter
        )

    async def prepare(self) -> None:
        """Compute the dummy hash used to equalise the cost of logins for unknown emails."""
        if self._dummy_hash is None:
            self._dummy_hash = await self.hash(os.urandom(16).hex())

    async def burn_verify(self, password: str) -> None:
        """Spend the same time as a real verification, for an email that has no account."""
        await self.prepare()
        assert self._dummy_hash is not None
        await self.verify(password, self._dummy_hash)
