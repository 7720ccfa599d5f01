"""The `task_tags` rows that mirror `Task.tags` and make filtering by tag an indexed query."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import ColumnElement, func, insert
from sqlmodel import delete, select
from sqlmodel.ext.asyncio.session import AsyncSession

from models import Task, TaskTag


async def add_tags(session: AsyncSession, task: Task, tags: Sequence[str]) -> None:
    """Index the tags of a task that has none indexed yet (one multi-row INSERT)."""
    if tags:
        rows = [{"task_id": task.id, "user_id": task.user_id, "tag": tag} for tag in tags]
        await session.exec(insert(TaskTag).values(rows))


async def replace_tags(session: AsyncSession, task: Task, tags: Sequence[str]) -> None:
    """Make the indexed tags of `task` exactly `tags`."""
    await session.exec(delete(TaskTag).where(TaskTag.task_id == task.id))
    await add_tags(session, task, tags)


def has_all_tags(user_id: str, tags: Sequence[str]) -> ColumnElement[bool]:
    """`tasks.id IN (ids of this user's tasks carrying every one of tags)`.

    The subquery reads the index `(user_id, tag, task_id)` only.
    """
    carrying = (
        select(TaskTag.task_id)
        .where(TaskTag.user_id == user_id, TaskTag.tag.in_(tags))
        .group_by(TaskTag.task_id)
        .having(func.count() == len(tags))
    )
    return Task.id.in_(carrying)
