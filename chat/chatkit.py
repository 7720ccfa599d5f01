"""ChatKit's server protocol (`openai-chatkit`) on the same conversations and the same agent.

`ConversationStore` is ChatKit's `Store` on the `conversations` and `messages` tables: a
thread is a conversation (its id is the conversation's id as a string, so a thread also shows
in `GET …/conversations`), a user or assistant message item is a message row (`item_id` keeps
the id ChatKit gave the item). Everything is scoped by the caller, so one user never sees
another's threads. Only message items are stored: a ChatKit item of another kind (widgets,
workflows, hidden context, client tool calls) is not produced by this assistant and is not
kept. Attachments are not supported. A rating (`items.feedback`) is kept on the assistant's
message (`messages.feedback`).

`TodoChatKitServer.respond` runs the REST route's agent with the same tools and the same
history (`chat.history`, not ChatKit's default converter, whose assistant items a Chat
Completions model refuses), streamed through ChatKit's `stream_agent_response`. With a Chat
Completions model the Agents SDK gives every message the placeholder id `__fake_id__`; each
assistant item gets an id of its own here, or every answer would replace the one before.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import anyio
from agents.models.fake_id import FAKE_RESPONSES_ID
from chatkit.agents import AgentContext, stream_agent_response
from chatkit.errors import CustomStreamError
from chatkit.server import ChatKitServer
from chatkit.store import NotFoundError, Store, StoreItemType, default_generate_id
from chatkit.types import (
    AssistantMessageContent,
    AssistantMessageItem,
    Attachment,
    FeedbackKind,
    InferenceOptions,
    Page,
    ThreadItem,
    ThreadItemAddedEvent,
    ThreadItemDoneEvent,
    ThreadItemRemovedEvent,
    ThreadItemUpdatedEvent,
    ThreadMetadata,
    ThreadStreamEvent,
    UserMessageItem,
    UserMessageTagContent,
    UserMessageTextContent,
)
from sqlalchemy import select
from sqlalchemy.engine import Row

from auth.scope import OwnerScope
from chat import conversations
from chat.assistant import Assistant
from chat.failures import model_failure
from chat.history import input_items
from chat.tools import ToolCall
from database.types import utcnow
from db import Database
from models import Feedback, MessageRole, messages
from models import conversations as conversation_table
from settings import Settings

logger = logging.getLogger("todo.chat")

INT32_MAX = 2**31 - 1
# The most threads or items one page holds, whatever `limit` asks (the page's `has_more` and
# `after` lead to the rest), as `GET …/conversations` pages.
MAX_PAGE = 200


@dataclass
class ChatKitContext:
    """One ChatKit request: who asks, the conversation a `threads.create` made for its thread,
    and the tool calls to store with the next assistant message."""

    owner: OwnerScope
    new_conversation_id: int | None = None
    pending_tool_calls: list[dict[str, Any]] = field(default_factory=list)


def conversation_id_of(thread_id: str) -> int:
    """A thread id as a conversation id (NotFoundError: not one of ours)."""
    if thread_id.isascii() and thread_id.isdigit() and 1 <= int(thread_id) <= INT32_MAX:
        return int(thread_id)
    raise NotFoundError(f"Thread {thread_id} not found")


def text_of(item: UserMessageItem | AssistantMessageItem) -> str:
    if isinstance(item, AssistantMessageItem):
        return "".join(part.text for part in item.content)
    parts = []
    for part in item.content:
        parts.append(f"@{part.text}" if isinstance(part, UserMessageTagContent) else part.text)
    return "".join(parts)


def item_of(row: Row[Any], thread_id: str) -> ThreadItem:
    if row.role == MessageRole.user:
        return UserMessageItem(
            id=row.item_id,
            thread_id=thread_id,
            created_at=row.created_at,
            content=[UserMessageTextContent(text=row.content)],
            inference_options=InferenceOptions(),
        )
    return AssistantMessageItem(
        id=row.item_id,
        thread_id=thread_id,
        created_at=row.created_at,
        content=[AssistantMessageContent(text=row.content)],
    )


def thread_of(row: Row[Any]) -> ThreadMetadata:
    return ThreadMetadata(id=str(row.id), title=row.title, created_at=row.created_at)


class ConversationStore(Store[ChatKitContext]):
    def __init__(self, database: Database) -> None:
        self.database = database

    def generate_thread_id(self, context: ChatKitContext) -> str:
        if context.new_conversation_id is None:
            raise RuntimeError("threads.create without a conversation made for it")
        return str(context.new_conversation_id)

    def generate_item_id(
        self, item_type: StoreItemType, thread: ThreadMetadata, context: ChatKitContext
    ) -> str:
        return f"{default_generate_id(item_type)}{uuid.uuid4().hex[:16]}"

    async def owned(self, connection: Any, thread_id: str, context: ChatKitContext) -> Row[Any]:
        row = await conversations.find(
            connection, context.owner.user_id, conversation_id_of(thread_id)
        )
        if row is None:
            raise NotFoundError(f"Thread {thread_id} not found")
        return row

    async def load_thread(self, thread_id: str, context: ChatKitContext) -> ThreadMetadata:
        async with self.database.read() as connection:
            return thread_of(await self.owned(connection, thread_id, context))

    async def save_thread(self, thread: ThreadMetadata, context: ChatKitContext) -> None:
        async with self.database.transaction() as connection:
            await self.owned(connection, thread.id, context)
            if thread.title:
                await conversations.retitle(
                    connection, context.owner.user_id, int(thread.id), thread.title
                )

    async def load_threads(
        self, limit: int, after: str | None, order: str, context: ChatKitContext
    ) -> Page[ThreadMetadata]:
        limit = min(limit, MAX_PAGE)
        table = conversation_table
        statement = select(*conversations.CONVERSATION_COLUMNS).where(
            table.c.user_id == context.owner.user_id
        )
        descending = order == "desc"
        if after is not None:
            cursor = conversation_id_of(after)
            statement = statement.where(table.c.id < cursor if descending else table.c.id > cursor)
        statement = statement.order_by(table.c.id.desc() if descending else table.c.id)
        async with self.database.read() as connection:
            rows = list((await connection.execute(statement.limit(limit + 1))).all())
        threads = [thread_of(row) for row in rows[:limit]]
        return Page(
            data=threads,
            has_more=len(rows) > limit,
            after=threads[-1].id if threads else None,
        )

    async def delete_thread(self, thread_id: str, context: ChatKitContext) -> None:
        async with self.database.transaction() as connection:
            await conversations.delete(
                connection, context.owner.user_id, conversation_id_of(thread_id)
            )

    async def load_thread_items(
        self, thread_id: str, after: str | None, limit: int, order: str, context: ChatKitContext
    ) -> Page[ThreadItem]:
        limit = min(limit, MAX_PAGE)
        descending = order == "desc"
        async with self.database.read() as connection:
            conversation = await self.owned(connection, thread_id, context)
            statement = select(*conversations.MESSAGE_COLUMNS).where(
                messages.c.conversation_id == conversation.id
            )
            if after is not None:
                cursor = (await self._message(connection, conversation.id, after)).id
                statement = statement.where(
                    messages.c.id < cursor if descending else messages.c.id > cursor
                )
            statement = statement.order_by(messages.c.id.desc() if descending else messages.c.id)
            rows = list((await connection.execute(statement.limit(limit + 1))).all())
        items = [item_of(row, thread_id) for row in rows[:limit]]
        return Page(data=items, has_more=len(rows) > limit, after=items[-1].id if items else None)

    async def _message(self, connection: Any, conversation_id: int, item_id: str) -> Row[Any]:
        row = await conversations.find_message(connection, conversation_id, item_id)
        if row is None:
            raise NotFoundError(f"Item {item_id} not found")
        return row

    async def add_thread_item(
        self, thread_id: str, item: ThreadItem, context: ChatKitContext
    ) -> None:
        if not isinstance(item, UserMessageItem | AssistantMessageItem):
            logger.debug("ChatKit item of type %s not stored", item.type)
            return
        is_answer = isinstance(item, AssistantMessageItem)
        calls, context.pending_tool_calls = (
            (context.pending_tool_calls, []) if is_answer else ([], [])
        )
        now = utcnow()
        async with self.database.transaction() as connection:
            conversation = await self.owned(connection, thread_id, context)
            await conversations.add_message(
                connection,
                conversation_id=conversation.id,
                user_id=context.owner.user_id,
                role=MessageRole.assistant if is_answer else MessageRole.user,
                content=text_of(item),
                tool_calls=calls,
                item_id=item.id,
                now=now,
            )
            if is_answer:
                await conversations.touch(connection, conversation.id, now)

    async def save_item(self, thread_id: str, item: ThreadItem, context: ChatKitContext) -> None:
        if not isinstance(item, UserMessageItem | AssistantMessageItem):
            return
        async with self.database.transaction() as connection:
            conversation = await self.owned(connection, thread_id, context)
            updated = await connection.execute(
                messages.update()
                .where(messages.c.conversation_id == conversation.id, messages.c.item_id == item.id)
                .values(content=conversations.storable(text_of(item)))
            )
        if updated.rowcount == 0:
            await self.add_thread_item(thread_id, item, context)

    async def load_item(self, thread_id: str, item_id: str, context: ChatKitContext) -> ThreadItem:
        async with self.database.read() as connection:
            conversation = await self.owned(connection, thread_id, context)
            return item_of(await self._message(connection, conversation.id, item_id), thread_id)

    async def delete_thread_item(
        self, thread_id: str, item_id: str, context: ChatKitContext
    ) -> None:
        async with self.database.transaction() as connection:
            conversation = await self.owned(connection, thread_id, context)
            await connection.execute(
                messages.delete().where(
                    messages.c.conversation_id == conversation.id, messages.c.item_id == item_id
                )
            )

    async def save_attachment(self, attachment: Attachment, context: ChatKitContext) -> None:
        raise NotImplementedError("attachments are not supported")

    async def load_attachment(self, attachment_id: str, context: ChatKitContext) -> Attachment:
        raise NotFoundError("Attachments are not supported")

    async def delete_attachment(self, attachment_id: str, context: ChatKitContext) -> None:
        raise NotFoundError("Attachments are not supported")


async def with_own_ids(
    events: AsyncIterator[ThreadStreamEvent],
    store: ConversationStore,
    thread: ThreadMetadata,
    context: ChatKitContext,
) -> AsyncIterator[ThreadStreamEvent]:
    """Give each message the SDK streamed as `__fake_id__` an id of its own, the same one from
    its `added` to its `done` event."""
    current: str | None = None

    def own() -> str:
        nonlocal current
        if current is None:
            current = store.generate_item_id("message", thread, context)
        return current

    async for event in events:
        if isinstance(event, ThreadItemAddedEvent | ThreadItemDoneEvent):
            if event.item.id == FAKE_RESPONSES_ID:
                event = event.model_copy(
                    update={"item": event.item.model_copy(update={"id": own()})}
                )
                if isinstance(event, ThreadItemDoneEvent):
                    current = None
        elif (
            isinstance(event, ThreadItemUpdatedEvent | ThreadItemRemovedEvent)
            and event.item_id == FAKE_RESPONSES_ID
        ):
            event = event.model_copy(update={"item_id": own()})
        yield event


def _sendable_value(value: Any) -> Any:
    if isinstance(value, str):
        return conversations.storable(value)
    if isinstance(value, list):
        return [_sendable_value(part) for part in value]
    if isinstance(value, dict):
        return {key: _sendable_value(part) for key, part in value.items()}
    return value


def sendable(event: ThreadStreamEvent) -> ThreadStreamEvent:
    """The event with the model's text as it is stored (`conversations.storable`): a lone
    surrogate (a model's `\\ud800` escape) cannot be written as UTF-8 and would break the
    stream halfway, and the NUL the store drops would show until a reload."""
    dumped = event.model_dump()
    cleaned = _sendable_value(dumped)
    return event if cleaned == dumped else type(event).model_validate(cleaned)


class TodoChatKitServer(ChatKitServer[ChatKitContext]):
    def __init__(self, database: Database, settings: Settings, assistant: Assistant) -> None:
        self.conversations = ConversationStore(database)
        super().__init__(self.conversations)
        self.database = database
        self.settings = settings
        self.assistant = assistant

    async def add_feedback(
        self,
        thread_id: str,
        item_ids: list[str],
        feedback: FeedbackKind,
        context: ChatKitContext,
    ) -> None:
        """Keep the rating on the assistant messages (`feedback` in `GET …/messages`); the
        route has checked the thread is the caller's and the items its assistant messages."""
        async with self.database.transaction() as connection:
            conversation = await self.conversations.owned(connection, thread_id, context)
            await conversations.rate(connection, conversation.id, item_ids, Feedback(feedback))

    async def respond(
        self,
        thread: ThreadMetadata,
        input_user_message: UserMessageItem | None,
        context: ChatKitContext,
    ) -> AsyncIterator[ThreadStreamEvent]:
        """Answer the thread's latest messages. If an earlier answer to the same user message
        failed after tools ran (ChatKit's retry), those calls are on the message: the model
        sees them and a change it asks for again is answered from the record."""
        conversation_id = conversation_id_of(thread.id)
        async with self.database.read() as connection:
            rows = await conversations.recent_messages(
                connection, conversation_id, self.settings.chat_history_messages
            )
        asked = input_user_message.id if input_user_message is not None else None
        question = next((row for row in rows if row.item_id == asked), None)
        replay = [ToolCall.from_json(call) for call in question.tool_calls] if question else []
        tools = self.assistant.tools(context.owner, replay)
        agent_context = AgentContext(
            thread=thread, store=self.conversations, request_context=context
        )
        attached = 0
        answered = False
        try:
            async with tools:
                run = self.assistant.run_streamed(tools, input_items(rows))
                try:
                    events = stream_agent_response(agent_context, run)
                    async for event in with_own_ids(events, self.conversations, thread, context):
                        if isinstance(event, ThreadItemDoneEvent) and isinstance(
                            event.item, AssistantMessageItem
                        ):
                            calls = tools.turn_calls
                            context.pending_tool_calls = [
                                call.as_json() for call in calls[attached:]
                            ]
                            attached = len(calls)
                        yield sendable(event)
                finally:
                    if not run.is_complete:
                        run.cancel()
            answered = True
        except Exception as error:
            failure = model_failure(error, self.settings)
            if failure is None:
                raise
            logger.warning("ChatKit turn failed (%s): %r", failure.status, error)
            raise CustomStreamError(failure.detail, allow_retry=True) from error
        finally:
            if asked is not None and (tools.turn_calls or replay):
                kept = [] if answered else [call.as_json() for call in tools.turn_calls]
                with anyio.CancelScope(shield=True):
                    async with self.database.transaction() as connection:
                        await conversations.set_tool_calls(connection, conversation_id, asked, kept)
