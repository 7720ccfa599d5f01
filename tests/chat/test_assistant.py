"""The agent's configuration: tracing off unless asked for, the model from the settings."""

from __future__ import annotations

from typing import Any

import pytest

from chat.assistant import Assistant
from settings import ConfigurationError, load_settings


def _assistant(**overrides: Any) -> Assistant:
    from mcp.server.mcpserver import MCPServer

    return Assistant(load_settings(**overrides), MCPServer("test"))


def test_tracing_export_is_off_unless_asked_for() -> None:
    assert _assistant(openai_api_key="sk-x")._run_config().tracing_disabled is True
    assert (
        _assistant(openai_api_key="sk-x", chat_tracing=True)._run_config().tracing_disabled is False
    )


def test_without_a_key_there_is_no_model() -> None:
    assert _assistant(openai_api_key="").configured is False
    assert _assistant(openai_api_key="sk-x").configured is True


@pytest.mark.parametrize("url", ["localhost:11434", "ftp://example.com", "http://"])
def test_a_base_url_must_be_http(url: str) -> None:
    with pytest.raises(ConfigurationError, match="OPENAI_BASE_URL"):
        load_settings(openai_base_url=url)


def test_a_blank_base_url_is_openais() -> None:
    assert load_settings(openai_base_url="  ").openai_base_url is None
