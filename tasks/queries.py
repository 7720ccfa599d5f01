"""Task reads, each one statement carrying the owner scope and the revocation guard.

Only an empty answer costs a second statement, to tell a revoked token (401) from a missing task
(404) or an empty page.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Select, and_, bindparam, case, func, not_, select
from sqlalchemy.engine import Row

from auth.scope import OwnerScope, TokenRevoked, not_revoked, owner_id
from database.types import utcnow
from db import Database
from models import TASK_COLUMNS, Priority, change_counters, tasks
from schemas import TaskStats
from tasks.errors import TaskNotFound
from tasks.listing import TaskListParams


@dataclass(frozen=True, slots=True)
class TaskPage:
    """A page of tasks (as dicts of `TaskRead` fields), the total before paging and the
    owner's state (their change counter: any change of their tasks changes it)."""

    tasks: list[dict[str, Any]]
    total: int
    state: int


async def list_tasks(db: Database, scope: OwnerScope, params: TaskListParams) -> TaskPage:
    values = {**scope.params(), **params.values(utcnow())}
    async with db.read() as connection:
        result = await connection.execute(params.page(), values)
        columns = tuple(result.keys())
        rows = result.all()
        if not rows:
            explanation = (await connection.execute(params.explanation(), values)).one()
            if not explanation.allowed:
                raise TokenRevoked
            return TaskPage([], explanation.total, explanation.state)
    # Plain dicts: pydantic validates them in Rust, where attribute access on rows is Python.
    page = [dict(zip(columns, row, strict=True)) for row in rows]
    return TaskPage(page, page[0]["total"], page[0]["state"])


def _task_statement() -> Select[Any]:
    """The task, joined to whether the token holds: one row, even for a 401 or a 404."""
    guard = select(not_revoked().label("allowed")).subquery("guard")
    found = and_(guard.c.allowed, tasks.c.id == bindparam("task_id"), tasks.c.user_id == owner_id())
    return select(guard.c.allowed, *TASK_COLUMNS).select_from(guard.outerjoin(tasks, found))


TASK = _task_statement()


async def get_task(db: Database, scope: OwnerScope, task_id: int) -> Row[Any]:
    async with db.read() as connection:
        row = (await connection.execute(TASK, {**scope.params(), "task_id": task_id})).one()
    if not row.allowed:
        raise TokenRevoked
    if row.id is None:
        raise TaskNotFound
    return row


def _count_where(condition: Any) -> Any:
    return func.count(case((condition, 1)))


def _stats_statement() -> Select[Any]:
    overdue = and_(
        not_(tasks.c.completed), tasks.c.due_at < bindparam("now", type_=tasks.c.due_at.type)
    )
    state = select(change_counters.c.seq).where(change_counters.c.user_id == owner_id())
    return select(
        not_revoked().label("allowed"),
        func.coalesce(state.scalar_subquery(), 0).label("state"),
        func.count().label("total"),
        _count_where(tasks.c.completed).label("completed"),
        _count_where(overdue).label("overdue"),
        *(
            _count_where(tasks.c.priority == priority).label(priority.value)
            for priority in Priority
        ),
    ).where(tasks.c.user_id == owner_id())


STATS = _stats_statement()


@dataclass(frozen=True, slots=True)
class StatsAnswer:
    stats: TaskStats
    state: int


async def task_stats(db: Database, scope: OwnerScope) -> StatsAnswer:
    """Counts of the owner's tasks, in one statement."""
    async with db.read() as connection:
        row = (await connection.execute(STATS, {**scope.params(), "now": utcnow()})).one()
    if not row.allowed:
        raise TokenRevoked
    stats = TaskStats(
        total=row.total,
        pending=row.total - row.completed,
        completed=row.completed,
        overdue=row.overdue,
        by_priority={priority: getattr(row, priority.value) for priority in Priority},
    )
    return StatsAnswer(stats, row.state)
