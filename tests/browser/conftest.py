"""Fixtures for the tests that drive a real browser (marked `browser`; `uv run pytest -m browser`).

The browser is Debian's `chromium` (`.ci/run` installs it), driven by Playwright with
`executable_path`: Playwright's own browser downloads are never used. Without it these tests
skip, except under CI (`CI` set), where a missing browser fails the run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import TEST_SECRET
from tests.infra.apps import RunningApp, running_app

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# Headless, and quiet: no GPU, no first-run or background traffic of the browser's own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI needs the browser tests to run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    if shutil.which(CHROMIUM) is None:
        _missing(f"{CHROMIUM} is not installed (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path: str) -> Iterator[object]:
    """One headless Chromium for the session; each test opens its own context (a fresh
    profile: no cookies, no local storage)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed (uv sync)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium_path, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApp]:
    """`uvicorn main:app` on a free port and a throwaway SQLite database."""
    directory: Path = tmp_path_factory.mktemp("browser")
    database_url = f"sqlite+aiosqlite:///{directory / 'todo.db'}"
    with running_app(database_url, directory, BETTER_AUTH_SECRET=TEST_SECRET) as app:
        yield app
