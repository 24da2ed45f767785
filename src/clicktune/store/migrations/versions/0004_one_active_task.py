"""One active task per method and batch (409 task_exists instead of twenty tasks on one batch).

Where active tasks already share a method and batch, the newer ones are canceled first, so the
unique index can be built.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE = sa.text("status IN ('pending', 'processing')")


def upgrade() -> None:
    op.execute(
        """
        UPDATE tasks SET status = 'canceled'
        WHERE status IN ('pending', 'processing') AND EXISTS (
            SELECT 1 FROM tasks AS older
            WHERE older.fine_tuning_method = tasks.fine_tuning_method
              AND older.batch_id = tasks.batch_id
              AND older.status IN ('pending', 'processing')
              AND (older.created_at < tasks.created_at
                   OR (older.created_at = tasks.created_at AND older.id < tasks.id))
        )
        """
    )
    op.create_index(
        "uq_tasks_one_active_per_batch",
        "tasks",
        ["fine_tuning_method", "batch_id"],
        unique=True,
        sqlite_where=ACTIVE,
        postgresql_where=ACTIVE,
    )


def downgrade() -> None:
    op.drop_index("uq_tasks_one_active_per_batch", table_name="tasks")
