"""FastAPI dependencies for authentication, as `Annotated` aliases.

The order matters: the token is verified and its subject compared with the URL's `{user_id}`
(403 on mismatch) before the session touches the database for the revocation check.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.passwords import PasswordHasher
from auth.tokens import InvalidTokenError, TokenClaims, TokenService
from db import SessionDep
from models import USER_ID_MAX_LENGTH, RevokedToken

bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT from `POST /api/auth/login` or the frontend's Better Auth.",
)


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
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
    tokens: TokenServiceDep,
) -> TokenClaims:
    """Verify the bearer token's signature and claims (no database access)."""
    if credentials is None:
        raise unauthorized("Not authenticated")
    try:
        return tokens.verify(credentials.credentials)
    except InvalidTokenError as exc:
        raise unauthorized(str(exc)) from None


VerifiedClaims = Annotated[TokenClaims, Depends(get_token_claims)]


async def ensure_not_revoked(session: AsyncSession, claims: TokenClaims) -> None:
    revoked = await session.exec(
        select(RevokedToken.jti).where(RevokedToken.jti == claims.revocation_key)
    )
    if revoked.first() is not None:
        raise unauthorized("Token has been revoked")


async def get_current_claims(claims: VerifiedClaims, session: SessionDep) -> TokenClaims:
    await ensure_not_revoked(session, claims)
    return claims


async def get_task_owner_id(
    user_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=USER_ID_MAX_LENGTH,
            description="The caller's user id; must equal the token's `sub`.",
        ),
    ],
    claims: VerifiedClaims,
    session: SessionDep,
) -> str:
    if claims.sub != user_id:
        raise HTTPException(
            status_code=status.HTTP_403_FORBIDDEN,
            detail="You can only access your own tasks",
        )
    await ensure_not_revoked(session, claims)
    return user_id


CurrentClaims = Annotated[TokenClaims, Depends(get_current_claims)]
TaskOwnerId = Annotated[str, Depends(get_task_owner_id)]
