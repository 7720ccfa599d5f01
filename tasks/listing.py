"""Filtering, sorting and paging of `GET /api/{user_id}/tasks`.

The page is one statement that walks an index `(user_id, <sort column>, id)` (see `Task`) and
stops after `offset + limit` matching rows; each row also carries the `count(*)` with the same
filters (`X-Total-Count`, an index-only scan) and the owner's change counter (the ETag), and the
revocation guard rides in its WHERE. Nothing grows with anything but the page and the matching
rows' index entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, Integer, Select, and_, bindparam, func, not_, or_, select

from auth.scope import not_revoked
from models import MAX_TAGS, TASK_COLUMNS, Priority, change_counters, tasks
from schemas import Moment, SearchText, Tag, TaskStatusFilter
from tasks.tags import has_all_tags

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_OFFSET = 2**31 - 1


class TaskSort(StrEnum):
    created_at = "created_at"
    updated_at = "updated_at"
    title = "title"
    due_at = "due_at"
    priority = "priority"
    created = "created"
    due_date = "due_date"


class SortOrder(StrEnum):
    asc = "asc"
    desc = "desc"


SORT_ALIASES = {TaskSort.created: TaskSort.created_at, TaskSort.due_date: TaskSort.due_at}
DEFAULT_ORDERS = {
    TaskSort.created_at: SortOrder.desc,
    TaskSort.updated_at: SortOrder.desc,
    TaskSort.priority: SortOrder.desc,
    TaskSort.title: SortOrder.asc,
    TaskSort.due_at: SortOrder.asc,
}
SORT_COLUMNS = {
    TaskSort.created_at: tasks.c.created_at,
    TaskSort.updated_at: tasks.c.updated_at,
    TaskSort.title: tasks.c.title,
    TaskSort.due_at: tasks.c.due_at,
    TaskSort.priority: tasks.c.priority,
}


def _unique(tags: list[str] | None) -> list[str]:
    return list(dict.fromkeys(tags or []))


LIKE_ESCAPE = "/"


def _escape_like(text: str) -> str:
    """`%` and `_` match themselves (what SQLAlchemy's `autoescape` does, for a bound value)."""
    return (
        text.replace(LIKE_ESCAPE, LIKE_ESCAPE * 2)
        .replace("%", LIKE_ESCAPE + "%")
        .replace("_", LIKE_ESCAPE + "_")
    )


@dataclass(frozen=True)
class ListShape:
    """Which clauses a list statement has. Values are bound parameters, so every request of
    one shape shares one statement object, whose compiled form SQLAlchemy then finds by a key
    it has already computed: no statement building per request."""

    status: TaskStatusFilter
    priority: bool
    tag_count: int
    search: bool
    due_before: bool
    due_after: bool
    overdue: bool | None
    sort: TaskSort
    order: SortOrder


def _conditions(shape: ListShape) -> list[ColumnElement[bool]]:
    """The WHERE clause, always scoped by owner."""
    owner_id = bindparam("owner_id")
    where: list[ColumnElement[bool]] = [tasks.c.user_id == owner_id]
    if shape.status is not TaskStatusFilter.all:
        where.append(tasks.c.completed == (shape.status is TaskStatusFilter.completed))
    if shape.priority:
        where.append(tasks.c.priority == bindparam("priority", type_=tasks.c.priority.type))
    if shape.tag_count:
        tags = [bindparam(f"tag_{index}") for index in range(shape.tag_count)]
        where.append(has_all_tags(owner_id, tags))
    if shape.search:
        search = bindparam("search")
        where.append(
            or_(
                tasks.c.title.icontains(search, escape=LIKE_ESCAPE),
                tasks.c.description.icontains(search, escape=LIKE_ESCAPE),
            )
        )
    if shape.due_before:
        where.append(tasks.c.due_at < bindparam("due_before", type_=tasks.c.due_at.type))
    if shape.due_after:
        where.append(tasks.c.due_at >= bindparam("due_after", type_=tasks.c.due_at.type))
    if shape.overdue is not None:
        now = bindparam("now", type_=tasks.c.due_at.type)
        if shape.overdue:
            where.append(and_(not_(tasks.c.completed), tasks.c.due_at < now))
        else:
            where.append(or_(tasks.c.completed, tasks.c.due_at.is_(None), tasks.c.due_at >= now))
    return where


def _owner_state() -> Any:
    """The owner's change counter: any change of their tasks changes it (the list's ETag)."""
    seq = select(change_counters.c.seq).where(change_counters.c.user_id == bindparam("owner_id"))
    return func.coalesce(seq.scalar_subquery(), 0)


@lru_cache(maxsize=256)
def _page_statement(shape: ListShape) -> Select[Any]:
    """The page, each row carrying the total and the owner's state, and nothing at all when
    the token is revoked (then `_explanation_statement` tells why the page is empty)."""
    column = SORT_COLUMNS[shape.sort]
    descending = shape.order is SortOrder.desc
    key = column.desc() if descending else column.asc()
    if shape.sort is TaskSort.due_at:
        key = key.nulls_last()
    tiebreak = tasks.c.id.desc() if descending else tasks.c.id.asc()
    total = select(func.count()).select_from(tasks).where(*_conditions(shape)).scalar_subquery()
    return (
        select(*TASK_COLUMNS, total.label("total"), _owner_state().label("state"))
        .where(*_conditions(shape), not_revoked())
        .order_by(key, tiebreak)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


@lru_cache(maxsize=256)
def _explanation_statement(shape: ListShape) -> Select[Any]:
    """For an empty page: whether the token holds, the total and the owner's state."""
    total = select(func.count()).select_from(tasks).where(*_conditions(shape)).scalar_subquery()
    return select(
        not_revoked().label("allowed"), total.label("total"), _owner_state().label("state")
    )


@dataclass(frozen=True)
class TaskListParams:
    """The validated list parameters, aliases resolved."""

    status: TaskStatusFilter
    priority: Priority | None
    tags: list[str]
    search: str | None
    due_before: datetime | None
    due_after: datetime | None
    overdue: bool | None
    sort: TaskSort
    order: SortOrder
    limit: int
    offset: int

    @property
    def shape(self) -> ListShape:
        return ListShape(
            status=self.status,
            priority=self.priority is not None,
            tag_count=len(self.tags),
            search=self.search is not None,
            due_before=self.due_before is not None,
            due_after=self.due_after is not None,
            overdue=self.overdue,
            sort=self.sort,
            order=self.order,
        )

    def page(self) -> Select[Any]:
        """The page statement (shared by every request of the same shape); bind `values()`."""
        return _page_statement(self.shape)

    def explanation(self) -> Select[Any]:
        """What an empty page needs to know (revoked? total? state?); bind `values()`."""
        return _explanation_statement(self.shape)

    def values(self, now: datetime) -> dict[str, Any]:
        """The bound parameters of `page()` and `explanation()`, beside the scope's."""
        values: dict[str, Any] = {"limit": self.limit, "offset": self.offset}
        if self.priority is not None:
            values["priority"] = self.priority
        values.update({f"tag_{index}": tag for index, tag in enumerate(self.tags)})
        if self.search is not None:
            values["search"] = _escape_like(self.search)
        if self.due_before is not None:
            values["due_before"] = self.due_before
        if self.due_after is not None:
            values["due_after"] = self.due_after
        if self.overdue is not None:
            values["now"] = now
        return values


class TaskListQuery(BaseModel):
    """The list's query parameters, validated in one pass (a FastAPI query-parameter model)."""

    status: TaskStatusFilter | None = Field(
        default=None, description="`all` (default), `pending` or `completed`."
    )
    status_filter: TaskStatusFilter | None = Field(
        default=None,
        description="Older name of `status`; `status` wins when both are given.",
        json_schema_extra={"deprecated": True},
    )
    priority: Priority | None = Field(
        default=None, description="Only tasks of this priority: `low`, `medium`, `high`."
    )
    tag: list[Tag] = Field(
        default_factory=list,
        max_length=MAX_TAGS,
        description="Only tasks carrying this tag (case-insensitive). Repeat it "
        f"(`?tag=a&tag=b`, up to {MAX_TAGS}) for tasks carrying all of them.",
    )
    search: SearchText | None = Field(
        default=None,
        description="Case-insensitive substring of the title or the description; "
        "`%` and `_` match themselves.",
    )
    q: SearchText | None = Field(
        default=None, description="Alias of `search`; `search` wins when both are given."
    )
    due_before: Moment | None = Field(
        default=None,
        description="Only tasks due strictly before this time (ISO 8601 with an offset).",
    )
    due_after: Moment | None = Field(
        default=None,
        description="Only tasks due at or after this time (ISO 8601 with an offset).",
    )
    overdue: bool | None = Field(
        default=None,
        description="`true`: only pending tasks whose `due_at` has passed; `false`: all the "
        "others.",
    )
    sort: TaskSort | None = Field(
        default=None,
        description="`created_at` (default), `updated_at`, `title`, `due_at` or `priority` "
        "(by rank, high > medium > low); `created` and `due_date` are aliases of "
        "`created_at` and `due_at`. Tasks without `due_at` come last in both orders. "
        "Ties are broken by id.",
    )
    sort_by: TaskSort | None = Field(
        default=None, description="Alias of `sort`; `sort` wins when both are given."
    )
    order: SortOrder | None = Field(
        default=None,
        description="`asc` or `desc`. Defaults to `desc` for `created_at`, `updated_at` "
        "and `priority` (newest, most important first) and to `asc` for `title` and "
        "`due_at` (A to Z, soonest first).",
    )
    limit: int = Field(
        default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description=f"Page size, 1 to {MAX_LIMIT}."
    )
    offset: int = Field(
        default=0, ge=0, le=MAX_OFFSET, description="Number of matching tasks to skip."
    )

    def resolve(self) -> TaskListParams:
        """Resolve aliases and defaults into the parameters the statements are built from."""
        requested = self.sort or self.sort_by or TaskSort.created_at
        chosen_sort = SORT_ALIASES.get(requested, requested)
        return TaskListParams(
            status=self.status or self.status_filter or TaskStatusFilter.all,
            priority=self.priority,
            tags=_unique(self.tag),
            search=self.search if self.search is not None else self.q,
            due_before=self.due_before,
            due_after=self.due_after,
            overdue=self.overdue,
            sort=chosen_sort,
            order=self.order or DEFAULT_ORDERS[chosen_sort],
            limit=self.limit,
            offset=self.offset,
        )
