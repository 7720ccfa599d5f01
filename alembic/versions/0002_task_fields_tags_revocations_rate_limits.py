"""Task fields (priority, tags, due dates, recurrence), the task_tags index table, revocation by
subject and rate-limit counters.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 02:58:14.011325
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_INDEXES = {
    "ix_tasks_user_id_created_at_id": ["user_id", "created_at", "id"],
    "ix_tasks_user_id_updated_at_id": ["user_id", "updated_at", "id"],
    "ix_tasks_user_id_title_id": ["user_id", "title", "id"],
    "ix_tasks_user_id_due_at_id": ["user_id", "due_at", "id"],
    "ix_tasks_user_id_priority_id": ["user_id", "priority", "id"],
}
# PostgreSQL only: serves `due_at DESC NULLS LAST` with a backward scan (SQLite cannot declare it).
NULLS_FIRST_INDEX = "ix_tasks_user_id_due_at_nulls_first_id"


def _on_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    op.create_table(
        "rate_limit_counters",
        sa.Column("key", sa.String(length=100), nullable=False),
        sa.Column("hits", sa.Integer(), nullable=False),
        sa.Column("window_started_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_index(
        "ix_rate_limit_counters_window_started_at", "rate_limit_counters", ["window_started_at"]
    )
    op.create_table(
        "subject_revocations",
        sa.Column("sub", sa.String(length=255), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("sub"),
    )

    # Batch mode: applied in place on PostgreSQL, by rebuilding the table on SQLite.
    with op.batch_alter_table("tasks") as tasks:
        tasks.add_column(
            sa.Column("priority", sa.SmallInteger(), server_default=sa.text("2"), nullable=False)
        )
        tasks.add_column(
            sa.Column("tags", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        tasks.add_column(sa.Column("due_at", sa.DateTime(timezone=True), nullable=True))
        tasks.add_column(
            sa.Column("recurrence", sa.String(length=16), server_default="none", nullable=False)
        )
        tasks.add_column(sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
        tasks.add_column(sa.Column("next_task_id", sa.Integer(), nullable=True))
        tasks.create_foreign_key(
            "fk_tasks_next_task_id_tasks", "tasks", ["next_task_id"], ["id"], ondelete="SET NULL"
        )
        tasks.drop_index("ix_tasks_user_id")
        tasks.drop_index("ix_tasks_user_id_created_at")
        tasks.create_index("ix_tasks_next_task_id", ["next_task_id"])
        for name, columns in SORT_INDEXES.items():
            tasks.create_index(name, columns)
    if _on_postgresql():
        op.create_index(
            NULLS_FIRST_INDEX,
            "tasks",
            ["user_id", sa.literal_column("due_at ASC NULLS FIRST"), "id"],
        )

    op.create_table(
        "task_tags",
        sa.Column("task_id", sa.Integer(), nullable=False),
        sa.Column("tag", sa.String(length=30), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name="fk_task_tags_task_id_tasks", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("task_id", "tag"),
    )
    op.create_index("ix_task_tags_user_id_tag_task_id", "task_tags", ["user_id", "tag", "task_id"])


def downgrade() -> None:
    op.drop_index("ix_task_tags_user_id_tag_task_id", table_name="task_tags")
    op.drop_table("task_tags")
    if _on_postgresql():
        op.drop_index(NULLS_FIRST_INDEX, table_name="tasks")
    with op.batch_alter_table("tasks") as tasks:
        for name in SORT_INDEXES:
            tasks.drop_index(name)
        tasks.drop_index("ix_tasks_next_task_id")
        tasks.create_index("ix_tasks_user_id_created_at", ["user_id", "created_at"])
        tasks.create_index("ix_tasks_user_id", ["user_id"])
        tasks.drop_constraint("fk_tasks_next_task_id_tasks", type_="foreignkey")
        for column in ("next_task_id", "completed_at", "recurrence", "due_at", "tags", "priority"):
            tasks.drop_column(column)
    op.drop_table("subject_revocations")
    op.drop_index("ix_rate_limit_counters_window_started_at", table_name="rate_limit_counters")
    op.drop_table("rate_limit_counters")
