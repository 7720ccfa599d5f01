"""Where a database stands against the revision scripts' head (`database.migrations`), without
a database: the revisions it would have recorded are given. Reading them from PostgreSQL is in
tests/routes/test_meta.py (`/readyz`); the migration lock in tests/infra/test_migrations.py."""

from __future__ import annotations

from pathlib import Path

from alembic.config import Config
from alembic.script import ScriptDirectory

from database.migrations import head_revisions, schema_status

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ScriptDirectory.from_config(Config(str(PROJECT_ROOT / "alembic.ini")))


def test_the_head_is_read_from_the_scripts() -> None:
    assert head_revisions() == frozenset(SCRIPTS.get_heads())


def test_at_head() -> None:
    head = SCRIPTS.get_current_head()
    assert head is not None
    status = schema_status(frozenset({head}))
    assert status.at_head
    assert status.revision == head


def test_never_migrated_and_empty_are_the_same_problem() -> None:
    for recorded in (None, frozenset()):
        status = schema_status(recorded)
        assert not status.at_head
        assert status.revision is None
        assert status.problem is not None
        assert "not migrated" in status.problem


def test_every_older_revision_is_behind() -> None:
    head = SCRIPTS.get_current_head()
    older = [script.revision for script in SCRIPTS.walk_revisions() if script.revision != head]
    assert older, "needs two revisions"
    for revision in older:
        status = schema_status(frozenset({revision}))
        assert status.problem == (
            f"Database schema at revision {revision}, this version needs {head}: "
            "run `alembic upgrade head`"
        )


def test_an_unknown_revision_is_named() -> None:
    status = schema_status(frozenset({"abc123"}))
    assert status.revision == "abc123"
    assert status.problem is not None
    assert "which this version does not know" in status.problem
