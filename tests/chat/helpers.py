"""Helpers for the chat tests: a turn, the tool messages the model got, SSE events."""

from __future__ import annotations

import json
from typing import Any

from httpx import AsyncClient, Response

from tests.helpers import Account


def chat_url(account: Account) -> str:
    return f"/api/{account.id}/chat"


async def say(
    client: AsyncClient,
    account: Account,
    message: str,
    conversation_id: int | None = None,
    **headers: str,
) -> Response:
    body: dict[str, Any] = {"message": message}
    if conversation_id is not None:
        body["conversation_id"] = conversation_id
    return await client.post(chat_url(account), json=body, headers={**account.headers, **headers})


def tool_messages(request: dict[str, Any]) -> list[str]:
    """What the tools answered, as the model received it in one request."""
    return [message["content"] for message in request["messages"] if message["role"] == "tool"]


def conversation_of(request: dict[str, Any]) -> list[tuple[str, Any]]:
    """A request's messages without the instructions: (role, content or tool calls)."""
    turns = []
    for message in request["messages"][1:]:
        if message.get("tool_calls"):
            calls = [
                (call["function"]["name"], json.loads(call["function"]["arguments"]))
                for call in message["tool_calls"]
            ]
            turns.append(("tool_calls", calls))
        else:
            turns.append((message["role"], message["content"]))
    return turns


def sse_events(text: str) -> list[tuple[str, Any]]:
    """(event name, data) of a Server-Sent Events body."""
    events = []
    for block in text.split("\n\n"):
        lines = block.splitlines()
        name = next((line[7:] for line in lines if line.startswith("event: ")), "message")
        data = [line[6:] for line in lines if line.startswith("data: ")]
        if data:
            events.append((name, json.loads("\n".join(data))))
    return events
