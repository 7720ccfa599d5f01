"""Property: whatever a client sends to any operation, the answer is never a 5xx.

Every operation of `/openapi.json` (and `/mcp` and `/chatkit`) gets bodies of arbitrary JSON
values (non-finite floats, numbers past any column, lone surrogates, deep nesting, in the fields
the operation reads and anywhere else), arbitrary query and path values, and arbitrary values of
the headers the server parses itself (`Authorization` with tokens whose claims are anything JSON
can say, `If-Match`, `If-None-Match`, `Idempotency-Key`, `Last-Event-ID`, `X-Request-ID`,
`X-Forwarded-For`, `Content-Type`, `Origin`). Run on SQLite, and on PostgreSQL with
`TEST_DATABASE_URL`."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import jwt
import pytest
from fastapi import FastAPI
from httpx import AsyncClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import main
from chat.failures import NOT_CONFIGURED
from tests.helpers import TEST_SECRET, Account, create_task, frontend_token, sign_up

EXAMPLES_PER_OPERATION = 30

# Scalars Python's JSON parser reads, including those JSON itself cannot carry.
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.sampled_from([2**31, 2**63, 2**64, -(2**63) - 1, 10**19]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), 1e308]),
    st.text(max_size=40),
    st.text(st.characters(categories=["Cs", "Cc", "Zl", "Zp"]), min_size=1, max_size=5),
)
KEYS = st.one_of(
    st.sampled_from(
        [
            *("title", "description", "priority", "tags", "due_at", "recurrence", "completed"),
            *("email", "password", "name", "current_password", "new_password"),
            *("jsonrpc", "id", "method", "params", "arguments", "task_id", "user_id"),
        ]
    ),
    st.text(max_size=8),
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=12,
)
DEEP = st.integers(min_value=1, max_value=5000).map(lambda depth: "[" * depth + "]" * depth)
# What a real HTTP parser lets through in a header value: tab, visible ASCII, obs-text.
HEADER_BYTES = st.binary(max_size=80).map(
    lambda raw: bytes(b for b in raw if b == 9 or 32 <= b <= 126 or b >= 128)
)


def header_values(task_id: int) -> st.SearchStrategy[bytes]:
    """Anything a header may carry, and entity tags of the task with any version (past the
    64-bit column too)."""
    versions = st.one_of(st.integers(min_value=0), st.sampled_from([2**63, 10**19 - 1]))
    return st.one_of(
        HEADER_BYTES,
        st.sampled_from([b"*", b'W/"1.1"', b'"x"', b'"1.1", "2.2"']),
        versions.map(lambda version: f'"{task_id}.{version}"'.encode()),
    )


PARSED_HEADERS = [
    "if-match",
    "if-none-match",
    "idempotency-key",
    "last-event-id",
    "x-request-id",
    "x-forwarded-for",
    "origin",
]


def _percent_encoded(value: str) -> str:
    """`value` in a URL as a client can write it: its UTF-8 bytes, lone surrogates included."""
    return quote(value.encode("utf-8", "surrogatepass"), safe="")


def _body(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


def _claims_token(claims: dict[str, Any]) -> str:
    return jwt.encode(claims, TEST_SECRET, algorithm="HS256")


@st.composite
def tokens(draw: st.DrawFn, account: Account) -> bytes | None:
    kind = draw(st.sampled_from(["valid"] * 4 + ["none", "garbage", "claims", "claims-with-user"]))
    if kind == "valid":
        # A token of its own, so a fuzzed logout revokes no other example's.
        return f"Bearer {frontend_token(account.id, jti=uuid.uuid4().hex)}".encode()
    if kind == "none":
        return None
    if kind == "garbage":
        return b"Bearer " + draw(HEADER_BYTES)
    claims = draw(
        st.dictionaries(st.sampled_from(["sub", "exp", "iat", "nbf", "jti"]), JSON_VALUES)
    )
    if kind == "claims-with-user":
        claims = {
            "sub": account.id,
            "exp": int((datetime.now(UTC) + timedelta(hours=1)).timestamp()),
            **{
                name: value
                for name, value in claims.items()
                if name != "sub" or draw(st.booleans())
            },
        }
    return f"Bearer {_claims_token(claims)}".encode()


def _path_value(draw: st.DrawFn, name: str, account: Account, task_id: int) -> str:
    # Mostly the caller's own (to get past the 403 and reach the database), sometimes anything.
    if name == "user_id":
        value = account.id if draw(st.integers(0, 4)) else draw(st.text(min_size=1, max_size=300))
    elif draw(st.integers(0, 2)):
        value = str(task_id)
    else:
        value = draw(
            st.one_of(
                st.integers(min_value=-(10**30), max_value=10**30).map(str),
                st.text(min_size=1, max_size=20),
            )
        )
    return _percent_encoded(value)


@st.composite
def requests(
    draw: st.DrawFn,
    operation_: tuple[str, str, dict[str, Any]],
    account: Account,
    task_id: int,
) -> tuple[str, str, bytes | None, dict[str, bytes], str]:
    method, path, operation = operation_
    for parameter in operation.get("parameters", []):
        if parameter["in"] == "path":
            value = _path_value(draw, parameter["name"], account, task_id)
            path = path.replace("{" + parameter["name"] + "}", value)
    query_value = st.one_of(st.text(max_size=30), SCALARS.map(str)).map(_percent_encoded)
    query = "&".join(
        f"{parameter['name']}={draw(query_value)}"
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query" and draw(st.booleans())
    )
    body: bytes | None = None
    if method != "GET" and draw(st.integers(0, 9)) > 0:
        shape = draw(st.sampled_from(["example", "example", "fields", "anything", "deep"]))
        if shape == "example":
            # The documented example with one field (its own or another) set to anything.
            example = operation.get("x-example") or {}
            field = draw(
                st.sampled_from(sorted(example)) if example and draw(st.booleans()) else KEYS
            )
            body = _body({**example, field: draw(JSON_VALUES)})
        elif shape == "fields":
            body = _body(draw(st.dictionaries(KEYS, JSON_VALUES, min_size=1, max_size=6)))
        elif shape == "anything":
            body = _body(draw(JSON_VALUES))
        else:
            body = draw(DEEP).encode()
    headers = {
        name: draw(header_values(task_id))
        for name in PARSED_HEADERS
        if draw(st.integers(0, 2)) == 0
    }
    token = draw(tokens(account))
    if token is not None:
        headers["authorization"] = token
    if body is not None:
        headers["content-type"] = draw(
            st.sampled_from([b"application/json", b"application/merge-patch+json", b"text/plain"])
        )
    if path == "/mcp":
        headers["accept"] = b"application/json, text/event-stream"
    return method, path, body, headers, query


MCP_CALL = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add_task"}}
CHATKIT_REQUEST = {"type": "threads.list", "params": {"limit": 20, "order": "desc"}}


def _example(document: dict[str, Any], operation: dict[str, Any]) -> dict[str, Any] | None:
    """The operation's documented request body example, if it has one."""
    content = operation.get("requestBody", {}).get("content", {}).get("application/json")
    reference = (content or {}).get("schema", {}).get("$ref", "")
    schema = document["components"]["schemas"].get(reference.rsplit("/", 1)[-1], {})
    examples = schema.get("examples") or [None]
    return examples[0]


def _operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi()
    operations = [
        (method.upper(), path, {**operation, "x-example": _example(document, operation)})
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]
    return [
        *operations,
        ("POST", "/mcp", {"x-example": MCP_CALL}),
        ("POST", "/chatkit", {"x-example": CHATKIT_REQUEST}),
        ("HEAD", "/api/{user_id}/tasks", {}),
    ]


@pytest.fixture
async def target(app: FastAPI, client: AsyncClient) -> tuple[Account, int]:
    account = await sign_up(client, email="target@example.com")
    task = await create_task(client, account)
    # Streams end at once (as at shutdown), so an event stream answers and returns.
    app.state.broker.close()
    return account, task["id"]


OPERATIONS = _operations(main.app)


@pytest.mark.parametrize(
    "operation", OPERATIONS, ids=[f"{method} {path}" for method, path, _ in OPERATIONS]
)
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=True,
)
@given(data=st.data())
async def test_no_operation_answers_5xx(
    operation: tuple[str, str, dict[str, Any]],
    data: st.DataObject,
    client: AsyncClient,
    target: tuple[Account, int],
) -> None:
    account, task_id = target
    method, path, body, headers, query = data.draw(requests(operation, account, task_id))
    url = f"http://localhost{path}?{query}" if query else f"http://localhost{path}"
    response = await client.request(method, url, content=body, headers=headers)
    if response.status_code == 503 and response.json().get("detail") == NOT_CONFIGURED:
        return  # a valid chat turn, and this suite has no model: its documented answer
    assert response.status_code < 500, (method, path, body, headers, query, response.text)
