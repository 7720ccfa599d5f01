"""Checking many live event streams at once: their tokens, and where their owners' logs stand.

A process with thousands of open event streams checks them together instead of one by one:
the streams that open at the same moment share one statement, a notified revocation checks the
owner's streams, and every `EVENTS_CHECK_SECONDS` one statement checks all of them. A check
names a stream's token (owner, revocation keys, issue time) and a position in its owner's log;
the answer says whether the token still holds (neither logged out nor older than a revocation
of its subject: `auth.scope.not_revoked`, asked for many tokens), where the owner's log ends and
how far it was purged, and whether entries follow the position.

The checks travel as one JSON array parameter (`jsonb_array_elements` on PostgreSQL, `json_each`
on SQLite), so the statement is the same, and prepared once, whatever their number. Every
lookup in it is by primary key.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Select,
    String,
    and_,
    bindparam,
    case,
    cast,
    column,
    exists,
    false,
    func,
    or_,
    select,
    true,
)
from sqlalchemy.dialects.postgresql import JSONB

from auth.scope import OwnerScope, revoked_tokens, subject_revocations
from db import Database
from models import change_counters, task_changes
from tasks.changelog import END_OF_WRITE, Cursor

# Checks encoded before other work gets a turn.
CHECKS_AT_A_TIME = 1_000


@dataclass(frozen=True, slots=True)
class StreamCheck:
    """A stream's token, and the position after which its owner's log is asked about."""

    scope: OwnerScope
    after: Cursor


@dataclass(frozen=True, slots=True)
class StreamState:
    allowed: bool
    # The owner's log: its last `seq`, how far it was purged, whether entries follow `after`.
    seq: int
    purged_through: int
    newer: bool


def _field(value: Any, index: int, type_: Any) -> Any:
    return cast(value[index].as_string(), type_)


@lru_cache(maxsize=4)
def _statement(is_postgresql: bool, notable_only: bool) -> Select[Any]:
    """One row per check: `[index, owner, key, legacy key, after seq, after task id]`."""
    parameter = bindparam("checks", type_=String)
    if is_postgresql:
        checks = (
            func.jsonb_array_elements(cast(parameter, JSONB))
            .table_valued(column("value", JSONB))
            .render_derived("checks")
        )
    else:
        checks = func.json_each(parameter).table_valued(column("value", JSON)).alias("checks")
    value = checks.c.value
    owner = _field(value, 1, String)
    logged_out = exists().where(
        revoked_tokens.c.jti.in_([_field(value, 2, String), _field(value, 3, String)])
    )
    not_before = (
        select(subject_revocations.c.not_before)
        .where(subject_revocations.c.sub == owner)
        .scalar_subquery()
    )
    counter = change_counters.alias("counter")
    seq = func.coalesce(counter.c.seq, 0)
    purged_through = func.coalesce(counter.c.purged_through, 0)
    after_seq, after_task_id = _field(value, 4, BigInteger), _field(value, 5, BigInteger)
    # A later write means entries after the position; within its own write, they are looked up.
    newer = case(
        (seq > after_seq, true()),
        (
            and_(seq == after_seq, after_task_id < END_OF_WRITE),
            exists().where(
                task_changes.c.user_id == owner,
                task_changes.c.seq == after_seq,
                task_changes.c.task_id > after_task_id,
            ),
        ),
        else_=false(),
    )
    statement = select(
        _field(value, 0, BigInteger).label("index"),
        logged_out.label("logged_out"),
        not_before.label("not_before"),
        seq.label("seq"),
        purged_through.label("purged_through"),
        newer.label("newer"),
    ).select_from(checks.outerjoin(counter, counter.c.user_id == owner))
    if notable_only:
        statement = statement.where(
            or_(logged_out, not_before.is_not(None), newer, purged_through > after_seq)
        )
    return statement


async def _parameter(checks: Sequence[StreamCheck]) -> str:
    """The checks as one JSON array, encoded a thousand at a time between turns of the loop
    (a process checks all its streams at once: it must not hold the loop for all of them)."""
    parts = []
    for start in range(0, len(checks), CHECKS_AT_A_TIME):
        if start:
            await asyncio.sleep(0)
        rows = [
            [
                index,
                check.scope.user_id,
                check.scope.revocation_key,
                check.scope.legacy_revocation_key or check.scope.revocation_key,
                check.after.seq,
                check.after.task_id,
            ]
            for index, check in enumerate(checks[start : start + CHECKS_AT_A_TIME], start)
        ]
        parts.append(json.dumps(rows, separators=(",", ":"))[1:-1])
    return f"[{','.join(parts)}]"


async def _rows(db: Database, checks: Sequence[StreamCheck], notable_only: bool) -> list[Any]:
    statement = _statement(db.is_postgresql, notable_only)
    parameter = await _parameter(checks)
    async with db.read() as connection:
        return list(await connection.execute(statement, {"checks": parameter}))


def _state(check: StreamCheck, row: Any) -> StreamState:
    revoked_after_issue = row.not_before is not None and row.not_before > check.scope.issued_at
    return StreamState(
        allowed=not row.logged_out and not revoked_after_issue,
        seq=row.seq,
        purged_through=row.purged_through,
        newer=bool(row.newer),
    )


async def check_streams(db: Database, checks: Sequence[StreamCheck]) -> list[StreamState]:
    """The state of each check, in order (one statement)."""
    if not checks:
        return []
    rows = sorted(await _rows(db, checks, notable_only=False), key=lambda row: row.index)
    return [_state(check, row) for check, row in zip(checks, rows, strict=True)]


async def notable_streams(db: Database, checks: Sequence[StreamCheck]) -> dict[int, StreamState]:
    """Only the checks that call for something, by their index: a token that no longer holds,
    a log with entries after the position or purged past it (one statement, whose answer is as
    small as what changed, not as large as the number of checks)."""
    if not checks:
        return {}
    states = {}
    for row in await _rows(db, checks, notable_only=True):
        check = checks[row.index]
        state = _state(check, row)
        if not state.allowed or state.newer or state.purged_through > check.after.seq:
            states[row.index] = state
    return states
