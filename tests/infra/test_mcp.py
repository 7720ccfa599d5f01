"""`/mcp` as agents reach it in production: uvicorn processes on one PostgreSQL, the SDK's client
over real HTTP (Server-Sent Events through every middleware), and no sticky sessions: any
instance answers any request, and a token revoked on one is refused by the other."""

from __future__ import annotations

import asyncio
import json

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.infra.apps import RunningApp

pytestmark = pytest.mark.infra

TOOLS = {"add_task", "list_tasks", "complete_task", "delete_task", "update_task"}
POST_HEADERS = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


async def _sign_up(instance: RunningApp, email: str) -> dict:
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            f"{instance.base_url}/api/auth/signup",
            json={"email": email, "password": "password123"},
        )
    assert response.status_code == 201, response.text
    return response.json()


def _rpc(method: str, params: dict, request_id: int = 1) -> str:
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def _sse_result(response: httpx.Response) -> dict:
    """The JSON-RPC answer carried by a POST's event stream."""
    assert response.headers["content-type"].startswith("text/event-stream")
    data = [line[5:].strip() for line in response.text.splitlines() if line.startswith("data:")]
    assert len(data) == 1, response.text
    return json.loads(data[0])


async def test_an_agent_manages_tasks_through_one_instance_seen_by_the_other(
    two_instances: tuple[RunningApp, RunningApp],
) -> None:
    first, second = two_instances
    account = await _sign_up(first, "agent@example.com")
    headers = {"Authorization": f"Bearer {account['access_token']}"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30) as http,
        streamable_http_client(f"{first.base_url}/mcp", http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        assert {tool.name for tool in (await session.list_tools()).tools} == TOOLS
        created = (await session.call_tool("add_task", {"title": "Call mum"})).structured_content
        kept = (await session.call_tool("add_task", {"title": "Keep"})).structured_content
        task_id = created["task_id"]
        updated = await session.call_tool("update_task", {"task_id": task_id, "priority": "high"})
        completed = await session.call_tool("complete_task", {"task_id": task_id})
        listed = await session.call_tool("list_tasks", {"status": "completed"})
        deleted = await session.call_tool("delete_task", {"task_id": kept["task_id"]})
        missing = await session.call_tool("delete_task", {"task_id": kept["task_id"]})
    assert created["status"] == "created"
    assert updated.structured_content["status"] == "updated"
    assert completed.structured_content["status"] == "completed"
    assert [task["id"] for task in listed.structured_content["result"]] == [task_id]
    assert deleted.structured_content == {
        "task_id": kept["task_id"],
        "status": "deleted",
        "title": "Keep",
    }
    assert missing.is_error and missing.content[0].text == "Task not found"

    async with httpx.AsyncClient(timeout=30) as http:
        rest = await http.get(f"{second.base_url}/api/{account['user_id']}/tasks", headers=headers)
    assert [(task["title"], task["priority"], task["completed"]) for task in rest.json()] == [
        ("Call mum", "high", True)
    ]
    await asyncio.sleep(0.2)  # the access line is written once the response is done
    assert "route=/mcp status=200" in first.log()
    assert f"user_id={account['user_id']}" in first.log()


async def test_no_sticky_sessions(two_instances: tuple[RunningApp, RunningApp]) -> None:
    """Initialize on one instance, call a tool on the other, with no session id in between;
    then the 2026-07-28 client on the second."""
    first, second = two_instances
    account = await _sign_up(second, "roaming@example.com")
    headers = {**POST_HEADERS, "Authorization": f"Bearer {account['access_token']}"}
    initialize = {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "raw", "version": "1"},
    }
    async with httpx.AsyncClient(timeout=30) as http:
        opened = await http.post(
            f"{first.base_url}/mcp", content=_rpc("initialize", initialize), headers=headers
        )
        assert "mcp-session-id" not in opened.headers
        assert _sse_result(opened)["result"]["serverInfo"]["name"] == "todo"
        call = await http.post(
            f"{second.base_url}/mcp",
            content=_rpc("tools/call", {"name": "add_task", "arguments": {"title": "Roam"}}, 2),
            headers=headers,
        )
        stream = await asyncio.wait_for(
            http.get(f"{first.base_url}/mcp", headers=headers), timeout=10
        )
    assert _sse_result(call)["result"]["structuredContent"]["status"] == "created"
    assert stream.status_code == 405

    bearer = {"Authorization": f"Bearer {account['access_token']}"}
    async with (
        httpx2.AsyncClient(headers=bearer, timeout=30) as http2,
        Client(streamable_http_client(f"{second.base_url}/mcp", http_client=http2)) as client,
    ):
        assert client.protocol_version == "2026-07-28"
        listed = await client.call_tool("list_tasks", {})
    assert [task["title"] for task in listed.structured_content["result"]] == ["Roam"]


async def test_a_token_logged_out_on_one_is_refused_by_the_other(
    two_instances: tuple[RunningApp, RunningApp],
) -> None:
    first, second = two_instances
    account = await _sign_up(first, "leaving@example.com")
    headers = {**POST_HEADERS, "Authorization": f"Bearer {account['access_token']}"}
    body = _rpc("tools/call", {"name": "list_tasks", "arguments": {}})
    async with httpx.AsyncClient(timeout=30) as http:
        before = await http.post(f"{second.base_url}/mcp", content=body, headers=headers)
        logout = await http.post(f"{first.base_url}/api/auth/logout", headers=headers)
        after = await http.post(f"{second.base_url}/mcp", content=body, headers=headers)
    assert before.status_code == 200 and logout.status_code == 200
    assert after.status_code == 401
    assert "resource_metadata=" in after.headers["www-authenticate"]
