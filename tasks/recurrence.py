"""The calendar of recurring tasks: when the next occurrence is due."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, case, func, literal_column, null

from models import Recurrence

STEPS = {Recurrence.daily: timedelta(days=1), Recurrence.weekly: timedelta(weeks=1)}


def add_month(moment: datetime) -> datetime:
    """The same day and time next month, clamped to the month's end (Jan 31 → Feb 28/29)."""
    year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def next_due_at(due_at: datetime, recurrence: Recurrence) -> datetime | None:
    """When the occurrence after one due at `due_at` is due; None when it does not recur
    or when the next date would fall after the year 9999."""
    try:
        if recurrence is Recurrence.monthly:
            return add_month(due_at)
        step = STEPS.get(recurrence)
        return None if step is None else due_at + step
    except (OverflowError, ValueError):
        return None


# The same calendar as SQL, for PostgreSQL statements that spawn the next occurrence themselves.
# Arithmetic on UTC wall-clock time: `+ interval '1 month'` keeps the day and clamps it to the
# month's end (Jan 31 -> Feb 28/29), exactly as `add_month`; tests hold both to the same dates.
SQL_STEPS = {
    Recurrence.daily: "1 day",
    Recurrence.weekly: "7 days",
    Recurrence.monthly: "1 month",
}
# The first instant Python's `datetime` cannot hold (a literal: asyncpg sends the largest datetime
# as `infinity`).
PAST_REPRESENTABLE = literal_column("'10000-01-01 00:00:00+00'::timestamptz")


def next_due_at_sql(
    due_at: ColumnElement[Any], recurrence: ColumnElement[Any]
) -> ColumnElement[Any]:
    """`next_due_at` in PostgreSQL: NULL when the task does not recur."""
    utc = func.timezone("UTC", due_at)
    step = case(
        *(
            (recurrence == kind.value, literal_column(f"interval '{text}'"))
            for kind, text in SQL_STEPS.items()
        ),
        else_=null(),
    )
    return func.timezone("UTC", utc + step)
