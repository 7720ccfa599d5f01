"""Tasks of one user: `/api/{user_id}/tasks`.

Every statement is scoped by owner (`WHERE id = :id AND user_id = :user_id`), so another
user's task is indistinguishable from a missing one (404). Changes are single statements with
`RETURNING`, so concurrent requests never lose an update.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Path, Query, Response, status
from sqlalchemy import not_, update
from sqlmodel import delete, select

from auth.dependencies import TaskOwnerId
from db import SessionDep, utcnow
from models import Task
from routes.responses import (
    DATABASE_UNAVAILABLE,
    FORBIDDEN,
    TASK_NOT_FOUND,
    TOO_LARGE,
    UNAUTHORIZED,
)
from schemas import TaskCompletion, TaskCreate, TaskRead, TaskStatusFilter, TaskUpdate

INT32_MAX = 2**31 - 1

router = APIRouter(
    prefix="/api/{user_id}/tasks",
    tags=["tasks"],
    responses={**UNAUTHORIZED, **FORBIDDEN, **DATABASE_UNAVAILABLE},
)

TaskId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The task's id.")]


def task_not_found() -> HTTPException:
    return HTTPException(status_code=status.HTTP_404_NOT_FOUND, detail="Task not found")


@router.get("")
async def list_tasks(
    owner_id: TaskOwnerId,
    session: SessionDep,
    status_: Annotated[
        TaskStatusFilter | None,
        Query(alias="status", description="`all` (default), `pending` or `completed`."),
    ] = None,
    status_filter: Annotated[
        TaskStatusFilter | None,
        Query(
            description="Older name of `status`; `status` wins when both are given.",
            deprecated=True,
        ),
    ] = None,
) -> list[TaskRead]:
    """The user's tasks, newest first."""
    wanted = status_ or status_filter or TaskStatusFilter.all
    query = select(Task).where(Task.user_id == owner_id)
    if wanted is not TaskStatusFilter.all:
        query = query.where(Task.completed == (wanted is TaskStatusFilter.completed))
    query = query.order_by(Task.created_at.desc(), Task.id.desc())
    return list((await session.exec(query)).all())


@router.post("", status_code=status.HTTP_201_CREATED, responses=TOO_LARGE)
async def create_task(owner_id: TaskOwnerId, body: TaskCreate, session: SessionDep) -> TaskRead:
    now = utcnow()
    task = Task(
        user_id=owner_id,
        title=body.title,
        description=body.description,
        created_at=now,
        updated_at=now,
    )
    session.add(task)
    await session.flush()
    return task


@router.get("/{task_id}", responses=TASK_NOT_FOUND)
async def get_task(owner_id: TaskOwnerId, task_id: TaskId, session: SessionDep) -> TaskRead:
    query = select(Task).where(Task.id == task_id, Task.user_id == owner_id)
    task = (await session.exec(query)).first()
    if task is None:
        raise task_not_found()
    return task


async def _update_owned(
    session: SessionDep, owner_id: str, task_id: int, values: dict[str, object]
) -> Task:
    statement = (
        update(Task)
        .where(Task.id == task_id, Task.user_id == owner_id)
        .values(**values, updated_at=utcnow())
        .returning(Task)
        .execution_options(synchronize_session=False)
    )
    task = (await session.exec(statement)).scalars().first()
    if task is None:
        raise task_not_found()
    return task


@router.put("/{task_id}", responses={**TASK_NOT_FOUND, **TOO_LARGE})
async def update_task(
    owner_id: TaskOwnerId, task_id: TaskId, body: TaskUpdate, session: SessionDep
) -> TaskRead:
    """Partial update: only the fields in the body change; `{}` changes nothing."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return await get_task(owner_id, task_id, session)
    return await _update_owned(session, owner_id, task_id, changes)


@router.patch("/{task_id}/complete", responses={**TASK_NOT_FOUND, **TOO_LARGE})
async def complete_task(
    owner_id: TaskOwnerId,
    task_id: TaskId,
    session: SessionDep,
    body: Annotated[TaskCompletion | None, Body()] = None,
) -> TaskRead:
    """No body (or `{}`) toggles atomically; `{"completed": true|false}` sets the state."""
    toggle = body is None or body.completed is None
    completed = not_(Task.completed) if toggle else body.completed
    return await _update_owned(session, owner_id, task_id, {"completed": completed})


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
