"""`live/capacity.py`: how many streams a process holds, from its file-descriptor limit."""

from __future__ import annotations

import logging
import resource

import pytest

from live.capacity import RESERVED_DESCRIPTORS, stream_capacity


def test_the_soft_limit_is_raised_to_the_hard_one_and_streams_get_all_but_a_reserve() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft > 2048:
        resource.setrlimit(resource.RLIMIT_NOFILE, (2048, hard))  # as Debian starts processes
    capacity = stream_capacity(None)
    soft_after, hard_after = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard_after != resource.RLIM_INFINITY:
        assert soft_after == hard_after == hard
        assert capacity == hard - RESERVED_DESCRIPTORS


def test_a_configured_number_wins(caplog: pytest.LogCaptureFixture) -> None:
    assert stream_capacity(7) == 7
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with caplog.at_level(logging.WARNING, logger="todo.live"):
        assert stream_capacity(soft) == soft
    assert "more than the" in caplog.text, "past the descriptors: said at startup"
