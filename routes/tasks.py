"""Tasks of one user: `/api/{user_id}/tasks`.

HTTP only: each route turns the request into one call of the task rules (`tasks/`), which scope
every statement by owner (another user's task is indistinguishable from a missing one: 404) and
carry the revocation guard inside it, and turns the answer into a response.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError

from auth.dependencies import TaskScope
from db import DatabaseDep
from routes.paging import link_header, task_list_params
from routes.responses import (
    DATABASE_UNAVAILABLE,
    FORBIDDEN,
    TASK_NOT_FOUND,
    TOO_LARGE,
    UNAUTHORIZED,
    error,
)
from schemas import TaskChanges, TaskCompletion, TaskCreate, TaskRead, TaskStats, TaskUpdate
from tasks import commands, feed, queries
from tasks.changelog import Cursor, MalformedCursor
from tasks.commands import TaskWrite
from tasks.completion import Completion
from tasks.listing import TaskListParams

INT32_MAX = 2**31 - 1
MAX_CURSOR_LENGTH = 64
DEFAULT_CHANGES = 100
MAX_CHANGES = 500
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
    scope: TaskScope,
    db: DatabaseDep,
    params: ListParams,
    request: Request,
    response: Response,
) -> list[dict[str, Any]]:
    """The user's tasks, filtered, sorted (newest first by default) and paged."""
    page = await queries.list_tasks(db, scope, params)
    response.headers["X-Total-Count"] = str(page.total)
    links = link_header(request.url, params, page.total)
    if links:
        response.headers["Link"] = links
    return page.tasks


@router.post("", status_code=status.HTTP_201_CREATED, response_model=TaskRead, responses=TOO_LARGE)
async def create_task(scope: TaskScope, body: TaskCreate, db: DatabaseDep) -> Any:
    return (await commands.create_task(db, scope, body.model_dump())).task


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
    scope: TaskScope,
    db: DatabaseDep,
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
    deleted = await commands.delete_completed_tasks(db, scope)
    response.headers[DELETED_COUNT_HEADER] = str(deleted)


@router.get("/stats")
async def task_stats(scope: TaskScope, db: DatabaseDep) -> TaskStats:
    """Counts of the user's tasks, in one query."""
    return (await queries.task_stats(db, scope)).stats


@router.get(
    "/changes",
    responses={
        410: error("The cursor is older than the change log's retention: sync from scratch"),
        422: error("Malformed cursor or limit"),
    },
)
async def task_changes(
    scope: TaskScope,
    db: DatabaseDep,
    since: Annotated[
        str | None,
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="A `cursor` from an earlier answer; without it, every current task "
            "(paged by `limit`).",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_CHANGES, description="At most this many tasks.")] = (
        DEFAULT_CHANGES
    ),
) -> TaskChanges:
    """Every task created or changed after `since`, once, in its current state, and the ids of
    the tasks deleted after it. Follow `cursor` while `has_more`; keep the last one to sync again
    later (a client offline for longer than the log's retention gets 410 and syncs from scratch).
    """
    page = await feed.read_changes(db, scope, parse_cursor(since), limit)
    return TaskChanges(
        changes=[TaskRead.model_validate(task) for task in page.changes],
        deleted=page.deleted,
        cursor=page.cursor.encode(),
        has_more=page.has_more,
    )


@router.get("/{task_id}", response_model=TaskRead, responses=TASK_NOT_FOUND)
async def get_task(scope: TaskScope, task_id: TaskId, db: DatabaseDep) -> Any:
    return await queries.get_task(db, scope, task_id)


def parse_cursor(since: str | None) -> Cursor | None:
    """The `since` query parameter as a log position; 422 when it was not issued here."""
    if since is None:
        return None
    try:
        return Cursor.decode(since)
    except MalformedCursor:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "since"),
                    "msg": "Value error, not a cursor this API issued",
                    "input": since,
                }
            ]
        ) from None


def _written(write: TaskWrite, request: Request, response: Response) -> Any:
    """The written task; `Location` names the next occurrence when the write created one."""
    if write.successor_id is not None:
        response.headers["Location"] = str(
            request.url_for("get_task", user_id=write.task.user_id, task_id=write.successor_id)
        )
    return write.task


@router.put(
    "/{task_id}",
    response_model=TaskRead,
    responses={**SUCCESSOR_CREATED, **TASK_NOT_FOUND, **TOO_LARGE},
)
async def update_task(
    scope: TaskScope,
    task_id: TaskId,
    body: TaskUpdate,
    db: DatabaseDep,
    request: Request,
    response: Response,
) -> Any:
    """Partial update: only the fields in the body change; `{}` changes nothing; `tags`
    replaces the whole list."""
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        return await queries.get_task(db, scope, task_id)
    completion = Completion.of(changes.pop("completed")) if "completed" in changes else None
    write = await commands.update_task(db, scope, task_id, changes, completion)
    return _written(write, request, response)


@router.patch(
    "/{task_id}/complete",
    response_model=TaskRead,
    responses={**SUCCESSOR_CREATED, **TASK_NOT_FOUND, **TOO_LARGE},
)
async def complete_task(
    scope: TaskScope,
    task_id: TaskId,
    db: DatabaseDep,
    request: Request,
    response: Response,
    body: Annotated[TaskCompletion | None, Body()] = None,
) -> Any:
    """No body (or `{}`) toggles atomically; `{"completed": true|false}` sets the state.

    Completing a recurring task that has a `due_at` creates its next occurrence once; reopening
    keeps it, and completing again does not create another.
    """
    completion = Completion.of(None if body is None else body.completed)
    write = await commands.update_task(db, scope, task_id, {}, completion)
    return _written(write, request, response)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=TASK_NOT_FOUND,
)
async def delete_task(scope: TaskScope, task_id: TaskId, db: DatabaseDep) -> None:
    await commands.delete_task(db, scope, task_id)
