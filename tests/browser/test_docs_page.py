"""`/docs` and `/redoc` in a real browser, against a running server, with no internet access.

What a new user does: open `/docs`, sign up with "Try it out", paste the token into
"Authorize", then create and list tasks from the page, reading the status and the body that
Swagger UI renders. Every request the pages make must stay on this server: anything else is
aborted and recorded, and fails the test.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.request import urlopen

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.infra.apps import RunningApp

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000


@dataclass
class Traffic:
    """What the page tried outside this server, and what broke inside it."""

    escaped: list[str] = field(default_factory=list)  # requests that would have left
    blocked: list[str] = field(default_factory=list)  # requests the page's CSP refused
    errors: list[str] = field(default_factory=list)  # uncaught exceptions in the page


@dataclass
class DocsPage:
    page: Any
    traffic: Traffic
    base_url: str


@pytest.fixture
def docs(browser: Any, server: RunningApp) -> Iterator[DocsPage]:
    context = browser.new_context(base_url=server.base_url)
    context.set_default_timeout(TIMEOUT_MS)
    traffic = Traffic()
    origin = server.base_url

    def route(route: Any) -> None:
        if route.request.url.startswith(origin):
            route.continue_()
        else:
            traffic.escaped.append(route.request.url)
            route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda error: traffic.errors.append(str(error)))
    page.on(
        "requestfailed",
        lambda request: traffic.blocked.append(request.url) if request.failure == "csp" else None,
    )
    try:
        yield DocsPage(page, traffic, server.base_url)
    finally:
        context.close()


def documented_operations(base_url: str) -> set[tuple[str, str]]:
    with urlopen(f"{base_url}/openapi.json", timeout=10) as response:
        spec = json.load(response)
    return {(method.upper(), path) for path, item in spec["paths"].items() for method in item}


def assert_stayed_home(traffic: Traffic) -> None:
    assert traffic.escaped == [], "requests that would have needed the internet"
    assert traffic.errors == []
    # ReDoc's footer links Redocly's logo from its CDN; the page's policy stops it unsent.
    assert set(traffic.blocked) <= {"https://cdn.redoc.ly/redoc/logo-mini.svg"}


def open_page(docs: DocsPage, url: str, rendered: str) -> None:
    """Go to `url` and wait for the selector that shows the UI rendered; a blank page fails
    with what the page tried to fetch from elsewhere (FastAPI's own pages: the CDN)."""
    docs.page.goto(url)
    try:
        docs.page.locator(rendered).first.wait_for()
    except PlaywrightTimeoutError:
        pytest.fail(
            f"{url} did not render within {TIMEOUT_MS} ms; requests that needed the internet: "
            f"{docs.traffic.escaped}, errors in the page: {docs.traffic.errors}"
        )


def operation(page: Any, operation_id: str) -> Any:
    """The expanded block of one operation, in "Try it out" mode."""
    block = page.locator(f"[id$='-{operation_id}']")
    block.locator(".opblock-summary").first.click()
    block.locator("button.try-out__btn").click()
    return block


def execute(block: Any, *, path: dict[str, str] | None = None, body: Any = None) -> Any:
    """Fill the parameters and the body, press Execute and return (status, parsed body)."""
    for name, value in (path or {}).items():
        block.locator(f"tr[data-param-name='{name}'] input").fill(value)
    if body is not None:
        block.locator("textarea.body-param__text").fill(json.dumps(body))
    block.locator("button.execute").click()
    response = block.locator(".live-responses-table .response").first
    status = response.locator(".response-col_status").inner_text(timeout=TIMEOUT_MS).strip()
    text = response.locator(".response-col_description pre").first.inner_text().strip()
    return int(status), json.loads(text)


def test_swagger_ui_renders_every_operation(docs: DocsPage) -> None:
    page = docs.page
    open_page(docs, "/docs", ".opblock")
    methods = page.locator(".opblock .opblock-summary-method").all_inner_texts()
    paths = page.locator(".opblock .opblock-summary-path").evaluate_all(
        "nodes => nodes.map(node => node.dataset.path)"
    )
    rendered = list(zip((m.strip().upper() for m in methods), paths, strict=True))
    assert len(rendered) == len(set(rendered))
    assert set(rendered) == documented_operations(docs.base_url)
    assert page.locator("button.authorize").is_visible()
    assert_stayed_home(docs.traffic)


def test_sign_up_authorize_and_use_the_task_routes_from_the_page(docs: DocsPage) -> None:
    page = docs.page
    open_page(docs, "/docs", ".opblock")
    email = f"swagger-{uuid.uuid4().hex[:8]}@example.com"

    signup = operation(page, "signup_api_auth_signup_post")
    status, account = execute(
        signup, body={"email": email, "password": "correct horse battery", "name": "Ada"}
    )
    assert status == 201
    assert account["email"] == email
    token, user_id = account["access_token"], account["user_id"]

    page.locator(".auth-wrapper button.authorize").click()
    dialog = page.locator(".modal-ux")
    dialog.locator("input").fill(token)
    dialog.locator("button.authorize").click()
    dialog.locator("button.btn-done").click()
    assert page.locator(".auth-wrapper button.authorize.locked").is_visible()

    create = operation(page, "create_task_api__user_id__tasks_post")
    status, task = execute(
        create,
        path={"user_id": user_id},
        body={"title": "  Written in Swagger UI  ", "tags": ["Browser"], "priority": "high"},
    )
    assert status == 201
    assert (task["title"], task["tags"], task["priority"]) == (
        "Written in Swagger UI",
        ["browser"],
        "high",
    )
    assert task["user_id"] == user_id

    listing = operation(page, "list_tasks_api__user_id__tasks_get")
    status, tasks = execute(listing, path={"user_id": user_id})
    assert status == 200
    assert [(t["id"], t["title"]) for t in tasks] == [(task["id"], "Written in Swagger UI")]

    # persistAuthorization: the token survives a reload of the page.
    page.reload()
    page.locator(".opblock").first.wait_for()
    assert token in (page.evaluate("localStorage.getItem('authorized')") or "")
    assert page.locator(".auth-wrapper button.authorize.locked").is_visible()
    assert_stayed_home(docs.traffic)


def test_a_refused_request_shows_its_detail(docs: DocsPage) -> None:
    page = docs.page
    open_page(docs, "/docs", ".opblock")
    listing = operation(page, "list_tasks_api__user_id__tasks_get")
    status, body = execute(listing, path={"user_id": "nobody"})
    assert status == 401
    assert body == {"detail": "Not authenticated"}
    assert_stayed_home(docs.traffic)


def test_redoc_renders_every_operation(docs: DocsPage) -> None:
    page = docs.page
    open_page(docs, "/redoc", "[data-section-id^='operation/']")
    assert page.locator("h1", has_text="Todo API").is_visible()
    sections = page.locator("[data-section-id^='operation/']")
    sections.first.wait_for()
    assert sections.count() == len(documented_operations(docs.base_url))
    headings = page.locator("[data-section-id^='operation/'] h2").all_inner_texts()
    assert "Complete Task" in headings
    assert page.get_by_text("/api/{user_id}/tasks/{task_id}/complete").count() >= 1
    assert_stayed_home(docs.traffic)
