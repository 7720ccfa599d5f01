"""`POST /chatkit`: ChatKit's server protocol, for a frontend that uses ChatKit.

Authorised by the same bearer token as every route (ChatKit's custom `fetch` adds the header)
and checked for revocation; the ChatKit request is parsed with the library's own model first,
so what the protocol refuses is a 422, a thread that is not the caller's a 404, and a request
that would run the model is refused before anything is stored when no model is configured
(503), the message is too long (422) or the user's turns are used up (429), exactly as on
`POST /api/{user_id}/chat`. What the library would only refuse halfway through its stream (an
attachment, a retry after an item that is not a user message of the thread, a rating of items
that are not the thread's answers) and what the store cannot page by (a negative `limit`) is
refused here first: 400, 404, 422. Then
`TodoChatKitServer.process` answers: JSON, or the stream of thread events.
"""

from __future__ import annotations

from typing import Annotated

from chatkit.server import StreamingResult
from chatkit.store import NotFoundError
from chatkit.types import (
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    ChatKitReq,
    InputTranscribeReq,
    ItemsFeedbackReq,
    ItemsListReq,
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsAddUserMessageReq,
    ThreadsCreateReq,
    ThreadsCustomActionReq,
    ThreadsListReq,
    ThreadsRetryAfterItemReq,
    ThreadsSyncCustomActionReq,
    ThreadsUpdateReq,
    is_streaming_req,
)
from fastapi import APIRouter, Depends, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncConnection

from auth.dependencies import VerifiedClaims
from auth.scope import NOT_REVOKED, OwnerScope, TokenRevoked
from chat import conversations
from chat.chatkit import ChatKitContext, TodoChatKitServer, conversation_id_of
from chat.failures import not_configured
from chat.service import ChatService
from db import DatabaseDep
from models import CONVERSATION_TITLE_MAX_LENGTH, MessageRole
from routes.chat import EVENT_STREAM, too_long

CHATKIT_REQUEST: TypeAdapter[ChatKitReq] = TypeAdapter(ChatKitReq)
THREAD_NOT_FOUND = "Thread not found"
ITEM_NOT_FOUND = "Item not found"
# The most items one `items.feedback` rates (ChatKit's UI rates one answer at a time).
MAX_RATED_ITEMS = 100
# What this assistant never offers: client tools, widgets and their actions, structured input,
# attachments, dictation.
UNSUPPORTED = (
    ThreadsAddClientToolOutputReq,
    ThreadsAddStructuredInputReq,
    ThreadsCustomActionReq,
    ThreadsSyncCustomActionReq,
    AttachmentsCreateReq,
    AttachmentsDeleteReq,
    InputTranscribeReq,
)

router = APIRouter()


async def chatkit_owner(claims: VerifiedClaims, db: DatabaseDep) -> OwnerScope:
    owner = OwnerScope.of(claims)
    async with db.read() as connection:
        allowed = (await connection.execute(NOT_REVOKED, owner.params())).scalar_one()
    if not allowed:
        raise TokenRevoked
    return owner


ChatKitOwner = Annotated[OwnerScope, Depends(chatkit_owner)]


async def get_chatkit_server(request: Request) -> TodoChatKitServer:
    return request.app.state.chatkit


async def get_chat_service(request: Request) -> ChatService:
    return request.app.state.chat


def _refused(loc: tuple[str, ...], message: str, text: str) -> RequestValidationError:
    return RequestValidationError(
        [{"type": "value_error", "loc": loc, "msg": f"Value error, {message}", "input": text}]
    )


def check_text(request: Request, text: str, loc: tuple[str, ...]) -> None:
    """A message as `POST …/chat` takes it: no NUL, not blank, not too long (422)."""
    if "\x00" in text:
        raise _refused(loc, "must not contain NUL characters", text)
    if not text.strip():
        raise _refused(loc, "must not be blank", text)
    too_long(request, text)


def _not_found(detail: str = THREAD_NOT_FOUND) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status.HTTP_404_NOT_FOUND)


def _unsupported(what: str) -> JSONResponse:
    return JSONResponse(
        {
            "detail": f"{what} not supported: this assistant has no client tools, widgets, "
            "structured input, attachments or dictation"
        },
        status_code=status.HTTP_400_BAD_REQUEST,
    )


async def _unratable(
    connection: AsyncConnection, conversation_id: int, item_ids: list[str]
) -> JSONResponse | None:
    """Why `items.feedback` cannot rate these items (404: not in the thread), if it cannot."""
    loc = ("body", "params", "item_ids")
    if not item_ids:
        raise _refused(loc, "must name at least one item", "")
    if len(item_ids) > MAX_RATED_ITEMS:
        raise _refused(loc, f"must name at most {MAX_RATED_ITEMS} items", "")
    if not all(map(conversations.may_be_item_id, item_ids)):
        return _not_found(ITEM_NOT_FOUND)
    roles = await conversations.message_roles(connection, conversation_id, item_ids)
    if any(item_id not in roles for item_id in item_ids):
        return _not_found(ITEM_NOT_FOUND)
    for item_id, role in roles.items():
        if role != MessageRole.assistant:
            raise _refused(loc, "must name the assistant's messages", item_id)
    return None


# ChatKit's own protocol (one endpoint, requests typed by `type`), documented by ChatKit and
# the README, like `/mcp`: not a REST operation of /openapi.json.
@router.post("/chatkit", include_in_schema=False)
async def chatkit(
    request: Request,
    owner: ChatKitOwner,
    db: DatabaseDep,
    server: Annotated[TodoChatKitServer, Depends(get_chatkit_server)],
    service: Annotated[ChatService, Depends(get_chat_service)],
) -> Response:
    """ChatKit's server protocol: each ChatKit thread is one of the user's conversations."""
    body = await request.body()
    try:
        parsed = CHATKIT_REQUEST.validate_json(body)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    if isinstance(parsed, UNSUPPORTED):
        return _unsupported(f"{parsed.type} is")
    if (
        isinstance(parsed, ThreadsCreateReq | ThreadsAddUserMessageReq)
        and parsed.params.input.attachments
    ):
        return _unsupported("Message attachments are")
    if isinstance(parsed, ThreadsUpdateReq):
        title = parsed.params.title
        if "\x00" in title:
            raise _refused(("body", "params", "title"), "must not contain NUL characters", "")
        if len(title) > CONVERSATION_TITLE_MAX_LENGTH:
            raise _refused(
                ("body", "params", "title"),
                f"must be at most {CONVERSATION_TITLE_MAX_LENGTH} characters",
                "",
            )
    if isinstance(parsed, ThreadsListReq | ItemsListReq) and (parsed.params.limit or 0) < 0:
        raise RequestValidationError(
            [
                {
                    "type": "greater_than_equal",
                    "loc": ("body", "params", "limit"),
                    "msg": "Input should be greater than or equal to 0",
                    "input": parsed.params.limit,
                    "ctx": {"ge": 0},
                }
            ]
        )
    context = ChatKitContext(owner)
    thread_id = getattr(parsed.params, "thread_id", None)
    if thread_id is not None:
        try:
            conversation_id = conversation_id_of(thread_id)
        except NotFoundError:
            return _not_found()
        async with db.read() as connection:
            if await conversations.find(connection, owner.user_id, conversation_id) is None:
                return _not_found()
            if isinstance(parsed, ThreadsRetryAfterItemReq):
                item_id = parsed.params.item_id
                retried = await conversations.find_message(connection, conversation_id, item_id)
                if retried is None:
                    return _not_found(ITEM_NOT_FOUND)
                if retried.role != MessageRole.user:
                    raise _refused(
                        ("body", "params", "item_id"), "must name a user message", item_id
                    )
            if isinstance(parsed, ItemsFeedbackReq):
                refusal = await _unratable(connection, conversation_id, parsed.params.item_ids)
                if refusal is not None:
                    return refusal
    if is_streaming_req(parsed):
        if not service.assistant.configured:
            raise not_configured()
        if isinstance(parsed, ThreadsCreateReq | ThreadsAddUserMessageReq):
            text = "".join(
                part.text for part in parsed.params.input.content if hasattr(part, "text")
            )
            check_text(request, text, ("body", "params", "input", "content"))
        await service.turns.count(owner)
        if isinstance(parsed, ThreadsCreateReq):
            async with db.transaction() as connection:
                created = await conversations.create(connection, owner.user_id, text)
            context.new_conversation_id = created.id
    try:
        result = await server.process(body, context)
    except NotFoundError:
        return _not_found()
    if isinstance(result, StreamingResult):
        return StreamingResponse(
            result, media_type=EVENT_STREAM, headers={"Cache-Control": "no-store"}
        )
    return Response(result.json, media_type="application/json")
