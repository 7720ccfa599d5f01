"""JSON log lines (`LOG_FORMAT=json`): one object per line, for every logger.

Each line has `time` (UTC, ISO 8601), `level`, `logger`, `message`, `request_id` and `trace_id`
(null outside a request, and for `trace_id` while tracing is off), the access line's fields as
keys of their own (`method`, `route`, `status`, `duration_ms`, `user_id`), and `exception` with
the traceback when there is one.

Only those attributes are written: whatever else a library attaches to a record (`extra=`)
stays out, as it does in the readable format, so no header or credential a library might attach
reaches a line. Values pass `web.log_config.SafeRecords` first, and `json.dumps` with
`ensure_ascii` escapes what remains outside ASCII (line separators and lone surrogates
included), so a value never ends a line.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from observability.context import current_request_id, current_trace_id

# The access line's attributes (`web.request_context`), written as keys of their own.
ACCESS_FIELDS = ("method", "route", "status", "duration_ms", "user_id")
# uvicorn's own logging configuration in JSON, for `uvicorn --log-config`: its process manager
# (`--workers N`) never loads the app, so only this makes its few lines JSON too.
UVICORN_LOG_CONFIG = Path(__file__).with_name("uvicorn_json_logging.json")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None) or current_request_id(),
            "trace_id": getattr(record, "trace_id", None) or current_trace_id(),
        }
        for name in ACCESS_FIELDS:
            if name in record.__dict__:
                entry[name] = record.__dict__[name]
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=True, default=str)
