"""Public endpoints: service information, health, and the probes of a platform (`/livez`,
`/readyz`; README "Deploy")."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from db import is_database_unavailable
from schemas import HealthStatus, HealthUnavailable, Liveness, NotReady, Ready, RootInfo
from web.readiness import Readiness

logger = logging.getLogger("todo.health")
router = APIRouter(tags=["meta"])
# A probe's answer describes this instance at this moment: nothing may keep it.
NO_STORE = {"Cache-Control": "no-store"}


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


@router.get("/livez")
async def livez(response: Response) -> Liveness:
    """Liveness: the process answers. Touches nothing else (not the database), so a restart is
    never ordered for something a restart cannot fix."""
    response.headers.update(NO_STORE)
    return Liveness(status="ok")


@router.get(
    "/readyz",
    response_model=Ready,
    responses={
        503: {
            "model": NotReady,
            "description": "Shutting down, the database did not answer, or its schema is not "
            "at the head revision (`detail` says which)",
        }
    },
)
async def readyz(request: Request, response: Response) -> Ready | JSONResponse:
    """Readiness: not shutting down, the database answers, and (PostgreSQL) its schema is at
    the head revision of this version's migrations. 503 otherwise: send it no traffic."""
    readiness: Readiness = request.app.state.readiness
    answer = await readiness.check(request.app.state.engine)
    if isinstance(answer, NotReady):
        return JSONResponse(answer.model_dump(), status_code=503, headers=NO_STORE)
    response.headers.update(NO_STORE)
    return answer
