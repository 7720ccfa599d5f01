"""The REST chat turn end to end: begin, run the agent (whole or streamed), finish or undo.

The same cycle serves the JSON answer and the Server-Sent Events stream: a stream yields the
text as it comes, each tool call when the model makes it and its result when it ran, and last
the answer the JSON route would have given, once it is stored. A model failure undoes the turn
(`ChatTurns.abandon`) and is reported as a `ChatFailure`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anyio

from auth.scope import OwnerScope
from chat import conversations
from chat.assistant import Assistant
from chat.failures import ChatFailure, model_failure
from chat.tools import OwnerTools, ToolCall
from chat.turns import ChatTurns, ConversationNotFound, Replayed, Turn
from db import Database
from schemas import ChatResponse
from settings import Settings
from tasks.idempotency import IdempotencyKey

logger = logging.getLogger("todo.chat")


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCalled:
    call_id: str
    name: str
    arguments: Any


@dataclass(frozen=True, slots=True)
class ToolResult:
    call_id: str
    name: str
    result: Any
    is_error: bool


@dataclass(frozen=True, slots=True)
class Answered:
    answer: ChatResponse
    replayed: bool = False


@dataclass(frozen=True, slots=True)
class Failed:
    failure: ChatFailure


ChatEvent = TextDelta | ToolCalled | ToolResult | Answered | Failed


def _arguments(raw: Any) -> Any:
    try:
        return json.loads(raw) if isinstance(raw, str) and raw else (raw or {})
    except ValueError:
        return raw


def _field(item: Any, name: str) -> Any:
    return item.get(name) if isinstance(item, dict) else getattr(item, name, None)


class StreamedTools:
    """Pairs the SDK's tool events with the calls `OwnerTools` recorded."""

    def __init__(self, tools: OwnerTools) -> None:
        self.tools = tools
        self.called: dict[str, tuple[str, Any]] = {}
        self.reported: set[int] = set()

    def called_event(self, raw: Any) -> ToolCalled:
        call_id, name = str(_field(raw, "call_id")), str(_field(raw, "name"))
        arguments = _arguments(_field(raw, "arguments"))
        self.called[call_id] = (name, arguments)
        return ToolCalled(call_id, name, arguments)

    def result_event(self, raw: Any) -> ToolResult | None:
        call_id = str(_field(raw, "call_id"))
        name, arguments = self.called.get(call_id, ("", None))
        for index, call in enumerate(self.tools.calls):
            if index in self.reported or call.name != name:
                continue
            if isinstance(arguments, dict) and not call.same_call(name, arguments):
                continue
            self.reported.add(index)
            return ToolResult(call_id, name, call.result, call.is_error)
        return None


class ChatService:
    def __init__(self, database: Database, settings: Settings, assistant: Assistant) -> None:
        self.settings = settings
        self.assistant = assistant
        self.turns = ChatTurns(database, settings)

    async def begin(
        self,
        owner: OwnerScope,
        conversation_id: int | None,
        message: str,
        key: IdempotencyKey | None,
    ) -> Turn | Replayed:
        """Refuse or start the turn (503 without a model, 404, 409, 422, 429): only the
        database, so a stream is refused with its HTTP status before it starts."""
        self.assistant.ensure_configured()
        return await self.turns.begin(owner, conversation_id, message, key)

    async def _undo(
        self, turn: Turn, tools: OwnerTools, error: BaseException
    ) -> ChatFailure | None:
        """Take the turn back (even while being cancelled); the failure to report, if it is
        the model's."""
        try:
            with anyio.CancelScope(shield=True):
                await self.turns.abandon(turn, tools.turn_calls)
        except Exception:  # the database too: report what failed first
            logger.exception("could not take back chat turn %s", turn.user_message_id)
        if isinstance(error, ConversationNotFound):
            return ChatFailure(404, "Conversation not found: it was deleted during the turn")
        failure = model_failure(error, self.settings) if isinstance(error, Exception) else None
        if failure is not None:
            logger.warning("chat turn failed (%s): %r", failure.status, error)
        return failure

    async def answer(self, turn: Turn) -> Answered:
        """Run the turn to its stored answer (a model failure raises `ChatFailure`)."""
        tools = self.assistant.tools(turn.owner, turn.replay)
        try:
            async with tools:
                result = await self.assistant.run(tools, turn.items)
            answer = await self.turns.finish(turn, str(result.final_output or ""), tools.turn_calls)
        except BaseException as error:
            failure = await self._undo(turn, tools, error)
            if failure is not None:
                raise failure from error
            raise
        return Answered(answer)

    async def stream(self, turn: Turn) -> AsyncIterator[ChatEvent]:
        """Run the turn, yielding its events; the last is `Answered` or `Failed`. Iterate it in
        one task (the tools' session lives in it)."""
        tools = self.assistant.tools(turn.owner, turn.replay)
        try:
            async with tools:
                run = self.assistant.run_streamed(tools, turn.items)
                paired = StreamedTools(tools)
                try:
                    async for event in run.stream_events():
                        mapped = _mapped(event, paired)
                        if mapped is not None:
                            yield mapped
                finally:
                    if not run.is_complete:  # the client left: stop the model and the tools
                        run.cancel()
            answer = await self.turns.finish(turn, str(run.final_output or ""), tools.turn_calls)
        except BaseException as error:
            failure = await self._undo(turn, tools, error)
            if failure is None:
                raise
            yield Failed(failure)
            return
        yield Answered(answer)


def _mapped(event: Any, paired: StreamedTools) -> ChatEvent | None:
    if event.type == "raw_response_event":
        data = event.data
        if getattr(data, "type", None) == "response.output_text.delta" and data.delta:
            return TextDelta(conversations.storable(data.delta))  # the deltas join to the answer
        return None
    if event.type != "run_item_stream_event":
        return None
    if event.name == "tool_called":
        return paired.called_event(event.item.raw_item)
    if event.name == "tool_output":
        return paired.result_event(event.item.raw_item)
    return None


__all__ = [
    "Answered",
    "ChatEvent",
    "ChatService",
    "Failed",
    "TextDelta",
    "ToolCall",
    "ToolCalled",
    "ToolResult",
]
