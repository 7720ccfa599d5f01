"""Tasks of one user: `/api/{user_id}/tasks`.

HTTP only: each route turns the request into one call of the task rules (`tasks/`), which scope
every statement by owner (another user's task is indistinguishable from a missing one: 404) and
carry the revocation guard inside it, and turns the answer into a response: entity tags and
conditional requests (`routes/conditional.py`), idempotency keys (`routes/idempotency.py`).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, HTTPException, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, WithJsonSchema

from auth.dependencies import TaskScope
from db import DatabaseDep
from observability.metrics import replayed, write_refused
from routes.conditional import (
    CACHE_CONTROL,
    EntityTag,
    IfMatch,
    IfNoneMatch,
    TagList,
    digest_tag,
    task_tag,
)
from routes.idempotency import REPLAYED_HEADER, IdempotencyKeyHeader, read_idempotency_key
from routes.paging import link_header, task_list_params
from routes.responses import (
    CONDITIONAL_GET,
    DATABASE_UNAVAILABLE,
    FORBIDDEN,
    IDEMPOTENT,
    PRECONDITIONS,
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
from tasks.errors import VersionMismatch
from tasks.idempotency import IdempotencyKey
from tasks.listing import TaskListParams

INT32_MAX = 2**31 - 1
MAX_CURSOR_LENGTH = 64
DEFAULT_CHANGES = 100
MAX_CHANGES = 500
DELETED_COUNT_HEADER = "X-Deleted-Count"
JSON = "application/json"

router = APIRouter(
    prefix="/api/{user_id}/tasks",
    tags=["tasks"],
    responses={**UNAUTHORIZED, **FORBIDDEN, **DATABASE_UNAVAILABLE},
)

TaskId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The task's id.")]
ListParams = Annotated[TaskListParams, Depends(task_list_params)]
TASK_LIST = TypeAdapter(list[TaskRead])
TAGGED = {"ETag": {"description": "The task's entity tag (strong), for If-Match."}}
WRITTEN = {
    200: {
        "description": "The task. When completing it created the next occurrence of a "
        "recurring task, `next_task_id` names it and `Location` points at it.",
        "headers": {
            "Location": {"description": "The next occurrence, when one was created."},
            **TAGGED,
        },
    }
}


async def task_idempotency_key(
    request: Request, scope: TaskScope, idempotency_key: IdempotencyKeyHeader = None
) -> IdempotencyKey | None:
    """The request's `Idempotency-Key`, scoped by the token's subject."""
    return await read_idempotency_key(request, idempotency_key, f"sub:{scope.user_id}")


IdempotencyKeyDep = Annotated[IdempotencyKey | None, Depends(task_idempotency_key)]


def expected_versions(
    request: Request, if_match: str | None, task_id: int
) -> tuple[int, ...] | None:
    """The versions `If-Match` allows (None: any), or 428 when the settings require it."""
    if if_match is None:
        if request.app.state.settings.require_if_match:
            write_refused(status.HTTP_428_PRECONDITION_REQUIRED, "if_match_required")
            raise HTTPException(
                status.HTTP_428_PRECONDITION_REQUIRED,
                detail="This server requires If-Match with the task's ETag for changes: "
                "GET the task, then send its ETag.",
            )
        return None
    tags = TagList.parse(if_match)
    return None if tags.any else tags.task_versions(task_id)


def _not_modified(if_none_match: str | None, tag: EntityTag) -> bool:
    return if_none_match is not None and TagList.parse(if_none_match).matches_weakly(tag)


# Characters a URL path segment may carry as they are (RFC 3986 `pchar`).
_PATH_SEGMENT_SAFE = "!$&'()*+,;=:@-._~"


def _task_url(request: Request, user_id: str, task_id: int) -> str:
    """The absolute URL of `GET …/tasks/{task_id}`, built from the router's own prefix:
    `request.url_for` walks every route of the app for it (~100 µs per write)."""
    owner = quote(user_id, safe=_PATH_SEGMENT_SAFE)
    return f"{str(request.base_url).rstrip('/')}{router.prefix.format(user_id=owner)}/{task_id}"


def _written(write: TaskWrite, request: Request, response: Response) -> Any:
    """The written task with its ETag; `Location` names the task a write created (the task
    itself, or the next occurrence a completion created)."""
    assert write.task is not None
    response.headers["ETag"] = str(task_tag(write.task.id, write.task.version))
    if write.successor_id is not None:
        response.headers["Location"] = _task_url(request, write.task.user_id, write.successor_id)
    if write.replayed:
        replayed("task_write")
        response.headers[REPLAYED_HEADER] = "true"
    return write.task


@router.get(
    "",
    response_model=list[TaskRead],
    responses={
        200: {
            "description": "A page of tasks.",
            "headers": {
                "X-Total-Count": {"description": "Matching tasks before paging."},
                "Link": {"description": 'RFC 8288 links: rel="next" and rel="prev" pages.'},
                "ETag": {"description": "Changes with any change of the user's tasks."},
            },
        },
        **CONDITIONAL_GET,
    },
)
async def list_tasks(
    scope: TaskScope,
    db: DatabaseDep,
    params: ListParams,
    request: Request,
    if_none_match: IfNoneMatch = None,
) -> Response:
    """The user's tasks, filtered, sorted (newest first by default) and paged."""
    page = await queries.list_tasks(db, scope, params)
    body = TASK_LIST.dump_json(TASK_LIST.validate_python(page.tasks))
    tag = digest_tag(str(page.state), str(sorted(request.query_params.multi_items())), body)
    headers = {"X-Total-Count": str(page.total), "ETag": str(tag), "Cache-Control": CACHE_CONTROL}
    links = link_header(request.url, params, page.total)
    if links:
        headers["Link"] = links
    if _not_modified(if_none_match, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    return Response(body, media_type=JSON, headers=headers)


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TaskRead,
    responses={
        201: {
            "description": "The task.",
            "headers": {"Location": {"description": "The new task."}, **TAGGED},
        },
        **TOO_LARGE,
        **IDEMPOTENT,
    },
)
async def create_task(
    scope: TaskScope,
    body: TaskCreate,
    db: DatabaseDep,
    request: Request,
    response: Response,
    key: IdempotencyKeyDep,
) -> Any:
    write = await commands.create_task(db, scope, body.model_dump(), idempotency=key)
    assert write.task is not None
    response.headers["Location"] = _task_url(request, scope.user_id, write.task.id)
    return _written(write, request, response)


@router.delete(
    "",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        204: {
            "description": "The completed tasks are deleted.",
            "headers": {DELETED_COUNT_HEADER: {"description": "How many were deleted."}},
        },
        **IDEMPOTENT,
    },
)
async def delete_completed_tasks(
    scope: TaskScope,
    db: DatabaseDep,
    response: Response,
    key: IdempotencyKeyDep,
    status_: Annotated[
        Literal["completed"],
        Query(
            alias="status",
            description="Required and must be `completed`, so a list is never wiped by accident.",
        ),
    ],
) -> None:
    """Delete all the caller's completed tasks."""
    write = await commands.delete_completed_tasks(db, scope, idempotency=key)
    response.headers[DELETED_COUNT_HEADER] = str(write.deleted_count)
    if write.replayed:
        replayed("task_write")
        response.headers[REPLAYED_HEADER] = "true"


@router.get(
    "/stats",
    responses={
        200: {"headers": {"ETag": {"description": "Changes with the counts."}}},
        **CONDITIONAL_GET,
    },
)
async def task_stats(
    scope: TaskScope, db: DatabaseDep, if_none_match: IfNoneMatch = None
) -> TaskStats:
    """Counts of the user's tasks, in one query."""
    answer = await queries.task_stats(db, scope)
    body = answer.stats.model_dump_json().encode()
    tag = digest_tag(str(answer.state), body)
    headers = {"ETag": str(tag), "Cache-Control": CACHE_CONTROL}
    if _not_modified(if_none_match, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)  # type: ignore[return-value]
    return Response(body, media_type=JSON, headers=headers)  # type: ignore[return-value]


def parse_cursor(
    since: str | None, location: tuple[str, str] = ("query", "since")
) -> Cursor | None:
    """A cursor (the `since` query parameter, or the header at `location`) as a log position;
    422 at that location when it was not issued here."""
    if since is None:
        return None
    try:
        return Cursor.decode(since)
    except MalformedCursor:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": location,
                    "msg": "Value error, not a cursor this API issued",
                    "input": since,
                }
            ]
        ) from None


@router.get(
    "/changes",
    responses={
        410: error("The cursor is older than the change log's retention: sync from scratch"),
    },
)
async def task_changes(
    scope: TaskScope,
    db: DatabaseDep,
    since: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "maxLength": MAX_CURSOR_LENGTH}),
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


@router.get(
    "/{task_id}",
    response_model=TaskRead,
    responses={200: {"headers": TAGGED}, **CONDITIONAL_GET, **TASK_NOT_FOUND},
)
async def get_task(
    scope: TaskScope,
    task_id: TaskId,
    db: DatabaseDep,
    response: Response,
    if_none_match: IfNoneMatch = None,
) -> Any:
    task = await queries.get_task(db, scope, task_id)
    tag = task_tag(task.id, task.version)
    headers = {"ETag": str(tag), "Cache-Control": CACHE_CONTROL}
    if _not_modified(if_none_match, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    response.headers.update(headers)
    return task


@router.put(
    "/{task_id}",
    response_model=TaskRead,
    responses={**WRITTEN, **TASK_NOT_FOUND, **TOO_LARGE, **PRECONDITIONS, **IDEMPOTENT},
)
async def update_task(
    scope: TaskScope,
    task_id: TaskId,
    body: TaskUpdate,
    db: DatabaseDep,
    request: Request,
    response: Response,
    key: IdempotencyKeyDep,
    if_match: IfMatch = None,
) -> Any:
    """Partial update: only the fields in the body change; `{}` changes nothing; `tags`
    replaces the whole list. With `If-Match`, only if the task is unchanged since (else 412)."""
    versions = expected_versions(request, if_match, task_id)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        task = await queries.get_task(db, scope, task_id)
        if versions is not None and task.version not in versions:
            raise VersionMismatch(task.version)
        return _written(TaskWrite(task), request, response)
    completion = Completion.of(changes.pop("completed")) if "completed" in changes else None
    write = await commands.update_task(
        db, scope, task_id, changes, completion, expected_versions=versions, idempotency=key
    )
    return _written(write, request, response)


@router.patch(
    "/{task_id}/complete",
    response_model=TaskRead,
    responses={**WRITTEN, **TASK_NOT_FOUND, **TOO_LARGE, **PRECONDITIONS, **IDEMPOTENT},
)
async def complete_task(
    scope: TaskScope,
    task_id: TaskId,
    db: DatabaseDep,
    request: Request,
    response: Response,
    key: IdempotencyKeyDep,
    body: Annotated[TaskCompletion | None, Body()] = None,
    if_match: IfMatch = None,
) -> Any:
    """No body (or `{}`) toggles atomically; `{"completed": true|false}` sets the state.

    Completing a recurring task that has a `due_at` creates its next occurrence once; reopening
    keeps it, and completing again does not create another.
    """
    versions = expected_versions(request, if_match, task_id)
    completion = Completion.of(None if body is None else body.completed)
    write = await commands.update_task(
        db, scope, task_id, {}, completion, expected_versions=versions, idempotency=key
    )
    return _written(write, request, response)


@router.delete(
    "/{task_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={**TASK_NOT_FOUND, **PRECONDITIONS, **IDEMPOTENT},
)
async def delete_task(
    scope: TaskScope,
    task_id: TaskId,
    db: DatabaseDep,
    request: Request,
    response: Response,
    key: IdempotencyKeyDep,
    if_match: IfMatch = None,
) -> None:
    versions = expected_versions(request, if_match, task_id)
    write = await commands.delete_task(
        db, scope, task_id, expected_versions=versions, idempotency=key
    )
    if write.replayed:
        response.headers[REPLAYED_HEADER] = "true"
