"""The change log: a per-owner change counter, the log of task changes, and task versions.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_counters",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("purged_through", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("closed", sa.Boolean(), server_default=sa.text("false"), nullable=False),
        sa.PrimaryKeyConstraint("user_id"),
    )
    op.create_table(
        "task_changes",
        sa.Column("user_id", sa.String(length=255), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("task_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=7), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=True),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.Column("priority", sa.SmallInteger(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("recurrence", sa.String(length=16), nullable=False),
        sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_task_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "seq", "task_id"),
    )
    op.create_index("ix_task_changes_changed_at", "task_changes", ["changed_at"])
    op.create_index(
        "ix_task_changes_user_id_task_id_seq", "task_changes", ["user_id", "task_id", "seq"]
    )
    with op.batch_alter_table("tasks") as tasks:
        tasks.add_column(
            sa.Column("version", sa.BigInteger(), server_default=sa.text("0"), nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks") as tasks:
        tasks.drop_column("version")
    op.drop_index("ix_task_changes_user_id_task_id_seq", table_name="task_changes")
    op.drop_index("ix_task_changes_changed_at", table_name="task_changes")
    op.drop_table("task_changes")
    op.drop_table("change_counters")
