"""The chat tests' model: one scripted Chat Completions server per module, reset per test, and
the app configured to reach it through `OPENAI_BASE_URL`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.chat.model_server import ScriptedModel, scripted_model_server


@pytest.fixture(scope="module")
def model_server() -> Iterator[ScriptedModel]:
    with scripted_model_server() as model:
        yield model


@pytest.fixture
def model(model_server: ScriptedModel) -> Iterator[ScriptedModel]:
    model_server.reset()
    yield model_server
    model_server.reset()


@pytest.fixture
def chat_settings(model_server: ScriptedModel) -> dict[str, Any]:
    return {
        "openai_api_key": "sk-test-scripted",
        "openai_base_url": model_server.url,
        "chat_model": "scripted-model",
        "chat_model_max_retries": 0,
        "chat_model_timeout": 10,
    }


@pytest.fixture
def settings_overrides(chat_settings: dict[str, Any]) -> dict[str, object]:
    return chat_settings
