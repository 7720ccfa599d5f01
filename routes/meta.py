"""Public endpoints: service information and health."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text

from db import is_database_unavailable
from schemas import HealthStatus, HealthUnavailable, RootInfo

logger = logging.getLogger("todo.health")
router = APIRouter(tags=["meta"])


@router.get("/")
async def root(request: Request) -> RootInfo:
    return RootInfo(name=request.app.title, version=request.app.version, docs="/docs")


@router.get(
    "/health",
    response_model=HealthStatus,
    responses={503: {"model": HealthUnavailable, "description": "The database did not answer"}},
)
async def health(request: Request) -> HealthStatus | JSONResponse:
    """Liveness and database reachability (`SELECT 1`)."""
    try:
        async with request.app.state.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:
        if not is_database_unavailable(exc):
            raise
        logger.warning("health check: database unavailable: %r", exc)
        body = HealthUnavailable(
            status="unavailable", database="unavailable", detail="Database unavailable"
        )
        return JSONResponse(body.model_dump(), status_code=503)
    return HealthStatus(status="ok", database="ok")
