"""HTTP metrics: a pure-ASGI middleware that labels each request with the route template the
router matched (read after routing, as polar's middleware does: nothing is matched twice), and
the `GET /metrics` endpoint.

Labels: the method (`OTHER` for any method outside HTTP's usual ones), the route template
(`unmatched` for every path no route knows, so random paths add no series) and the status class.
Scrapes of `/metrics` are neither counted nor timed, and the endpoint is not in `/openapi.json`.
"""

from __future__ import annotations

import hmac
import time
from typing import Any

import anyio
from prometheus_client.exposition import choose_encoder
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from observability.metrics import HTTP_DURATION, HTTP_IN_FLIGHT, HTTP_REQUESTS
from observability.multiprocess import registry_for_scrape

METRICS_PATH = "/metrics"
UNMATCHED = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
STATUS_CLASSES = {hundreds: f"{hundreds}xx" for hundreds in range(1, 6)}


def route_template(scope: Scope) -> str:
    """The template of the route the router matched (`/api/{user_id}/tasks`), else `unmatched`."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else UNMATCHED


class HttpMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics_path: str = METRICS_PATH) -> None:
        self.app = app
        self.metrics_path = metrics_path
        # The labelled children, found once per (method, route, status): `labels()` validates
        # and locks on every call.
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._histograms: dict[tuple[str, str], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == self.metrics_path:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
        status = 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            HTTP_IN_FLIGHT.dec()
            self._record(method, route_template(scope), status, time.perf_counter() - started)

    def _record(self, method: str, route: str, status: int, seconds: float) -> None:
        status_class = STATUS_CLASSES.get(status // 100, "5xx")
        counter = self._counters.get((method, route, status_class))
        if counter is None:
            counter = self._counters[method, route, status_class] = HTTP_REQUESTS.labels(
                method, route, status_class
            )
        counter.inc()
        histogram = self._histograms.get((method, route))
        if histogram is None:
            histogram = self._histograms[method, route] = HTTP_DURATION.labels(method, route)
        histogram.observe(seconds)


def _bearer(request: Request) -> bytes:
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    return credentials.strip().encode() if scheme.lower() == "bearer" else b""


def metrics_route(bearer_token: str | None, path: str = METRICS_PATH) -> Route:
    """`GET /metrics`: the Prometheus text format (OpenMetrics when the scraper asks for it),
    summed over every worker in multiprocess mode. With `bearer_token`, a scrape without
    `Authorization: Bearer <it>` is 401. Reading the files runs in a worker thread."""
    expected = bearer_token.encode() if bearer_token else None

    async def metrics(request: Request) -> Response:
        if expected is not None and not hmac.compare_digest(_bearer(request), expected):
            return JSONResponse(
                {"detail": "Reading the metrics needs the bearer token METRICS_BEARER_TOKEN"},
                status_code=401,
                headers={"WWW-Authenticate": "Bearer"},
            )
        encoder, content_type = choose_encoder(request.headers.get("accept", ""))
        body = await anyio.to_thread.run_sync(lambda: encoder(registry_for_scrape()))
        return Response(body, media_type=content_type)

    return Route(path, metrics, methods=["GET"], include_in_schema=False)
