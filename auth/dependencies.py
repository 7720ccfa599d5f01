"""FastAPI dependencies for authentication, as `Annotated` aliases.

The order matters: the token is verified and its subject compared with the URL's `{user_id}`
(403 on mismatch) before anything touches the database. Task routes then get an `OwnerScope`,
whose revocation guard rides inside their one task statement; the account routes check
revocation with one query of their own, answering both "was this token logged out?" and "were
all of this subject's tokens up to some instant revoked (password change, account deletion)?".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.jwks import KeySetUnavailable
from auth.passwords import PasswordHasher
from auth.scope import NOT_REVOKED, OwnerScope, TokenRevoked
from auth.tokens import InvalidTokenError, TokenClaims, TokenService
from auth.verification import TokenVerifier
from db import SessionDep
from models import USER_ID_MAX_LENGTH

bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT from `POST /api/auth/login` or the frontend's Better Auth.",
)

KEYS_UNAVAILABLE_RETRY_SECONDS = 30


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail=detail,
        headers={"WWW-Authenticate": "Bearer"},
    )


async def get_token_service(request: Request) -> TokenService:
    return request.app.state.token_service


async def get_password_hasher(request: Request) -> PasswordHasher:
    return request.app.state.password_hasher


TokenServiceDep = Annotated[TokenService, Depends(get_token_service)]
PasswordHasherDep = Annotated[PasswordHasher, Depends(get_password_hasher)]


async def get_token_claims(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> TokenClaims:
    """Verify the bearer token's signature and claims (no database access)."""
    if credentials is None:
        raise unauthorized("Not authenticated")
    verifier: TokenVerifier = request.app.state.token_verifier
    try:
        claims = await verifier.verify(credentials.credentials)
    except InvalidTokenError as exc:
        raise unauthorized(str(exc)) from None
    except KeySetUnavailable:
        raise HTTPException(
            status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="The keys to verify this token are unavailable",
            headers={"Retry-After": str(KEYS_UNAVAILABLE_RETRY_SECONDS)},
        ) from None
    request.state.user_id = claims.sub
    return claims


VerifiedClaims = Annotated[TokenClaims, Depends(get_token_claims)]


async def ensure_not_revoked(session: AsyncSession, claims: TokenClaims) -> None:
    """One round trip: is this token logged out, or older than a revocation of its subject?"""
    allowed = (await session.exec(NOT_REVOKED, params=OwnerScope.of(claims).params())).one()[0]
    if not allowed:
        raise TokenRevoked


async def get_current_claims(claims: VerifiedClaims, session: SessionDep) -> TokenClaims:
    await ensure_not_revoked(session, claims)
    return claims


async def get_owner_scope(
    user_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=USER_ID_MAX_LENGTH,
            description="The caller's user id; must equal the token's `sub`.",
        ),
    ],
    claims: VerifiedClaims,
) -> OwnerScope:
    """The task routes' scope: the token's subject must be the path's `{user_id}` (403), and the
    revocation check travels inside the task statement itself (no query here)."""
    if claims.sub != user_id:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="You can only access your own tasks",
        )
    return OwnerScope.of(claims)


CurrentClaims = Annotated[TokenClaims, Depends(get_current_claims)]
TaskScope = Annotated[OwnerScope, Depends(get_owner_scope)]
