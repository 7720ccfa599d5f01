"""How a database schema is compared with the models: shared by Alembic's autogenerate
(`alembic/env.py`) and the drift test, so `alembic check` and CI judge drift the same way."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import JSON, Column

_CAST = re.compile(r"::\w+$")


def _same_json_default(
    _context: Any,
    _inspected_column: Column[Any],
    metadata_column: Column[Any],
    inspected_default: str | None,
    _metadata_default: Any,
    rendered_metadata_default: str | None,
) -> bool | None:
    """PostgreSQL has no `=` for `json`, so Alembic's server-side comparison of JSON defaults
    fails; compare their text instead (`'[]'::json` and `'[]'` are the same default)."""
    if not isinstance(metadata_column.type, JSON):
        return None
    inspected = _CAST.sub("", inspected_default or "").strip()
    rendered = (rendered_metadata_default or "").strip()
    return inspected != rendered


def comparison_options(dialect_name: str) -> dict[str, Any]:
    """Options for `MigrationContext.configure` / `context.configure` on `dialect_name`."""

    def include_object(
        obj: Any, _name: str | None, type_: str, reflected: bool, _compare_to: Any
    ) -> bool:
        # An index declared with `.ddl_if(dialect=...)` exists only on that dialect.
        ddl_if = getattr(obj, "_ddl_if", None)
        if type_ == "index" and not reflected and ddl_if is not None and ddl_if.dialect:
            return ddl_if.dialect == dialect_name
        return True

    return {
        "compare_type": True,
        "compare_server_default": _same_json_default,
        "include_object": include_object,
    }
