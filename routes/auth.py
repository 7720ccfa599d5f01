"""Accounts: signup, login, logout and the caller's identity."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import delete
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.dependencies import (
    CurrentClaims,
    PasswordHasherDep,
    TokenServiceDep,
)
from db import SessionDep, utcnow
from models import RevokedToken, User
from routes.responses import DATABASE_UNAVAILABLE, TOO_LARGE, UNAUTHORIZED, error
from schemas import LoginRequest, MessageResponse, SignupRequest, TokenResponse, UserRead

router = APIRouter(
    prefix="/api/auth", tags=["auth"], responses={**DATABASE_UNAVAILABLE, **TOO_LARGE}
)

INVALID_CREDENTIALS = "Invalid email or password"


def _token_response(tokens: TokenServiceDep, user: User) -> TokenResponse:
    issued = tokens.issue(user.id, user.email)
    return TokenResponse(
        access_token=issued.access_token,
        expires_in=issued.expires_in,
        user_id=user.id,
        email=user.email,
        name=user.name,
        user=UserRead.model_validate(user),
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    responses={409: error("An account with this email already exists")},
)
async def signup(
    body: SignupRequest, session: SessionDep, hasher: PasswordHasherDep, tokens: TokenServiceDep
) -> TokenResponse:
    """Create an account and return a token for it. Emails are case-insensitive."""
    password_hash = await hasher.hash(body.password)
    user = User(email=body.email, name=body.name or None, password_hash=password_hash)
    session.add(user)
    try:
        await session.flush()
    except IntegrityError:
        raise HTTPException(
            status_code=status.HTTP_409_CONFLICT,
            detail="An account with this email already exists",
        ) from None
    return _token_response(tokens, user)


@router.post("/login", responses={401: error(INVALID_CREDENTIALS)})
async def login(
    body: LoginRequest, session: SessionDep, hasher: PasswordHasherDep, tokens: TokenServiceDep
) -> TokenResponse:
    """Exchange email and password for a token. Unknown emails cost as much as wrong passwords."""
    user = (await session.exec(select(User).where(User.email == body.email))).first()
    # Give the connection back before the slow hash: it must not sit idle in a transaction.
    await session.commit()
    if user is None:
        await hasher.burn_verify(body.password)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INVALID_CREDENTIALS)
    if not await hasher.verify(body.password, user.password_hash):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INVALID_CREDENTIALS)
    return _token_response(tokens, user)


async def revoke(session: AsyncSession, key: str, expires_at: datetime) -> None:
    """Record a revoked token (idempotent) and purge revocations that have expired."""
    insert = postgresql_insert if session.bind.dialect.name == "postgresql" else sqlite_insert
    await session.exec(
        insert(RevokedToken)
        .values(jti=key, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["jti"])
    )
    await session.exec(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))


@router.post("/logout", responses=UNAUTHORIZED)
async def logout(claims: CurrentClaims, session: SessionDep) -> MessageResponse:
    """Revoke this token; the user's other tokens keep working."""
    await revoke(session, claims.revocation_key, claims.expires_at)
    return MessageResponse(detail="Logged out")


@router.get("/me", responses=UNAUTHORIZED)
async def me(claims: CurrentClaims, session: SessionDep) -> UserRead:
    """The caller's account, or the identity in the claims of a frontend-issued token."""
    user = await session.get(User, claims.sub)
    if user is not None:
        return UserRead.model_validate(user)
    return UserRead(id=claims.sub, email=claims.email, name=claims.name, created_at=None)
