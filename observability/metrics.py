"""Every metric the service publishes at `/metrics`, and the one-line calls that feed them.

Names start with `todo_`. No label ever holds a user id, a task id, an address or a raw path:
each label's values are a small fixed set (a route template, a status class, a limit's name, a
tool's name), so the series stay bounded whatever clients send. Gauges are per process and
summed over the live workers (`livesum`) in multiprocess mode (`observability.multiprocess`).
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

from observability.multiprocess import ensure_directory

ensure_directory()  # prometheus_client writes a file per metric at once in multiprocess mode
# No `_created` series (the multiprocess mode has none either): half the lines, no information.
disable_created_metrics()

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

# HTTP (observability.http)
HTTP_REQUESTS = Counter(
    "todo_http_requests",
    "HTTP requests answered, by method, route template and status class (2xx, 4xx, ...)",
    ["method", "route", "status"],
)
HTTP_DURATION = Histogram(
    "todo_http_request_duration_seconds",
    "Time from a request's arrival to its answer's end, by method and route template",
    ["method", "route"],
    buckets=LATENCY_BUCKETS,
)
HTTP_IN_FLIGHT = Gauge(
    "todo_http_requests_in_flight",
    "Requests being answered (open event streams included)",
    multiprocess_mode="livesum",
)

# Database (observability.database, web.errors, mcp_server.edge)
DB_IN_USE = Gauge(
    "todo_db_pool_connections_in_use",
    "Pooled database connections checked out (read from the pool twice a second)",
    multiprocess_mode="livesum",
)
DB_OVERFLOW = Gauge(
    "todo_db_pool_overflow_connections",
    "Connections open beyond the pool's size (DB_POOL_SIZE), within DB_MAX_OVERFLOW (read "
    "from the pool twice a second)",
    multiprocess_mode="livesum",
)
DB_CHECKOUT_WAITS = Counter(
    "todo_db_pool_checkout_waits",
    "Checkouts that found every connection of the pool in use and waited for one",
)
DB_CHECKOUT_WAIT = Histogram(
    "todo_db_pool_checkout_wait_seconds",
    "How long those checkouts waited",
    buckets=FAST_BUCKETS,
)
DB_STATEMENTS = Histogram(
    "todo_db_statement_duration_seconds",
    "Statements sent to the database and their time, by kind (select, insert, update, delete, "
    "write: a statement whose CTEs change data, transaction, other)",
    ["kind"],
    buckets=FAST_BUCKETS,
)
DB_UNAVAILABLE = Counter(
    "todo_db_unavailable_answers",
    'Answers "Database unavailable" (503 on the REST API and /mcp)',
    ["surface"],
)

# Live events (live/, routes/events.py)
LIVE_STREAMS = Gauge(
    "todo_live_streams_open",
    "Open event streams (GET .../events)",
    multiprocess_mode="livesum",
)
LIVE_EVENTS = Counter("todo_live_events_delivered", "Events sent on event streams")
LIVE_LISTENING = Gauge(
    "todo_live_listen_connections",
    "Processes whose LISTEN connection is up (one per process at most)",
    multiprocess_mode="livesum",
)
LIVE_RECONNECTS = Counter(
    "todo_live_listen_reconnects",
    "Times a LISTEN connection had to be made again, by reason (lost, ping_failed, connect_failed)",
    ["reason"],
)

# Passwords and limits (auth/)
BCRYPT_IN_FLIGHT = Gauge(
    "todo_bcrypt_in_flight",
    "bcrypt hashes and verifications asked for and not finished (waiting or running)",
    multiprocess_mode="livesum",
)
BCRYPT_WAIT = Histogram(
    "todo_bcrypt_wait_seconds",
    "How long a bcrypt hash waited for one of its threads",
    buckets=LATENCY_BUCKETS,
)
LOGIN_FAILURES = Counter(
    "todo_login_failures",
    "Failed password checks (login, and the confirmation of password change and account "
    "deletion), by reason (unknown_email, wrong_password)",
    ["reason"],
)
RATE_LIMITED = Counter(
    "todo_rate_limited",
    "429 answers, by the limit that refused (login-email, login-address, signup-address, "
    "ticket, chat-turns, event-streams)",
    ["limit"],
)

# Safe edits and retries (routes/)
IDEMPOTENT_REPLAYS = Counter(
    "todo_idempotent_replays",
    "Retries answered from an Idempotency-Key's record, by operation (task_write, signup, "
    "chat_turn)",
    ["operation"],
)
WRITE_REFUSALS = Counter(
    "todo_write_refusals",
    "412 (stale If-Match), 428 (If-Match required) and 409 (Idempotency-Key still in flight) "
    "answers",
    ["status", "reason"],
)

# Background work and MCP (tasks/retention.py, mcp_server/)
PURGE_RUNS = Counter(
    "todo_changelog_purge_runs",
    "Runs of the change-log purge, by outcome (purged, skipped: another instance held the "
    "lock, unavailable, failed)",
    ["outcome"],
)
MCP_TOOL_CALLS = Counter(
    "todo_mcp_tool_calls",
    "MCP tool calls (from /mcp and the chat assistant), by tool and outcome (ok, error: a "
    "refusal the model reads, crash)",
    ["tool", "outcome"],
)

# The event loop (observability.loop_lag)
LOOP_LAG = Histogram(
    "todo_event_loop_lag_seconds",
    "How late the event loop ran a ticker that asked to wake every 0.5 s",
    buckets=FAST_BUCKETS,
)


def stream_opened() -> None:
    LIVE_STREAMS.inc()


def stream_closed() -> None:
    LIVE_STREAMS.dec()


def events_delivered(count: int) -> None:
    if count:
        LIVE_EVENTS.inc(count)


def listening(up: bool) -> None:
    LIVE_LISTENING.set(1 if up else 0)


def listen_reconnects(reason: str) -> None:
    LIVE_RECONNECTS.labels(reason).inc()


def rate_limited(limit: str) -> None:
    RATE_LIMITED.labels(limit).inc()


def replayed(operation: str) -> None:
    IDEMPOTENT_REPLAYS.labels(operation).inc()


def write_refused(status: int, reason: str) -> None:
    WRITE_REFUSALS.labels(str(status), reason).inc()


def database_unavailable(surface: str) -> None:
    DB_UNAVAILABLE.labels(surface).inc()
