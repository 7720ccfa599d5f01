"""OpenAPI descriptions of the error responses the routers share."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from schemas import ErrorResponse


def error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


INTEGER = {"type": "integer"}

UNAUTHORIZED = {401: error("Missing, invalid, expired or revoked bearer token")}
FORBIDDEN = {403: error("The token's subject is not the `{user_id}` in the URL")}
TASK_NOT_FOUND = {404: error("No such task for this user")}
DATABASE_UNAVAILABLE = {
    503: {
        **error("The database, or the key set that verifies the token, did not answer"),
        "headers": {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        },
    }
}
TOO_LARGE = {413: error("Request body larger than the limit (64 KiB)")}
TOO_MANY_REQUESTS = {
    429: {
        **error("Too many attempts from this client address or for this account"),
        "headers": {
            "Retry-After": {
                "description": "Seconds until the limit's window ends",
                "schema": INTEGER,
            }
        },
    }
}

CONDITIONAL_GET = {
    304: {
        "description": "Not modified: the `ETag` is one `If-None-Match` named (no body; the "
        "headers a 200 would carry).",
        "headers": {"ETag": {"description": "The current entity tag."}},
    }
}
PRECONDITIONS = {
    412: {
        **error("If-Match named none of the task's current entity tags"),
        "headers": {"ETag": {"description": "The task's current entity tag."}},
    },
    428: error("The server requires If-Match for changes (REQUIRE_IF_MATCH)"),
}
IDEMPOTENT = {
    400: error("Idempotency-Key is not a quoted string of 1 to 255 printable characters"),
    409: {
        **error("The first request with this Idempotency-Key is still running"),
        "headers": {"Retry-After": {"description": "Seconds to wait", "schema": INTEGER}},
    },
}

BODY_ERRORS = {
    "400": "The body could not be decoded (not UTF-8, not JSON)",
    "413": "Request body larger than the limit (64 KiB)",
}


def document_body_errors(app: FastAPI) -> None:
    """Every operation that reads a body can answer 400 (undecodable) and 413 (too large).

    Added to the generated OpenAPI document, so routes added later are covered without
    repeating it on each of them.
    """
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()
        error_schema = {"$ref": "#/components/schemas/ErrorResponse"}
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict) or "requestBody" not in operation:
                    continue
                for code, description in BODY_ERRORS.items():
                    operation["responses"].setdefault(
                        code,
                        {
                            "description": description,
                            "content": {"application/json": {"schema": error_schema}},
                        },
                    )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
