"""Live events: `GET /api/{user_id}/events` (Server-Sent Events) and its tickets.

A stream is authenticated, counted against its owner's limit and admitted (its token checked
and its start found, in a statement shared with the streams opening at the same moment), then
answered with `routes.event_stream`: it replays what the client missed (after `Last-Event-ID`,
or `?since=` on the first connect) from the change log, then gets each change of its owner's
tasks as this process reads it, once for all of the owner's streams (`live/`). Every event's
`id` is its position in the log, so a reconnecting client resumes exactly where it stopped: no
event lost, none twice. A stream ends at its token's `exp`, when its token is revoked (at once
when the revocation is notified, else within `EVENTS_CHECK_SECONDS`), and when the process
shuts down.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Path, Query, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials
from pydantic import WithJsonSchema
from starlette.types import Scope

from auth.dependencies import TaskScope, VerifiedClaims, bearer_scheme, get_token_claims
from auth.scope import OwnerScope
from auth.tickets import TICKET_LIFETIME, issue_ticket, redeem_ticket
from db import DatabaseDep
from live.broker import ChangeBroker, InstanceFull, TooManyStreams
from models import USER_ID_MAX_LENGTH
from observability import metrics as live_metrics
from routes.event_stream import EventStream, EventStreamResponse
from routes.responses import DATABASE_UNAVAILABLE, FORBIDDEN, INTEGER, UNAUTHORIZED, error
from routes.tasks import MAX_CURSOR_LENGTH, parse_cursor
from schemas import DeletedTask, EventTicket, TaskRead
from tasks.changelog import Cursor
from web.head import head_only

MAX_TICKET_LENGTH = 128
# Streams being opened at once (web.handoff): in a reconnect storm the others wait their turn.
OPENING_AT_ONCE = 64
# What a client refused for too many streams is told to wait.
RETRY_AFTER_SECONDS = 15
# ... and one refused because this instance is full (another may take it, or a stream ends).
INSTANCE_FULL_RETRY_AFTER_SECONDS = 5

router = APIRouter(
    prefix="/api/{user_id}/events",
    tags=["events"],
    responses={**UNAUTHORIZED, **FORBIDDEN, **DATABASE_UNAVAILABLE},
)


def opens_a_stream(scope: Scope) -> bool:
    """Whether the request is for `…/events` (the stream, not its tickets)."""
    parts = scope["path"].split("/")
    return len(parts) == 4 and parts[1] == "api" and parts[3] == "events"


@router.post(
    "/tickets",
    status_code=status.HTTP_201_CREATED,
    responses={
        429: {
            **error("Too many tickets for this token (EVENTS_MAX_TICKETS_PER_TOKEN a minute)"),
            "headers": {"Retry-After": {"description": "Seconds to wait", "schema": INTEGER}},
        }
    },
)
async def create_ticket(
    request: Request, scope: TaskScope, claims: VerifiedClaims, db: DatabaseDep
) -> EventTicket:
    """A single-use ticket, valid 60 seconds, to open the event stream with `?ticket=` where
    headers cannot be sent (a browser's EventSource). It is bound to this token: the stream ends
    when the token is revoked or expires."""
    per_minute = request.app.state.settings.events_max_tickets_per_token
    ticket = await issue_ticket(db, scope, claims.expires_at, per_minute)
    return EventTicket(ticket=ticket, expires_in=int(TICKET_LIFETIME.total_seconds()))


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


def _start(since: str | None, last_event_id: str | None) -> Cursor | None:
    """Where the client stands: `Last-Event-ID`, else `since` (422 for a full sync's cursor)."""
    position = (
        parse_cursor(since)
        if last_event_id is None
        else parse_cursor(last_event_id, ("header", "last-event-id"))
    )
    if position is not None and position.initial:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": (
                        ("header", "last-event-id")
                        if last_event_id is not None
                        else ("query", "since")
                    ),
                    "msg": "Value error, a full sync in progress: finish it with "
                    "GET …/tasks/changes, then stream from its last cursor",
                    "input": last_event_id or since,
                }
            ]
        )
    return position


# The events as FastAPI documents a `fastapi.sse` stream of `TaskRead | DeletedTask`.
EVENT_ITEM_SCHEMA = {
    "type": "object",
    "properties": {
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    {"$ref": "#/components/schemas/TaskRead"},
                    {"$ref": "#/components/schemas/DeletedTask"},
                ],
            },
        },
        "event": {"type": "string"},
        "id": {"type": "string"},
        "retry": {"type": "integer", "minimum": 0},
    },
    "required": ["data"],
}


@router.get(
    "",
    status_code=status.HTTP_200_OK,
    response_class=EventStreamResponse,
    # Each event's data (the stream itself is written by `EventStreamResponse`).
    response_model=TaskRead | DeletedTask,
    responses={
        200: {
            "description": "`task.created`, `task.updated` and `task.deleted` events.",
            # The body as a whole, for tools that read OpenAPI 3.1 (openapi-typescript): text.
            "content": {
                "text/event-stream": {"itemSchema": EVENT_ITEM_SCHEMA, "schema": {"type": "string"}}
            },
        },
        410: error("The cursor is older than the change log's retention: sync from scratch"),
        429: error("Too many open event streams for this user"),
    },
)
async def events(
    request: Request,
    user_id: Annotated[str, Path(min_length=1, max_length=USER_ID_MAX_LENGTH)],
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
) -> EventStreamResponse:
    """Server-Sent Events of the user's task changes: `task.created` and `task.updated` carry the
    task, `task.deleted` its id; each event's `id` is its log position (send it back as
    `Last-Event-ID` to resume). Authenticate with `Authorization: Bearer`, or with `?ticket=`
    from `POST …/events/tickets` where headers cannot be sent (EventSource)."""
    scope, token_expires_at = await _stream_scope(request, user_id, credentials, ticket)
    start = _start(since, last_event_id)
    broker: ChangeBroker = request.app.state.broker
    stream = EventStream(broker, scope, token_expires_at)
    try:
        broker.register(stream)
    except TooManyStreams:
        live_metrics.rate_limited("event-streams")
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"At most {broker.max_streams_per_owner} open event streams per user",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        ) from None
    except InstanceFull:
        live_metrics.rate_limited("event-streams-instance")
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail=f"This instance holds the most open event streams it can "
            f"({broker.max_streams}): try again",
            headers={"Retry-After": str(INSTANCE_FULL_RETRY_AFTER_SECONDS)},
        ) from None
    try:
        await broker.admit(stream, start)
    except BaseException:
        broker.unregister(stream)
        raise
    if head_only(request.scope):  # HEAD: the stream's status and headers, no events
        broker.unregister(stream)
        return EventStreamResponse(None)
    return EventStreamResponse(stream)
