"""Database tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any, TypeAlias

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    text,
)
from sqlalchemy.engine import Dialect, Row
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from database.types import UTCDateTime, utcnow

TITLE_MAX_LENGTH = 200
DESCRIPTION_MAX_LENGTH = 1000
NAME_MAX_LENGTH = 100
EMAIL_MAX_LENGTH = 320
USER_ID_MAX_LENGTH = 255
TAG_MAX_LENGTH = 30
MAX_TAGS = 10
RECURRENCE_MAX_LENGTH = 16
RATE_LIMIT_KEY_MAX_LENGTH = 100


def new_user_id() -> str:
    return str(uuid.uuid4())


class Priority(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class Recurrence(StrEnum):
    none = "none"
    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


PRIORITY_RANKS: dict[Priority, int] = {Priority.low: 1, Priority.medium: 2, Priority.high: 3}
PRIORITIES_BY_RANK: dict[int, Priority] = {rank: name for name, rank in PRIORITY_RANKS.items()}


class PriorityRank(TypeDecorator[Priority]):
    """A priority stored as its rank (low 1, medium 2, high 3).

    `ORDER BY priority` is then an order by importance that a plain composite index serves in
    both directions, where a text column would sort alphabetically and a `CASE` expression
    would defeat the index. Python code only ever sees `Priority` values.
    """

    impl = SmallInteger
    cache_ok = True

    def process_bind_param(self, value: Priority | str | None, dialect: Dialect) -> int | None:
        return None if value is None else PRIORITY_RANKS[Priority(value)]

    def process_result_value(self, value: int | None, dialect: Dialect) -> Priority | None:
        return None if value is None else PRIORITIES_BY_RANK[value]


class User(SQLModel, table=True):
    """A local account. `email` is stored lower-cased, so uniqueness is case-insensitive."""

    __tablename__ = "users"

    id: str = Field(default_factory=new_user_id, primary_key=True, max_length=USER_ID_MAX_LENGTH)
    email: str = Field(sa_column=Column(String(EMAIL_MAX_LENGTH), unique=True, nullable=False))
    name: str | None = Field(default=None, max_length=NAME_MAX_LENGTH)
    password_hash: str = Field(max_length=255)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Task(SQLModel, table=True):
    """A task. `user_id` has no foreign key: identities issued by the frontend have no account.

    `tags` is the task's tag list as returned to clients (no join on reads); `task_tags` holds
    the same tags one per row for indexed filtering, and both are written together.
    `next_task_id` is the occurrence a recurring task spawned when it was completed; it is set
    at most once, which is what makes repeated completions idempotent. `version` is the owner's
    change counter (`ChangeCounter.seq`) at the task's latest change.

    Every list sort has an index `(user_id, <sort column>, id)`, so a page is read in index
    order whatever the user's task count.
    """

    __tablename__ = "tasks"
    __table_args__ = (
        Index("ix_tasks_user_id_created_at_id", "user_id", "created_at", "id"),
        Index("ix_tasks_user_id_updated_at_id", "user_id", "updated_at", "id"),
        Index("ix_tasks_user_id_title_id", "user_id", "title", "id"),
        Index("ix_tasks_user_id_due_at_id", "user_id", "due_at", "id"),
        Index("ix_tasks_user_id_priority_id", "user_id", "priority", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    title: str = Field(max_length=TITLE_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    completed: bool = Field(default=False)
    priority: Priority = Field(
        default=Priority.medium,
        sa_type=PriorityRank,
        nullable=False,
        sa_column_kwargs={"server_default": text(str(PRIORITY_RANKS[Priority.medium]))},
    )
    tags: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default=text("'[]'")),
    )
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recurrence: Recurrence = Field(
        default=Recurrence.none,
        sa_type=String(RECURRENCE_MAX_LENGTH),
        nullable=False,
        sa_column_kwargs={"server_default": Recurrence.none.value},
    )
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_task_id: int | None = Field(
        default=None,
        sa_column=Column(
            Integer,
            ForeignKey("tasks.id", ondelete="SET NULL", name="fk_tasks_next_task_id_tasks"),
            nullable=True,
            index=True,
        ),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    version: int = Field(
        default=0,
        sa_column=Column(BigInteger, nullable=False, server_default=text("0")),
        description="The owner's change counter at this task's latest change (its ETag).",
    )


# PostgreSQL serves `due_at DESC NULLS LAST` (undated tasks last) with a backward scan of an
# index whose NULLs come first; the plain index serves `ASC NULLS LAST`. SQLite serves both
# orders from the plain index and cannot declare NULLS FIRST in an index, hence `ddl_if`.
Index(
    "ix_tasks_user_id_due_at_nulls_first_id",
    Task.user_id,
    Task.due_at.asc().nulls_first(),
    Task.id,
).ddl_if(dialect="postgresql")


tasks = Task.__table__
"""The `tasks` table for Core statements: hot paths read rows, not ORM objects."""
TASK_COLUMNS = tuple(tasks.columns)
# A task as an ORM object or as a Core row of TASK_COLUMNS: both expose the same attributes.
TaskRecord: TypeAlias = "Task | Row[Any]"


class TaskTag(SQLModel, table=True):
    """One tag of one task, for indexed filtering (`Task.tags` is the copy clients read)."""

    __tablename__ = "task_tags"
    __table_args__ = (Index("ix_task_tags_user_id_tag_task_id", "user_id", "tag", "task_id"),)

    task_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("tasks.id", ondelete="CASCADE", name="fk_task_tags_task_id_tasks"),
            primary_key=True,
        )
    )
    tag: str = Field(primary_key=True, max_length=TAG_MAX_LENGTH)
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)


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


class ChangeKind(StrEnum):
    created = "created"
    updated = "updated"
    deleted = "deleted"


CHANGE_KIND_MAX_LENGTH = 7


class ChangeCounter(SQLModel, table=True):
    """One row per task owner (frontend identities included, who have no `users` row).

    Every task write bumps `seq` in its own statement and takes this row's lock until it
    commits, so one owner's writes commit in `seq` order and a reader of the change log never
    sees a later change without the earlier ones. `purged_through`: log entries up to this
    `seq` were purged (older cursors get 410). `closed`: the account was deleted; no write may
    follow.
    """

    __tablename__ = "change_counters"

    user_id: str = Field(primary_key=True, max_length=USER_ID_MAX_LENGTH)
    seq: int = Field(sa_column=Column(BigInteger, nullable=False))
    purged_through: int = Field(
        default=0, sa_column=Column(BigInteger, nullable=False, server_default=text("0"))
    )
    closed: bool = Field(
        default=False, sa_column=Column(Boolean, nullable=False, server_default=text("false"))
    )


class TaskChange(SQLModel, table=True):
    """The change log: the state of a task after each change (or before its deletion).

    Entries of one write share its `seq` and are ordered by `task_id`; `(seq, task_id)` is the
    position the changes feed and the live events resume from.
    """

    __tablename__ = "task_changes"
    __table_args__ = (
        Index("ix_task_changes_user_id_task_id_seq", "user_id", "task_id", "seq"),
        Index("ix_task_changes_changed_at", "changed_at"),
    )

    user_id: str = Field(primary_key=True, max_length=USER_ID_MAX_LENGTH)
    seq: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    task_id: int = Field(sa_column=Column(Integer, primary_key=True, autoincrement=False))
    kind: ChangeKind = Field(sa_type=String(CHANGE_KIND_MAX_LENGTH), nullable=False)
    changed_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    title: str = Field(max_length=TITLE_MAX_LENGTH)
    description: str | None = Field(default=None, max_length=DESCRIPTION_MAX_LENGTH)
    completed: bool
    priority: Priority = Field(sa_type=PriorityRank, nullable=False)
    tags: list[str] = Field(sa_column=Column(JSON, nullable=False))
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    recurrence: Recurrence = Field(sa_type=String(RECURRENCE_MAX_LENGTH), nullable=False)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    next_task_id: int | None = Field(default=None, sa_column=Column(Integer, nullable=True))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


change_counters = ChangeCounter.__table__
task_changes = TaskChange.__table__
# The task's own fields, as the log stores them (every column of `tasks` but `id` and `version`).
SNAPSHOT_COLUMNS = tuple(
    column.name for column in tasks.columns if column.name not in ("id", "user_id", "version")
)


IDEMPOTENCY_KEY_MAX_LENGTH = 255
IDEMPOTENCY_SCOPE_MAX_LENGTH = 300


class IdempotencyRecord(SQLModel, table=True):
    """The answer to a request sent with an `Idempotency-Key`, kept to replay it to retries.

    `scope` is whose key it is (`sub:<user id>`, or `addr:<client address>` for signup);
    `fingerprint` digests the request (method, path, body), so the same key with another request
    is refused. A task write's answer is the task at `version` (read back from the change log),
    `successor_id` its `Location`, `deleted_count` a bulk deletion's count; a signup's answer is
    `body` (encrypted: it holds a token). `status` 0: the first request is still running.
    """

    __tablename__ = "idempotency_records"
    __table_args__ = (Index("ix_idempotency_records_expires_at", "expires_at"),)

    scope: str = Field(primary_key=True, max_length=IDEMPOTENCY_SCOPE_MAX_LENGTH)
    key: str = Field(primary_key=True, max_length=IDEMPOTENCY_KEY_MAX_LENGTH)
    fingerprint: str = Field(max_length=64)
    status: int = Field(sa_type=SmallInteger, nullable=False)
    task_id: int | None = Field(default=None)
    version: int | None = Field(default=None, sa_column=Column(BigInteger, nullable=True))
    successor_id: int | None = Field(default=None)
    deleted_count: int | None = Field(default=None)
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


idempotency_records = IdempotencyRecord.__table__


class EventTicket(SQLModel, table=True):
    """A single-use ticket for opening a live event stream where headers cannot be sent (a
    browser's EventSource): bound to the token that asked for it, kept only as a digest."""

    __tablename__ = "event_tickets"
    __table_args__ = (Index("ix_event_tickets_expires_at", "expires_at"),)

    ticket_hash: str = Field(primary_key=True, max_length=64)
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    revocation_key: str = Field(max_length=255)
    issued_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    token_expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    expires_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


event_tickets = EventTicket.__table__


CONVERSATION_TITLE_MAX_LENGTH = 80
MESSAGE_ROLE_MAX_LENGTH = 16
CHAT_ITEM_ID_MAX_LENGTH = 64
FEEDBACK_MAX_LENGTH = 8


class MessageRole(StrEnum):
    user = "user"
    assistant = "assistant"


class Feedback(StrEnum):
    """A user's rating of an assistant message (ChatKit's `items.feedback`)."""

    positive = "positive"
    negative = "negative"


class Conversation(SQLModel, table=True):
    """A chat with the assistant: its messages are in `messages`. `title` is the start of the
    first message; `updated_at` moves with every stored turn (lists are newest first). A
    ChatKit thread is a conversation (its thread id is this id as a string)."""

    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_user_id_updated_at_id", "user_id", "updated_at", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    title: str = Field(max_length=CONVERSATION_TITLE_MAX_LENGTH)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class Message(SQLModel, table=True):
    """One message of a conversation: the user's, or the assistant's answer with the tool calls
    it made for it (`[{name, arguments, result}]`). `item_id` is the message's ChatKit item id,
    which ChatKit chooses before the message is stored (so it cannot be `id`)."""

    __tablename__ = "messages"
    __table_args__ = (
        Index("ix_messages_conversation_id_id", "conversation_id", "id"),
        Index("ix_messages_conversation_id_item_id", "conversation_id", "item_id", unique=True),
    )

    id: int | None = Field(default=None, primary_key=True)
    conversation_id: int = Field(
        sa_column=Column(
            Integer,
            ForeignKey("conversations.id", ondelete="CASCADE", name="fk_messages_conversation_id"),
            nullable=False,
        )
    )
    user_id: str = Field(max_length=USER_ID_MAX_LENGTH)
    item_id: str = Field(max_length=CHAT_ITEM_ID_MAX_LENGTH)
    role: MessageRole = Field(sa_type=String(MESSAGE_ROLE_MAX_LENGTH), nullable=False)
    content: str = Field(sa_column=Column(Text, nullable=False))
    tool_calls: list[dict[str, Any]] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default=text("'[]'")),
    )
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    feedback: Feedback | None = Field(
        default=None, sa_type=String(FEEDBACK_MAX_LENGTH), nullable=True
    )


conversations = Conversation.__table__
messages = Message.__table__
