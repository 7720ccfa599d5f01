"""A database that does not answer: `/mcp` says so the way the REST API does (503 with
`Retry-After` at the door, a readable tool error inside a call), never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from fastapi import FastAPI
from mcp.server.mcpserver.exceptions import ToolError

from db import Database, create_engine_for
from mcp_server.errors import DATABASE_UNAVAILABLE
from settings import load_settings
from tests.helpers import TEST_SECRET, Account
from tests.mcp_server.conftest import INITIALIZE, JSON_AND_SSE, call_past_the_door, mcp_http

# Nothing listens on port 1: every connection is refused at once.
UNREACHABLE = "postgresql://postgres@127.0.0.1:1/postgres"


@pytest.fixture
async def database_down(app: FastAPI) -> AsyncIterator[None]:
    engine = create_engine_for(
        load_settings(database_url=UNREACHABLE, better_auth_secret=TEST_SECRET)
    )
    working = app.state.database
    app.state.database = Database(engine, autocommit_statements=True)
    try:
        yield
    finally:
        app.state.database = working
        await engine.dispose()


async def test_the_token_check_answers_503(
    app: FastAPI, alice: Account, database_down: None
) -> None:
    headers = {"Accept": JSON_AND_SSE, "Content-Type": "application/json"}
    async with mcp_http(app, alice.token, **headers) as http:
        response = await http.post("/mcp", content=INITIALIZE)
    assert response.status_code == 503
    assert response.json() == {"detail": "Database unavailable"}
    assert response.headers["retry-after"] == "5"


async def test_a_tool_call_is_a_readable_tool_error(
    app: FastAPI, alice: Account, database_down: None
) -> None:
    with pytest.raises(ToolError) as refused:
        await call_past_the_door(app, alice, "list_tasks", {})
    assert str(refused.value) == DATABASE_UNAVAILABLE
