"""The Model Context Protocol endpoint (`/mcp`): AI agents manage a user's tasks with that
user's token, through the same task rules as the REST routes. Only `main.py` imports it.

Never name this package `mcp`: that would shadow the SDK.
"""

from mcp_server.app import McpEndpoint

__all__ = ["McpEndpoint"]
