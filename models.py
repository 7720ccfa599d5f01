"""Database tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Column, Index, String
from sqlmodel import Field, SQLModel

from db import UTCDateTime, utcnow

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
NAME_MAX_LENGTH = 100
EMAIL_MAX_LENGTH = 320
USER_ID_MAX_LENGTH = 255
RATE_LIMIT_KEY_MAX_LENGTH = 100


def new_user_id() -> str:
    return str(uuid.uuid4())


class User(SQLModel, table=True):
    """A local account. `email` is stored lower-cased, so uniqueness is case-insensitive."""

    __tablename__ = "users"

    id: str = Field(default_factory=new_user_id, primary_key=True, max_length=USER_ID_MAX_LENGTH)
    email: str = Field(sa_column=Column(String(EMAIL_MAX_LENGTH), unique=True, nullable=False))
    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Task(SQLModel, table=True):
    """A task. `user_id` has no foreign key: identities issued by the frontend have no account."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_user_id_created_at", "user_id", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH, index=True)
    title: str = Field(max_length=TITLE_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    completed: bool = Field(default=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class RevokedToken(SQLModel, table=True):
    """A logged-out token, kept until it would have expired anyway."""

    __tablename__ = "revoked_tokens"

    jti: str = Field(primary_key=True, max_length=255)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False, index=True)


class SubjectRevocation(SQLModel, table=True):
    """Every token of `sub` issued before `not_before` is revoked (password change, deletion)."""

    __tablename__ = "subject_revocations"

    sub: str = Field(primary_key=True, max_length=USER_ID_MAX_LENGTH)
    not_before: datetime = Field(sa_type=UTCDateTime, nullable=False)


class RateLimitCounter(SQLModel, table=True):
    """A fixed-window counter: `hits` events since `window_started_at` for one key."""

    __tablename__ = "rate_limit_counters"
    __table_args__ = (Index("ix_rate_limit_counters_window_started_at", "window_started_at"),)

    key: str = Field(primary_key=True, max_length=RATE_LIMIT_KEY_MAX_LENGTH)
    hits: int = Field(nullable=False)
    window_started_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
