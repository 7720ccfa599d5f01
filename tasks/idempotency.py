"""Idempotency records: the first answer to a request sent with an `Idempotency-Key`, replayed
to its retries (draft-ietf-httpapi-idempotency-key-header).

A task write stores its record in the same statement (PostgreSQL) or transaction (SQLite) as the
write itself, so a crash never leaves one without the other, and every instance sees it. A
retry finds the record before it writes anything; two requests racing with one key cannot both
write either, because the record's primary key refuses the second one's statement as a whole.
Only successful writes are recorded; a refused request (4xx) may be retried with the same key.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, FromClause, Insert, bindparam, exists, literal, select
from sqlalchemy.engine import Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from database.types import UTCDateTime
from models import SNAPSHOT_COLUMNS, idempotency_records, task_changes

RECORD_COLUMNS = (
    "scope",
    "key",
    "fingerprint",
    "status",
    "task_id",
    "version",
    "successor_id",
    "deleted_count",
    "body",
    "created_at",
    "expires_at",
)


@dataclass(frozen=True, slots=True)
class IdempotencyKey:
    """A request's key: whose it is (`scope`), the key, and the request's fingerprint."""

    scope: str
    key: str
    fingerprint: str
    lifetime: timedelta

    def params(self, now: datetime) -> dict[str, Any]:
        return {
            "idempotency_scope": self.scope,
            "idempotency_key": self.key,
            "idempotency_fingerprint": self.fingerprint,
            "idempotency_expires_at": now + self.lifetime,
        }


class IdempotencyKeyReused(Exception):
    """The key was first used for another request (method, path or body)."""


class IdempotencyKeyInFlight(Exception):
    """The first request with this key is still running."""


def _is_this_key() -> list[ColumnElement[bool]]:
    return [
        idempotency_records.c.scope == bindparam("idempotency_scope"),
        idempotency_records.c.key == bindparam("idempotency_key"),
    ]


def _now() -> Any:
    return bindparam("now", type_=UTCDateTime())


def no_live_record() -> ColumnElement[bool]:
    """No unexpired record for this key: the write may go ahead."""
    return ~exists().where(*_is_this_key(), idempotency_records.c.expires_at > _now())


def prior_fingerprint() -> Any:
    """The fingerprint of an unexpired record for this key (NULL when none)."""
    return (
        select(idempotency_records.c.fingerprint)
        .where(*_is_this_key(), idempotency_records.c.expires_at > _now())
        .scalar_subquery()
    )


def record_of(
    rows: FromClause,
    status: int,
    *,
    task: bool = True,
    successor_id: Any = None,
    deleted_count: Any = None,
) -> Insert:
    """Store the answer of the write whose result is `rows` (a CTE with the task columns `id`
    and `version` when `task`), once per row (so nothing when it wrote nothing)."""
    values = select(
        bindparam("idempotency_scope"),
        bindparam("idempotency_key"),
        bindparam("idempotency_fingerprint"),
        literal(status),
        rows.c.id if task else None,
        rows.c.version if task else None,
        successor_id,
        deleted_count,
        None,
        _now(),
        bindparam("idempotency_expires_at", type_=UTCDateTime()),
    ).select_from(rows)
    return idempotency_records.insert().from_select(RECORD_COLUMNS, values)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A stored answer."""

    fingerprint: str
    status: int
    task_id: int | None
    version: int | None
    successor_id: int | None
    deleted_count: int | None
    body: str | None
    created_at: datetime
    expires_at: datetime


RECORD = select(*(idempotency_records.c[field.name] for field in fields(Recorded))).where(
    *_is_this_key()
)


async def find_record(connection: AsyncConnection, params: dict[str, Any]) -> Recorded | None:
    """The record of this key, if it has not expired."""
    row = (await connection.execute(RECORD, params)).first()
    if row is None or row.expires_at <= params["now"]:
        return None
    return Recorded(**row._mapping)


async def forget_expired(connection: AsyncConnection, params: dict[str, Any]) -> bool:
    """Delete this key's record if it has expired; whether there was one."""
    statement = idempotency_records.delete().where(
        *_is_this_key(), idempotency_records.c.expires_at <= _now()
    )
    return (await connection.execute(statement, params)).rowcount > 0


def check_fingerprint(record: Recorded, key: IdempotencyKey) -> None:
    if record.fingerprint != key.fingerprint:
        raise IdempotencyKeyReused
    if record.status == IN_FLIGHT:
        raise IdempotencyKeyInFlight


ANSWERED_TASK = select(
    task_changes.c.task_id.label("id"),
    task_changes.c.user_id,
    *(task_changes.c[name] for name in SNAPSHOT_COLUMNS),
    task_changes.c.seq.label("version"),
).where(
    task_changes.c.user_id == bindparam("owner_id"),
    task_changes.c.seq == bindparam("answered_version"),
    task_changes.c.task_id == bindparam("answered_task_id"),
)


async def answered_task(
    connection: AsyncConnection, params: dict[str, Any], record: Recorded
) -> Row[Any] | None:
    """The task as the first answer gave it (from the change log)."""
    if record.task_id is None or record.version is None:
        return None
    values = {**params, "answered_version": record.version, "answered_task_id": record.task_id}
    return (await connection.execute(ANSWERED_TASK, values)).first()


def is_key_conflict(error: IntegrityError) -> bool:
    """Whether the write was refused because another request stored this key first."""
    return "idempotency_records" in str(error.orig)


# --- a request that runs for a while (signup hashes a password): claimed, then completed ------

IN_FLIGHT = 0
# A claim older than this was abandoned (its process died): the key may be claimed again.
ABANDONED_AFTER = timedelta(seconds=60)


async def claim(connection: AsyncConnection, params: dict[str, Any]) -> Recorded | None:
    """Claim the key for a request about to run (an in-flight record, for the caller to commit
    at once), or return the live record that already holds it."""
    record = await find_record(connection, params)
    if record is not None and not _abandoned(record, params):
        return record
    stale = (idempotency_records.c.expires_at <= _now()) | (
        (idempotency_records.c.status == IN_FLIGHT)
        & (idempotency_records.c.created_at < bindparam("abandoned_before", type_=UTCDateTime()))
    )
    values = {**params, "abandoned_before": params["now"] - ABANDONED_AFTER}
    await connection.execute(idempotency_records.delete().where(*_is_this_key(), stale), values)
    try:
        async with connection.begin_nested():
            await connection.execute(
                idempotency_records.insert().values(
                    scope=params["idempotency_scope"],
                    key=params["idempotency_key"],
                    fingerprint=params["idempotency_fingerprint"],
                    status=IN_FLIGHT,
                    created_at=params["now"],
                    expires_at=params["idempotency_expires_at"],
                )
            )
    except IntegrityError:
        return await find_record(connection, params)
    return None


def _abandoned(record: Recorded, params: dict[str, Any]) -> bool:
    return record.status == IN_FLIGHT and record.created_at < params["now"] - ABANDONED_AFTER


async def complete(
    connection: AsyncConnection, params: dict[str, Any], status: int, body: str
) -> None:
    """Store the answer of the request that claimed the key (in its own transaction)."""
    await connection.execute(
        idempotency_records.update().where(*_is_this_key()).values(status=status, body=body),
        params,
    )


async def release(connection: AsyncConnection, params: dict[str, Any]) -> None:
    """The request that claimed the key failed: forget the claim (a refusal is not stored)."""
    await connection.execute(
        idempotency_records.delete().where(
            *_is_this_key(), idempotency_records.c.status == IN_FLIGHT
        ),
        params,
    )
