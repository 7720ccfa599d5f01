"""`/mcp` as an MCP client meets it: the handshake, the tool list with its schemas, the HTTP
edge (stateless, no redirect, no stream on GET), and its absence from the OpenAPI document."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from main import create_app
from settings import Settings
from tests.conftest import serving
from tests.helpers import Account
from tests.mcp_server.conftest import (
    INITIALIZE,
    JSON_AND_SSE,
    mcp_client,
    mcp_http,
    mcp_session,
    rpc,
    structured,
)

TOOLS = {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}
POST_HEADERS = {"Accept": JSON_AND_SSE, "Content-Type": "application/json"}


class TestHandshake:
    async def test_initialize_names_the_server_and_offers_tools(
        self, app: FastAPI, alice: Account
    ) -> None:
        async with mcp_session(app, alice.token) as session:
            result = session.initialize_result
            assert result is not None
            assert result.server_info.name == "todo"
            assert result.server_info.version == "1.0.0"
            assert result.capabilities.tools is not None
            assert "list_tasks" in (result.instructions or "")

    async def test_the_2026_protocol_works_too(self, app: FastAPI, alice: Account) -> None:
        async with mcp_client(app, alice.token) as client:
            assert client.protocol_version == "2026-07-28"
            tools = await client.list_tools()
            assert {tool.name for tool in tools.tools} == TOOLS
            created = structured(await client.call_tool("add_task", {"title": "Modern"}))
            assert created["status"] == "created"

    async def test_stateless_no_session_and_any_request_stands_alone(
        self, app: FastAPI, alice: Account
    ) -> None:
        """No `Mcp-Session-Id`: a call needs no earlier initialize on the same instance."""
        async with mcp_http(app, alice.token, **POST_HEADERS) as http:
            initialized = await http.post("/mcp", content=INITIALIZE)
            assert initialized.status_code == 200
            assert "mcp-session-id" not in initialized.headers
            call = await http.post(
                "/mcp", content=rpc("tools/call", {"name": "add_task", "arguments": {"title": "x"}})
            )
        assert call.status_code == 200
        assert call.headers["content-type"].startswith("text/event-stream")
        assert '"status":"created"' in call.text


async def test_the_app_can_be_started_again(settings: Settings) -> None:
    """The SDK's session manager runs once; a second lifespan of the same app gets a new one."""
    application = create_app(settings)
    for attempt in ("first", "second"):
        async with serving(application), mcp_http(application) as http:
            signup = await http.post(
                "/api/auth/signup",
                json={"email": f"{attempt}-{uuid.uuid4().hex}@example.com", "password": "pass1234"},
            )
        token = signup.json()["access_token"]
        async with serving(application), mcp_session(application, token) as session:
            assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS


class TestToolList:
    async def test_every_spec_tool_with_a_description_for_the_model(
        self, app: FastAPI, alice: Account
    ) -> None:
        async with mcp_session(app, alice.token) as session:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert set(tools) == TOOLS
        for tool in tools.values():
            assert tool.description and "\n" not in tool.description
            assert tool.input_schema["additionalProperties"] is False
            assert "user_id" in tool.input_schema["properties"]
            assert tool.output_schema is not None
            assert tool.annotations is not None and tool.annotations.open_world_hint is False
        assert tools["list_tasks"].annotations.read_only_hint is True
        assert tools["delete_task"].annotations.destructive_hint is True

    async def test_input_schemas_carry_the_rest_limits(self, app: FastAPI, alice: Account) -> None:
        async with mcp_session(app, alice.token) as session:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        add = tools["add_task"].input_schema
        assert add["required"] == ["title"]
        assert add["properties"]["title"]["maxLength"] == 200
        assert add["properties"]["title"]["minLength"] == 1
        assert add["$defs"]["Priority"]["enum"] == ["low", "medium", "high"]
        assert add["$defs"]["Recurrence"]["enum"] == ["none", "daily", "weekly", "monthly"]
        tags = add["properties"]["tags"]["anyOf"][0]
        assert tags["items"]["maxLength"] == 30  # at most 10 distinct: checked as REST does
        for name in ("complete_task", "delete_task", "update_task"):
            task_id = tools[name].input_schema["properties"]["task_id"]
            assert (task_id["type"], task_id["minimum"], task_id["maximum"]) == (
                "integer",
                1,
                2**31 - 1,
            )
            assert tools[name].input_schema["required"] == ["task_id"]
        listing = tools["list_tasks"].input_schema
        assert listing["$defs"]["TaskStatusFilter"]["enum"] == ["all", "pending", "completed"]
        assert (
            listing["properties"]["limit"]["minimum"],
            listing["properties"]["limit"]["maximum"],
        ) == (1, 500)
        assert "required" not in listing

    async def test_output_schemas_are_the_spec_shapes(self, app: FastAPI, alice: Account) -> None:
        async with mcp_session(app, alice.token) as session:
            tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        for name, status in [
            ("add_task", "created"),
            ("complete_task", "completed"),
            ("delete_task", "deleted"),
            ("update_task", "updated"),
        ]:
            schema = tools[name].output_schema
            assert {"task_id", "title"} <= set(schema["required"])
            assert schema["properties"]["status"]["const"] == status
        item = tools["list_tasks"].output_schema["$defs"]["TaskItem"]
        assert {"id", "title", "completed"} <= set(item["required"])


class TestHttpEdge:
    async def test_mcp_is_answered_at_mcp_itself_without_a_redirect(
        self, app: FastAPI, alice: Account
    ) -> None:
        async with mcp_http(app, alice.token, **POST_HEADERS) as http:
            response = await http.post("/mcp", content=INITIALIZE)
        assert response.status_code == 200
        assert "location" not in response.headers

    async def test_the_app_headers_reach_mcp_answers(self, app: FastAPI, alice: Account) -> None:
        """The request-context middleware wraps /mcp like every route (without buffering it)."""
        async with mcp_http(app, alice.token, **POST_HEADERS, **{"X-Request-ID": "mcp-1"}) as http:
            response = await http.post("/mcp", content=INITIALIZE)
        assert response.headers["x-request-id"] == "mcp-1"
        assert response.headers["x-content-type-options"] == "nosniff"

    async def test_get_offers_no_stream(self, app: FastAPI, alice: Account) -> None:
        """Stateless: nothing to push, so no idle stream held open (405, as the spec allows)."""
        async with mcp_http(app, alice.token, Accept="text/event-stream") as http:
            response = await asyncio.wait_for(http.get("/mcp"), timeout=10)
        assert response.status_code == 405
        assert response.headers["allow"] == "POST"

    async def test_malformed_json_is_a_json_rpc_parse_error(
        self, app: FastAPI, alice: Account
    ) -> None:
        async with mcp_http(app, alice.token, **POST_HEADERS) as http:
            response = await http.post("/mcp", content=b"{")
        assert response.status_code == 400
        assert response.json()["error"]["code"] == -32700

    async def test_bodies_over_the_app_limit_are_413(self, app: FastAPI, alice: Account) -> None:
        big = rpc("tools/call", {"name": "add_task", "arguments": {"title": "x" * 70_000}})
        async with mcp_http(app, alice.token, **POST_HEADERS) as http:
            response = await http.post("/mcp", content=big)
        assert response.status_code == 413

    async def test_streamed_bodies_over_the_limit_are_413_too(
        self, app: FastAPI, alice: Account
    ) -> None:
        """Counted as they arrive (no Content-Length): the app's limit, not a 500."""

        async def chunks():
            yield b'{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"title": "'
            for _ in range(10):
                yield b"x" * 10_000
            yield b'"}}'

        async with mcp_http(app, alice.token, **POST_HEADERS) as http:
            response = await http.post("/mcp", content=chunks())
        assert response.status_code == 413

    async def test_not_in_the_openapi_document(self, client: AsyncClient) -> None:
        paths = (await client.get("/openapi.json")).json()["paths"]
        assert not [path for path in paths if "mcp" in path or "well-known" in path]


@pytest.mark.parametrize("path", ["/mcp/", "/mcp/extra"])
async def test_other_paths_are_not_the_endpoint(app: FastAPI, alice: Account, path: str) -> None:
    async with mcp_http(app, alice.token, **POST_HEADERS) as http:
        response = await http.post(path, content=INITIALIZE)
    assert response.status_code in (307, 404)
    assert "text/event-stream" not in response.headers.get("content-type", "")
