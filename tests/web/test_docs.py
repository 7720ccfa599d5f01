"""`/docs` and `/redoc` work without internet access: every asset they load is served here.

The browser proof (the pages render and "Try it out" works) is `tests/browser/test_docs_page.py`.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest
from fastapi import FastAPI
from httpx import ASGITransport, AsyncClient

from web.docs import ASSETS_URL, install_docs


class AssetReferences(HTMLParser):
    """The URLs of the scripts, stylesheets and icons a page loads."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "script" and attributes.get("src"):
            self.urls.append(attributes["src"] or "")
        elif tag == "link" and attributes.get("href"):
            self.urls.append(attributes["href"] or "")


def asset_urls(html: str) -> list[str]:
    parser = AssetReferences()
    parser.feed(html)
    return parser.urls


EXPECTED_MEDIA_TYPES = {
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".png": "image/png",
}


@pytest.mark.parametrize(("page", "count"), [("/docs", 3), ("/redoc", 2)])
async def test_pages_load_only_local_assets(client: AsyncClient, page: str, count: int) -> None:
    response = await client.get(page)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    urls = asset_urls(response.text)
    assert len(urls) == count, urls
    assert all(url.startswith(f"{ASSETS_URL}/") for url in urls), urls
    # Nothing else on the page reaches out either (FastAPI's defaults: jsDelivr, Google Fonts).
    assert not re.search(r"https?://|cdn\.|fonts\.googleapis", response.text)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_every_asset_is_served_with_its_media_type(client: AsyncClient, page: str) -> None:
    for url in asset_urls((await client.get(page)).text):
        response = await client.get(url)
        assert response.status_code == 200, url
        suffix = url[url.rindex(".") :]
        assert response.headers["content-type"] == EXPECTED_MEDIA_TYPES[suffix], url
        # With nosniff a browser runs a script only when its media type says it is one.
        assert response.headers["x-content-type-options"] == "nosniff"
        assert len(response.content) > 1000, url


async def test_the_bundles_are_swagger_ui_and_redoc(client: AsyncClient) -> None:
    swagger = await client.get(f"{ASSETS_URL}/swagger-ui-bundle.js")
    assert "SwaggerUIBundle" in swagger.text
    redoc = await client.get(f"{ASSETS_URL}/redoc.standalone.js")
    assert "Redoc" in redoc.text


async def test_assets_are_revalidated_with_their_etag(client: AsyncClient) -> None:
    url = f"{ASSETS_URL}/swagger-ui.css"
    etag = (await client.get(url)).headers["etag"]
    response = await client.get(url, headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert response.content == b""


@pytest.mark.parametrize("path", ["nope.js", "../core.py", "%2e%2e/core.py", ""])
async def test_anything_else_under_the_assets_is_a_json_404(client: AsyncClient, path: str) -> None:
    response = await client.get(f"{ASSETS_URL}/{path}")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


async def test_swagger_ui_keeps_the_authorization_and_the_oauth2_redirect(
    client: AsyncClient,
) -> None:
    html = (await client.get("/docs")).text
    assert '"persistAuthorization": true' in html
    assert "url: '/openapi.json'" in html
    assert "oauth2RedirectUrl: window.location.origin + '/docs/oauth2-redirect'" in html
    redirect = await client.get("/docs/oauth2-redirect")
    assert redirect.status_code == 200
    assert redirect.headers["content-type"] == "text/html; charset=utf-8"
    assert "swaggerUIRedirectOauth2" in redirect.text


async def test_the_bearer_scheme_gives_swagger_ui_its_authorize_button(
    client: AsyncClient,
) -> None:
    spec = (await client.get("/openapi.json")).json()
    schemes = spec["components"]["securitySchemes"].values()
    assert [(s["type"], s["scheme"]) for s in schemes] == [("http", "bearer")]
    assert not {"/docs", "/redoc", "/docs/oauth2-redirect"} & set(spec["paths"])


async def test_a_root_path_prefixes_every_url(app: FastAPI) -> None:
    transport = ASGITransport(app=app, root_path="/todo")
    async with AsyncClient(transport=transport, base_url="http://test") as client:
        swagger = (await client.get("/docs")).text
        redoc = (await client.get("/redoc")).text
    assert all(url.startswith(f"/todo{ASSETS_URL}/") for url in asset_urls(swagger))
    assert all(url.startswith(f"/todo{ASSETS_URL}/") for url in asset_urls(redoc))
    assert "url: '/todo/openapi.json'" in swagger
    assert 'spec-url="/todo/openapi.json"' in redoc


def test_refuses_an_app_that_still_serves_fastapis_pages() -> None:
    with pytest.raises(ValueError, match="docs_url=None"):
        install_docs(FastAPI())


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_pages_may_reach_only_this_server(client: AsyncClient, page: str) -> None:
    policy = (await client.get(page)).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    assert directives["connect-src"] == "'self'"
    # Nothing but this server and inline or generated content: no other host anywhere.
    assert not re.search(r"https?:|\*", policy)
