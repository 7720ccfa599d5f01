"""`/mcp`: the Model Context Protocol over Streamable HTTP, served by the app itself.

Built with the official SDK's `MCPServer`: stateless HTTP (every request stands alone, so any
number of uvicorn instances serve it with no sticky sessions), bearer tokens checked by
`McpTokenVerifier` (the REST API's tokens and revocation), the SDK's protected-resource metadata
at `/.well-known/oauth-protected-resource/mcp`, and Host/Origin checks from the settings.

The SDK returns a Starlette app whose own lifespan would run its session manager; mounted inside
FastAPI that lifespan never runs, so `main.py` enters `McpEndpoint.running()` in its lifespan.
The endpoint is added as plain routes at the SDK's own paths (`/mcp` exactly, with no
`/mcp` -> `/mcp/` redirect, and the metadata path); being no FastAPI operations, they stay out
of `/openapi.json`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from auth.verification import TokenVerifier
from db import Database
from mcp_server.auth import McpTokenVerifier
from mcp_server.edge import McpEdgeMiddleware
from mcp_server.tools import TaskTools
from settings import Settings

MCP_PATH = "/mcp"
SERVER_NAME = "todo"
INSTRUCTIONS = (
    "Manage the signed-in user's todo list: add, list, complete, update and delete their tasks. "
    "The access token decides whose tasks these are. Task ids come from list_tasks (`id`) or "
    "add_task (`task_id`); when the user names a task by its title, call list_tasks (with "
    "`search`) to find its id first. Times are ISO 8601 with an offset."
)


def transport_security(settings: Settings) -> TransportSecuritySettings:
    """DNS-rebinding protection: which Host and Origin headers `/mcp` answers (421 and 403
    otherwise). Off with `MCP_ALLOWED_HOSTS=*`, for a proxy that already controls Host."""
    if not settings.mcp_host_protection:
        return TransportSecuritySettings(enable_dns_rebinding_protection=False)
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=list(settings.mcp_allowed_hosts),
        allowed_origins=settings.mcp_origins,
    )


class McpEndpoint:
    """The MCP server, its Starlette app and the routes that reach it."""

    def __init__(
        self,
        settings: Settings,
        verifier: TokenVerifier,
        database: Callable[[], Database],
        *,
        version: str,
    ) -> None:
        self.settings = settings
        self.server = MCPServer(
            SERVER_NAME,
            title="Todo",
            instructions=INSTRUCTIONS,
            version=version,
            token_verifier=McpTokenVerifier(verifier, database),
            auth=AuthSettings(
                issuer_url=settings.mcp_authorization_server,
                resource_server_url=settings.mcp_resource_url,
                # The verifier checks each token's issuer and audience itself.
                validate_token_resource=False,
            ),
            tools=TaskTools(database).tools(),
        )
        self.app = self._build()
        self._served = False

    def _build(self) -> Starlette:
        """A fresh SDK app (and session manager: each runs once)."""
        app = self.server.streamable_http_app(
            streamable_http_path=MCP_PATH,
            stateless_http=True,
            transport_security=transport_security(self.settings),
            max_request_body_size=self.settings.max_body_bytes,
        )
        app.add_middleware(McpEdgeMiddleware, endpoint_path=MCP_PATH)
        return app

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Run the SDK's session manager for the host app's lifetime."""
        if self._served:
            self.app = self._build()
        self._served = True
        async with self.server.session_manager.run():
            yield

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)

    def routes(self) -> list[BaseRoute]:
        """`/mcp` and the metadata route, at the SDK's paths, every method passed through."""
        paths = [route.path for route in self.app.routes if isinstance(route, Route)]
        return [Route(path, endpoint=self, include_in_schema=False) for path in paths]
