"""A scripted model on loopback that speaks the Chat Completions wire protocol.

The tests run the real Agents SDK, the real tools and the real database against it: each test
scripts what the "model" answers to each request it gets (a text, tool calls, an HTTP error or
no answer at all), in order, and then reads the requests the app sent (messages, tools).
Answers are plain `chat.completion` objects, or `chat.completion.chunk` Server-Sent Events when
the request asks for `stream: true`, as OpenAI sends them. It runs uvicorn in a thread, so it
serves whichever event loop a test runs in.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.types import Receive, Scope, Send

COMPLETIONS_PATH = "/v1/chat/completions"


@dataclass(frozen=True)
class Reply:
    """An assistant message with text."""

    text: str


@dataclass(frozen=True)
class Calls:
    """An assistant message with tool calls (no text)."""

    calls: tuple[tuple[str, dict[str, Any]], ...]


@dataclass(frozen=True)
class Failure:
    """An HTTP error answer."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Stall:
    """No answer: the connection stays open until the client gives up."""


Step = Reply | Calls | Failure | Stall


def reply(text: str) -> Reply:
    return Reply(text)


def call(name: str, **arguments: Any) -> Calls:
    return Calls(((name, arguments),))


def calls(*pairs: tuple[str, dict[str, Any]]) -> Calls:
    return Calls(tuple(pairs))


class ScriptedModel:
    """The steps still to answer and the requests received, shared with the server thread."""

    def __init__(self) -> None:
        self.url = ""
        self._lock = threading.Lock()
        self._steps: deque[Step] = deque()
        self.requests: list[dict[str, Any]] = []
        self._call_number = 0

    def script(self, *steps: Step) -> None:
        with self._lock:
            self._steps.extend(steps)

    def reset(self) -> None:
        with self._lock:
            self._steps.clear()
            self.requests.clear()

    @property
    def unanswered(self) -> int:
        with self._lock:
            return len(self._steps)

    def _next(self, body: dict[str, Any]) -> Step | None:
        with self._lock:
            self.requests.append(body)
            self._call_number += 1
            return self._steps.popleft() if self._steps else None

    def _call_id(self) -> str:
        with self._lock:
            self._call_number += 1
            return f"call_{self._call_number}"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] != COMPLETIONS_PATH or scope["method"] != "POST":
            await _json(send, 404, {"error": {"message": "not found"}})
            return
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        body = json.loads(raw)
        step = self._next(body)
        if step is None:
            await _json(send, 500, {"error": {"message": "the script has no more answers"}})
        elif isinstance(step, Failure):
            await _json(send, step.status, {"error": {"message": "scripted"}}, step.headers)
        elif isinstance(step, Stall):
            while (await receive())["type"] != "http.disconnect":
                pass
        elif body.get("stream"):
            await self._stream(send, body, step)
        else:
            await _json(send, 200, self._completion(body, step))

    def _message(self, step: Reply | Calls) -> dict[str, Any]:
        if isinstance(step, Reply):
            return {"role": "assistant", "content": step.text}
        return {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": self._call_id(),
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for name, arguments in step.calls
            ],
        }

    def _completion(self, body: dict[str, Any], step: Reply | Calls) -> dict[str, Any]:
        return {
            "id": "chatcmpl-scripted",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
            "choices": [
                {
                    "index": 0,
                    "message": self._message(step),
                    "finish_reason": "stop" if isinstance(step, Reply) else "tool_calls",
                }
            ],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    def _chunks(self, step: Reply | Calls) -> Iterator[dict[str, Any]]:
        yield {"role": "assistant", "content": ""}
        if isinstance(step, Reply):
            words = step.text.split(" ")
            for index, word in enumerate(words):
                yield {"content": word if index == len(words) - 1 else word + " "}
            return
        for index, (name, arguments) in enumerate(step.calls):
            encoded = json.dumps(arguments)
            middle = len(encoded) // 2
            yield {
                "tool_calls": [
                    {
                        "index": index,
                        "id": self._call_id(),
                        "type": "function",
                        "function": {"name": name, "arguments": encoded[:middle]},
                    }
                ]
            }
            yield {"tool_calls": [{"index": index, "function": {"arguments": encoded[middle:]}}]}

    async def _stream(self, send: Send, body: dict[str, Any], step: Reply | Calls) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        base = {
            "id": "chatcmpl-scripted",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body.get("model", "scripted"),
        }
        finish = "stop" if isinstance(step, Reply) else "tool_calls"
        chunks = [
            {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            for delta in self._chunks(step)
        ]
        chunks.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
        for chunk in chunks:
            data = f"data: {json.dumps(chunk)}\n\n".encode()
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b"data: [DONE]\n\n", "more_body": False})


async def _json(
    send: Send, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    data = json.dumps(payload).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(data)).encode()),
    ]
    raw_headers += [
        (name.lower().encode(), value.encode()) for name, value in (headers or {}).items()
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": data})


@contextmanager
def scripted_model_server() -> Iterator[ScriptedModel]:
    """The scripted model, served on 127.0.0.1 (an ephemeral port) until the block ends."""
    model = ScriptedModel()
    config = uvicorn.Config(
        model,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="scripted-model", daemon=True)
    thread.start()
    started = threading.Event()
    while not server.started and thread.is_alive():
        started.wait(0.01)
    if not server.started:
        raise RuntimeError("the scripted model server did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    model.url = f"http://127.0.0.1:{port}/v1"
    try:
        yield model
    finally:
        server.should_exit = True
        thread.join(timeout=10)
