"""The agent: the OpenAI Agents SDK over any Chat Completions model, with the `/mcp` tools.

One OpenAI client per application (`OPENAI_API_KEY`, `OPENAI_BASE_URL`, `CHAT_MODEL_TIMEOUT`,
`CHAT_MODEL_MAX_RETRIES`), driven through the SDK's Chat Completions model, which Gemini's
OpenAI-compatible endpoint, OpenRouter, Ollama and vLLM speak too. The SDK's tracing export to
OpenAI is off unless `CHAT_TRACING=true`. A run is bounded by `CHAT_MAX_TURNS` model calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agents import Agent, RunConfig, Runner, RunResult, RunResultStreaming, TResponseInputItem
from agents.models.openai_chatcompletions import OpenAIChatCompletionsModel
from mcp.server.mcpserver import MCPServer
from openai import AsyncOpenAI

from auth.scope import OwnerScope
from chat.failures import not_configured
from chat.tools import OwnerTools, ToolCall
from database.types import utcnow
from settings import Settings

AGENT_NAME = "Todo assistant"
INSTRUCTIONS = """\
You are the Todo assistant. You manage the signed-in user's todo list with your tools, and
only with them: never claim a change you did not make with a tool.

- Adding, creating or remembering something: call add_task (a title; a description, priority,
  tags, due date or repeat when the user gives them).
- Showing tasks: call list_tasks. "all" or "everything": status all; "pending", "open" or "to
  do": status pending; "done" or "completed": status completed. Use the other filters when the
  user asks for a priority, a tag, a text, a due date or what is overdue.
- Done, finished, complete: call complete_task.
- Remove, delete, cancel: call delete_task.
- Change, rename, update, reschedule: call update_task.
- When the user names a task by its words instead of its id ("delete the meeting task"), call
  list_tasks first (with `search`), then act on the id it gives. If several tasks match, ask
  which one; if none does, say so.

After every action, confirm it in one friendly sentence that names the task (e.g. "Added 'Buy
groceries' to your list."). When a tool answers with an error, such as a task that is not
found, tell the user plainly what went wrong in your own words, and never pretend it worked.
Keep answers short. Times are ISO 8601 with an offset; the current time is {now}.
"""


def instructions(_context: Any, _agent: Any) -> str:
    return INSTRUCTIONS.format(now=utcnow().isoformat(timespec="seconds"))


class Assistant:
    """The model client and how a turn runs the agent (for one owner, with its tools)."""

    def __init__(self, settings: Settings, tool_server: MCPServer) -> None:
        self.settings = settings
        self.tool_server = tool_server
        self._client: AsyncOpenAI | None = None
        self._model: OpenAIChatCompletionsModel | None = None
        if settings.openai_api_key is not None:
            self._client = AsyncOpenAI(
                api_key=settings.openai_api_key.get_secret_value(),
                base_url=settings.openai_base_url,
                timeout=settings.chat_model_timeout,
                max_retries=settings.chat_model_max_retries,
            )
            self._model = OpenAIChatCompletionsModel(
                model=settings.chat_model, openai_client=self._client
            )

    @property
    def configured(self) -> bool:
        return self._model is not None

    def ensure_configured(self) -> None:
        if self._model is None:
            raise not_configured()

    def tools(self, owner: OwnerScope, replay: Sequence[ToolCall] = ()) -> OwnerTools:
        return OwnerTools(self.tool_server, owner, replay)

    def _agent(self, tools: OwnerTools) -> Agent[Any]:
        self.ensure_configured()
        return Agent(
            name=AGENT_NAME, instructions=instructions, model=self._model, mcp_servers=[tools]
        )

    def _run_config(self) -> RunConfig:
        return RunConfig(
            tracing_disabled=not self.settings.chat_tracing,
            trace_include_sensitive_data=False,
            workflow_name="Todo chat",
        )

    async def run(self, tools: OwnerTools, items: list[TResponseInputItem]) -> RunResult:
        """One turn to its end (the tools entered)."""
        return await Runner.run(
            self._agent(tools),
            items,
            max_turns=self.settings.chat_max_turns,
            run_config=self._run_config(),
        )

    def run_streamed(
        self, tools: OwnerTools, items: list[TResponseInputItem]
    ) -> RunResultStreaming:
        """One turn, streamed: iterate `stream_events()` (the tools entered)."""
        return Runner.run_streamed(
            self._agent(tools),
            items,
            max_turns=self.settings.chat_max_turns,
            run_config=self._run_config(),
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
