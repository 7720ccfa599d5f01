"""The list's query parameters as a FastAPI dependency, and its RFC 8288 `Link` header."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from starlette.datastructures import URL

from tasks.listing import TaskListParams, TaskListQuery


async def task_list_params(query: Annotated[TaskListQuery, Query()]) -> TaskListParams:
    """One pydantic validation of every query parameter, resolved into statement parameters."""
    return query.resolve()


def link_header(url: URL, params: TaskListParams, total: int) -> str | None:
    """RFC 8288 `Link` with `next` and `prev` pages, keeping every other query parameter."""
    links = []
    if params.offset + params.limit < total:
        next_url = url.include_query_params(offset=params.offset + params.limit)
        links.append(f'<{next_url}>; rel="next"')
    if params.offset > 0:
        prev_offset = max(0, min(params.offset, total) - params.limit)
        links.append(f'<{url.include_query_params(offset=prev_offset)}>; rel="prev"')
    return ", ".join(links) or None
