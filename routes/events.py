"""Live events: `GET /api/{user_id}/events` (Server-Sent Events) and its tickets.

A stream first replays what the client missed (after `Last-Event-ID`, or `?since=` on the first
connect) from the change log, then waits: a write of the owner's tasks, in this process or any
other (LISTEN/NOTIFY), wakes it and it reads the log again. Every event's `id` is its position
in the log, so a reconnecting client resumes exactly where it stopped: no event lost, none twice.
The stream also wakes every 15 seconds to check that its token still holds (FastAPI's SSE sends
a keep-alive comment when nothing else was sent), and ends when the token expires or is revoked,
or when the process shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import WithJsonSchema

from auth.dependencies import TaskScope, VerifiedClaims, bearer_scheme, get_token_claims
from auth.scope import OwnerScope, TokenRevoked
from auth.tickets import TICKET_LIFETIME, issue_ticket, redeem_ticket
from database.types import utcnow
from db import Database, DatabaseDep, is_database_unavailable
from live.broker import ChangeBroker, Subscription, TooManyStreams
from models import USER_ID_MAX_LENGTH, ChangeKind
from routes.responses import DATABASE_UNAVAILABLE, FORBIDDEN, UNAUTHORIZED, error
from routes.tasks import MAX_CURSOR_LENGTH, parse_cursor
from schemas import DeletedTask, EventTicket, TaskRead
from tasks import feed
from tasks.changelog import Cursor
from tasks.errors import CursorExpired

logger = logging.getLogger("todo.events")

# How long a client waits before reconnecting, and how often an idle stream re-checks its token.
RETRY_MILLISECONDS = 2_000
REVALIDATE_SECONDS = 15.0
REPLAY_PAGE = 500
MAX_TICKET_LENGTH = 128

router = APIRouter(
    prefix="/api/{user_id}/events",
    tags=["events"],
    responses={**UNAUTHORIZED, **FORBIDDEN, **DATABASE_UNAVAILABLE},
)


async def get_broker(request: Request) -> ChangeBroker:
    return request.app.state.broker


BrokerDep = Annotated[ChangeBroker, Depends(get_broker)]


@router.post("/tickets", status_code=status.HTTP_201_CREATED)
async def create_ticket(scope: TaskScope, claims: VerifiedClaims, db: DatabaseDep) -> EventTicket:
    """A single-use ticket, valid 60 seconds, to open the event stream with `?ticket=` where
    headers cannot be sent (a browser's EventSource). It is bound to this token: the stream ends
    when the token is revoked or expires."""
    ticket = await issue_ticket(db, scope, claims.expires_at)
    return EventTicket(ticket=ticket, expires_in=int(TICKET_LIFETIME.total_seconds()))


@dataclass
class Stream:
    scope: OwnerScope
    subscription: Subscription
    start: Cursor
    token_expires_at: datetime


async def _stream_scope(
    request: Request,
    user_id: str,
    credentials: HTTPAuthorizationCredentials | None,
    ticket: str | None,
) -> tuple[OwnerScope, datetime]:
    """Who opens the stream: a ticket's token, or the bearer token."""
    if ticket is not None:
        redeemed = await redeem_ticket(request.app.state.database, ticket)
        if redeemed is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                detail="Unknown, used or expired ticket: ask POST …/events/tickets for a new one",
                headers={"WWW-Authenticate": "Bearer"},
            )
        scope, expires_at = redeemed.scope, redeemed.token_expires_at
    else:
        claims = await get_token_claims(request, credentials)
        scope, expires_at = OwnerScope.of(claims), claims.expires_at
    if scope.user_id != user_id:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="You can only access your own tasks")
    return scope, expires_at


async def open_stream(
    request: Request,
    user_id: Annotated[str, Path(min_length=1, max_length=USER_ID_MAX_LENGTH)],
    db: DatabaseDep,
    broker: BrokerDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    ticket: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "maxLength": MAX_TICKET_LENGTH}),
        Query(
            max_length=MAX_TICKET_LENGTH,
            description="A ticket from `POST …/events/tickets`, instead of `Authorization`.",
        ),
    ] = None,
    since: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "maxLength": MAX_CURSOR_LENGTH}),
        Query(
            max_length=MAX_CURSOR_LENGTH,
            description="On the first connect: replay what changed after this cursor (from "
            "`GET …/tasks/changes` or an event's `id`).",
        ),
    ] = None,
    last_event_id: Annotated[
        str | None,
        WithJsonSchema({"type": "string", "maxLength": MAX_CURSOR_LENGTH}),
        Header(
            max_length=MAX_CURSOR_LENGTH,
            description="Sent by EventSource when it reconnects: resume after this event.",
        ),
    ] = None,
) -> AsyncIterator[Stream]:
    """Authenticate, subscribe (before reading, so no wake-up is missed) and find the start."""
    scope, token_expires_at = await _stream_scope(request, user_id, credentials, ticket)
    position = parse_cursor(last_event_id if last_event_id is not None else since)
    if position is not None and position.initial:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("header" if last_event_id is not None else "query", "since"),
                    "msg": "Value error, a full sync in progress: finish it with "
                    "GET …/tasks/changes, then stream from its last cursor",
                    "input": last_event_id or since,
                }
            ]
        )
    try:
        subscription = broker.subscribe(scope.user_id)
    except TooManyStreams:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"At most {broker.max_streams_per_owner} open event streams per user",
            headers={"Retry-After": str(int(REVALIDATE_SECONDS))},
        ) from None
    try:
        start = await feed.stream_start(db, scope, position)
        yield Stream(scope, subscription, start, token_expires_at)
    finally:
        broker.unsubscribe(subscription)


StreamDep = Annotated[Stream, Depends(open_stream)]


def _event(entry: feed.LogEntry) -> ServerSentEvent:
    data: TaskRead | DeletedTask
    if entry.kind is ChangeKind.deleted:
        data = DeletedTask(id=entry.task["id"])
    else:
        data = TaskRead.model_validate(entry.task)
    return ServerSentEvent(event=f"task.{entry.kind.value}", id=entry.cursor.encode(), data=data)


async def _replay(db: Database, stream: Stream, cursor: Cursor) -> tuple[list[Any], Cursor]:
    entries = await feed.read_log(db, stream.scope, cursor, REPLAY_PAGE)
    if entries:
        cursor = entries[-1].cursor
    return entries, cursor


@router.get(
    "",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "`task.created`, `task.updated` and `task.deleted` events.",
            # The body as a whole, for tools that read OpenAPI 3.1 (openapi-typescript): text.
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        410: error("The cursor is older than the change log's retention: sync from scratch"),
        429: error("Too many open event streams for this user"),
    },
)
async def events(
    stream: StreamDep, db: DatabaseDep, broker: BrokerDep
) -> AsyncIterable[TaskRead | DeletedTask]:
    """Server-Sent Events of the user's task changes: `task.created` and `task.updated` carry the
    task, `task.deleted` its id; each event's `id` is its log position (send it back as
    `Last-Event-ID` to resume). Authenticate with `Authorization: Bearer`, or with `?ticket=`
    from `POST …/events/tickets` where headers cannot be sent (EventSource)."""
    yield ServerSentEvent(comment="live", retry=RETRY_MILLISECONDS)
    cursor = stream.start
    while not broker.closing.is_set():
        remaining = (stream.token_expires_at - utcnow()).total_seconds()
        if remaining <= 0:
            return
        try:
            entries, cursor = await _replay(db, stream, cursor)
        except (TokenRevoked, CursorExpired):
            return
        except Exception as exc:
            if not is_database_unavailable(exc):
                raise
            logger.warning("event stream ends: database unavailable: %r", exc)
            return
        for entry in entries:
            yield _event(entry)
        if len(entries) == REPLAY_PAGE:
            continue
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(min(REVALIDATE_SECONDS, remaining)):
                await stream.subscription.wait()
