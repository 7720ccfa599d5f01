"""Helpers for the `/mcp` tests: the SDK's own client, over httpx against the ASGI app.

Sessions are context managers used inside each test, not fixtures: the SDK's client runs an
anyio task group, which must end in the task that started it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx2
from fastapi import FastAPI
from mcp.client import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.types import CallToolResult

from auth.scope import OwnerScope
from mcp_server import McpEndpoint
from mcp_server.auth import OwnerAccessToken
from tests.helpers import Account, bearer

# The default allowlist answers requests addressed to localhost (as a local agent sends them).
BASE_URL = "http://localhost"
MCP_URL = f"{BASE_URL}/mcp"
JSON_AND_SSE = "application/json, text/event-stream"


def mcp_http(app: FastAPI, token: str | None = None, **headers: str) -> httpx2.AsyncClient:
    """The HTTP client the SDK's transport uses, wired to the app in this process."""
    if token is not None:
        headers.update(bearer(token))
    return httpx2.AsyncClient(
        transport=httpx2.ASGITransport(app=app), base_url=BASE_URL, headers=headers, timeout=30
    )


@asynccontextmanager
async def mcp_session(app: FastAPI, token: str) -> AsyncIterator[ClientSession]:
    """`streamable_http_client` + `ClientSession`, initialized (the handshake-era protocol that
    today's agents speak; the server runs it statelessly)."""
    async with (
        mcp_http(app, token) as http,
        streamable_http_client(MCP_URL, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        # The `initialized` notification is POSTed after `initialize` returns, and the transport
        # sends messages in order: once this ping is answered it has been served, so leaving the
        # block early cannot cancel it halfway through its token check.
        await session.send_ping()
        yield session


@asynccontextmanager
async def mcp_client(app: FastAPI, token: str) -> AsyncIterator[Client]:
    """The SDK's `Client` on the same transport: it negotiates the 2026-07-28 protocol."""
    async with (
        mcp_http(app, token) as http,
        Client(streamable_http_client(MCP_URL, http_client=http)) as client,
    ):
        yield client


def structured(result: CallToolResult) -> Any:
    """A successful call's structured content (a list result comes wrapped as `result`)."""
    assert not result.is_error, result.content
    assert result.structured_content is not None
    content = result.structured_content
    return content["result"] if set(content) == {"result"} else content


def error_text(result: CallToolResult) -> str:
    """A tool error's message (the call itself succeeded: the model reads this)."""
    assert result.is_error, result.structured_content
    assert result.structured_content is None
    (block,) = result.content
    return block.text


def rpc(method: str, params: dict[str, Any] | None = None, request_id: int = 1) -> str:
    """One JSON-RPC request body, for raw HTTP checks."""
    return json.dumps(
        {"jsonrpc": "2.0", "id": request_id, "method": method, "params": params or {}}
    )


INITIALIZE = rpc(
    "initialize",
    {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw-http", "version": "1"},
    },
)


async def call_past_the_door(
    app: FastAPI, account: Account, name: str, arguments: dict[str, Any]
) -> Any:
    """Call a tool as if the HTTP layer had just admitted `account`'s token, whatever happened
    to it since (to reach what the tools do after the door: the in-statement guard, outages).
    Raises the `ToolError` the model would read."""
    endpoint = next(
        route.endpoint for route in app.routes if getattr(route, "path", None) == "/mcp"
    )
    assert isinstance(endpoint, McpEndpoint)
    claims = await app.state.token_verifier.verify(account.token)
    token = OwnerAccessToken(
        token=account.token,
        client_id=account.id,
        subject=account.id,
        scopes=[],
        owner=OwnerScope.of(claims),
    )
    reset = auth_context_var.set(AuthenticatedUser(token))
    try:
        return await endpoint.server.call_tool(name, arguments)
    finally:
        auth_context_var.reset(reset)
