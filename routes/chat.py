"""The chat assistant over REST: `POST /api/{user_id}/chat` and the user's conversations.

HTTP only: the turn itself is `chat.service.ChatService`. The same JWT dependency as every task
route (403 before anything runs when the token's `sub` is not `{user_id}`), then the revocation
check. With `Accept: text/event-stream` the chat route streams the turn as Server-Sent Events.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Header, Path, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, format_sse_event

from auth.dependencies import TaskScope
from auth.scope import NOT_REVOKED, OwnerScope, TokenRevoked
from chat import conversations
from chat.failures import ChatFailure
from chat.service import (
    Answered,
    ChatEvent,
    ChatService,
    Failed,
    TextDelta,
    ToolCalled,
    ToolResult,
)
from chat.turns import ConversationNotFound, Replayed, Turn
from db import DatabaseDep
from observability.metrics import replayed as count_replay
from routes.idempotency import REPLAYED_HEADER, IdempotencyKeyHeader, read_idempotency_key
from routes.responses import (
    DATABASE_UNAVAILABLE,
    FORBIDDEN,
    IDEMPOTENT,
    INTEGER,
    TOO_LARGE,
    UNAUTHORIZED,
    error,
)
from schemas import INT32_MAX, ChatRequest, ChatResponse, ConversationRead, MessageRead

EVENT_STREAM = "text/event-stream"
CONVERSATION_NOT_FOUND = "Conversation not found"
DEFAULT_PAGE, MAX_PAGE = 50, 200

router = APIRouter(
    prefix="/api/{user_id}",
    tags=["chat"],
    responses={**UNAUTHORIZED, **FORBIDDEN, **DATABASE_UNAVAILABLE},
)

RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait", "schema": INTEGER}}
NOT_FOUND = {404: error("No such conversation for this user")}
MODEL_ERRORS = {
    429: {
        **error("Too many chat turns for this user (CHAT_TURNS_PER_WINDOW)"),
        "headers": RETRY_AFTER,
    },
    502: error("The model failed or answered with something unusable"),
    503: {
        **error(
            "No model is configured (OPENAI_API_KEY), the model provider is rate-limiting or "
            "overloaded, or the database did not answer"
        ),
        "headers": RETRY_AFTER,
    },
    504: error("The model did not answer within CHAT_MODEL_TIMEOUT"),
}


async def chat_scope(scope: TaskScope, db: DatabaseDep) -> OwnerScope:
    """The task routes' scope, and the token not revoked (one query)."""
    async with db.read() as connection:
        allowed = (await connection.execute(NOT_REVOKED, scope.params())).scalar_one()
    if not allowed:
        raise TokenRevoked
    return scope


ChatScope = Annotated[OwnerScope, Depends(chat_scope)]
ConversationId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The conversation's id.")]
Limit = Annotated[
    int, Query(ge=1, le=MAX_PAGE, description=f"At most this many (1 to {MAX_PAGE}).")
]
Offset = Annotated[int, Query(ge=0, le=INT32_MAX, description="Skip this many, to page through.")]


async def get_chat_service(request: Request) -> ChatService:
    return request.app.state.chat


ChatServiceDep = Annotated[ChatService, Depends(get_chat_service)]


def too_long(request: Request, message: str) -> None:
    limit = request.app.state.settings.chat_max_message_chars
    if len(message) > limit:
        raise RequestValidationError(
            [
                {
                    "type": "string_too_long",
                    "loc": ("body", "message"),
                    "msg": f"String should have at most {limit} characters",
                    "input": None,
                    "ctx": {"max_length": limit},
                }
            ]
        )


def _sse(name: str, data: Any) -> bytes:
    return format_sse_event(event=name, data_str=json.dumps(data, ensure_ascii=False, default=str))


def _encoded(event: ChatEvent) -> bytes:
    match event:
        case TextDelta(text=text):
            return _sse("delta", {"text": text})
        case ToolCalled(call_id=call_id, name=name, arguments=arguments):
            return _sse("tool_call", {"call_id": call_id, "name": name, "arguments": arguments})
        case ToolResult(call_id=call_id, name=name, result=result, is_error=is_error):
            return _sse(
                "tool_result",
                {"call_id": call_id, "name": name, "result": result, "is_error": is_error},
            )
        case Answered(answer=answer):
            return _sse("done", answer.model_dump(mode="json"))
        case Failed(failure=failure):
            return _sse(
                "error",
                {
                    "status": failure.status,
                    "detail": failure.detail,
                    "retry_after": failure.retry_after,
                },
            )


async def _event_stream(events: AsyncIterator[ChatEvent]) -> AsyncIterator[bytes]:
    yield format_sse_event(comment="chat")  # the headers go out before the model answers
    async for event in events:
        yield _encoded(event)


async def _replayed_stream(answer: ChatResponse) -> AsyncIterator[bytes]:
    yield _encoded(Answered(answer, replayed=True))


def _streams(accept: str | None) -> bool:
    return accept is not None and EVENT_STREAM in accept.lower()


STREAM_DESCRIPTION = (
    "With `Accept: text/event-stream`: `delta` events (`{text}`), `tool_call` (`{call_id, "
    "name, arguments}`) and `tool_result` (`{call_id, name, result, is_error}`) as they happen, "
    "then `done` with the JSON answer once it is stored, or `error` (`{status, detail, "
    "retry_after}`) when the model fails once the stream has begun."
)


@router.post(
    "/chat",
    response_model=ChatResponse,
    responses={
        200: {
            "description": "The assistant's answer and the tools it called. " + STREAM_DESCRIPTION
        },
        **NOT_FOUND,
        **IDEMPOTENT,
        **TOO_LARGE,
        **MODEL_ERRORS,
    },
)
async def chat(
    scope: ChatScope,
    body: ChatRequest,
    service: ChatServiceDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Any:
    """Say something to the assistant; it manages your tasks with the same tools as `/mcp`.

    Without `conversation_id` a new conversation starts (its id is in the answer); the
    conversation's latest messages (`CHAT_HISTORY_MESSAGES`) are its memory. With an
    `Idempotency-Key` a retry replays the stored answer, or resumes a turn whose model failed
    without running its tool calls again."""
    too_long(request, body.message)
    key = await read_idempotency_key(request, idempotency_key, f"sub:{scope.user_id}")
    turn: Turn | Replayed = await service.begin(scope, body.conversation_id, body.message, key)
    replayed = {REPLAYED_HEADER: "true"} if isinstance(turn, Replayed) else {}
    if replayed:
        count_replay("chat_turn")
    if _streams(accept):
        stream = (
            _replayed_stream(turn.answer)
            if isinstance(turn, Replayed)
            else _event_stream(service.stream(turn))
        )
        return EventSourceResponse(
            stream, headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no", **replayed}
        )
    answered = (
        Answered(turn.answer, True) if isinstance(turn, Replayed) else await service.answer(turn)
    )
    return JSONResponse(answered.answer.model_dump(mode="json"), headers=replayed)


@router.get(
    "/conversations",
    response_model=list[ConversationRead],
    responses={200: {"headers": {"X-Total-Count": {"description": "The user's conversations."}}}},
)
async def list_conversations(
    scope: ChatScope,
    db: DatabaseDep,
    response: Response,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
) -> Any:
    """The user's conversations (REST and ChatKit alike), the most recently active first."""
    page = await conversations.list_conversations(db, scope.user_id, limit, offset)
    response.headers["X-Total-Count"] = str(page.total)
    return [ConversationRead.model_validate(row) for row in page.rows]


@router.get(
    "/conversations/{conversation_id}/messages",
    response_model=list[MessageRead],
    responses={
        200: {"headers": {"X-Total-Count": {"description": "The conversation's messages."}}},
        **NOT_FOUND,
    },
)
async def list_messages(
    scope: ChatScope,
    conversation_id: ConversationId,
    db: DatabaseDep,
    response: Response,
    limit: Limit = DEFAULT_PAGE,
    offset: Offset = 0,
) -> Any:
    """A page of the conversation, oldest first; assistant messages carry their tool calls."""
    page = await conversations.list_messages(db, scope.user_id, conversation_id, limit, offset)
    if page is None:
        raise ConversationNotFound
    response.headers["X-Total-Count"] = str(page.total)
    return [MessageRead.model_validate(row) for row in page.rows]


@router.delete(
    "/conversations/{conversation_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=NOT_FOUND,
)
async def delete_conversation(
    scope: ChatScope, conversation_id: ConversationId, db: DatabaseDep
) -> None:
    """Delete the conversation and its messages (the tasks it changed stay)."""
    async with db.transaction() as connection:
        if not await conversations.delete(connection, scope.user_id, conversation_id):
            raise ConversationNotFound


async def chat_failure_handler(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ChatFailure)
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return JSONResponse({"detail": exc.detail}, status_code=exc.status, headers=headers)


async def conversation_not_found_handler(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": CONVERSATION_NOT_FOUND}, status_code=status.HTTP_404_NOT_FOUND)


def install_chat_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ChatFailure, chat_failure_handler)
    app.add_exception_handler(ConversationNotFound, conversation_not_found_handler)
