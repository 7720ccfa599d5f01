"""Fixed-window counters kept in the database, so every instance of the API shares them.

Each counter is one row `(key, hits, window_started_at)`. Counting is a single
`INSERT ... ON CONFLICT DO UPDATE ... RETURNING` that either starts a new window or adds one hit,
so concurrent requests on any number of processes never lose a hit (PostgreSQL resolves the
conflict atomically; SQLite runs every transaction under `BEGIN IMMEDIATE`).

Keys are digests, so the table holds no email or address in clear.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from fastapi import HTTPException, status
from sqlalchemy import case, delete, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from database.types import UTCDateTime, utcnow
from db import insert_for
from models import RateLimitCounter
from observability.metrics import rate_limited


@dataclass(frozen=True, slots=True)
class Limit:
    """At most `max_hits` events per `window_seconds` for one key."""

    key: str
    max_hits: int
    window_seconds: int

    @property
    def kind(self) -> str:
        """What is limited (`login-email`, `ticket`, ...): the key's part before the digest."""
        return self.key.partition(":")[0]


def limit_key(kind: str, value: str) -> str:
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()}"


class TooManyRequests(HTTPException):
    def __init__(self, retry_after: int, what: str = "attempts") -> None:
        super().__init__(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Too many {what}; try again in {retry_after} seconds",
            headers={"Retry-After": str(retry_after)},
        )


def _seconds_left(window_started_at: datetime, window_seconds: int, now: datetime) -> int:
    ends = window_started_at + timedelta(seconds=window_seconds)
    return max(1, math.ceil((ends - now).total_seconds()))


async def ensure_within(session: AsyncSession, *limits: Limit) -> None:
    """Raise 429 when any of `limits` is already used up in its current window (one query)."""
    rows = await session.exec(
        select(
            RateLimitCounter.key, RateLimitCounter.hits, RateLimitCounter.window_started_at
        ).where(RateLimitCounter.key.in_([limit.key for limit in limits]))
    )
    by_key = {limit.key: limit for limit in limits}
    now = utcnow()
    retry_after, refusing = 0, ""
    for key, hits, window_started_at in rows.all():
        limit = by_key[key]
        if (
            hits >= limit.max_hits
            and window_started_at + timedelta(seconds=limit.window_seconds) > now
        ):
            seconds = _seconds_left(window_started_at, limit.window_seconds, now)
            if seconds > retry_after:
                retry_after, refusing = seconds, limit.kind
    if retry_after:
        rate_limited(refusing)
        raise TooManyRequests(retry_after)


def _count_statement(dialect_name: str, limit: Limit) -> Any:
    now = utcnow()
    window_start = literal(now, type_=UTCDateTime())
    expired = RateLimitCounter.window_started_at <= literal(
        now - timedelta(seconds=limit.window_seconds), type_=UTCDateTime()
    )
    return (
        insert_for(dialect_name)(RateLimitCounter)
        .values(key=limit.key, hits=1, window_started_at=now)
        .on_conflict_do_update(
            index_elements=["key"],
            set_={
                "hits": case((expired, 1), else_=RateLimitCounter.hits + 1),
                "window_started_at": case(
                    (expired, window_start), else_=RateLimitCounter.window_started_at
                ),
            },
        )
        .returning(RateLimitCounter.hits, RateLimitCounter.window_started_at)
    )


async def hit(session: AsyncSession, limit: Limit) -> tuple[int, datetime]:
    """Count one event for `limit.key` atomically: the hits and start of the current window."""
    statement = _count_statement(session.bind.dialect.name, limit)
    hits, window_started_at = (await session.exec(statement)).one()
    return hits, window_started_at


async def count_or_refuse(connection: AsyncConnection, limit: Limit, what: str) -> None:
    """`hit_or_refuse` on a connection of its own (one autocommitted statement)."""
    statement = _count_statement(connection.dialect.name, limit)
    hits, window_started_at = (await connection.execute(statement)).one()
    if hits > limit.max_hits:
        retry_after = _seconds_left(window_started_at, limit.window_seconds, utcnow())
        rate_limited(limit.kind)
        raise TooManyRequests(retry_after, what)


async def hit_or_refuse(session: AsyncSession, limit: Limit) -> None:
    """Count one event and raise 429 when it goes over the limit."""
    hits, window_started_at = await hit(session, limit)
    if hits > limit.max_hits:
        rate_limited(limit.kind)
        raise TooManyRequests(_seconds_left(window_started_at, limit.window_seconds, utcnow()))


async def reset(session: AsyncSession, key: str, stale_after_seconds: int) -> None:
    """Forget `key`, and purge every counter whose window ended long ago (one statement)."""
    stale = utcnow() - timedelta(seconds=stale_after_seconds)
    await session.exec(
        delete(RateLimitCounter).where(
            or_(RateLimitCounter.key == key, RateLimitCounter.window_started_at < stale)
        )
    )
