"""The task tools, in the shapes of the hackathon's Phase III specification.

Each tool is one call of the same task rules the REST routes call (`tasks.commands`,
`tasks.queries`), for the owner the bearer token names: owner scoping, the revocation guard,
validation limits (the arguments are typed with the REST bodies' own constrained types, and the
values go through `TaskCreate`, `TaskUpdate` and `TaskListQuery` as a request body would),
recurrence and the change log all come from there. The spec's `user_id` argument is accepted and
must name the token's user; it never chooses whose tasks are touched.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, BeforeValidator, Field, ValidationError

from auth.scope import OwnerScope
from db import Database
from mcp_server.auth import current_owner
from mcp_server.errors import ReadableTool, invalid, task_rule_errors
from models import MAX_TAGS, TAG_MAX_LENGTH, Priority, Recurrence
from schemas import (
    Description,
    Moment,
    SearchText,
    Tag,
    Tags,
    TaskCreate,
    TaskStatusFilter,
    TaskUpdate,
)
from schemas import DueAt as DueAtValue
from schemas import Title as TitleValue
from tasks import commands, queries
from tasks.completion import Completion
from tasks.listing import DEFAULT_LIMIT, MAX_LIMIT, MAX_OFFSET, SortOrder, TaskListQuery, TaskSort

TASK_ID_MAX = 2**31 - 1
# The task fields `update_task` may set: those of `TaskUpdate` except `completed`.
UPDATABLE = ("title", "description", "priority", "tags", "due_at", "recurrence")

UserId = Annotated[
    str | None,
    Field(
        description="Optional. The signed-in user's id. The tools always act for the user of the "
        "access token; if you pass this it must be that user's id, or the call is refused."
    ),
]


def _not_a_boolean(value: Any) -> Any:
    """`true` is no task id (pydantic would read it as 1)."""
    if isinstance(value, bool):
        raise ValueError("must be a task id (a positive integer), not a boolean")
    return value


TaskId = Annotated[
    int,
    Field(
        ge=1,
        le=TASK_ID_MAX,
        description="The task's id: `task_id` from add_task, or `id` from list_tasks.",
    ),
    BeforeValidator(_not_a_boolean),
]
Title = Annotated[TitleValue, Field(description="A short title, 1 to 200 characters.")]
TaskDescription = Annotated[
    Description | None, Field(description="Details, up to 1000 characters.")
]
TaskPriority = Annotated[Priority | None, Field(description="`low`, `medium` or `high`.")]
TaskTags = Annotated[
    Tags | None,
    Field(
        description=f"Up to {MAX_TAGS} labels of 1 to {TAG_MAX_LENGTH} characters, e.g. "
        '["work", "errands"]; stored lower-case, without duplicates.',
    ),
]
DueAt = Annotated[
    DueAtValue | None,
    Field(
        description="When it is due: ISO 8601 with a UTC offset, e.g. 2030-01-31T09:00:00+01:00."
    ),
]
TaskRecurrence = Annotated[
    Recurrence | None,
    Field(
        description="`none`, `daily`, `weekly` or `monthly`. Completing a recurring task that has "
        "a due date creates its next occurrence."
    ),
]


class TaskChange(BaseModel):
    task_id: int = Field(description="The task's id.")
    title: str = Field(description="The task's title.")


class TaskCreated(TaskChange):
    status: Literal["created"] = "created"


class TaskUpdated(TaskChange):
    status: Literal["updated"] = "updated"


class TaskCompleted(TaskChange):
    status: Literal["completed"] = "completed"
    next_task_id: int | None = Field(
        default=None,
        description="For a recurring task: the id of its next occurrence, created now or by an "
        "earlier completion.",
    )


class TaskDeleted(TaskChange):
    status: Literal["deleted"] = "deleted"


class TaskItem(BaseModel):
    id: int
    title: str
    completed: bool
    description: str | None
    priority: Priority
    tags: list[str]
    due_at: datetime | None
    recurrence: Recurrence


def _owner(user_id: str | None) -> OwnerScope:
    owner = current_owner()
    if owner is None:
        raise ToolError("Not authenticated: send the user's access token as a Bearer token")
    if user_id is not None and user_id != owner.user_id:
        raise ToolError(
            f"user_id {user_id!r} is not the signed-in user: the tools only manage the tasks of "
            "the user whose access token was sent (omit user_id, or pass their own id)"
        )
    return owner


def _given_arguments(ctx: Context) -> Mapping[str, Any] | None:
    """The arguments exactly as the client sent them (to tell `null` from "not given")."""
    params = ctx.request_context.params
    arguments = params.get("arguments") if isinstance(params, Mapping) else None
    return arguments if isinstance(arguments, Mapping) else None


class TaskTools:
    """The tools, bound to the app's database."""

    def __init__(self, database: Callable[[], Database]) -> None:
        self.database = database

    def tools(self) -> list[ReadableTool]:
        def tool(method: Callable[..., Any], title: str, **hints: bool) -> ReadableTool:
            return ReadableTool.from_function(
                method,
                title=title,
                # The docstring, as one paragraph: it is what the model reads.
                description=" ".join(inspect.cleandoc(method.__doc__ or "").split()),
                annotations=ToolAnnotations(title=title, open_world_hint=False, **hints),
                structured_output=True,
            )

        return [
            tool(self.add_task, "Add a task", read_only_hint=False, destructive_hint=False),
            tool(self.list_tasks, "List tasks", read_only_hint=True),
            tool(
                self.complete_task,
                "Complete a task",
                read_only_hint=False,
                destructive_hint=False,
                idempotent_hint=True,
            ),
            tool(
                self.delete_task,
                "Delete a task",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=True,
            ),
            tool(
                self.update_task,
                "Update a task",
                read_only_hint=False,
                destructive_hint=True,
                idempotent_hint=True,
            ),
        ]

    async def add_task(
        self,
        title: Title,
        description: TaskDescription = None,
        priority: TaskPriority = None,
        tags: TaskTags = None,
        due_at: DueAt = None,
        recurrence: TaskRecurrence = None,
        user_id: UserId = None,
    ) -> TaskCreated:
        """Add a new task to the user's todo list. Only the title is needed; use the other
        fields when the user mentions them (a priority, labels, a due date, a repeat).
        Returns the new task's id."""
        owner = _owner(user_id)
        given = {
            "title": title,
            "description": description,
            "priority": priority,
            "tags": tags,
            "due_at": due_at,
            "recurrence": recurrence,
        }
        try:
            fields = TaskCreate.model_validate(
                {name: value for name, value in given.items() if value is not None}
            ).model_dump()
        except ValidationError as exc:
            raise invalid(exc) from exc
        with task_rule_errors():
            write = await commands.create_task(self.database(), owner, fields)
        return TaskCreated(task_id=write.task.id, title=write.task.title)

    async def list_tasks(
        self,
        status: Annotated[
            TaskStatusFilter,
            Field(description="`all` (default), `pending` (not done yet) or `completed`."),
        ] = TaskStatusFilter.all,
        priority: Annotated[
            Priority | None, Field(description="Only tasks of this priority.")
        ] = None,
        tags: Annotated[
            list[Tag] | None,
            Field(max_length=MAX_TAGS, description="Only tasks carrying all of these tags."),
        ] = None,
        search: Annotated[
            SearchText | None,
            Field(description="Only tasks whose title or description contains this text."),
        ] = None,
        due_before: Annotated[
            Moment | None,
            Field(description="Only tasks due before this time (ISO 8601 with an offset)."),
        ] = None,
        due_after: Annotated[
            Moment | None,
            Field(description="Only tasks due at or after this time (ISO 8601 with an offset)."),
        ] = None,
        overdue: Annotated[
            bool | None,
            Field(
                description="true: only pending tasks whose due date has passed; false: all others."
            ),
        ] = None,
        sort: Annotated[
            TaskSort | None,
            Field(
                description="`created_at` (default, newest first), `updated_at`, `title`, "
                "`due_at` (soonest first, undated last) or `priority` (high first)."
            ),
        ] = None,
        order: Annotated[
            SortOrder | None, Field(description="`asc` or `desc`, to reverse the default order.")
        ] = None,
        limit: Annotated[
            int,
            Field(ge=1, le=MAX_LIMIT, description=f"At most this many tasks (1 to {MAX_LIMIT})."),
        ] = DEFAULT_LIMIT,
        offset: Annotated[
            int, Field(ge=0, le=MAX_OFFSET, description="Skip this many, to page through.")
        ] = 0,
        user_id: UserId = None,
    ) -> list[TaskItem]:
        """List the user's tasks, newest first. Filter by status (pending or completed),
        priority, tags, text, due date or overdue, and sort them. Each task has its `id`, which
        the other tools take as `task_id`."""
        owner = _owner(user_id)
        try:
            params = TaskListQuery(
                status=status,
                priority=priority,
                tag=tags or [],
                search=search,
                due_before=due_before,
                due_after=due_after,
                overdue=overdue,
                sort=sort,
                order=order,
                limit=limit,
                offset=offset,
            ).resolve()
        except ValidationError as exc:
            raise invalid(exc) from exc
        with task_rule_errors():
            page = await queries.list_tasks(self.database(), owner, params)
        return [TaskItem.model_validate(task) for task in page.tasks]

    async def complete_task(self, task_id: TaskId, user_id: UserId = None) -> TaskCompleted:
        """Mark a task as done. Completing a task that is already done changes nothing. A
        recurring task with a due date gets its next occurrence (`next_task_id`)."""
        owner = _owner(user_id)
        with task_rule_errors():
            write = await commands.update_task(
                self.database(), owner, task_id, {}, Completion.complete
            )
        return TaskCompleted(
            task_id=write.task.id, title=write.task.title, next_task_id=write.task.next_task_id
        )

    async def delete_task(self, task_id: TaskId, user_id: UserId = None) -> TaskDeleted:
        """Delete a task for good. Returns the deleted task's title."""
        owner = _owner(user_id)
        with task_rule_errors():
            write = await commands.delete_task(self.database(), owner, task_id)
        return TaskDeleted(task_id=write.task.id, title=write.task.title)

    async def update_task(
        self,
        ctx: Context,
        task_id: TaskId,
        title: Annotated[TitleValue | None, Field(description="A new title.")] = None,
        description: Annotated[
            Description | None,
            Field(description="A new description; null removes it."),
        ] = None,
        priority: TaskPriority = None,
        tags: Annotated[
            Tags | None, Field(description="Replaces all the task's tags; [] removes them.")
        ] = None,
        due_at: Annotated[
            DueAtValue | None,
            Field(description="A new due time (ISO 8601 with an offset); null removes it."),
        ] = None,
        recurrence: TaskRecurrence = None,
        user_id: UserId = None,
    ) -> TaskUpdated:
        """Change a task's title, description, priority, tags, due date or repeat. Only the
        fields you pass change. To mark it done use complete_task."""
        owner = _owner(user_id)
        values = {
            "title": title,
            "description": description,
            "priority": priority,
            "tags": tags,
            "due_at": due_at,
            "recurrence": recurrence,
        }
        sent = _given_arguments(ctx)
        given = {
            name: value
            for name, value in values.items()
            if (name in sent if sent is not None else value is not None)
        }
        if not given:
            raise ToolError(f"Nothing to update: pass at least one of {', '.join(UPDATABLE)}")
        try:
            fields = TaskUpdate.model_validate(given).model_dump(exclude_unset=True)
        except ValidationError as exc:
            raise invalid(exc) from exc
        with task_rule_errors():
            write = await commands.update_task(self.database(), owner, task_id, fields)
        return TaskUpdated(task_id=write.task.id, title=write.task.title)
