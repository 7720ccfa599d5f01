"""The `task_tags` rows that mirror `Task.tags` and make filtering by tag an indexed query."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import BindParameter, ColumnElement, and_, exists, insert
from sqlmodel import delete
from sqlmodel.ext.asyncio.session import AsyncSession

from models import TaskRecord, TaskTag, tasks

tags_table = TaskTag.__table__


async def add_tags(session: AsyncSession, task: TaskRecord, tags: Sequence[str]) -> None:
    """Index the tags of a task that has none indexed yet (one multi-row INSERT)."""
    if tags:
        rows = [{"task_id": task.id, "user_id": task.user_id, "tag": tag} for tag in tags]
        await session.exec(insert(TaskTag).values(rows))


async def replace_tags(session: AsyncSession, task: TaskRecord, tags: Sequence[str]) -> None:
    """Make the indexed tags of `task` exactly `tags`."""
    await session.exec(delete(TaskTag).where(TaskTag.task_id == task.id))
    await add_tags(session, task, tags)


def has_all_tags(
    user_id: str | BindParameter[str], tags: Sequence[str | BindParameter[str]]
) -> ColumnElement[bool]:
    """One `EXISTS` per tag, each answered by the primary key `(task_id, tag)`.

    The planner may walk the list's sort index and probe each candidate, or start from the
    `(user_id, tag, task_id)` index for rare tags.
    """
    return and_(
        *(
            exists().where(
                tags_table.c.task_id == tasks.c.id,
                tags_table.c.user_id == user_id,
                tags_table.c.tag == tag,
            )
            for tag in tags
        )
    )
