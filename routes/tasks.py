"""Tasks of one user: `/api/{user_id}/tasks`.

Every statement is scoped by owner (`WHERE id = :id AND user_id = :user_id`), so another
user's task is indistinguishable from a missing one (404). Changes are single statements with
`RETURNING`, so concurrent requests never lose an update.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response, status
from sqlalchemy import and_, case, func, insert, not_, update
from sqlmodel import delete, select

from auth.dependencies import TaskOwnerId
from database.types import utcnow
from db import SessionDep
from models import TASK_COLUMNS, Priority, Task, TaskRecord, tasks
from routes.paging import link_header, task_list_params
from routes.responses import (
    DATABASE_UNAVAILABLE,
    FORBIDDEN,
    TASK_NOT_FOUND,
    TOO_LARGE,
    UNAUTHORIZED,
)
from schemas import TaskCompletion, TaskCreate, TaskRead, TaskStats, TaskUpdate
from tasks.completion import completion_values, spawn_next_occurrence
from tasks.listing import TaskListParams
from tasks.tags import add_tags, replace_tags

INT32_MAX = 2**31 - 1
DELETED_COUNT_HEADER = "X-Deleted-Count"

router = APIRouter(
    prefix="/api/{user_id}/tasks",
    tags=["tasks"],
    responses={**UNAUTHORIZED, **FORBIDDEN, **DATABASE_UNAVAILABLE},
)

TaskId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The task's id.")]
ListParams = Annotated[TaskListParams, Depends(task_list_params)]
SUCCESSOR_CREATED = {
    200: {
        "description": "The task. When completing it created the next occurrence of a "
        "recurring task, `next_task_id` names it and `Location` points at it.",
        "headers": {"Location": {"description": "The next occurrence, when one was created."}},
    }
}


def task_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Task not found")


@router.get(
    "",
    response_model=list[TaskRead],
    responses={
        200: {
            "description": "A page of tasks.",
            "headers": {
                "X-Total-Count": {"description": "Matching tasks before paging."},
                "Link": {"description": 'RFC 8288 links: rel="next" and rel="prev" pages.'},
            },
        }
    },
)
async def list_tasks(
    owner_id: TaskOwnerId,
    session: SessionDep,
    params: ListParams,
    request: Request,
    response: Response,
) -> list[dict[str, Any]]:
    """The user's tasks, filtered, sorted (newest first by default) and paged."""
    values = params.values(owner_id, utcnow())
    result = await session.exec(params.page(), params=values)
    # Plain dicts: pydantic validates them in Rust, where attribute access on rows is Python.
    columns = tuple(result.keys())
    page = [dict(zip(columns, row, strict=True)) for row in result]
    total = params.total_from_page(len(page))
    if total is None:
        total = (await session.exec(params.count(), params=values)).one()[0]
    response.headers["X-Total-Count"] = str(total)
    links = link_header(request.url, params, total)
    if links:
        response.headers["Link"] = links
    return page


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TaskRead, responses=TOO_LARGE)
async def create_task(owner_id: TaskOwnerId, body: TaskCreate, session: SessionDep) -> TaskRecord:
    now = utcnow()
    statement = (
        insert(tasks)
        .values(
            **body.model_dump(),
            user_id=owner_id,
            completed=False,
            created_at=now,
            updated_at=now,
        )
        .returning(*TASK_COLUMNS)
    )
    task = (await session.exec(statement)).one()
    await add_tags(session, task, task.tags)
    return task


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        204: {
            "description": "The completed tasks are deleted.",
            "headers": {DELETED_COUNT_HEADER: {"description": "How many were deleted."}},
        }
    },
)
async def delete_completed_tasks(
    owner_id: TaskOwnerId,
    session: SessionDep,
    response: Response,
    status_: Annotated[
        Literal["completed"],
        Query(
            alias="status",
            description="Required and must be `completed`, so a list is never wiped by accident.",
        ),
    ],
) -> None:
    """Delete all the caller's completed tasks."""
    statement = (
        delete(Task)
        .where(Task.user_id == owner_id, Task.completed)
        .execution_options(synchronize_session=False)
    )
    result = await session.exec(statement)
    response.headers[DELETED_COUNT_HEADER] = str(result.rowcount)


@router.get("/stats")
async def task_stats(owner_id: TaskOwnerId, session: SessionDep) -> TaskStats:
    """Counts of the user's tasks, in one query."""

    def count_where(condition: Any) -> Any:
        return func.count(case((condition, 1)))

    overdue = and_(not_(Task.completed), Task.due_at < utcnow())
    statement = select(
        func.count(),
        count_where(Task.completed),
        count_where(overdue),
        *(count_where(Task.priority == priority) for priority in Priority),
    ).where(Task.user_id == owner_id)
    total, completed, overdue_count, *per_priority = (await session.exec(statement)).one()
    return TaskStats(
        total=total,
        pending=total - completed,
        completed=completed,
        overdue=overdue_count,
        by_priority=dict(zip(Priority, per_priority, strict=True)),
    )


@router.get("/{task_id}", response_model=TaskRead, responses=TASK_NOT_FOUND)
async def get_task(owner_id: TaskOwnerId, task_id: TaskId, session: SessionDep) -> TaskRecord:
    query = select(*TASK_COLUMNS).where(tasks.c.id == task_id, tasks.c.user_id == owner_id)
    task = (await session.exec(query)).first()
    if task is None:
        raise task_not_found()
    return task


async def _update_owned(
    session: SessionDep, owner_id: str, task_id: int, values: dict[str, Any], now: datetime
) -> TaskRecord:
    statement = (
        update(tasks)
        .where(tasks.c.id == task_id, tasks.c.user_id == owner_id)
        .values(**values, updated_at=now)
        .returning(*TASK_COLUMNS)
    )
    task = (await session.exec(statement)).first()
    if task is None:
        raise task_not_found()
    return task


async def _after_completion(
    session: SessionDep, request: Request, response: Response, task: TaskRecord, now: datetime
) -> TaskRecord:
    """Spawn the next occurrence if `task` was just completed; point `Location` at it."""
    spawned = await spawn_next_occurrence(session, task, now)
    if spawned is None:
        return task
    task, successor = spawned
    response.headers["Location"] = str(
        request.url_for("get_task", user_id=task.user_id, task_id=successor.id)
    )
    return task


@router.put(
    "/{task_id}",
    response_model=TaskRead,
    responses={**SUCCESSOR_CREATED, **TASK_NOT_FOUND, **TOO_LARGE},
)
async def update_task(
    owner_id: TaskOwnerId,
    task_id: TaskId,
    body: TaskUpdate,
    session: SessionDep,
    request: Request,
    response: Response,
) -> TaskRecord:
    """Partial update: only the fields in the body change; `{}` changes nothing; `tags`
    replaces the whole list."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return await get_task(owner_id, task_id, session)
    now = utcnow()
    if "completed" in changes:
        changes.update(completion_values(changes.pop("completed"), now))
    task = await _update_owned(session, owner_id, task_id, changes, now)
    if "tags" in changes:
        await replace_tags(session, task, task.tags)
    return await _after_completion(session, request, response, task, now)


@router.patch(
    "/{task_id}/complete",
    response_model=TaskRead,
    responses={**SUCCESSOR_CREATED, **TASK_NOT_FOUND, **TOO_LARGE},
)
async def complete_task(
    owner_id: TaskOwnerId,
    task_id: TaskId,
    session: SessionDep,
    request: Request,
    response: Response,
    body: Annotated[TaskCompletion | None, Body()] = None,
) -> TaskRecord:
    """No body (or `{}`) toggles atomically; `{"completed": true|false}` sets the state.

    Completing a recurring task that has a `due_at` creates its next occurrence once; reopening
    keeps it, and completing again does not create another.
    """
    now = utcnow()
    wanted = None if body is None else body.completed
    task = await _update_owned(session, owner_id, task_id, completion_values(wanted, now), now)
    return await _after_completion(session, request, response, task, now)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=TASK_NOT_FOUND,
)
async def delete_task(owner_id: TaskOwnerId, task_id: TaskId, session: SessionDep) -> None:
    statement = delete(Task).where(Task.id == task_id, Task.user_id == owner_id).returning(Task.id)
    if (await session.exec(statement)).first() is None:
        raise task_not_found()
