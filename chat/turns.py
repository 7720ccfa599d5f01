"""A turn of the REST chat route, as the specification's stateless cycle.

`begin` (one transaction): refuse an unknown conversation (404) or an exhausted per-user turn
limit (429), claim the `Idempotency-Key` (a retry of an answered turn gets the stored answer),
start the conversation if none was named, load its latest messages (`CHAT_HISTORY_MESSAGES`)
and store the user's message. The agent then runs. `finish` (one transaction) stores the answer
with its tool calls and seals the key with it. `abandon` undoes the turn when the model fails:
the user's message (and a conversation this turn started) go, so the conversation holds whole
turns only, and the key is released, unless a tool already changed something: then the key
keeps those calls (`RESUMABLE`) and a retry with it resumes the turn, the model seeing the calls
that ran, and any of them it makes again answered from the record instead of running twice.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from agents import TResponseInputItem
from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.rate_limit import Limit, hit, limit_key
from auth.scope import OwnerScope
from chat import conversations
from chat.failures import ChatFailure
from chat.history import input_items, tool_call_items
from chat.tools import ToolCall
from database.types import utcnow
from db import Database
from models import MessageRole, idempotency_records
from schemas import ChatResponse, ToolCallRead
from settings import Settings
from tasks.idempotency import (
    IN_FLIGHT,
    IdempotencyKey,
    IdempotencyKeyInFlight,
    check_fingerprint,
    claim,
    complete,
    release,
)

ANSWERED = 200
RESUMABLE = 1  # the turn failed after tools changed something: a retry resumes it


class ConversationNotFound(Exception):
    """No such conversation for this user (someone else's looks the same)."""


@dataclass
class Turn:
    """A turn under way: what the agent gets, and what to store or undo afterwards."""

    owner: OwnerScope
    conversation_id: int
    started_conversation: bool
    user_message_id: int
    items: list[TResponseInputItem]
    replay: list[ToolCall] = field(default_factory=list)
    key_params: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Replayed:
    """A retry of a turn already answered: its stored answer."""

    answer: ChatResponse


def turn_limit(settings: Settings, user_id: str) -> Limit:
    return Limit(
        limit_key("chat-turns", user_id),
        settings.chat_turns_per_window,
        settings.chat_turn_window_seconds,
    )


def answer_of(conversation_id: int, response: str, calls: Sequence[ToolCall]) -> ChatResponse:
    return ChatResponse(
        conversation_id=conversation_id,
        response=response,
        tool_calls=[ToolCallRead.model_validate(call.as_json()) for call in calls],
    )


_THIS_KEY = (
    idempotency_records.c.scope == bindparam("idempotency_scope"),
    idempotency_records.c.key == bindparam("idempotency_key"),
)
RESUME = (
    idempotency_records.update()
    .where(*_THIS_KEY, idempotency_records.c.status == RESUMABLE)
    .values(status=IN_FLIGHT, created_at=bindparam("now"))
    .returning(idempotency_records.c.body)
)
SUSPEND = (
    idempotency_records.update().where(*_THIS_KEY).values(status=RESUMABLE, body=bindparam("calls"))
)


class ChatTurns:
    def __init__(self, database: Database, settings: Settings) -> None:
        self.database = database
        self.settings = settings

    async def count_turn(self, connection: AsyncConnection, owner: OwnerScope) -> None:
        """One model-backed turn for the owner's limit (auth/rate_limit.py's atomic upsert):
        429 with `Retry-After` once the window's turns are used up."""
        limit = turn_limit(self.settings, owner.user_id)
        session = AsyncSession(bind=connection)
        hits, window_started_at = await hit(session, limit)
        if hits > limit.max_hits:
            ends = window_started_at + timedelta(seconds=limit.window_seconds)
            seconds = max(1, math.ceil((ends - utcnow()).total_seconds()))
            raise ChatFailure(
                429,
                f"Too many chat turns: at most {limit.max_hits} every {limit.window_seconds} "
                f"seconds; try again in {seconds} seconds",
                seconds,
            )

    async def count(self, owner: OwnerScope) -> None:
        """`count_turn` in a transaction of its own (ChatKit's turns)."""
        async with self.database.transaction() as connection:
            await self.count_turn(connection, owner)

    async def begin(
        self,
        owner: OwnerScope,
        conversation_id: int | None,
        message: str,
        key: IdempotencyKey | None,
    ) -> Turn | Replayed:
        now = utcnow()
        async with self.database.transaction() as connection:
            known = conversation_id is None or await conversations.find(
                connection, owner.user_id, conversation_id
            )
            if not known:
                raise ConversationNotFound
            replay: list[ToolCall] = []
            params = None
            if key is not None:
                params = {**key.params(now), "now": now}
                record = await claim(connection, params)
                if record is not None:
                    check_fingerprint(record, key)
                    if record.status == ANSWERED:
                        return Replayed(ChatResponse.model_validate_json(record.body or "{}"))
                    body = (await connection.execute(RESUME, params)).scalar_one_or_none()
                    if body is None:
                        raise IdempotencyKeyInFlight
                    replay = [ToolCall.from_json(call) for call in json.loads(body)]
            await self.count_turn(connection, owner)
            started = conversation_id is None
            if conversation_id is None:
                conversation_id = (
                    await conversations.create(connection, owner.user_id, message, now)
                ).id
                history = []
            else:
                history = await conversations.recent_messages(
                    connection, conversation_id, self.settings.chat_history_messages
                )
            try:
                stored = await conversations.add_message(
                    connection,
                    conversation_id=conversation_id,
                    user_id=owner.user_id,
                    role=MessageRole.user,
                    content=message,
                    now=now,
                )
            except IntegrityError:  # another request deleted the conversation since `find`
                raise ConversationNotFound from None
        items = [
            *input_items(history),
            {"role": "user", "content": message},
            *tool_call_items(replay, "resumed"),
        ]
        return Turn(owner, conversation_id, started, stored.id, items, replay, params)

    async def finish(self, turn: Turn, response: str, calls: Sequence[ToolCall]) -> ChatResponse:
        response = conversations.storable(response)  # the answer is what is stored
        answer = answer_of(turn.conversation_id, response, calls)
        now = utcnow()
        try:
            async with self.database.transaction() as connection:
                await conversations.add_message(
                    connection,
                    conversation_id=turn.conversation_id,
                    user_id=turn.owner.user_id,
                    role=MessageRole.assistant,
                    content=response,
                    tool_calls=[call.as_json() for call in calls],
                    now=now,
                )
                await conversations.touch(connection, turn.conversation_id, now)
                if turn.key_params is not None:
                    await complete(connection, turn.key_params, ANSWERED, answer.model_dump_json())
        except IntegrityError:  # the conversation was deleted while the model answered
            raise ConversationNotFound from None
        return answer

    async def abandon(self, turn: Turn, made: Sequence[ToolCall]) -> None:
        """The model failed: take the turn back (see the module's docstring)."""
        async with self.database.transaction() as connection:
            await conversations.delete_message(connection, turn.user_message_id)
            if turn.started_conversation:
                await conversations.delete(connection, turn.owner.user_id, turn.conversation_id)
            if turn.key_params is None:
                return
            if made:
                body = json.dumps([call.as_json() for call in made], ensure_ascii=False)
                await connection.execute(SUSPEND, {**turn.key_params, "calls": body})
            else:
                await release(connection, turn.key_params)
