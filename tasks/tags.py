"""The `task_tags` rows that mirror `Task.tags` and make filtering by tag an indexed query."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, Insert, and_, exists, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.expression import func

from models import TaskRecord, TaskTag, tasks

tags_table = TaskTag.__table__


async def add_tags(connection: AsyncConnection, task: TaskRecord) -> None:
    """Index the tags of a task that has none indexed yet (one multi-row INSERT)."""
    if task.tags:
        rows = [{"task_id": task.id, "user_id": task.user_id, "tag": tag} for tag in task.tags]
        await connection.execute(insert(tags_table).values(rows))


async def replace_tags(connection: AsyncConnection, task: TaskRecord) -> None:
    """Make the indexed tags of `task` exactly its `tags`."""
    await connection.execute(tags_table.delete().where(tags_table.c.task_id == task.id))
    await add_tags(connection, task)


def tag_rows_of(rows: Any) -> Insert:
    """Index the tags of the task rows `rows` (a CTE with `id`, `user_id`, `tags`): PostgreSQL,
    inside the statement that wrote them. Conflicts are tags the task already had."""
    source = select(rows.c.id, rows.c.user_id, func.json_array_elements_text(rows.c.tags))
    return (
        postgresql_insert(tags_table)
        .from_select(["task_id", "user_id", "tag"], source)
        .on_conflict_do_nothing(index_elements=["task_id", "tag"])
    )


def drop_tags_missing_from(rows: Any) -> Any:
    """Delete the indexed tags of the task in `rows` that its new `tags` no longer hold."""
    kept = select(func.json_array_elements_text(rows.c.tags))
    return tags_table.delete().where(
        tags_table.c.task_id == select(rows.c.id).scalar_subquery(),
        tags_table.c.tag.not_in(kept),
    )


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
