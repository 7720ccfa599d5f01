"""`migrate_to_head`: through the direct endpoint, and giving up on a database that does not
answer once its wait is over, with the driver's error (the start turns it into its one-line
reason). Waiting for a server that comes up, and several migrations at once, are in
tests/infra/test_migrations.py."""

from __future__ import annotations

import pytest

from db import is_database_unavailable
from deploy.migrate import migrate_to_head, migration_settings
from settings import load_settings


def test_an_unreachable_database_raises_after_the_wait() -> None:
    settings = load_settings(
        database_url="postgresql://nobody@127.0.0.1:9/none", db_connect_timeout=1
    )
    with pytest.raises(Exception) as raised:
        migrate_to_head(settings, wait_seconds=0)
    assert is_database_unavailable(raised.value)


class TestThroughTheDirectEndpoint:
    NEON = "ep-cool-name-123456{}.eu-central-1.aws.neon.tech/neondb?sslmode=require"

    def test_a_neon_pooled_url_migrates_through_its_direct_twin(self) -> None:
        pooled = f"postgresql://owner:p%40ss@{self.NEON.format('-pooler')}"
        settings = migration_settings(load_settings(database_url=pooled))
        assert settings.database_url == f"postgresql://owner:p%40ss@{self.NEON.format('')}"
        assert not settings.db_pooler

    def test_database_direct_url_wins(self) -> None:
        settings = migration_settings(
            load_settings(
                database_url="postgresql://u@pgbouncer.internal/app",
                db_pooler=True,
                database_direct_url="postgresql://u@db.internal/app",
            )
        )
        assert settings.database_url == "postgresql://u@db.internal/app"
        assert not settings.db_pooler

    def test_a_direct_url_is_kept(self) -> None:
        original = load_settings(database_url="postgresql://u@db.internal/app")
        assert migration_settings(original) is original
