"""OpenAPI descriptions of the error responses the routers share."""

from __future__ import annotations

from typing import Any

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
