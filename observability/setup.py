"""What `main.create_app` wires: metrics when `METRICS_ENABLED`, traces when the `OTEL_*`
variables ask for them, and the background work both need while the app runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from observability.database import PoolGauges
from observability.http import HttpMetricsMiddleware, metrics_route
from observability.loop_lag import TICKER_TASK_NAME, measure_loop_lag
from observability.multiprocess import mark_this_process_dead, per_worker_registry_problem
from settings import ConfigurationError, Settings

if TYPE_CHECKING:
    from observability.tracing import Tracing

logger = logging.getLogger("todo.observability")


def tracing_requested(environ: Mapping[str, str] = os.environ) -> bool:
    """Whether the OpenTelemetry variables ask for traces (`OTEL_SDK_DISABLED=true` and
    `OTEL_TRACES_EXPORTER=none` say no)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter == "none":
        return False
    return bool(
        exporter
        or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
        or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "").strip()
    )


class Observability:
    def __init__(self, settings: Settings, environ: Mapping[str, str] = os.environ) -> None:
        self.metrics_enabled = settings.metrics_enabled
        token = settings.metrics_bearer_token
        self.bearer_token = token.get_secret_value() if token is not None else None
        self.environ = environ
        self.tracing: Tracing | None = None
        if tracing_requested(environ):
            from observability.tracing import Tracing, TracingError  # only when asked for

            try:
                self.tracing = Tracing.start(environ)
            except TracingError as exc:
                raise ConfigurationError(str(exc)) from None

    def add_middleware(self, app: FastAPI) -> None:
        """The HTTP metrics; add it just inside the request context (it then sees every answer,
        the last-resort 500s included)."""
        if self.metrics_enabled:
            app.add_middleware(HttpMetricsMiddleware)

    def add_routes(self, app: FastAPI) -> None:
        if self.metrics_enabled:
            app.router.routes.append(metrics_route(self.bearer_token))

    def instrument(self, app: FastAPI) -> None:
        if self.tracing is not None:
            self.tracing.instrument_app(app)

    @asynccontextmanager
    async def running(self, engine: AsyncEngine) -> AsyncIterator[None]:
        """For the app's lifespan: refuse to serve undercounting metrics, measure the event
        loop and copy the pool's gauges on each tick, trace the engine; on the way out, flush
        the traces and leave the live sums."""
        if self.metrics_enabled:
            problem = per_worker_registry_problem(self.environ)
            if problem is not None:
                logger.error("not starting: %s", problem)
                raise ConfigurationError(problem)
        ticker = (
            asyncio.create_task(measure_loop_lag(PoolGauges(engine).update), name=TICKER_TASK_NAME)
            if self.metrics_enabled
            else None
        )
        if self.tracing is not None:
            self.tracing.instrument_engine(engine)
        try:
            yield
        finally:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
            if self.tracing is not None:
                self.tracing.release_engine()
                await asyncio.to_thread(self.tracing.flush)
            if self.metrics_enabled:
                mark_this_process_dead(self.environ)
