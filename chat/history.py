"""A conversation's stored messages as the model's input: plain Chat Completions turns.

A user message is a `user` turn, followed by the tool calls made for it if its answer failed
(ChatKit keeps such a message; see `chat/chatkit.py`). An assistant message replays the tool
calls it made (each a function call and its output, so the model still knows the task ids it
saw) and then its answer as a plain `assistant` turn with string content, a form every Chat
Completions model accepts. Each stored message is whole on its own, so any window of the
latest messages is valid.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from agents import TResponseInputItem
from sqlalchemy.engine import Row

from chat.tools import ToolCall
from models import MessageRole


def tool_call_items(calls: Sequence[ToolCall], prefix: str) -> list[TResponseInputItem]:
    """Calls that already ran, as a function call and its output each."""
    items: list[Any] = []
    for index, call in enumerate(calls):
        call_id = f"call_{prefix}_{index}"
        items.append(
            {
                "type": "function_call",
                "call_id": call_id,
                "name": call.name,
                "arguments": json.dumps(call.arguments, ensure_ascii=False),
            }
        )
        items.append({"type": "function_call_output", "call_id": call_id, "output": call.output})
    return items


def input_items(rows: Iterable[Row[Any]]) -> list[TResponseInputItem]:
    items: list[Any] = []
    for row in rows:
        calls = [ToolCall.from_json(call) for call in row.tool_calls or []]
        if row.role == MessageRole.user:
            items.append({"role": "user", "content": row.content})
            items.extend(tool_call_items(calls, str(row.id)))
            continue
        items.extend(tool_call_items(calls, str(row.id)))
        items.append({"role": "assistant", "content": row.content})
    return items
