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
from chat.assistant import Assistant
from chat.chatkit import TodoChatKitServer
from chat.service import ChatService
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
from live.capacity import stream_capacity
from live.listener import ChangeListener
from live.revalidation import Revalidation
from live.shutdown import on_termination
from mcp_server import McpEndpoint
from observability.setup import Observability
from routes import auth, chat, chatkit, events, meta, tasks
from routes.chat import install_chat_error_handlers
from routes.errors import install_task_error_handlers
from routes.event_stream import encode_event
from routes.idempotency import SealedBodies
from routes.responses import document_body_errors
from settings import Settings, get_settings
from tasks.retention import TIDY_TASK_NAME, keep_tidy
from web.body_limit import BodyLimitMiddleware
from web.docs import install_docs
from web.errors import install_exception_handlers
from web.handoff import HandoffMiddleware
from web.head import HeadAsGetMiddleware
from web.log_config import configure_logging
from web.readiness import Readiness
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
    configure_logging(settings.log_level, settings.log_format)
    observability = Observability(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Each run of the app is ready afresh: its shutdown ends only that run.
        readiness = app.state.readiness = Readiness(cache_seconds=settings.readiness_cache_seconds)
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
        assistant = Assistant(settings, mcp.server)
        app.state.chat = ChatService(app.state.database, settings, assistant)
        app.state.chatkit = TodoChatKitServer(app.state.database, settings, assistant)
        broker = app.state.broker = ChangeBroker(
            app.state.database,
            settings.events_max_streams_per_user,
            encode_event,
            max_streams=stream_capacity(settings.events_max_streams),
        )
        revalidation = app.state.revalidation = Revalidation(broker, settings.events_check_seconds)
        app.state.database.on_change(broker.changed_here)
        app.state.database.on_revocation(revalidation.check_owner)
        live_tasks = [
            asyncio.create_task(revalidation.run(), name="todo-live-revalidation"),
            asyncio.create_task(broker.keepalive.run(), name="todo-live-keepalive"),
        ]
        target = listen_target(settings)
        listener = ChangeListener(target, broker, revalidation) if target is not None else None
        if listener is not None:
            listener.start()
        elif engine.dialect.name == "postgresql":
            logger.warning(
                "behind a transaction pooler without DATABASE_DIRECT_URL: live events see other "
                "instances' changes and revocations only at the periodic check "
                "(EVENTS_CHECK_SECONDS)"
            )
        # What startup made (modules, schemas, compiled statements) lives as long as the process:
        # frozen, the collector's full passes no longer walk it (p99 latency fell ~3x in the
        # yardstick, README Performance).
        if settings.freeze_heap_at_startup:
            gc.collect()
            gc.freeze()
        retention = timedelta(days=settings.change_log_retention_days)
        tidying = asyncio.create_task(keep_tidy(app.state.database, retention), name=TIDY_TASK_NAME)

        def begin_shutdown() -> None:
            """SIGTERM: /readyz says 503 at once (balancers drain us) and event streams end."""
            readiness.begin_shutdown()
            broker.close()

        try:
            # A mounted app's own lifespan never runs: the MCP session manager runs in this one.
            with on_termination(begin_shutdown):
                async with observability.running(engine), mcp.running():
                    yield
        finally:
            readiness.begin_shutdown()
            for background in (tidying, *live_tasks):
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
            broker.close()
            if listener is not None:
                await listener.stop()
            await assistant.aclose()
            await engine.dispose()
            if settings.freeze_heap_at_startup:
                gc.unfreeze()  # another app in this process must not keep this one alive

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
        # FastAPI's own OpenTelemetry (0.165) switches itself on whenever a global tracer
        # provider exists: traces are the FastAPI instrumentation's (observability/tracing.py),
        # metrics are Prometheus', so it stays off (and costs no check per request).
        telemetry={"tracing": False, "metrics": False, "logs": False},
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
    app.add_middleware(
        BodyLimitMiddleware,
        max_bytes=settings.max_body_bytes,
        timeout_seconds=settings.http_body_timeout_seconds,
    )
    app.add_middleware(HeadAsGetMiddleware)
    # Event streams live on here once started, outside the rest of the chain.
    app.add_middleware(
        HandoffMiddleware, long_lived=events.opens_a_stream, opening_at_once=events.OPENING_AT_ONCE
    )
    # Outside the hand-off: an open stream is a request in flight until it ends.
    observability.add_middleware(app)
    # Outermost: its headers and access line cover CORS preflights, 413s and 500s too.
    app.add_middleware(RequestContextMiddleware)
    install_exception_handlers(app)
    install_task_error_handlers(app)
    install_chat_error_handlers(app)

    app.include_router(meta.router)
    app.include_router(auth.router)
    app.include_router(tasks.router)
    app.include_router(events.router)
    app.include_router(chat.router)
    app.include_router(chatkit.router)
    # `/mcp` (Streamable HTTP) and its protected-resource metadata; not in /openapi.json.
    app.router.routes.extend(mcp.routes())
    # `/metrics` (METRICS_ENABLED); not in /openapi.json.
    observability.add_routes(app)
    document_body_errors(app)
    install_docs(app)
    observability.instrument(app)
    return app


app = create_app()
