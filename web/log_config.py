"""Process logging: one format, log lines no client can forge, and no third-party logger that
would print bound SQL values.

Whatever a client controls can reach a record: a path in an error message, a header, a token's
claim. `SafeRecords`, a filter on every handler `configure_logging` sets up, escapes control
characters (C0, DEL, C1, the Unicode line and paragraph separators) and lone surrogates in the
record's message and in the attributes attached with `extra=` before any formatter reads them,
so no value can end a line and start one of its own choosing, in the readable format or in any
structured one a formatter builds from the same record. Tracebacks (`exc_info`) keep their
lines.

`LOG_FORMAT=json` writes every line as one JSON object (`observability.logs`): every handler of
every logger gets that formatter, uvicorn's included (it sets up handlers of its own before the
app loads), and Python's warnings go through logging too instead of raw to stderr.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from observability.logs import JsonFormatter

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# These log every statement with its parameters (password hashes, revoked token ids) at DEBUG.
PARAMETER_LOGGERS = ("aiosqlite",)
# uvicorn's own access line repeats ours (`todo.access`) with the raw path and query string,
# which may carry ids; one structured line per request is enough.
SUPERSEDED_LOGGERS = ("uvicorn.access",)
# The MCP SDK's transport says INFO "Terminating session: None" after every stateless request;
# `todo.access` already has that request's line. Its warnings (a refused Host) still show.
CHATTY_LOGGERS = ("mcp.server.streamable_http",)
# Loggers that carry handlers of their own (uvicorn configures them before loading the app).
# A library may add one at import (openai-chatkit does on `chatkit` when `LOG_LEVEL` is set, in
# its own plain format): on a logger whose records also reach the root's handlers it would print
# each line twice, one of them in neither of our formats, so it is removed; on one that does not
# propagate it stays, with the filter and the format.
HANDLER_OWNERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access")

UNSAFE_CHARACTERS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# The attributes every record has; anything else was attached by the caller (`extra=`).
RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _escape_character(match: re.Match[str]) -> str:
    character = match.group()
    escaped = ESCAPES.get(character)
    if escaped is not None:
        return escaped
    code = ord(character)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def escape_control_characters(text: str) -> str:
    """`text` on one line: every control character, line separator and lone surrogate spelled
    as an escape (`\\n`, `\\x1b`, `\\u2028`, `\\ud800`)."""
    if UNSAFE_CHARACTERS.search(text) is None:
        return text
    return UNSAFE_CHARACTERS.sub(_escape_character, text)


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return escape_control_characters(value)
    if isinstance(value, list | tuple):
        return type(value)(_escaped(item) for item in value)
    if isinstance(value, dict):
        return {_escaped(key): _escaped(item) for key, item in value.items()}
    return value


class SafeRecords(logging.Filter):
    """Escapes the message and the attached attributes of every record it passes (in place:
    every handler and formatter after it reads the escaped values)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        escaped = escape_control_characters(message)
        if escaped is not message:
            record.msg, record.args = escaped, None
        for name, value in list(vars(record).items()):
            if name not in RECORD_ATTRIBUTES:
                safe = _escaped(value)
                if safe is not value:
                    setattr(record, name, safe)
        return True


def make_records_safe(handler: logging.Handler) -> None:
    """Put `SafeRecords` on `handler` (once). Every handler that writes our logs needs it."""
    if not any(isinstance(existing, SafeRecords) for existing in handler.filters):
        handler.addFilter(SafeRecords())


def _loggers_with_handlers() -> list[logging.Logger]:
    """The root logger and every logger made so far that has handlers of its own."""
    loggers = [logging.getLogger(owner) for owner in HANDLER_OWNERS]
    loggers += [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger) and logger.handlers and logger not in loggers
    ]
    return loggers


def _drop_duplicating_handlers() -> None:
    """Remove a library's own handlers where its records reach the root's anyway."""
    owners = {logging.getLogger(owner) for owner in HANDLER_OWNERS}
    for logger in _loggers_with_handlers():
        if logger not in owners and logger.propagate:
            for handler in list(logger.handlers):
                logger.removeHandler(handler)


def configure_logging(level: str, log_format: str = "text") -> None:
    """`log_format`: `text` (the readable `LOG_FORMAT`) or `json` (one object per line)."""
    logging.basicConfig(level=level, format=LOG_FORMAT)
    _drop_duplicating_handlers()
    handlers = [handler for logger in _loggers_with_handlers() for handler in logger.handlers]
    if log_format == "json":
        formatter = JsonFormatter()
        for handler in handlers:
            handler.setFormatter(formatter)
        logging.captureWarnings(True)
    for handler in handlers:
        make_records_safe(handler)
    for name in PARAMETER_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.INFO:  # NOTSET (inherit) included: never DEBUG
            logger.setLevel(logging.INFO)
    for name in SUPERSEDED_LOGGERS:
        logging.getLogger(name).disabled = True
    for name in CHATTY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
