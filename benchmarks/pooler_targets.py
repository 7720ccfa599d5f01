"""Yardstick targets (`../shared/bench`): the project behind a real PgBouncer 1.21+, far from it.

    python3 ../shared/bench/run.py ceiling project benchmarks/pooler_tracking.py \
        benchmarks/pooler_forgetting.py --db-delay-ms 2.5 --connections 4 \
        --scenarios list,create,toggle

`pooler_tracking` is Neon's pooler (it tracks prepared statements: one round trip per task
request), `pooler_forgetting` one that forgets them (`DB_POOLER=true`: BEGIN, prepare, execute,
COMMIT). Both run `benchmarks/behind_pgbouncer.py` with a 5 ms round trip between the app and
PgBouncer (with the yardstick's `--db-delay-ms`, its own between PgBouncer and PostgreSQL
instead, so `ceiling` and `project` pay the same); the PgBouncer comes from `PGBOUNCER`
(default: what `.ci/pgbouncer-tracking` built).
The app's CPU figures include PgBouncer's and the delay proxy's (they run in its process tree).
"""

from __future__ import annotations

import glob
import os
from pathlib import Path
from typing import Any

import project  # the yardstick's own target for this project: setup, prepare, health

HERE = Path(__file__).resolve().parent


def _pgbouncer() -> str:
    if os.environ.get("PGBOUNCER"):
        return os.environ["PGBOUNCER"]
    built = sorted(glob.glob("/opt/pgbouncer-1.2[1-9]*/bin/pgbouncer"))
    if not built:
        raise RuntimeError("no PgBouncer 1.21+: run `bash .ci/pgbouncer-tracking` or set PGBOUNCER")
    return built[-1]


def _delay_ms() -> str:
    """2.5 ms each way between the app and PgBouncer, unless the yardstick already delays
    PostgreSQL (`--db-delay-ms`: then the delay sits between PgBouncer and PostgreSQL)."""
    if float(os.environ.get("BENCH_DB_DELAY_MS") or 0) > 0:
        return "0"
    return os.environ.get("POOLER_DELAY_MS", "2.5")


def target(*, track: bool) -> dict[str, Any]:
    """A target module's attributes (`globals().update(target(track=...))`)."""
    kind = "tracks" if track else "forgets"

    def server(ctx: Any) -> dict[str, Any]:
        spec = project.server(ctx)
        spec["cmd"] = [
            "uv",
            "run",
            "python",
            str(HERE / "behind_pgbouncer.py"),
            "--pgbouncer",
            _pgbouncer(),
            "--track-prepared-statements",
            "yes" if track else "no",
            "--delay-ms",
            _delay_ms(),
            "--",
            *spec["cmd"],
        ]
        return spec

    return {
        "DESCRIPTION": f"the project behind PgBouncer that {kind} prepared statements, 5 ms away",
        "HEALTH_PATH": project.HEALTH_PATH,
        "setup": project.setup,
        "prepare": project.prepare,
        "server": server,
    }
