"""The recurrence calendar (pure functions, no database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from models import Recurrence
from tasks.recurrence import next_due_at


def at(year: int, month: int, day: int, hour: int = 9) -> datetime:
    return datetime(year, month, day, hour, 30, tzinfo=UTC)


class TestNextDueAt:
    @pytest.mark.parametrize(
        ("due", "recurrence", "expected"),
        [
            (at(2025, 3, 1), Recurrence.daily, at(2025, 3, 2)),
            (at(2024, 2, 28), Recurrence.daily, at(2024, 2, 29)),
            (at(2025, 12, 31), Recurrence.daily, at(2026, 1, 1)),
            (at(2025, 12, 29), Recurrence.weekly, at(2026, 1, 5)),
            (at(2025, 1, 15), Recurrence.monthly, at(2025, 2, 15)),
            (at(2025, 1, 31), Recurrence.monthly, at(2025, 2, 28)),
            (at(2024, 1, 31), Recurrence.monthly, at(2024, 2, 29)),
            (at(2025, 3, 31), Recurrence.monthly, at(2025, 4, 30)),
            (at(2025, 12, 31), Recurrence.monthly, at(2026, 1, 31)),
            (at(2025, 8, 31), Recurrence.monthly, at(2025, 9, 30)),
        ],
    )
    def test_steps(self, due: datetime, recurrence: Recurrence, expected: datetime) -> None:
        assert next_due_at(due, recurrence) == expected

    def test_none_does_not_recur(self) -> None:
        assert next_due_at(at(2025, 1, 1), Recurrence.none) is None

    @pytest.mark.parametrize("recurrence", [Recurrence.daily, Recurrence.monthly])
    def test_past_year_9999_ends_the_series(self, recurrence: Recurrence) -> None:
        assert next_due_at(at(9999, 12, 31), recurrence) is None
