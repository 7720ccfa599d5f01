"""Accounts: signup, login, logout, password change, deletion and the caller's identity."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request, Response, status
from sqlalchemy import delete, event, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import select
from sqlmodel.ext.asyncio.session import AsyncSession

from auth.brute_force import CredentialGuard, CredentialGuardDep
from auth.dependencies import (
    CurrentClaims,
    PasswordHasherDep,
    TokenServiceDep,
)
from auth.passwords import PasswordHasher
from auth.scope import revocation_notice
from auth.tokens import TokenService
from chat.conversations import erase_conversations
from database.types import utcnow
from db import SessionDep, dialect_insert
from models import RevokedToken, SubjectRevocation, User
from observability.metrics import replayed
from routes.idempotency import REPLAYED_HEADER, IdempotencyKeyHeader, read_idempotency_key
from routes.responses import (
    DATABASE_UNAVAILABLE,
    TOO_LARGE,
    TOO_MANY_REQUESTS,
    UNAUTHORIZED,
    error,
)
from schemas import (
    AccountDeletion,
    LoginRequest,
    MessageResponse,
    PasswordChange,
    SignupRequest,
    TokenResponse,
    UserRead,
)
from tasks.commands import erase_owner
from tasks.idempotency import check_fingerprint, claim, complete, release

router = APIRouter(
    prefix="/api/auth", tags=["auth"], responses={**DATABASE_UNAVAILABLE, **TOO_LARGE}
)

INVALID_CREDENTIALS = "Invalid email or password"
WRONG_PASSWORD = "The password is incorrect"
NO_LOCAL_ACCOUNT = "No local account: this identity's password is managed by the frontend"

WRONG_PASSWORD_RESPONSE = {403: error(WRONG_PASSWORD)}
NO_LOCAL_ACCOUNT_RESPONSE = {404: error(NO_LOCAL_ACCOUNT)}


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
    response_model=TokenResponse,
    responses={
        409: error(
            "An account with this email already exists, or the first request with this "
            "Idempotency-Key is still running"
        ),
        400: error("Idempotency-Key is not a quoted string of 1 to 255 printable characters"),
        **TOO_MANY_REQUESTS,
    },
)
async def signup(
    body: SignupRequest,
    session: SessionDep,
    hasher: PasswordHasherDep,
    tokens: TokenServiceDep,
    guard: CredentialGuardDep,
    request: Request,
    idempotency_key: IdempotencyKeyHeader = None,
) -> Any:
    """Create an account and return a token for it. Emails are case-insensitive.

    Attempts are limited per client address (`SIGNUP_MAX_PER_ADDRESS` per
    `SIGNUP_WINDOW_SECONDS`); over the limit the answer is 429 with `Retry-After`. With an
    `Idempotency-Key` (scoped by the client address) a retry replays the first answer; a retry
    while the first is still running gets 409 with `Retry-After`.
    """
    key = await read_idempotency_key(request, idempotency_key, f"addr:{guard.address}")
    if key is None:
        return await _create_account(body, session, hasher, tokens, guard)
    now = utcnow()
    params = {**key.params(now), "now": now}
    record = await claim(await session.connection(), params)
    await session.commit()
    if record is not None:
        check_fingerprint(record, key)
        answer = request.app.state.sealed_bodies.open(record.body or "")
        if answer is not None:
            replayed("signup")
            return Response(
                answer,
                status_code=record.status,
                media_type="application/json",
                headers={REPLAYED_HEADER: "true"},
            )
    try:
        answer = await _create_account(body, session, hasher, tokens, guard)
    except BaseException:
        await session.rollback()
        await release(await session.connection(), params)
        await session.commit()
        raise
    sealed = request.app.state.sealed_bodies.seal(answer.model_dump_json().encode())
    await complete(await session.connection(), params, status.HTTP_201_CREATED, sealed)
    return answer


async def _create_account(
    body: SignupRequest,
    session: AsyncSession,
    hasher: PasswordHasher,
    tokens: TokenService,
    guard: CredentialGuard,
) -> TokenResponse:
    await guard.count_signup(session)
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


@router.post("/login", responses={401: error(INVALID_CREDENTIALS), **TOO_MANY_REQUESTS})
async def login(
    body: LoginRequest,
    session: SessionDep,
    hasher: PasswordHasherDep,
    tokens: TokenServiceDep,
    guard: CredentialGuardDep,
) -> TokenResponse:
    """Exchange email and password for a token. Unknown emails cost as much as wrong passwords.

    After `LOGIN_MAX_FAILURES_PER_EMAIL` failures for one email, or
    `LOGIN_MAX_FAILURES_PER_ADDRESS` from one client address, within
    `LOGIN_FAILURE_WINDOW_SECONDS`, attempts get 429 with `Retry-After` without checking the
    password. A successful login resets the email's count.
    """
    user = (await session.exec(select(User).where(User.email == body.email))).first()
    await guard.check_password(
        session,
        hasher,
        body.email,
        body.password,
        user.password_hash if user is not None else None,
        HTTPException(status.HTTP_401_UNAUTHORIZED, detail=INVALID_CREDENTIALS),
    )
    return _token_response(tokens, user)


def _announce_revocation(request: Request, session: AsyncSession, sub: str) -> None:
    """Once the revocation commits, this process checks `sub`'s open event streams (on
    PostgreSQL the revoking statement also notifies every other process)."""
    database = request.app.state.database
    event.listen(
        session.sync_session, "after_commit", lambda _session: database.revoked(sub), once=True
    )


def _notifying(session: AsyncSession, statement: Any, sub: str) -> Any:
    if session.bind.dialect.name == "postgresql":
        return statement.returning(revocation_notice(sub))
    return statement


async def revoke(
    request: Request, session: AsyncSession, sub: str, key: str, expires_at: datetime
) -> None:
    """Record a revoked token (idempotent) and purge revocations that have expired."""
    insert = (
        dialect_insert(session)(RevokedToken)
        .values(jti=key, expires_at=expires_at)
        .on_conflict_do_nothing(index_elements=["jti"])
    )
    await session.exec(_notifying(session, insert, sub))
    await session.exec(delete(RevokedToken).where(RevokedToken.expires_at < utcnow()))
    _announce_revocation(request, session, sub)


@router.post("/logout", responses=UNAUTHORIZED)
async def logout(request: Request, claims: CurrentClaims, session: SessionDep) -> MessageResponse:
    """Revoke this token; the user's other tokens keep working."""
    await revoke(request, session, claims.sub, claims.revocation_key, claims.expires_at)
    return MessageResponse(detail="Logged out")


@router.get("/me", responses=UNAUTHORIZED)
async def me(claims: CurrentClaims, session: SessionDep) -> UserRead:
    """The caller's account, or the identity in the claims of a frontend-issued token."""
    user = await session.get(User, claims.sub)
    if user is not None:
        return UserRead.model_validate(user)
    return UserRead(id=claims.sub, email=claims.email, name=claims.name, created_at=None)


async def revoke_subject(request: Request, session: AsyncSession, sub: str) -> None:
    """Revoke every token of `sub` issued up to now (tokens issued afterwards stay valid)."""
    now = utcnow()
    insert = dialect_insert(session)(SubjectRevocation).values(sub=sub, not_before=now)
    upsert = insert.on_conflict_do_update(
        index_elements=["sub"], set_={"not_before": insert.excluded.not_before}
    )
    await session.exec(_notifying(session, upsert, sub))
    _announce_revocation(request, session, sub)


async def _local_account(session: AsyncSession, sub: str) -> User:
    user = await session.get(User, sub)
    if user is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=NO_LOCAL_ACCOUNT)
    return user


async def _confirm_password(
    session: SessionDep,
    hasher: PasswordHasherDep,
    guard: CredentialGuardDep,
    user: User,
    password: str,
) -> None:
    """The account's current password, as confirmation: 403 when wrong, counted like a
    failed login (and refused with 429 once the limits are reached)."""
    await guard.check_password(
        session,
        hasher,
        user.email,
        password,
        user.password_hash,
        HTTPException(status.HTTP_403_FORBIDDEN, detail=WRONG_PASSWORD),
    )


@router.put(
    "/password",
    responses={
        **UNAUTHORIZED,
        **WRONG_PASSWORD_RESPONSE,
        **NO_LOCAL_ACCOUNT_RESPONSE,
        **TOO_MANY_REQUESTS,
    },
)
async def change_password(
    request: Request,
    body: PasswordChange,
    claims: CurrentClaims,
    session: SessionDep,
    hasher: PasswordHasherDep,
    tokens: TokenServiceDep,
    guard: CredentialGuardDep,
) -> TokenResponse:
    """Change the password. Every token issued before now stops working (on every device);
    the response carries a new token. Wrong current passwords count like failed logins."""
    user = await _local_account(session, claims.sub)
    await _confirm_password(session, hasher, guard, user, body.current_password)
    password_hash = await hasher.hash(body.new_password)
    await session.exec(update(User).where(User.id == user.id).values(password_hash=password_hash))
    await revoke_subject(request, session, user.id)
    return _token_response(tokens, user)


@router.delete(
    "/me",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses={
        **UNAUTHORIZED,
        **WRONG_PASSWORD_RESPONSE,
        **NO_LOCAL_ACCOUNT_RESPONSE,
        **TOO_MANY_REQUESTS,
    },
)
async def delete_account(
    request: Request,
    body: AccountDeletion,
    claims: CurrentClaims,
    session: SessionDep,
    hasher: PasswordHasherDep,
    guard: CredentialGuardDep,
) -> None:
    """Delete the account, all its tasks and conversations, confirmed by its password; its
    tokens are revoked."""
    user = await _local_account(session, claims.sub)
    await _confirm_password(session, hasher, guard, user, body.password)
    connection = await session.connection()
    await erase_owner(connection, connection.dialect.name == "postgresql", user.id)
    await erase_conversations(connection, user.id)
    await session.exec(delete(User).where(User.id == user.id))
    await revoke_subject(request, session, user.id)
