"""The application's lifespan: what it does to the process beyond serving requests."""

from __future__ import annotations

import gc

import pytest

from main import create_app
from settings import Settings
from tests.conftest import serving


class TestHeapFreeze:
    @pytest.mark.parametrize("settings_overrides", [{"freeze_heap_at_startup": True}])
    async def test_startup_objects_are_frozen_while_serving_and_released_after(
        self, settings: Settings
    ) -> None:
        # Not zero on every interpreter: Python 3.12 starts with a few hundred objects frozen.
        before = gc.get_freeze_count()
        async with serving(create_app(settings)):
            assert gc.get_freeze_count() > before
        assert gc.get_freeze_count() == 0

    async def test_off_freezes_nothing(self, settings: Settings) -> None:
        assert not settings.freeze_heap_at_startup
        before = gc.get_freeze_count()
        async with serving(create_app(settings)):
            assert gc.get_freeze_count() == before
        assert gc.get_freeze_count() == before
