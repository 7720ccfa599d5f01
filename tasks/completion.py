"""Completing and reopening tasks, and the next occurrence of recurring ones.

A completion is part of one atomic `UPDATE`. Completing a recurring task that has a due date
creates its next occurrence once: `next_task_id` is set at most once, so completing again,
reopening and completing, or ten concurrent completions never create a second one. On
PostgreSQL the same statement creates it (`spawn_condition`, with the successor's id drawn from
the table's sequence); on SQLite the transaction does it in Python (`spawn_next_occurrence`).
"""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, case, insert, not_, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from database.types import UTCDateTime
from models import TASK_COLUMNS, Recurrence, TaskRecord, tasks
from tasks.recurrence import PAST_REPRESENTABLE, next_due_at, next_due_at_sql


class Completion(Enum):
    """What a request does to `completed`: flip it, or set it."""

    toggle = "toggle"
    complete = "complete"
    reopen = "reopen"

    @classmethod
    def of(cls, completed: bool | None) -> Completion:
        if completed is None:
            return cls.toggle
        return cls.complete if completed else cls.reopen


def now_param() -> Any:
    return bindparam("now", type_=UTCDateTime())


def completion_values(completion: Completion) -> dict[str, Any]:
    """SET clauses for a completion, evaluated on the row as it was before the UPDATE.

    `completed_at` is set when a task becomes completed, kept when it already was, and cleared
    when it is reopened.
    """
    now = now_param()
    if completion is Completion.toggle:
        becomes: Any = not_(tasks.c.completed)
        completed_at: Any = case((tasks.c.completed, None), else_=now)
    elif completion is Completion.complete:
        becomes = True
        already = and_(tasks.c.completed, tasks.c.completed_at.is_not(None))
        completed_at = case((already, tasks.c.completed_at), else_=now)
    else:
        becomes, completed_at = False, None
    return {"completed": becomes, "completed_at": completed_at}


def spawn_condition(
    completed_at: Any, recurrence: ColumnElement[Any], due_at: ColumnElement[Any]
) -> ColumnElement[bool]:
    """Whether the UPDATE whose SET gives these values just completed a task that must now
    create its next occurrence (PostgreSQL). `completed_at` equals the request's `now` only on
    the transition to completed; `recurrence` and `due_at` are the values after the UPDATE."""
    if completed_at is None:
        return and_(False)
    return and_(
        completed_at == now_param(),
        recurrence != Recurrence.none.value,
        due_at.is_not(None),
        tasks.c.next_task_id.is_(None),
        next_due_at_sql(due_at, recurrence) < PAST_REPRESENTABLE,
    )


def needs_successor(task: TaskRecord, now: datetime) -> bool:
    """Whether `task` recurs and was completed by the request that started at `now`."""
    return (
        task.completed
        and task.completed_at == now
        and task.recurrence != Recurrence.none
        and task.next_task_id is None
    )


async def spawn_next_occurrence(
    connection: AsyncConnection, task: TaskRecord, now: datetime, seq: int
) -> tuple[Row[Any], Row[Any]] | None:
    """Create the occurrence after `task`, just completed at `now`, and link it (SQLite).

    Returns `(task with next_task_id, successor)`, or None when there is nothing to create
    (not just completed, not recurring, no due date, already spawned, or the next date would
    be past the year 9999). The link is claimed with `... WHERE next_task_id IS NULL`, so a
    stale view of the task never creates a second successor.
    """
    if not needs_successor(task, now) or task.due_at is None:
        return None
    due_at = next_due_at(task.due_at, Recurrence(task.recurrence))
    if due_at is None:
        return None
    successor = (
        await connection.execute(
            insert(tasks)
            .values(
                user_id=task.user_id,
                title=task.title,
                description=task.description,
                completed=False,
                priority=task.priority,
                tags=list(task.tags),
                due_at=due_at,
                recurrence=task.recurrence,
                created_at=now,
                updated_at=now,
                version=seq,
            )
            .returning(*TASK_COLUMNS)
        )
    ).one()
    claim = (
        update(tasks)
        .where(
            tasks.c.id == task.id,
            tasks.c.user_id == task.user_id,
            tasks.c.next_task_id.is_(None),
        )
        .values(next_task_id=successor.id)
        .returning(*TASK_COLUMNS)
    )
    linked = (await connection.execute(claim)).first()
    if linked is None:
        await connection.execute(tasks.delete().where(tasks.c.id == successor.id))
        return None
    return linked, successor
