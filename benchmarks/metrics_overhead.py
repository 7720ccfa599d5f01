"""What the metrics add to one request, measured in process (CPU only, so the shared machine's
noise matters less than in the yardstick): the HTTP middleware around a bare ASGI app, and the
pool and statement events (the same listeners the async engine gets) around a `SELECT 1` on a
synchronous in-memory SQLite engine, where nothing else hides them. Prints microseconds per
call.

    uv run python benchmarks/metrics_overhead.py
    PROMETHEUS_MULTIPROC_DIR="$(mktemp -d)" uv run python benchmarks/metrics_overhead.py
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, text
from sqlalchemy.pool import QueuePool

from observability.database import observe_engine
from observability.http import HttpMetricsMiddleware

REQUESTS = 20_000
STATEMENTS = 20_000
ROUNDS = 7


class _Route:
    path = "/api/{user_id}/tasks"


async def _app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    scope["route"] = _Route
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"[]"})


async def _send(_message: Any) -> None:
    return None


async def _receive() -> dict[str, Any]:
    return {"type": "http.request", "body": b""}


async def _per_request(app: Any) -> float:
    started = time.perf_counter()
    for _ in range(REQUESTS):
        scope = {"type": "http", "method": "GET", "path": "/api/u/tasks"}
        await app(scope, _receive, _send)
    return (time.perf_counter() - started) / REQUESTS * 1e6


def _per_statement(measured: bool, folder: str) -> float:
    engine = create_engine(f"sqlite:///{folder}/{measured}.db", poolclass=QueuePool)
    if measured:
        observe_engine(engine)
    try:
        with engine.connect() as connection:  # warm: the connection exists
            connection.execute(text("SELECT 1"))
        started = time.perf_counter()
        for _ in range(STATEMENTS):
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        return (time.perf_counter() - started) / STATEMENTS * 1e6
    finally:
        engine.dispose()


async def main() -> None:
    mode = "multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "single process"
    bare, middleware, plain, observed = [], [], [], []
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(ROUNDS):  # alternated
            bare.append(await _per_request(_app))
            middleware.append(await _per_request(HttpMetricsMiddleware(_app)))
            plain.append(_per_statement(False, folder))
            observed.append(_per_statement(True, folder))
    # The fastest round of each: what the work costs when the shared machine's noise is least.
    http = min(middleware) - min(bare)
    database = min(observed) - min(plain)
    print(f"metrics, {mode} mode, fastest of {ROUNDS} alternated rounds (µs per call):")
    print(
        f"  HTTP middleware: {min(bare):.1f} bare app, {min(middleware):.1f} with it: +{http:.1f}"
    )
    print(
        f"  checkout + SELECT 1 + checkin: {min(plain):.1f} plain, "
        f"{min(observed):.1f} observed: +{database:.1f}"
    )
    print(f"  a request with one statement: +{http + database:.1f} µs")


if __name__ == "__main__":
    asyncio.run(main())
