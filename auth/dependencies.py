"""FastAPI dependencies for authentication, as `Annotated` aliases.

The order matters: the token is verified and its subject compared with the URL's `{user_id}`
(403 on mismatch) before the session touches the database for the revocation check, which is a
single query answering both "was this token logged out?" and "were all of this subject's tokens
up to some instant revoked (password change, account deletion)?".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import bindparam, exists, select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.jwks import KeySetUnavailable
from auth.passwords import PasswordHasher
from auth.tokens import InvalidTokenError, TokenClaims, TokenService
from auth.verification import TokenVerifier
from db import SessionDep
from models import USER_ID_MAX_LENGTH, RevokedToken, SubjectRevocation

bearer_scheme = HTTPBearer(
    auto_error=False,
    bearerFormat="JWT",
    description="A JWT from `POST /api/auth/login` or the frontend's Better Auth.",
)

KEYS_UNAVAILABLE_RETRY_SECONDS = 30
revoked_tokens = RevokedToken.__table__
subject_revocations = SubjectRevocation.__table__


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


# Built once: a statement object memoises its compiled-cache key, so each request only binds.
REVOCATION_CHECK = select(
    exists().where(revoked_tokens.c.jti == bindparam("revocation_key")),
    select(subject_revocations.c.not_before)
    .where(subject_revocations.c.sub == bindparam("sub"))
    .scalar_subquery(),
)


async def ensure_not_revoked(session: AsyncSession, claims: TokenClaims) -> None:
    """One round trip: is this token revoked, and since when are the subject's tokens revoked?"""
    result = await session.exec(
        REVOCATION_CHECK, params={"revocation_key": claims.revocation_key, "sub": claims.sub}
    )
    revoked, not_before = result.one()
    if revoked or (
        not_before is not None
        and (claims.issued_at is None or claims.issued_at < not_before.timestamp())
    ):
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
