"""Log lines no client can forge: control characters escaped in every record's message and
attached attributes, whatever the handler and formatter."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from httpx import AsyncClient

from tests.helpers import bearer
from web.log_config import LOG_FORMAT, SafeRecords, configure_logging, escape_control_characters

FORGED = "x\n2026-01-01 00:00:00,000 INFO todo.access: method=GET route=/forged status=200"


class AttributesAsJson(logging.Formatter):
    """A structured format, as a later JSON formatter would build it from the same record."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {"message": record.getMessage(), "user_id": getattr(record, "user_id", None)},
            ensure_ascii=False,
        )


@pytest.fixture
def root_output() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Two handlers on the root logger (readable and structured), wired by configure_logging.
    They keep only the app's loggers (`todo.*`, this file's included): a record of anything else
    that reaches the root meanwhile (asyncio collecting another test's task) is not the test's."""
    readable, structured = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(readable), logging.StreamHandler(structured)]
    for handler in handlers:
        handler.addFilter(lambda record: record.name.startswith("todo"))
    handlers[0].setFormatter(logging.Formatter(LOG_FORMAT))
    handlers[1].setFormatter(AttributesAsJson())
    root = logging.getLogger()
    for handler in handlers:
        root.addHandler(handler)
    configure_logging("INFO")
    try:
        yield readable, structured
    finally:
        for handler in handlers:
            root.removeHandler(handler)


class TestEscaping:
    @pytest.mark.parametrize(
        ("text", "escaped"),
        [
            ("plain é 😀 \\n", "plain é 😀 \\n"),
            ("a\nb\rc\td", "a\\nb\\rc\\td"),
            ("\x00\x1b[31m\x7f", "\\x00\\x1b[31m\\x7f"),
            ("\x85\u2028\u2029", "\\x85\\u2028\\u2029"),
            ("lone \ud800", "lone \\ud800"),
        ],
    )
    def test_control_characters_become_escapes(self, text: str, escaped: str) -> None:
        assert escape_control_characters(text) == escaped

    def test_a_clean_text_is_returned_as_it_is(self) -> None:
        text = "nothing to escape"
        assert escape_control_characters(text) is text


class TestEveryHandler:
    def test_configure_logging_puts_the_filter_on_every_root_handler(
        self, root_output: tuple[io.StringIO, io.StringIO]
    ) -> None:
        for handler in logging.getLogger().handlers:
            assert any(isinstance(f, SafeRecords) for f in handler.filters), handler

    def test_a_librarys_own_handler_does_not_print_its_lines_twice(
        self, root_output: tuple[io.StringIO, io.StringIO]
    ) -> None:
        """openai-chatkit adds a handler of its own to `chatkit` when `LOG_LEVEL` is set in the
        environment (as a container sets it): its lines went out unfiltered, then twice (its
        own plain format, then ours through the root)."""
        readable, _ = root_output
        own = io.StringIO()
        library = logging.getLogger("todo.test.library")
        handler = logging.StreamHandler(own)
        library.addHandler(handler)
        try:
            configure_logging("INFO")
            library.warning("value %s", FORGED)
        finally:
            library.removeHandler(handler)
        assert own.getvalue() == ""
        assert readable.getvalue().count("\n") == 1, readable.getvalue()
        assert "\\n2026-01-01" in readable.getvalue()

    def test_a_handler_on_a_logger_that_does_not_propagate_stays_and_is_filtered(
        self, root_output: tuple[io.StringIO, io.StringIO]
    ) -> None:
        readable, _ = root_output
        own = io.StringIO()
        library = logging.getLogger("todo.test.apart")
        handler = logging.StreamHandler(own)
        library.addHandler(handler)
        library.propagate = False
        try:
            configure_logging("INFO")
            library.warning("value %s", FORGED)
        finally:
            library.removeHandler(handler)
            library.propagate = True
        assert own.getvalue().count("\n") == 1, own.getvalue()
        assert "\\n2026-01-01" in own.getvalue()
        assert readable.getvalue() == ""

    def test_message_and_attributes_stay_on_one_line_in_both_formats(
        self, root_output: tuple[io.StringIO, io.StringIO]
    ) -> None:
        readable, structured = root_output
        logger = logging.getLogger("todo.test")
        logger.warning("value %s and %r", FORGED, FORGED, extra={"user_id": FORGED})
        for output in (readable.getvalue(), structured.getvalue()):
            assert output.count("\n") == 1, output
            assert "\\n2026-01-01" in output
        record = json.loads(structured.getvalue())
        assert record["user_id"] == FORGED.replace("\n", "\\n")

    def test_a_traceback_keeps_its_lines(
        self, root_output: tuple[io.StringIO, io.StringIO]
    ) -> None:
        readable, _ = root_output
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            logging.getLogger("todo.test").exception("failed")
        assert "Traceback (most recent call last):\n" in readable.getvalue()


class TestThroughTheApp:
    async def test_a_path_in_an_error_line_cannot_forge_a_line(
        self,
        app: FastAPI,
        client: AsyncClient,
        root_output: tuple[io.StringIO, io.StringIO],
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        async def unreachable(_token: str) -> None:
            raise ConnectionRefusedError("the database is down")

        monkeypatch.setattr(app.state.token_verifier, "verify", unreachable)
        # urllib drops \n, \r and \t from URLs; a terminal escape and U+2028 (a line break to
        # many log viewers) stay.
        path = "/api/u%1B%5B2J%E2%80%A82026-01-01%2000:00:00,000%20INFO%20forged/tasks"
        response = await client.get(path, headers=bearer("a.b.c"))
        assert response.status_code == 503
        readable, _ = root_output
        text = readable.getvalue()
        assert "\x1b" not in text and "\u2028" not in text
        # Its warning names the route the path matched, never the path.
        assert "database unavailable during GET /api/{user_id}/tasks" in text
        assert "forged" not in text.partition("database unavailable during")[2].splitlines()[0]
