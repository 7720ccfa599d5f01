"""Reading the change log: the changes feed (`GET …/tasks/changes`) and the live events' reads.

The feed answers "what changed after this cursor": each task created or changed since, once, in
its latest state (the newest log entry of each task), and the ids of the tasks deleted since.
Without a cursor it pages through every current task (a full sync), remembering where the log
stood when the sync began, and hands over a log cursor at the end. The log is per owner and
commit-ordered (see `changelog`), so following cursors never skips a change.

Live events read every entry instead (`read_owner_log`), once per change for all the streams of
an owner in a process, so that read carries no token: each stream's token is checked on its own
(`tasks.stream_checks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    bindparam,
    exists,
    func,
    not_,
    select,
    true,
    tuple_,
)
from sqlalchemy.engine import Row

from auth.scope import OwnerScope, TokenRevoked, not_revoked, owner_id
from db import Database
from models import SNAPSHOT_COLUMNS, TASK_COLUMNS, ChangeKind, change_counters, task_changes, tasks
from tasks.changelog import Cursor
from tasks.errors import CursorExpired


@dataclass(frozen=True, slots=True)
class ChangesPage:
    changes: list[dict[str, Any]]
    deleted: list[int]
    cursor: Cursor
    has_more: bool


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One change: its position, its kind and the task's state after it (before, if deleted)."""

    cursor: Cursor
    kind: ChangeKind
    task: dict[str, Any]


def _counter_column(name: str) -> Any:
    value = select(change_counters.c[name]).where(change_counters.c.user_id == owner_id())
    return func.coalesce(value.scalar_subquery(), 0)


def _after_cursor() -> Any:
    position = tuple_(task_changes.c.seq, task_changes.c.task_id)
    after = tuple_(bindparam("seq", type_=BigInteger), bindparam("task_id", type_=BigInteger))
    return position > after


def _entry_columns() -> list[Any]:
    return [
        task_changes.c.task_id.label("id"),
        task_changes.c.user_id,
        *(task_changes.c[name] for name in SNAPSHOT_COLUMNS),
        task_changes.c.seq.label("version"),
        task_changes.c.seq,
        task_changes.c.kind,
    ]


def _explanation() -> Select[Any]:
    return select(
        not_revoked().label("allowed"),
        _counter_column("purged_through").label("purged_through"),
        _counter_column("seq").label("state"),
    )


EXPLANATION = _explanation()


@lru_cache(maxsize=1)
def _latest_changes() -> Select[Any]:
    """The newest entry of each task changed after the cursor, in log order."""
    later = task_changes.alias("later")
    newer_exists = exists().where(
        later.c.user_id == task_changes.c.user_id,
        later.c.task_id == task_changes.c.task_id,
        later.c.seq > task_changes.c.seq,
    )
    return (
        select(*_entry_columns(), _counter_column("purged_through").label("purged_through"))
        .where(
            task_changes.c.user_id == owner_id(), _after_cursor(), not_(newer_exists), not_revoked()
        )
        .order_by(task_changes.c.seq, task_changes.c.task_id)
        .limit(bindparam("limit", type_=Integer))
    )


@dataclass(frozen=True, slots=True)
class OwnerLog:
    """A page of an owner's log, and where the log stood when it was read: every change up to
    `seq` is committed (the counter is bumped in the same transaction as its entries)."""

    entries: list[LogEntry]
    seq: int
    purged_through: int


@lru_cache(maxsize=1)
def _owner_log() -> Select[Any]:
    """Every entry after the cursor, in log order, beside the owner's counters (one row of
    counters alone when nothing follows the cursor), all in one snapshot."""
    entries = (
        select(*_entry_columns())
        .where(task_changes.c.user_id == owner_id(), _after_cursor())
        .order_by(task_changes.c.seq, task_changes.c.task_id)
        .limit(bindparam("limit", type_=Integer))
        .subquery("entries")
    )
    counters = select(
        _counter_column("seq").label("state"),
        _counter_column("purged_through").label("purged_through"),
    ).subquery("counters")
    return (
        select(counters.c.state, counters.c.purged_through, *entries.c)
        .select_from(counters.outerjoin(entries, true()))
        .order_by(entries.c.seq, entries.c.id)
    )


@lru_cache(maxsize=1)
def _current_tasks() -> Select[Any]:
    """A page of the full sync: current tasks by id, with the log's position."""
    return (
        select(
            *TASK_COLUMNS,
            _counter_column("seq").label("state"),
            _counter_column("purged_through").label("purged_through"),
        )
        .where(
            tasks.c.user_id == owner_id(),
            tasks.c.id > bindparam("task_id", type_=BigInteger),
            not_revoked(),
        )
        .order_by(tasks.c.id)
        .limit(bindparam("limit", type_=Integer))
    )


def _task_fields(row: Row[Any]) -> dict[str, Any]:
    task = dict(row._mapping)
    for extra in ("seq", "kind", "purged_through", "state"):
        task.pop(extra, None)
    return task


async def _explain_empty(connection: Any, params: dict[str, Any], since: Cursor | None) -> Row[Any]:
    explanation = (await connection.execute(EXPLANATION, params)).one()
    if not explanation.allowed:
        raise TokenRevoked
    if since is not None and since.seq < explanation.purged_through:
        raise CursorExpired
    return explanation


async def read_changes(
    db: Database, scope: OwnerScope, since: Cursor | None, limit: int
) -> ChangesPage:
    """The changes after `since` (or a full sync page), at most `limit` tasks.

    Raises `CursorExpired` when the log no longer reaches back to `since`.
    """
    if since is None or since.initial:
        return await _full_sync(db, scope, since, limit)
    params = {**scope.params(), "seq": since.seq, "task_id": since.task_id, "limit": limit + 1}
    async with db.read() as connection:
        rows = (await connection.execute(_latest_changes(), params)).all()
        if not rows:
            await _explain_empty(connection, params, since)
            return ChangesPage([], [], since, has_more=False)
    if since.seq < rows[0].purged_through:
        raise CursorExpired
    page = rows[:limit]
    changes = [_task_fields(row) for row in page if row.kind != ChangeKind.deleted]
    deleted = [row.id for row in page if row.kind == ChangeKind.deleted]
    last = page[-1]
    return ChangesPage(changes, deleted, Cursor(last.seq, last.id), has_more=len(rows) > limit)


async def _full_sync(
    db: Database, scope: OwnerScope, since: Cursor | None, limit: int
) -> ChangesPage:
    after = since.task_id if since is not None else 0
    params = {**scope.params(), "task_id": after, "limit": limit + 1}
    async with db.read() as connection:
        rows = (await connection.execute(_current_tasks(), params)).all()
        if not rows:
            explanation = await _explain_empty(connection, params, since)
            state = since.seq if since is not None else explanation.state
            return ChangesPage([], [], Cursor(state), has_more=False)
    if since is not None and since.seq < rows[0].purged_through:
        raise CursorExpired
    state = since.seq if since is not None else rows[0].state
    page = rows[:limit]
    tasks_page = [_task_fields(row) for row in page]
    if len(rows) > limit:
        return ChangesPage(tasks_page, [], Cursor(state, page[-1].id, initial=True), True)
    # The last page: changes made during the sync follow from the log at once.
    return ChangesPage(tasks_page, [], Cursor(state), has_more=rows[0].state > state)


async def read_owner_log(db: Database, owner: str, after: Cursor, limit: int) -> OwnerLog:
    """Every change of `owner` after `after` (one entry per change), oldest first, at most
    `limit`: one statement, scoped by owner and guarded by no token (the live streams that share
    it have their tokens checked together, `tasks.stream_checks`)."""
    params = {"owner_id": owner, "seq": after.seq, "task_id": after.task_id, "limit": limit}
    async with db.read() as connection:
        rows = (await connection.execute(_owner_log(), params)).all()
    entries = [
        LogEntry(Cursor(row.seq, row.id), ChangeKind(row.kind), _task_fields(row))
        for row in rows
        if row.seq is not None
    ]
    return OwnerLog(entries, rows[0].state, rows[0].purged_through)
