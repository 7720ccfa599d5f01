"""Request and response bodies."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StrictBool,
    StringConstraints,
    model_validator,
)

from models import (
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    NAME_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Priority,
    Recurrence,
)

PASSWORD_MIN_BYTES = 8
PASSWORD_MAX_BYTES = 72  # bcrypt ignores everything after 72 bytes: refuse rather than truncate


def _reject_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _email_lower(value: str) -> str:
    return _reject_nul(value).lower()


def _password_bytes(value: str, minimum: int) -> str:
    _reject_nul(value)
    size = len(value.encode("utf-8"))
    if size < minimum:
        raise ValueError(f"must be at least {minimum} bytes long")
    if size > PASSWORD_MAX_BYTES:
        raise ValueError(f"must be at most {PASSWORD_MAX_BYTES} bytes long in UTF-8")
    return value


def _new_password(value: str) -> str:
    return _password_bytes(value, PASSWORD_MIN_BYTES)


def _any_password(value: str) -> str:
    return _password_bytes(value, 1)


Email = Annotated[EmailStr, AfterValidator(_email_lower)]
NewPassword = Annotated[str, AfterValidator(_new_password)]
Password = Annotated[str, AfterValidator(_any_password)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=NAME_MAX_LENGTH),
    AfterValidator(_reject_nul),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH),
    AfterValidator(_reject_nul),
]
Description = Annotated[
    str, StringConstraints(max_length=DESCRIPTION_MAX_LENGTH), AfterValidator(_reject_nul)
]


def _unique_tags(tags: list[str]) -> list[str]:
    unique = list(dict.fromkeys(tags))
    if len(unique) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} distinct tags")
    return unique


def _utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range") from None


Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=1, max_length=TAG_MAX_LENGTH
    ),
    AfterValidator(_reject_nul),
]
Tags = Annotated[
    list[Tag],
    AfterValidator(_unique_tags),
    Field(
        description=f"Up to {MAX_TAGS} tags of 1 to {TAG_MAX_LENGTH} characters; trimmed, "
        "lower-cased and deduplicated."
    ),
]
SearchText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=DESCRIPTION_MAX_LENGTH),
    AfterValidator(_reject_nul),
]
Moment = Annotated[AwareDatetime, AfterValidator(_utc)]
DueAt = Annotated[
    Moment, Field(description="When the task is due: an ISO 8601 time with an offset, or null.")
]


class ErrorResponse(BaseModel):
    detail: str


class SignupRequest(BaseModel):
    email: Email
    password: NewPassword = Field(description="8 to 72 bytes in UTF-8, no NUL characters.")
    name: Name | None = None


class LoginRequest(BaseModel):
    email: Email
    password: Password


class PasswordChange(BaseModel):
    current_password: Password
    new_password: NewPassword = Field(description="8 to 72 bytes in UTF-8, no NUL characters.")


class AccountDeletion(BaseModel):
    password: Password = Field(description="The account's current password, as confirmation.")


class UserRead(BaseModel):
    """The caller's identity: a local account, or the claims of a frontend-issued token."""

    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str | None
    name: str | None
    created_at: datetime | None


class TokenResponse(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the token expires.")
    user_id: str
    email: str
    name: str | None
    user: UserRead = Field(description="The account, in the shape Better Auth clients read.")


class MessageResponse(BaseModel):
    detail: str


class TaskStatusFilter(StrEnum):
    all = "all"
    pending = "pending"
    completed = "completed"


class TaskCreate(BaseModel):
    title: Title
    description: Description | None = None
    priority: Priority = Priority.medium
    tags: Tags = []
    due_at: DueAt | None = None
    recurrence: Recurrence = Field(
        default=Recurrence.none,
        description="Completing a recurring task that has a `due_at` creates the next one.",
    )


class TaskUpdate(BaseModel):
    """Partial update: only the fields present in the body change; `{}` changes nothing."""

    title: Title | None = None
    description: Description | None = None
    completed: StrictBool | None = None
    priority: Priority | None = None
    tags: Tags | None = Field(default=None, description="Replaces all the task's tags.")
    due_at: DueAt | None = None
    recurrence: Recurrence | None = None

    @model_validator(mode="after")
    def _no_null_for_required_columns(self) -> TaskUpdate:
        for name in ("title", "completed", "priority", "tags", "recurrence"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class TaskCompletion(BaseModel):
    """`{}` toggles; `{"completed": true|false}` sets."""

    completed: StrictBool | None = None


class TaskRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: str
    title: str
    description: str | None
    completed: bool
    priority: Priority
    tags: list[str]
    due_at: datetime | None
    recurrence: Recurrence
    completed_at: datetime | None = Field(
        description="When the task was completed; null while it is pending."
    )
    next_task_id: int | None = Field(
        description="The occurrence this recurring task created when it was completed."
    )
    created_at: datetime
    updated_at: datetime


class TaskStats(BaseModel):
    total: int
    pending: int
    completed: int
    overdue: int = Field(description="Pending tasks whose `due_at` has passed.")
    by_priority: dict[Priority, int] = Field(description="Tasks per priority, all states.")


class TaskChanges(BaseModel):
    """What changed after a cursor (or, without one, a page of every current task)."""

    changes: list[TaskRead] = Field(
        description="Tasks created or changed, each once, in their current state."
    )
    deleted: list[int] = Field(description="Ids of the tasks deleted.")
    cursor: str = Field(description="Pass as `since` to continue from here.")
    has_more: bool = Field(description="More changes wait: call again with `cursor` at once.")


class RootInfo(BaseModel):
    name: str
    version: str
    docs: str


class HealthStatus(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]
