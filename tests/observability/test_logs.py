"""JSON log lines: one object per line, the request's id, the access line's fields as keys,
nothing else a record carries, and no value that ends a line."""

from __future__ import annotations

import io
import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from observability.context import enter_request, leave_request
from observability.logs import UVICORN_LOG_CONFIG, JsonFormatter
from web.log_config import SafeRecords


@pytest.fixture
def json_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    output = io.StringIO()
    handler = logging.StreamHandler(output)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(SafeRecords())
    logger = logging.getLogger("todo.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.INFO)
    try:
        yield logger, output
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def entries(output: io.StringIO) -> list[dict[str, object]]:
    lines = output.getvalue().splitlines()
    return [json.loads(line) for line in lines]


class TestJsonFormatter:
    def test_the_keys_of_a_line(self, json_lines: tuple[logging.Logger, io.StringIO]) -> None:
        logger, output = json_lines
        logger.warning("hello %s", "world")
        [entry] = entries(output)
        assert entry["message"] == "hello world"
        assert (entry["level"], entry["logger"]) == ("WARNING", "todo.test.json")
        assert entry["time"].endswith("+00:00")
        assert entry["request_id"] is None and entry["trace_id"] is None

    def test_the_request_id_of_the_context(
        self, json_lines: tuple[logging.Logger, io.StringIO]
    ) -> None:
        logger, output = json_lines
        token = enter_request("req-1")
        try:
            logger.info("inside")
        finally:
            leave_request(token)
        logger.info("outside")
        assert [entry["request_id"] for entry in entries(output)] == ["req-1", None]

    def test_access_fields_are_keys_and_nothing_else_is(
        self, json_lines: tuple[logging.Logger, io.StringIO]
    ) -> None:
        logger, output = json_lines
        logger.info(
            "access",
            extra={
                "method": "GET",
                "route": "/api/{user_id}/tasks",
                "status": 200,
                "duration_ms": 1.5,
                "user_id": "u1",
                "request_id": "r1",
                "authorization": "Bearer a-token",
                "color_message": "\x1b[32m",
            },
        )
        [entry] = entries(output)
        assert entry["status"] == 200 and entry["route"] == "/api/{user_id}/tasks"
        assert entry["request_id"] == "r1"
        assert "authorization" not in entry and "color_message" not in entry
        assert "a-token" not in output.getvalue()

    def test_no_value_ends_a_line(self, json_lines: tuple[logging.Logger, io.StringIO]) -> None:
        logger, output = json_lines
        forged = 'x"}\n{"level": "INFO", "message": "forged"}\u2028'
        try:
            raise ValueError(forged)
        except ValueError:
            logger.exception(forged + "\ud800", extra={"user_id": forged})
        assert output.getvalue().count("\n") == 1
        [entry] = entries(output)
        assert "forged" in entry["message"] and "\n" not in entry["message"]
        assert "Traceback" in entry["exception"]


class TestUvicornsOwnConfig:
    def test_its_process_manager_writes_json_too(self) -> None:
        """What `--log-config observability/uvicorn_json_logging.json` gives a process that never
        loads the app (uvicorn's `--workers N` manager)."""
        script = (
            "import json, logging.config, sys\n"
            f"logging.config.dictConfig(json.load(open({str(UVICORN_LOG_CONFIG)!r})))\n"
            "logging.getLogger('uvicorn.error').info('Started parent process [%d]', 7)\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=Path(__file__).resolve().parents[2],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr
        [line] = result.stderr.splitlines()
        entry = json.loads(line)
        assert (entry["logger"], entry["message"]) == (
            "uvicorn.error",
            "Started parent process [7]",
        )
