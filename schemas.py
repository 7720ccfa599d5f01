"""Request and response bodies."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    GetJsonSchemaHandler,
    StrictBool,
    StringConstraints,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from models import (
    DESCRIPTION_MAX_LENGTH,
    MAX_TAGS,
    NAME_MAX_LENGTH,
    TAG_MAX_LENGTH,
    TITLE_MAX_LENGTH,
    Feedback,
    MessageRole,
    Priority,
    Recurrence,
)
from settings import CHAT_MESSAGE_MAX_CHARS_CAP, DEFAULT_CHAT_MESSAGE_CHARS

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_BYTES = 72  # bcrypt ignores everything after 72 bytes: refuse rather than truncate
# pydantic (Python) and email-validator's limit on a whole address.
EMAIL_MAX_LENGTH = 254


# What the validators below enforce, spelled out in the OpenAPI document, so that a value the
# document allows is one the server accepts (`bash .ci/fuzz` and tests/test_schemas.py check it).
# Patterns are written for every engine that reads them (ECMA-262 in browsers and
# openapi-typescript, Rust in pydantic-core and jsonschema-rs, Python in schemathesis): `\s`
# differs between them, so whitespace is the explicit list `strip_whitespace` removes (Unicode
# White_Space, as Rust's `str::trim`).
WHITESPACE = r"\u0009-\u000d\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
NO_NUL_PATTERN = r"^[^\u0000]*$"
# No NUL, and something left once surrounding whitespace is trimmed.
NOT_BLANK_PATTERN = rf"^[^\u0000]*[^\u0000{WHITESPACE}][^\u0000]*$"


def _case_insensitive(word: str) -> str:
    return "".join(
        f"[{c.lower()}{c.upper()}]" if c.isalpha() else c.replace(".", r"\.") for c in word
    )


_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
# A DNS label; two characters then `--` is an IDNA "R-LDH" label email-validator refuses.
_LABEL = r"(?![A-Za-z0-9-]{2}--)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_TOP_LEVEL = r"(?![A-Za-z0-9-]{2}--)[A-Za-z](?:[A-Za-z0-9-]{0,61}[A-Za-z])?"
_SPECIAL_USE = "|".join(_case_insensitive(name) for name in SPECIAL_USE_DOMAIN_NAMES)
# The ASCII addresses email-validator accepts (unquoted, a dotted domain whose top level ends
# with a letter, no special-use domain such as `.test`).
# Narrower than the server, which also takes internationalised addresses and `Name <address>`.
EMAIL_PATTERN = (
    rf"^{_ATEXT}+(?:\.{_ATEXT}+)*"
    rf"@(?!(?:[^@]*\.)?(?:{_SPECIAL_USE})$)(?:{_LABEL}\.)+{_TOP_LEVEL}$"
)
# Years 1 and 9999 reach the edge of the representable range once converted to UTC.
DATE_TIME_PATTERN = r"^(?!0001-01-01|9999-12-31)"


@dataclass(frozen=True)
class Documented:
    """Keywords added to a type's JSON schema: what its validators enforce in code."""

    keywords: tuple[tuple[str, Any], ...]

    def __init__(self, **keywords: Any) -> None:
        object.__setattr__(self, "keywords", tuple(keywords.items()))

    def __get_pydantic_json_schema__(
        self, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        schema = handler(core_schema)
        schema.update(self.keywords)
        return schema


def _reject_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


def _email_lower(value: str) -> str:
    return _reject_nul(value).lower()


def _password_bytes(value: str) -> str:
    _reject_nul(value)
    if len(value.encode("utf-8")) > PASSWORD_MAX_BYTES:
        raise ValueError(f"must be at most {PASSWORD_MAX_BYTES} bytes long in UTF-8")
    return value


# `format: password`: a password, of at most 72 bytes in UTF-8 (the length keywords count
# characters; `fuzz/hooks.py` generates this format within both limits).
PASSWORD_FORMAT = "password"
NewPassword = Annotated[
    str,
    StringConstraints(min_length=PASSWORD_MIN_LENGTH, max_length=PASSWORD_MAX_BYTES),
    AfterValidator(_password_bytes),
    Documented(format=PASSWORD_FORMAT, pattern=NO_NUL_PATTERN),
]
Password = Annotated[
    str,
    StringConstraints(min_length=1, max_length=PASSWORD_MAX_BYTES),
    AfterValidator(_password_bytes),
    Documented(format=PASSWORD_FORMAT, pattern=NO_NUL_PATTERN),
]
NEW_PASSWORD_RULE = (
    f"{PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_BYTES} characters and at most "
    f"{PASSWORD_MAX_BYTES} bytes in UTF-8, no NUL characters."
)
Email = Annotated[
    EmailStr,
    AfterValidator(_email_lower),
    Documented(maxLength=EMAIL_MAX_LENGTH, pattern=EMAIL_PATTERN),
]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=NAME_MAX_LENGTH),
    AfterValidator(_reject_nul),
    Documented(pattern=NO_NUL_PATTERN),
]
Title = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=TITLE_MAX_LENGTH),
    AfterValidator(_reject_nul),
    Documented(
        pattern=NOT_BLANK_PATTERN,
        description=f"1 to {TITLE_MAX_LENGTH} characters once surrounding whitespace is "
        "trimmed; no NUL characters.",
    ),
]
Description = Annotated[
    str,
    StringConstraints(max_length=DESCRIPTION_MAX_LENGTH),
    AfterValidator(_reject_nul),
    Documented(pattern=NO_NUL_PATTERN),
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


def _tag_fits(value: str) -> str:
    # pydantic counts the characters before lower-casing, and "İ" lower-cases to two.
    if len(value) > TAG_MAX_LENGTH:
        raise ValueError(f"must be at most {TAG_MAX_LENGTH} characters once lower-cased")
    return value


Tag = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, to_lower=True, min_length=1, max_length=TAG_MAX_LENGTH
    ),
    AfterValidator(_reject_nul),
    AfterValidator(_tag_fits),
    Documented(pattern=NOT_BLANK_PATTERN),
]
Tags = Annotated[
    list[Tag],
    AfterValidator(_unique_tags),
    Documented(maxItems=MAX_TAGS),
    Field(
        description=f"Up to {MAX_TAGS} tags of 1 to {TAG_MAX_LENGTH} characters once trimmed "
        "and lower-cased (İ lower-cases to two); stored lower-cased and deduplicated."
    ),
]
SearchText = Annotated[
    str,
    StringConstraints(min_length=1, max_length=DESCRIPTION_MAX_LENGTH),
    AfterValidator(_reject_nul),
    Documented(pattern=NO_NUL_PATTERN),
]
Moment = Annotated[AwareDatetime, AfterValidator(_utc), Documented(pattern=DATE_TIME_PATTERN)]
DueAt = Annotated[
    Moment, Field(description="When the task is due: an ISO 8601 time with an offset, or null.")
]


class ErrorResponse(BaseModel):
    detail: str


class SignupRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"email": "ada@example.com", "password": "correct horse battery", "name": "Ada"}
            ]
        }
    )

    email: Email
    password: NewPassword = Field(description=NEW_PASSWORD_RULE)
    name: Name | None = None


class LoginRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"email": "ada@example.com", "password": "correct horse battery"}]
        }
    )

    email: Email
    password: Password


class PasswordChange(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"current_password": "correct horse battery", "new_password": "a new passphrase"}
            ]
        }
    )

    current_password: Password
    new_password: NewPassword = Field(description=NEW_PASSWORD_RULE)


class AccountDeletion(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"password": "correct horse battery"}]}
    )

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
    # Swagger UI's "Try it out" starts from the first example (without one it would draw random
    # strings from the patterns).
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "title": "Pay rent",
                    "description": "Transfer to the landlord",
                    "priority": "high",
                    "tags": ["home", "money"],
                    "due_at": "2030-01-31T09:00:00+01:00",
                    "recurrence": "monthly",
                }
            ]
        }
    )

    title: Title
    description: Description | None = None
    priority: Priority = Priority.medium
    tags: Tags = []
    due_at: DueAt | None = None
    recurrence: Recurrence = Field(
        default=Recurrence.none,
        description="Completing a recurring task that has a `due_at` creates the next one.",
    )


NOT_NULLABLE_IN_UPDATES = ("title", "completed", "priority", "tags", "recurrence")


def _update_schema(schema: dict[str, Any]) -> None:
    """In the document, the fields an update may leave out but not set to null are not
    nullable (the model declares them `| None` so that it can tell the two apart)."""
    schema["examples"] = [{"title": "Buy oat milk", "tags": ["shopping"], "completed": False}]
    for name in NOT_NULLABLE_IN_UPDATES:
        field = schema["properties"][name]
        branches = [branch for branch in field.pop("anyOf") if branch != {"type": "null"}]
        (branch,) = branches
        field.update({**branch, **field})
        field.pop("default", None)


class TaskUpdate(BaseModel):
    """Partial update: only the fields present in the body change; `{}` changes nothing."""

    model_config = ConfigDict(json_schema_extra=_update_schema)

    title: Title | None = None
    description: Description | None = None
    completed: StrictBool | None = None
    priority: Priority | None = None
    tags: Tags | None = Field(default=None, description="Replaces all the task's tags.")
    due_at: DueAt | None = None
    recurrence: Recurrence | None = None

    @model_validator(mode="after")
    def _no_null_for_required_columns(self) -> TaskUpdate:
        for name in NOT_NULLABLE_IN_UPDATES:
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


class DeletedTask(BaseModel):
    """The data of a `task.deleted` event."""

    id: int


class EventTicket(BaseModel):
    """A single-use ticket for `GET …/events?ticket=` (for EventSource, which sends no headers)."""

    ticket: str
    expires_in: int = Field(description="Seconds the ticket stays valid (single use).")


class RootInfo(BaseModel):
    name: str
    version: str
    docs: str


class HealthStatus(BaseModel):
    status: Literal["ok", "unavailable"]
    database: Literal["ok", "unavailable"]


class HealthUnavailable(HealthStatus):
    """`/health` while the database does not answer (503)."""

    status: Literal["unavailable"]
    database: Literal["unavailable"]
    detail: str


class Liveness(BaseModel):
    """`/livez`: the process answers (nothing else is looked at)."""

    status: Literal["ok"]


class Ready(BaseModel):
    """`/readyz` when this instance can serve: the database answers and its schema is at head."""

    status: Literal["ready"]
    database: Literal["ok"]
    revision: str | None = Field(
        description="The Alembic revision the database is at (the scripts' head); null on "
        "SQLite, whose schema the application builds from the models at startup."
    )


class NotReady(BaseModel):
    """`/readyz` when this instance must get no traffic (503)."""

    status: Literal["unavailable"]
    reason: Literal["shutting_down", "database_unavailable", "schema_not_at_head"]
    detail: str
    revision: str | None = Field(
        default=None, description="The revision the database is at, when it was looked at."
    )


INT32_MAX = 2**31 - 1
ChatText = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=CHAT_MESSAGE_MAX_CHARS_CAP),
    AfterValidator(_reject_nul),
    Documented(
        pattern=NOT_BLANK_PATTERN,
        maxLength=DEFAULT_CHAT_MESSAGE_CHARS,
        description=f"What the user says: 1 to {DEFAULT_CHAT_MESSAGE_CHARS} characters "
        "(`CHAT_MAX_MESSAGE_CHARS`) once surrounding whitespace is trimmed; no NUL characters.",
    ),
]


class ChatRequest(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"message": "Add a task to buy groceries"},
                {"conversation_id": 1, "message": "What's pending?"},
            ]
        }
    )

    conversation_id: int | None = Field(
        default=None,
        ge=1,
        le=INT32_MAX,
        description="The conversation to continue; omit it to start a new one.",
    )
    message: ChatText


class ToolCallRead(BaseModel):
    """One tool the assistant called for the answer, as it ran."""

    name: str = Field(description="The tool: add_task, list_tasks, complete_task, ...")
    arguments: dict[str, Any] = Field(description="The arguments the model passed.")
    result: Any = Field(
        description="What the tool returned (as `/mcp` gives it), or its error sentence."
    )
    is_error: bool = Field(default=False, description="The tool refused (`result` says why).")


class ChatResponse(BaseModel):
    conversation_id: int
    response: str = Field(description="The assistant's answer.")
    tool_calls: list[ToolCallRead] = Field(description="The tools it called, in order.")


class ConversationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    title: str = Field(description="The start of the conversation's first message.")
    created_at: datetime
    updated_at: datetime = Field(description="When its latest turn was stored.")


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    conversation_id: int
    role: MessageRole
    content: str
    tool_calls: list[ToolCallRead] = Field(
        description="For an assistant message: the tools it called for it."
    )
    created_at: datetime
    feedback: Feedback | None = Field(
        description="For an assistant message: the user's latest rating of it, given through "
        "ChatKit (`items.feedback`); null when unrated."
    )
