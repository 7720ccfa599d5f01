"""Completing and reopening tasks, and the next occurrence of recurring ones.

A completion is one atomic `UPDATE`; it holds the row's lock (PostgreSQL) or the database's
write lock (SQLite, `BEGIN IMMEDIATE`) until the request commits. The successor is then
claimed with a conditional `UPDATE ... WHERE next_task_id IS NULL`, so a task spawns at most
one successor however often and however concurrently it is toggled.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, case, not_, update
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Recurrence, Task, TaskRecord
from tasks.recurrence import next_due_at
from tasks.tags import add_tags


def completion_values(completed: bool | None, now: datetime) -> dict[str, Any]:
    """SET clauses for a completion: `None` toggles, a bool sets.

    `completed_at` is set when a task becomes completed, kept when it already was, and cleared
    when it is reopened. SET expressions read the row as it was before the UPDATE.
    """
    if completed is None:
        becomes: ColumnElement[bool] | bool = not_(Task.completed)
        completed_at: Any = case((Task.completed, None), else_=now)
    elif completed:
        becomes = True
        already = and_(Task.completed, Task.completed_at.is_not(None))
        completed_at = case((already, Task.completed_at), else_=now)
    else:
        becomes, completed_at = False, None
    return {"completed": becomes, "completed_at": completed_at}


def needs_successor(task: TaskRecord, now: datetime) -> bool:
    """Whether `task` recurs and was completed by the request that started at `now`
    (`completed_at` is only ever set to that request's `now` on the transition)."""
    return (
        task.completed
        and task.completed_at == now
        and task.recurrence != Recurrence.none
        and task.next_task_id is None
    )


async def spawn_next_occurrence(
    session: AsyncSession, task: TaskRecord, now: datetime
) -> tuple[Task, Task] | None:
    """Create the occurrence after `task`, just completed at `now`, and link it.

    Returns `(task with next_task_id, successor)`, or None when there is nothing to create
    (not just completed, not recurring, no due date, already spawned, or the next date would
    be past the year 9999).
    """
    if not needs_successor(task, now) or task.due_at is None:
        return None
    due_at = next_due_at(task.due_at, Recurrence(task.recurrence))
    if due_at is None:
        return None
    successor = Task(
        user_id=task.user_id,
        title=task.title,
        description=task.description,
        priority=task.priority,
        tags=list(task.tags),
        due_at=due_at,
        recurrence=task.recurrence,
        created_at=now,
        updated_at=now,
    )
    session.add(successor)
    await session.flush()
    claim = (
        update(Task)
        .where(Task.id == task.id, Task.user_id == task.user_id, Task.next_task_id.is_(None))
        .values(next_task_id=successor.id)
        .returning(Task)
        .execution_options(synchronize_session=False, populate_existing=True)
    )
    linked = (await session.exec(claim)).scalars().first()
    if linked is None:
        await session.delete(successor)
        return None
    await add_tags(session, successor, successor.tags)
    return linked, successor
