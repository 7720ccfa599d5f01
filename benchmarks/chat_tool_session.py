"""What reaching the `/mcp` tools in process costs a chat turn.

Each chat turn opens an MCP client session on the server `/mcp` serves (`chat/tools.py`), lists
its tools and closes it; this times that cycle (no model, no database). Prints the median.

    uv run python benchmarks/chat_tool_session.py [--turns 500]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from auth.scope import OwnerScope
from chat.tools import OwnerTools
from mcp_server.app import McpEndpoint
from settings import load_settings


async def main(turns: int) -> None:
    settings = load_settings(better_auth_secret="benchmark-secret-" + "x" * 32)
    endpoint = McpEndpoint(settings, None, lambda: None, version="bench")  # type: ignore[arg-type]
    owner = OwnerScope("bench-user", "bench-token", datetime.now(UTC))
    timings = []
    for _ in range(turns):
        started = time.perf_counter()
        async with OwnerTools(endpoint.server, owner) as tools:
            await tools.list_tools()
        timings.append(time.perf_counter() - started)
    median = statistics.median(timings) * 1000
    print(f"in-process MCP session per chat turn (open, tools/list, close): {median:.2f} ms median")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=500)
    asyncio.run(main(parser.parse_args().turns))
