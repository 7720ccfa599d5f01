"""The Todo API application: `uv run uvicorn main:app`."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from auth.passwords import PasswordHasher
from auth.tokens import TokenService
from auth.verification import build_token_verifier
from db import (
    Database,
    create_engine_for,
    create_read_sessionmaker,
    create_sessionmaker,
    create_tables,
    ensure_schema_migrated,
    listen_target,
)
from live.broker import ChangeBroker
from live.listener import ChangeListener
from live.shutdown import on_termination
from mcp_server import McpEndpoint
from routes import auth, events, meta, tasks
from routes.errors import install_task_error_handlers
from routes.idempotency import SealedBodies
from routes.responses import document_body_errors
from settings import Settings, get_settings
from tasks.retention import TIDY_TASK_NAME, keep_tidy
from web.body_limit import BodySizeLimitMiddleware
from web.docs import install_docs
from web.errors import install_exception_handlers
from web.log_config import configure_logging
from web.request_context import RequestContextMiddleware

logger = logging.getLogger("todo.app")

VERSION = "1.0.0"
EXPOSED_HEADERS = [
    "X-Total-Count",
    "Link",
    "Location",
    "X-Deleted-Count",
    "ETag",
    "Idempotent-Replayed",
    "Retry-After",
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine_for(settings)
        app.state.engine = engine
        app.state.database = Database.for_settings(engine, settings)
        app.state.sessionmaker = create_sessionmaker(engine)
        app.state.read_sessionmaker = create_read_sessionmaker(engine, settings)
        if engine.dialect.name == "sqlite":
            # The embedded default needs no setup; PostgreSQL is migrated with Alembic.
            await create_tables(engine)
        else:
            await ensure_schema_migrated(engine)
        await app.state.password_hasher.prepare()
        broker = app.state.broker = ChangeBroker(settings.events_max_streams_per_user)
        app.state.database.on_change(broker.publish)
        target = listen_target(settings)
        listener = ChangeListener(target, broker) if target is not None else None
        if listener is not None:
            listener.start()
        elif engine.dialect.name == "postgresql":
            logger.warning(
                "behind a transaction pooler without DATABASE_DIRECT_URL: live events see other "
                "instances' changes only when a stream looks again (every 15 s)"
            )
        # What startup made (modules, schemas, compiled statements) lives as long as the process:
        # frozen, the collector's full passes no longer walk it (p99 latency fell ~3x in the
        # yardstick, README Performance).
        gc.collect()
        gc.freeze()
        retention = timedelta(days=settings.change_log_retention_days)
        tidying = asyncio.create_task(keep_tidy(app.state.database, retention), name=TIDY_TASK_NAME)
        try:
            # A mounted app's own lifespan never runs: the MCP session manager runs in this one.
            with on_termination(broker.close):
                async with mcp.running():
                    yield
        finally:
            tidying.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tidying
            broker.close()
            if listener is not None:
                await listener.stop()
            await engine.dispose()
            gc.unfreeze()  # another app in this process (tests) must not keep this one alive

    app = FastAPI(
        title=settings.app_name,
        version=VERSION,
        description=(
            "Multi-user Todo API. Sign up or log in under **auth**, press **Authorize** and paste "
            "the `access_token`; task routes take your `user_id` in the path."
        ),
        lifespan=lifespan,
        # Served by web.docs from local files instead of FastAPI's CDN-backed pages.
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.token_service = TokenService(
        settings.jwt_secret, settings.jwt_algorithm, settings.jwt_expiration_delta
    )
    app.state.token_verifier = build_token_verifier(settings, app.state.token_service)
    app.state.password_hasher = PasswordHasher(rounds=settings.bcrypt_rounds)
    app.state.sealed_bodies = SealedBodies(settings.jwt_secret)
    mcp = McpEndpoint(
        settings, app.state.token_verifier, lambda: app.state.database, version=VERSION
    )

    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_allowed_origins,
        allow_credentials=True,
        allow_methods=["*"],
        allow_headers=["*"],
        expose_headers=EXPOSED_HEADERS,
    )
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    # Outermost: its headers and access line cover CORS preflights, 413s and 500s too.
    app.add_middleware(RequestContextMiddleware)
    install_exception_handlers(app)
    install_task_error_handlers(app)

    app.include_router(meta.router)
    app.include_router(auth.router)
    app.include_router(tasks.router)
    app.include_router(events.router)
    # `/mcp` (Streamable HTTP) and its protected-resource metadata; not in /openapi.json.
    app.router.routes.extend(mcp.routes())
    document_body_errors(app)
    install_docs(app)
    return app


app = create_app()
