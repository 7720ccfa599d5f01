"""Exception handlers: every error leaves as JSON `{"detail": ...}`, never as a bare 500 page.

Exceptions no handler here claims reach `RequestContextMiddleware`, which answers 500 with the
request id and logs the traceback.

A 422 echoes what the client sent (FastAPI's list of errors, each with its `input`), and Python's
JSON parser reads values that have no JSON form: `NaN`, `Infinity`, a float past the double
range (read as infinity) and lone surrogates (`"\\ud800"`, a valid escape of no character).
`json_safe` gives every echoed value a form JSON and UTF-8 can carry, so the client's mistake
stays a 422 instead of failing to encode as a 500.
"""

from __future__ import annotations

import logging
import math
import re
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from db import database_errors, is_database_unavailable
from observability.metrics import database_unavailable
from web.request_context import internal_error_body, route_of

logger = logging.getLogger("todo.errors")


def _database_unavailable() -> JSONResponse:
    database_unavailable("rest")
    return JSONResponse(
        {"detail": "Database unavailable"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


async def database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.warning(
        "database unavailable during %s %s: %r", request.method, route_of(request.scope), exc
    )
    return _database_unavailable()


async def database_error_handler(request: Request, exc: Exception) -> JSONResponse:
    if is_database_unavailable(exc):
        return await database_unavailable_handler(request, exc)
    return await unhandled_error_handler(request, exc)


async def unhandled_error_handler(request: Request, exc: Exception) -> JSONResponse:
    request_id = getattr(request.state, "request_id", None)
    logger.error(
        "unhandled error during %s %s (request id %s)",
        request.method,
        route_of(request.scope),
        request_id,
        exc_info=exc,
    )
    return JSONResponse(
        internal_error_body(request_id), status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


LONE_SURROGATE = re.compile("[\ud800-\udfff]")
# Deeper echoed input is cut (pydantic accepts nesting the JSON parser allowed, and the echo
# would recurse as deep again).
MAX_ECHO_DEPTH = 32
TRUNCATED = "..."


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def json_safe(value: Any, depth: int = 0) -> Any:
    """`value` with every part JSON can carry kept, and the rest spelled as text: non-finite
    floats as `"NaN"`, `"Infinity"`, `"-Infinity"`, lone surrogates as `\\udXXX` escapes."""
    if depth > MAX_ECHO_DEPTH:
        return TRUNCATED
    if isinstance(value, str):
        return (
            LONE_SURROGATE.sub(_escape_surrogate, value) if LONE_SURROGATE.search(value) else value
        )
    if isinstance(value, bool | int) or value is None:
        return value
    if isinstance(value, float):
        return (
            value
            if math.isfinite(value)
            else str(value).replace("inf", "Infinity").replace("nan", "NaN")
        )
    if isinstance(value, dict):
        return {
            str(json_safe(key, depth + 1)): json_safe(item, depth + 1)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [json_safe(item, depth + 1) for item in value]
    try:
        return json_safe(jsonable_encoder(value), depth + 1)
    except Exception:
        return json_safe(str(value), depth + 1)


async def request_validation_handler(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 list, with the echoed values made encodable."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": json_safe(list(exc.errors()))},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, request_validation_handler)
    for error_type in database_errors:
        app.add_exception_handler(error_type, database_unavailable_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
