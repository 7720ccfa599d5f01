"""What the task rules refuse, as HTTP answers: 401 revoked, 404 not found, 410 expired cursor,
412 stale version, 409/422 misused idempotency keys."""

from __future__ import annotations

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse

from auth.scope import TokenRevoked
from observability.metrics import write_refused
from routes.conditional import task_tag
from tasks.errors import CursorExpired, TaskNotFound, VersionMismatch
from tasks.idempotency import IdempotencyKeyInFlight, IdempotencyKeyReused

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


async def version_mismatch_handler(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, VersionMismatch)
    write_refused(status.HTTP_412_PRECONDITION_FAILED, "stale_if_match")
    tag = task_tag(int(request.path_params["task_id"]), exc.current_version)
    return JSONResponse(
        {"detail": "The task changed since the ETag you sent (If-Match): GET it and retry."},
        status_code=status.HTTP_412_PRECONDITION_FAILED,
        headers={"ETag": str(tag)},
    )


async def key_reused_handler(request: Request, _exc: Exception) -> JSONResponse:
    """422 in the shape of every other validation error, pointing at the header."""
    error = {
        "type": "idempotency_key_reused",
        "loc": ["header", "idempotency-key"],
        "msg": "This Idempotency-Key was first used for another request (method, path or "
        "body); send a new key with a new request.",
        "input": request.headers.get("idempotency-key"),
    }
    return JSONResponse({"detail": [error]}, status_code=status.HTTP_422_UNPROCESSABLE_CONTENT)


async def key_in_flight_handler(_request: Request, _exc: Exception) -> JSONResponse:
    write_refused(status.HTTP_409_CONFLICT, "idempotency_key_in_flight")
    return JSONResponse(
        {"detail": "The first request with this Idempotency-Key is still running; retry soon."},
        status_code=status.HTTP_409_CONFLICT,
        headers={"Retry-After": "1"},
    )


def install_task_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(TokenRevoked, token_revoked_handler)
    app.add_exception_handler(TaskNotFound, task_not_found_handler)
    app.add_exception_handler(CursorExpired, cursor_expired_handler)
    app.add_exception_handler(VersionMismatch, version_mismatch_handler)
    app.add_exception_handler(IdempotencyKeyReused, key_reused_handler)
    app.add_exception_handler(IdempotencyKeyInFlight, key_in_flight_handler)
