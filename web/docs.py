"""Swagger UI on `/docs` and ReDoc on `/redoc`, served from this process: no CDN.

FastAPI's own pages load their JavaScript and CSS from `cdn.jsdelivr.net` (and ReDoc its fonts
from Google), so without internet access they are blank. The same pages here point at the files
the pinned `fastapi-offline` package ships (Swagger UI 5.32.6, ReDoc 2.5.3), mounted under
`/docs/assets` with fixed media types. Everything else is FastAPI's: the HTML of both pages
and the OAuth2 redirect page.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.responses import FileResponse, Response
from starlette.staticfiles import PathLike
from starlette.types import Scope

ASSETS_DIRECTORY = Path(str(files("fastapi_offline") / "static"))
ASSETS_URL = "/docs/assets"
SWAGGER_JS = "swagger-ui-bundle.js"
SWAGGER_CSS = "swagger-ui.css"
REDOC_JS = "redoc.standalone.js"
FAVICON = "favicon.png"

# Fixed here rather than guessed from the platform's MIME table: every response carries
# `X-Content-Type-Options: nosniff`, so a script served as `text/plain` would not run.
MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}

# The pages may load and call nothing but this server. ReDoc's footer otherwise fetches the
# Redocly logo from its CDN; with this policy the browser does not even try (the logo hides
# itself when it cannot load). Both UIs inject styles, ReDoc runs its search in a blob: worker,
# Swagger UI's icons are data: URIs and its page starts it with an inline script.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "frame-ancestors 'self'",
        "base-uri 'self'",
        "form-action 'self'",
    ]
)

SWAGGER_UI_PARAMETERS: dict[str, Any] = {
    # The token pasted into "Authorize" survives a reload of the page.
    "persistAuthorization": True,
    "displayRequestDuration": True,
}


def _with_policy(response: HTMLResponse) -> HTMLResponse:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    return response


class DocsAssets(StaticFiles):
    """The package's asset files, with fixed media types (and StaticFiles' ETag/304 handling)."""

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        media_type = MEDIA_TYPES.get(Path(full_path).suffix)
        if isinstance(response, FileResponse) and media_type is not None:
            response.headers["content-type"] = media_type
        return response


def install_docs(
    app: FastAPI,
    *,
    docs_url: str = "/docs",
    redoc_url: str = "/redoc",
    oauth2_redirect_url: str = "/docs/oauth2-redirect",
) -> None:
    """Add the documentation pages to an app created with `docs_url=None, redoc_url=None`."""
    if app.docs_url is not None or app.redoc_url is not None:
        raise ValueError("create the app with docs_url=None and redoc_url=None")
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the documentation pages need an OpenAPI document")
    app.swagger_ui_oauth2_redirect_url = oauth2_redirect_url
    app.mount(ASSETS_URL, DocsAssets(directory=ASSETS_DIRECTORY), name="docs-assets")

    def asset(request: Request, name: str) -> str:
        return f"{request.scope.get('root_path', '')}{ASSETS_URL}/{name}"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_policy(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=f"{root}{oauth2_redirect_url}",
                swagger_js_url=asset(request, SWAGGER_JS),
                swagger_css_url=asset(request, SWAGGER_CSS),
                swagger_favicon_url=asset(request, FAVICON),
                swagger_ui_parameters={
                    **SWAGGER_UI_PARAMETERS,
                    **(app.swagger_ui_parameters or {}),
                },
            )
        )

    async def swagger_ui_redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _with_policy(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=asset(request, REDOC_JS),
                redoc_favicon_url=asset(request, FAVICON),
                with_google_fonts=False,
            )
        )

    app.add_route(docs_url, swagger_ui, include_in_schema=False)
    app.add_route(oauth2_redirect_url, swagger_ui_redirect, include_in_schema=False)
    app.add_route(redoc_url, redoc, include_in_schema=False)
