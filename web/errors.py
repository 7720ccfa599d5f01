"""Exception handlers: every error leaves as JSON `{"detail": ...}`, never as a bare 500 page.

Exceptions no handler here claims reach `RequestContextMiddleware`, which answers 500 with the
request id and logs the traceback.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from db import database_errors, is_database_unavailable
from web.request_context import internal_error_body

logger = logging.getLogger("todo.errors")


def _database_unavailable() -> JSONResponse:
    return JSONResponse(
        {"detail": "Database unavailable"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


async def database_unavailable_handler(request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable during %s %s: %r", request.method, request.url.path, exc)
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
        request.url.path,
        request_id,
        exc_info=exc,
    )
    return JSONResponse(
        internal_error_body(request_id), status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def install_exception_handlers(app: FastAPI) -> None:
    for error_type in database_errors:
        app.add_exception_handler(error_type, database_unavailable_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
