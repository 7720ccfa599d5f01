"""The per-owner change log: the counter every task write bumps, and the entries it appends.

A write bumps its owner's `change_counters.seq` in the same statement (PostgreSQL) or
transaction (SQLite) as the change itself, stamps the tasks it changes with that `seq` as their
`version`, and appends one `task_changes` entry per changed task. The counter row's lock is held
until the write commits, so one owner's writes commit in `seq` order: a reader that sees entry
`n` also sees every entry before it (no sequence read out of order, the classic pitfall of
`WHERE seq > :cursor` on a global sequence).

A position in the log is `(seq, task_id)`: the entries of one write share its `seq` and are
ordered by task id. `Cursor` is its opaque, URL-safe form.
"""

from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Insert,
    bindparam,
    literal,
    not_,
    select,
)
from sqlalchemy.sql.expression import func

from auth.scope import not_revoked, owner_id
from database.types import UTCDateTime
from db import insert_for
from models import SNAPSHOT_COLUMNS, ChangeKind, change_counters, task_changes

# PostgreSQL NOTIFY channel: the payload is "<seq> <owner id>", a hint that the owner's log grew.
CHANGES_CHANNEL = "todo_task_changes"
# A position after every entry of its `seq` (task ids are 32-bit).
END_OF_WRITE = 2**31
LOG_COLUMNS = ("user_id", "seq", "task_id", "kind", "changed_at", *SNAPSHOT_COLUMNS)


class MalformedCursor(ValueError):
    """The cursor was not issued by this API."""


CURSOR_TEXT = re.compile(r"(L|I)\.(\d{1,18})\.(\d{1,10})")


@dataclass(frozen=True, slots=True, order=True)
class Cursor:
    """A position in an owner's log, or in the first full sync of their tasks.

    `L.<seq>.<task_id>`: after that log entry. `I.<seq>.<task_id>`: a full sync that started
    when the log stood at `seq` and has delivered the tasks up to `task_id`.
    """

    seq: int
    task_id: int = END_OF_WRITE
    initial: bool = False

    def encode(self) -> str:
        raw = f"{'I' if self.initial else 'L'}.{self.seq}.{self.task_id}"
        return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        try:
            padded = text + "=" * (-len(text) % 4)
            raw = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        except (ValueError, binascii.Error, UnicodeError):
            raise MalformedCursor(text) from None
        match = CURSOR_TEXT.fullmatch(raw)
        if match is None:
            raise MalformedCursor(text)
        kind, seq, task_id = match.groups()
        if int(task_id) > END_OF_WRITE:
            raise MalformedCursor(text)
        return cls(int(seq), int(task_id), initial=kind == "I")


def bump_counter(is_postgresql: bool, precondition: ColumnElement[bool] | None = None) -> Insert:
    """`seq + 1` for the scope's owner, returning the new `seq` (a first write starts at 1).

    Nothing is returned, so nothing may be written, when the token is revoked, when the
    precondition fails (the target task is not there), or when the account was deleted (the
    row is `closed`; that check reads the row as it is after waiting for its lock, so a write
    racing the deletion cannot slip in). On PostgreSQL the notification that the log grew is
    sent from here, delivered when the write commits.
    """
    guard = not_revoked()
    if precondition is not None:
        guard = guard & precondition
    statement = (
        insert_for("postgresql" if is_postgresql else "sqlite")(change_counters)
        .from_select(["user_id", "seq"], select(owner_id(), literal(1, BigInteger)).where(guard))
        .on_conflict_do_update(
            index_elements=[change_counters.c.user_id],
            set_={"seq": change_counters.c.seq + 1},
            where=not_(change_counters.c.closed),
        )
    )
    returning: list[Any] = [change_counters.c.seq]
    if is_postgresql:
        payload = func.concat(change_counters.c.seq, " ", change_counters.c.user_id)
        returning.append(func.pg_notify(CHANGES_CHANNEL, payload).label("notified"))
    return statement.returning(*returning)


def log_entries(rows: Any, kind: ChangeKind, seq: ColumnElement[Any] | None = None) -> Insert:
    """Append one entry per task row of `rows` (a CTE of task columns), at `seq` (default: the
    row's own `version`, the write's `seq`)."""
    entries = select(
        rows.c.user_id,
        rows.c.version if seq is None else seq,
        rows.c.id,
        literal(kind.value),
        bindparam("now", type_=UTCDateTime()),
        *(rows.c[name] for name in SNAPSHOT_COLUMNS),
    )
    return task_changes.insert().from_select(LOG_COLUMNS, entries)


def log_values(task: Any, kind: ChangeKind, seq: int, now: Any) -> dict[str, Any]:
    """The entry of one task row, as values (SQLite, which writes entries after the fact)."""
    entry = {name: getattr(task, name) for name in SNAPSHOT_COLUMNS}
    return {
        "user_id": task.user_id,
        "seq": seq,
        "task_id": task.id,
        "kind": kind.value,
        "changed_at": now,
        **entry,
    }
