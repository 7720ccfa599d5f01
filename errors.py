"""Exception handlers: every error leaves as JSON `{"detail": ...}`, never as a bare 500 page."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError

from db import database_errors, is_database_unavailable

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
    logger.error("unhandled error during %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(
        {"detail": "Internal server error"}, status_code=status.HTTP_500_INTERNAL_SERVER_ERROR
    )


def install_exception_handlers(app: FastAPI) -> None:
    for error_type in database_errors:
        app.add_exception_handler(error_type, database_unavailable_handler)
    app.add_exception_handler(DBAPIError, database_error_handler)
    app.add_exception_handler(Exception, unhandled_error_handler)
