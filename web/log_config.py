"""Process logging: one format, and no third-party logger that would print bound SQL values."""

from __future__ import annotations

import logging

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# These log every statement with its parameters (password hashes, revoked token ids) at DEBUG.
PARAMETER_LOGGERS = ("aiosqlite",)
# uvicorn's own access line repeats ours (`todo.access`) with the raw path and query string,
# which may carry ids; one structured line per request is enough.
SUPERSEDED_LOGGERS = ("uvicorn.access",)
# The MCP SDK's transport says INFO "Terminating session: None" after every stateless request;
# `todo.access` already has that request's line. Its warnings (a refused Host) still show.
CHATTY_LOGGERS = ("mcp.server.streamable_http",)


def configure_logging(level: str) -> None:
    logging.basicConfig(level=level, format=LOG_FORMAT)
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
