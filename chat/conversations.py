"""Conversations and their messages in the database, always scoped by their owner.

A conversation is one `conversations` row; its messages are `messages` rows in the order they
were stored (by id). Nothing about a conversation lives in a process: any instance loads what
it needs for a turn from here.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from database.types import utcnow
from db import Database
from models import (
    CHAT_ITEM_ID_MAX_LENGTH,
    CONVERSATION_TITLE_MAX_LENGTH,
    Feedback,
    MessageRole,
    conversations,
    messages,
)

UNTITLED = "New conversation"
LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # a pair is one code point in a `str`
CONVERSATION_COLUMNS = (
    conversations.c.id,
    conversations.c.title,
    conversations.c.created_at,
    conversations.c.updated_at,
)
MESSAGE_COLUMNS = (
    messages.c.id,
    messages.c.conversation_id,
    messages.c.item_id,
    messages.c.role,
    messages.c.content,
    messages.c.tool_calls,
    messages.c.created_at,
    messages.c.feedback,
)


def title_of(text: str) -> str:
    """A conversation's title: the start of its first message, on one line."""
    words = " ".join(text.split())
    if not words:
        return UNTITLED
    if len(words) <= CONVERSATION_TITLE_MAX_LENGTH:
        return words
    return words[: CONVERSATION_TITLE_MAX_LENGTH - 1].rstrip() + "…"


def storable(text: str) -> str:
    """A model's text as every database can store it: without NUL (PostgreSQL's `text` cannot
    hold it) and with U+FFFD for a lone surrogate (a `\\ud800` escape in the model's JSON is
    not UTF-8). A user's message with either is refused instead."""
    return LONE_SURROGATE.sub("\ufffd", text.replace("\x00", ""))


def new_item_id() -> str:
    """A message's ChatKit item id (messages stored through the REST route get one too)."""
    return f"msg_{uuid.uuid4().hex}"


def may_be_item_id(text: str) -> bool:
    """Whether `text` could be a stored item id (ChatKit's and ours are short printable ASCII):
    what cannot is not looked up (a NUL is not even a valid PostgreSQL parameter)."""
    return len(text) <= CHAT_ITEM_ID_MAX_LENGTH and text.isascii() and text.isprintable()


@dataclass(frozen=True, slots=True)
class Page:
    rows: list[Row[Any]]
    total: int


def _owned(user_id: str, conversation_id: int) -> Any:
    return and_(conversations.c.id == conversation_id, conversations.c.user_id == user_id)


async def find(connection: AsyncConnection, user_id: str, conversation_id: int) -> Row[Any] | None:
    """The owner's conversation (None: missing, or someone else's)."""
    statement = select(*CONVERSATION_COLUMNS).where(_owned(user_id, conversation_id))
    return (await connection.execute(statement)).first()


async def create(
    connection: AsyncConnection, user_id: str, title: str, now: datetime | None = None
) -> Row[Any]:
    now = now or utcnow()
    statement = (
        conversations.insert()
        .values(user_id=user_id, title=title_of(title), created_at=now, updated_at=now)
        .returning(*CONVERSATION_COLUMNS)
    )
    return (await connection.execute(statement)).one()


async def retitle(
    connection: AsyncConnection, user_id: str, conversation_id: int, title: str
) -> bool:
    statement = (
        conversations.update().where(_owned(user_id, conversation_id)).values(title=title_of(title))
    )
    return (await connection.execute(statement)).rowcount > 0


async def touch(connection: AsyncConnection, conversation_id: int, now: datetime) -> None:
    """A turn was stored: the conversation moves to the top of the list."""
    await connection.execute(
        conversations.update().where(conversations.c.id == conversation_id).values(updated_at=now)
    )


async def delete(connection: AsyncConnection, user_id: str, conversation_id: int) -> bool:
    """Delete the owner's conversation and its messages; whether there was one."""
    await connection.execute(
        messages.delete().where(
            messages.c.conversation_id == conversation_id, messages.c.user_id == user_id
        )
    )
    statement = conversations.delete().where(_owned(user_id, conversation_id))
    return (await connection.execute(statement)).rowcount > 0


async def erase_conversations(connection: AsyncConnection, user_id: str) -> None:
    """Every conversation of `user_id` and its messages (account deletion), inside the caller's
    transaction."""
    await connection.execute(messages.delete().where(messages.c.user_id == user_id))
    await connection.execute(conversations.delete().where(conversations.c.user_id == user_id))


async def list_conversations(db: Database, user_id: str, limit: int, offset: int) -> Page:
    """The owner's conversations, the most recently active first."""
    mine = conversations.c.user_id == user_id
    page = (
        select(*CONVERSATION_COLUMNS)
        .where(mine)
        .order_by(conversations.c.updated_at.desc(), conversations.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    count = select(func.count()).select_from(conversations).where(mine)
    async with db.read() as connection:
        rows = list((await connection.execute(page)).all())
        total = (await connection.execute(count)).scalar_one()
    return Page(rows, total)


async def list_messages(
    db: Database, user_id: str, conversation_id: int, limit: int, offset: int
) -> Page | None:
    """A page of the owner's conversation, oldest first (None: no such conversation)."""
    ours = messages.c.conversation_id == conversation_id
    page = select(*MESSAGE_COLUMNS).where(ours).order_by(messages.c.id).limit(limit).offset(offset)
    count = select(func.count()).select_from(messages).where(ours)
    async with db.read() as connection:
        if await find(connection, user_id, conversation_id) is None:
            return None
        rows = list((await connection.execute(page)).all())
        total = (await connection.execute(count)).scalar_one()
    return Page(rows, total)


async def recent_messages(
    connection: AsyncConnection, conversation_id: int, limit: int
) -> list[Row[Any]]:
    """The conversation's last `limit` messages, oldest first: the history a turn sends."""
    latest = (
        select(*MESSAGE_COLUMNS)
        .where(messages.c.conversation_id == conversation_id)
        .order_by(messages.c.id.desc())
        .limit(limit)
    )
    return list(reversed((await connection.execute(latest)).all()))


async def add_message(
    connection: AsyncConnection,
    *,
    conversation_id: int,
    user_id: str,
    role: MessageRole,
    content: str,
    tool_calls: Sequence[dict[str, Any]] = (),
    item_id: str | None = None,
    now: datetime | None = None,
) -> Row[Any]:
    statement = (
        messages.insert()
        .values(
            conversation_id=conversation_id,
            user_id=user_id,
            item_id=item_id or new_item_id(),
            role=role.value,
            content=storable(content),
            tool_calls=list(tool_calls),
            created_at=now or utcnow(),
        )
        .returning(*MESSAGE_COLUMNS)
    )
    return (await connection.execute(statement)).one()


async def find_message(
    connection: AsyncConnection, conversation_id: int, item_id: str
) -> Row[Any] | None:
    """The conversation's message with this ChatKit item id."""
    if not may_be_item_id(item_id):
        return None
    statement = select(*MESSAGE_COLUMNS).where(
        messages.c.conversation_id == conversation_id, messages.c.item_id == item_id
    )
    return (await connection.execute(statement)).first()


async def message_roles(
    connection: AsyncConnection, conversation_id: int, item_ids: Sequence[str]
) -> dict[str, MessageRole]:
    """The role of each of these items that is a message of the conversation."""
    statement = select(messages.c.item_id, messages.c.role).where(
        messages.c.conversation_id == conversation_id, messages.c.item_id.in_(item_ids)
    )
    return {row.item_id: MessageRole(row.role) for row in await connection.execute(statement)}


async def rate(
    connection: AsyncConnection, conversation_id: int, item_ids: Sequence[str], kind: Feedback
) -> None:
    """Keep the user's latest rating of these assistant messages."""
    await connection.execute(
        messages.update()
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.item_id.in_(item_ids),
            messages.c.role == MessageRole.assistant.value,
        )
        .values(feedback=kind.value)
    )


async def delete_message(connection: AsyncConnection, message_id: int) -> None:
    await connection.execute(messages.delete().where(messages.c.id == message_id))


async def set_tool_calls(
    connection: AsyncConnection,
    conversation_id: int,
    item_id: str,
    tool_calls: Sequence[dict[str, Any]],
) -> None:
    """Record on a user's message the tool calls made for it while its answer failed (ChatKit
    keeps the message and retries it): the retry resumes instead of calling them again."""
    await connection.execute(
        messages.update()
        .where(messages.c.conversation_id == conversation_id, messages.c.item_id == item_id)
        .values(tool_calls=list(tool_calls))
    )
