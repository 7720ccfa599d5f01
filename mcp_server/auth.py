"""Who calls `/mcp`: the SDK's bearer middleware asks `McpTokenVerifier`, which accepts exactly
the tokens the REST API accepts.

The token is checked by the app's own `TokenVerifier` (HS256 shared-secret tokens, ours and the
frontend's, and Better Auth JWKS tokens), then the revocation guard runs once (logout, password
change, account deletion: the same `NOT_REVOKED` statement the account routes use). A token that
fails either is `None` for the SDK, which answers 401 with its `WWW-Authenticate` header naming
the protected-resource metadata. What passes becomes an `OwnerAccessToken` carrying the caller's
`OwnerScope`: the tools take the owner from it, never from their arguments, and every task
statement they run carries the guard again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from pydantic import ConfigDict

from auth.scope import NOT_REVOKED, OwnerScope
from auth.tokens import InvalidTokenError
from auth.verification import TokenVerifier
from db import Database

logger = logging.getLogger("todo.mcp")


class OwnerAccessToken(AccessToken):
    """The SDK's access token, with the owner scope the task rules take."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    owner: OwnerScope


class McpTokenVerifier:
    """The SDK's `TokenVerifier` protocol over the app's verifier and the revocation guard.

    `KeySetUnavailable` (the Better Auth keys cannot be fetched) and database outages are not
    answers about the token: they propagate, and `McpEdgeMiddleware` turns them into 503s.
    """

    def __init__(self, verifier: TokenVerifier, database: Callable[[], Database]) -> None:
        self.verifier = verifier
        self.database = database

    async def verify_token(self, token: str) -> OwnerAccessToken | None:
        try:
            claims = await self.verifier.verify(token)
        except InvalidTokenError as exc:
            logger.debug("MCP request with an unusable token: %s", exc)
            return None
        scope = OwnerScope.of(claims)
        async with self.database().read() as connection:
            allowed = (await connection.execute(NOT_REVOKED, scope.params())).scalar_one()
        if not allowed:
            logger.debug("MCP request with a revoked token (user %s)", claims.sub)
            return None
        return OwnerAccessToken(
            token=token,
            client_id=claims.sub,
            subject=claims.sub,
            scopes=[],
            expires_at=int(claims.expires_at.timestamp()),
            owner=scope,
        )


def current_owner() -> OwnerScope | None:
    """The verified caller of the tool call being served (None outside an MCP request)."""
    token = get_access_token()
    return token.owner if isinstance(token, OwnerAccessToken) else None
