"""What the task rules refuse, as HTTP answers: 401 revoked, 404 not found, 412 stale version."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from auth.scope import TokenRevoked
from tasks.errors import CursorExpired, TaskNotFound

REVOKED = "Token has been revoked"
NOT_FOUND = "Task not found"


async def token_revoked_handler(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse(
        {"detail": REVOKED},
        status_code=status.HTTP_401_UNAUTHORIZED,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def task_not_found_handler(_request: Request, _exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": NOT_FOUND}, status_code=status.HTTP_404_NOT_FOUND)


async def cursor_expired_handler(request: Request, _exc: Exception) -> JSONResponse:
    days = request.app.state.settings.change_log_retention_days
    detail = (
        f"This cursor is older than the change log's retention ({days} days): sync from scratch "
        "by calling GET …/tasks/changes without `since`, then follow the new cursor."
    )
    return JSONResponse({"detail": detail}, status_code=status.HTTP_410_GONE)


def install_task_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TokenRevoked, token_revoked_handler)
    app.add_exception_handler(TaskNotFound, task_not_found_handler)
    app.add_exception_handler(CursorExpired, cursor_expired_handler)
