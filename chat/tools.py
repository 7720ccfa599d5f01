"""The agent's tools: `/mcp`'s own tools, reached through an in-process MCP client session.

`OwnerTools` is an Agents SDK `MCPServer` whose session is the MCP SDK's in-process `Client`
on the very server `/mcp` serves: the same tool definitions, argument validation, task rules
and error sentences, by construction (one definition). It acts for one owner: the verified
caller is put where `/mcp`'s bearer middleware puts it (the SDK's auth context), so the tools
take the owner from there, never from their arguments. The schemas the model is offered do not
have the `user_id` argument of the hackathon's tool signatures, and a call that passes one
anyway is refused as an argument the tool does not take. A tool's refusal reaches the model as
its own sentence (`{"error": "Task not found"}`).

Every call is recorded (`calls`: name, arguments, result) for the answer and for a retry of the
same turn: a write the turn already made (`replay`) is answered from the record instead of
running again.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from agents.mcp import MCPServer as AgentsMCPServer
from mcp.client import Client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, GetPromptResult, ListPromptsResult, TextContent
from mcp.types import Tool as McpTool

from auth.scope import OwnerScope
from mcp_server.auth import OwnerAccessToken

OWNER_ARGUMENT = "user_id"
SERVER_NAME = "todo"


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool call as it ran: what the model passed, and what the tool answered (its
    structured result, or its error sentence)."""

    name: str
    arguments: dict[str, Any]
    result: Any
    is_error: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "arguments": self.arguments,
            "result": self.result,
            "is_error": self.is_error,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> ToolCall:
        return cls(
            name=str(value["name"]),
            arguments=dict(value.get("arguments") or {}),
            result=value.get("result"),
            is_error=bool(value.get("is_error", False)),
        )

    @property
    def output(self) -> str:
        """The tool's answer as the model reads it: JSON, `{"error": sentence}` for a refusal."""
        return json.dumps(_structured(self), ensure_ascii=False)

    def same_call(self, name: str, arguments: dict[str, Any]) -> bool:
        return self.name == name and _canonical(self.arguments) == _canonical(arguments)


def _canonical(arguments: dict[str, Any]) -> str:
    return json.dumps(arguments, sort_keys=True, ensure_ascii=False)


def without_owner_argument(tool: McpTool) -> McpTool:
    """The tool as the model is offered it: no `user_id` (the token decides whose tasks)."""
    schema = copy.deepcopy(tool.input_schema)
    schema.get("properties", {}).pop(OWNER_ARGUMENT, None)
    if OWNER_ARGUMENT in schema.get("required", []):
        schema["required"] = [name for name in schema["required"] if name != OWNER_ARGUMENT]
    return tool.model_copy(update={"input_schema": schema})


def _result_of(result: CallToolResult) -> Any:
    """A result as the API reports it: the structured content (a list unwrapped from the
    SDK's `{"result": [...]}`), else the text."""
    if result.is_error or result.structured_content is None:
        return "\n".join(block.text for block in result.content if isinstance(block, TextContent))
    content = result.structured_content
    return content["result"] if set(content) == {"result"} else content


def _structured(call: ToolCall) -> dict[str, Any]:
    if call.is_error:
        return {"error": str(call.result)}
    return call.result if isinstance(call.result, dict) else {"result": call.result}


def _for_model(call: ToolCall) -> CallToolResult:
    """A call's result as the model gets it: the structured content, so the Agents SDK passes
    it on as one JSON string. A refusal too (`{"error": "Task not found"}`): as an MCP error
    result the SDK would pass a list of content parts, which not every Chat Completions
    provider takes in a tool message."""
    structured = _structured(call)
    return CallToolResult(
        content=[TextContent(type="text", text=json.dumps(structured, ensure_ascii=False))],
        structured_content=structured,
    )


class OwnerTools(AgentsMCPServer):
    """The `/mcp` tools for one owner, for one turn (enter it around the agent's run)."""

    def __init__(
        self, server: MCPServer, owner: OwnerScope, replay: Sequence[ToolCall] = ()
    ) -> None:
        # Structured content as the tool output: compact JSON, the same the text carries.
        super().__init__(use_structured_content=True)
        self._server = server
        self._owner = owner
        self._recorded = list(replay)
        self._replay = list(replay)
        self._replayed: set[int] = set()
        self._stack: AsyncExitStack | None = None
        self._client: Client | None = None
        self._tools: list[McpTool] = []
        self._read_only: set[str] = set()
        self.calls: list[ToolCall] = []

    @property
    def name(self) -> str:
        return SERVER_NAME

    def _caller(self) -> AuthenticatedUser:
        token = OwnerAccessToken(
            token="",  # in process: the owner was verified from the request's bearer token
            client_id=self._owner.user_id,
            subject=self._owner.user_id,
            scopes=[],
            owner=self._owner,
        )
        return AuthenticatedUser(token)

    async def connect(self) -> None:
        stack = AsyncExitStack()
        reset = auth_context_var.set(self._caller())
        try:
            self._client = await stack.enter_async_context(Client(self._server, cache=None))
            listed = (await self._client.list_tools()).tools
        except BaseException:
            await stack.aclose()
            raise
        finally:
            auth_context_var.reset(reset)
        self._stack = stack
        self._tools = [without_owner_argument(tool) for tool in listed]
        self._read_only = {
            tool.name for tool in listed if tool.annotations and tool.annotations.read_only_hint
        }

    async def cleanup(self) -> None:
        if self._stack is not None:
            stack, self._stack, self._client = self._stack, None, None
            await stack.aclose()

    async def __aenter__(self) -> OwnerTools:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.cleanup()

    async def list_tools(self, run_context: Any = None, agent: Any = None) -> list[McpTool]:
        return list(self._tools)

    @property
    def cached_tools(self) -> list[McpTool] | None:
        return list(self._tools)

    async def call_tool(
        self, tool_name: str, arguments: dict[str, Any] | None, meta: dict[str, Any] | None = None
    ) -> CallToolResult:
        arguments = dict(arguments or {})
        made = self._refusal(tool_name, arguments)
        if made is None and (made := self._replayed_call(tool_name, arguments)) is not None:
            self._replayed.add(len(self.calls))
        if made is None:
            if self._client is None:
                raise RuntimeError("OwnerTools used outside `async with`")
            reset = auth_context_var.set(self._caller())
            try:
                result = await self._client.call_tool(tool_name, arguments)
            finally:
                auth_context_var.reset(reset)
            made = ToolCall(tool_name, arguments, _result_of(result), bool(result.is_error))
        self.calls.append(made)
        return _for_model(made)

    @property
    def turn_calls(self) -> list[ToolCall]:
        """The turn's calls: an earlier attempt's, then this attempt's that were not replays."""
        fresh = [call for index, call in enumerate(self.calls) if index not in self._replayed]
        return [*self._recorded, *fresh]

    def _refusal(self, tool_name: str, arguments: dict[str, Any]) -> ToolCall | None:
        """An argument the offered schema does not have, refused in `/mcp`'s words but naming
        the arguments the model was offered (`/mcp`'s own sentence would list `user_id`)."""
        tool = next((tool for tool in self._tools if tool.name == tool_name), None)
        offered = tool.input_schema.get("properties", {}) if tool else {}
        unknown = sorted(set(arguments) - set(offered))
        if not unknown:
            return None
        sentence = (
            f"Unknown argument{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}: "
            f"{tool_name} takes {', '.join(offered)}"
        )
        if OWNER_ARGUMENT in unknown:
            sentence += " (the tools always act for the signed-in user)"
        return ToolCall(tool_name, arguments, sentence, is_error=True)

    def _replayed_call(self, tool_name: str, arguments: dict[str, Any]) -> ToolCall | None:
        """A change this turn already made before it failed: its record, not a second run."""
        if tool_name in self._read_only:
            return None
        for index, call in enumerate(self._replay):
            if call.same_call(tool_name, arguments):
                return self._replay.pop(index)
        return None

    async def list_prompts(self) -> ListPromptsResult:
        return ListPromptsResult(prompts=[])

    async def get_prompt(
        self, name: str, arguments: dict[str, Any] | None = None
    ) -> GetPromptResult:
        raise KeyError(f"no prompt {name!r}: the todo server offers tools only")
