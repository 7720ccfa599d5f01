"""Does listing a page of tasks cost the same for a user with 100 tasks and one with 10,000?

Seeds two users (100 and 10,000 tasks, with tags, priorities and due dates) on a throwaway
PostgreSQL database on 127.0.0.1:5432 (dropped afterwards) and on a temporary SQLite file,
then times `GET /api/{user_id}/tasks?limit=100` in process (httpx over ASGI, the whole app:
auth, validation, both queries, serialisation) and prints the median times, their ratio and
the plan of the page query.

    uv run python benchmarks/list_scaling.py [--rounds 30] [--postgres URL] [--no-postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import jwt
from httpx import ASGITransport, AsyncClient
from sqlalchemy import event, insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from db import create_tables
from main import create_app
from models import Priority, Task, TaskTag
from settings import load_settings

SECRET = "benchmark-secret-that-is-long-enough-0123456789"
SIZES = {"small": 100, "big": 10_000}
SCENARIOS = {
    "default (newest first)": {"limit": "100"},
    "sort=priority": {"limit": "100", "sort": "priority"},
    "sort=due_at": {"limit": "100", "sort": "due_at"},
    "sort=due_at&order=desc": {"limit": "100", "sort": "due_at", "order": "desc"},
    "status=pending&sort=title": {"limit": "100", "status": "pending", "sort": "title"},
    "tag=work": {"limit": "100", "tag": "work"},
}
TAGS = ("work", "home", "errand", "reading")
PLAN_KEYWORDS = ("Scan", "Sort", "Join", "Nested Loop", "Execution Time")


def task_rows(user_id: str, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    priorities = list(Priority)
    tasks, tags = [], []
    for number in range(1, count + 1):
        tag = TAGS[number % len(TAGS)]
        created = start + timedelta(minutes=number)
        tasks.append(
            {
                "user_id": user_id,
                "title": f"task {number:05d}",
                "description": "seeded",
                "completed": number % 3 == 0,
                "priority": priorities[number % 3],
                "tags": [tag],
                "due_at": None if number % 5 == 0 else created + timedelta(days=number % 40),
                "recurrence": "none",
                "created_at": created,
                "updated_at": created,
            }
        )
        tags.append(tag)
    return tasks, tags


async def seed(engine: Any, user_id: str, count: int) -> None:
    tasks, tags = task_rows(user_id, count)
    async with engine.begin() as connection:
        ids = (await connection.execute(insert(Task).returning(Task.id), tasks)).scalars().all()
        await connection.execute(
            insert(TaskTag),
            [{"task_id": i, "user_id": user_id, "tag": t} for i, t in zip(ids, tags, strict=True)],
        )


async def measure(database_url: str, rounds: int, verbose: bool) -> None:
    settings = load_settings(
        database_url=database_url, better_auth_secret=SECRET, environment="benchmark"
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        engine = app.state.engine
        # A throwaway database: build the schema here (on PostgreSQL startup leaves it to Alembic).
        await create_tables(engine)
        users = {name: f"bench-{name}-{uuid.uuid4().hex[:6]}" for name in SIZES}
        for name, count in SIZES.items():
            await seed(engine, users[name], count)
        if engine.dialect.name == "postgresql":
            async with engine.begin() as connection:
                await connection.exec_driver_sql("ANALYZE")

        print(f"\n== {engine.dialect.name}: median of {rounds} requests, ms ==")
        print(f"{'scenario':28} {'100 tasks':>10} {'10,000 tasks':>13} {'ratio':>6}")
        async with AsyncClient(transport=ASGITransport(app=app), base_url="http://b") as http:
            for scenario, params in SCENARIOS.items():
                requests = {
                    name: (
                        f"/api/{users[name]}/tasks",
                        {"Authorization": f"Bearer {token(users[name])}"},
                    )
                    for name in SIZES
                }
                for url, headers in requests.values():
                    for _ in range(3):
                        response = await http.get(url, params=params, headers=headers)
                        assert response.status_code == 200, response.text
                        total = int(response.headers["x-total-count"])
                        assert len(response.json()) == min(100, total)
                timings: dict[str, list[float]] = {name: [] for name in SIZES}
                for _ in range(rounds):  # interleaved, so load from elsewhere hits both alike
                    for name, (url, headers) in requests.items():
                        began = time.perf_counter()
                        await http.get(url, params=params, headers=headers)
                        timings[name].append((time.perf_counter() - began) * 1000)
                medians = {name: statistics.median(values) for name, values in timings.items()}
                ratio = medians["big"] / medians["small"]
                print(f"{scenario:28} {medians['small']:10.2f} {medians['big']:13.2f} {ratio:6.2f}")

        print("\nplans of the queries behind each scenario, for the 10,000-task user:")
        await explain_all(app, engine, users["big"], verbose)


async def explain_all(app: Any, engine: Any, user_id: str, verbose: bool) -> None:
    """Run each scenario once more, capture its SQL and print the database's plan for it."""
    captured: list[tuple[str, Any]] = []

    def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "FROM tasks" in statement:
            captured.append((statement, parameters))

    headers = {"Authorization": f"Bearer {token(user_id)}"}
    postgres = engine.dialect.name == "postgresql"
    prefix = "EXPLAIN ANALYZE " if postgres else "EXPLAIN QUERY PLAN "
    async with AsyncClient(transport=ASGITransport(app=app), base_url="http://b") as http:
        for scenario, params in SCENARIOS.items():
            captured.clear()
            event.listen(engine.sync_engine, "before_cursor_execute", capture)
            try:
                await http.get(f"/api/{user_id}/tasks", params=params, headers=headers)
            finally:
                event.remove(engine.sync_engine, "before_cursor_execute", capture)
            for statement, parameters in captured:
                kind = "page" if "LIMIT" in statement else "count"
                async with engine.connect() as connection:
                    result = await connection.exec_driver_sql(prefix + statement, parameters)
                    plan = [" | ".join(str(c) for c in row) for row in result.all()]
                shown = plan
                if postgres and not verbose:
                    shown = [line for line in plan if any(k in line for k in PLAN_KEYWORDS)]
                print(f"  {scenario} [{kind}]")
                for line in shown:
                    print(f"      {line}")


def token(user_id: str) -> str:
    expires = datetime.now(UTC) + timedelta(hours=1)
    return jwt.encode({"sub": user_id, "exp": expires}, SECRET, algorithm="HS256")


async def admin(url: str, statement: str) -> None:
    connection = await asyncpg.connect(url)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--postgres", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument(
        "--plans",
        action="store_true",
        help="print whole PostgreSQL plans, not just their scans, sorts, joins and times",
    )
    arguments = parser.parse_args()

    with tempfile.TemporaryDirectory() as directory:
        await measure(
            f"sqlite+aiosqlite:///{directory}/bench.db", arguments.rounds, arguments.plans
        )

    if not arguments.no_postgres:
        name = f"todo_bench_{uuid.uuid4().hex[:10]}"
        server = arguments.postgres.rsplit("/", 1)[0]
        await admin(arguments.postgres, f'CREATE DATABASE "{name}"')
        try:
            await measure(f"{server}/{name}", arguments.rounds, arguments.plans)
        finally:
            await admin(arguments.postgres, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    asyncio.run(main())
