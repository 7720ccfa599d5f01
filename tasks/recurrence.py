"""The calendar of recurring tasks: when the next occurrence is due."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

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
