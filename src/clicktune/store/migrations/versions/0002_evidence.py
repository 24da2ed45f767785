"""Evidence for promotion: judged sets, and the task's promotion policy and decision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
ID = sa.String(24)
CLIENT_ID = sa.String(256)


def upgrade() -> None:
    with op.batch_alter_table("tasks") as tasks:
        tasks.add_column(sa.Column("validation_set", CLIENT_ID))
        tasks.add_column(
            sa.Column("promotion", sa.String(16), nullable=False, server_default="auto")
        )
        tasks.add_column(sa.Column("n_trials", sa.Integer))
        tasks.add_column(sa.Column("challenger", sa.Boolean))
    op.create_table(
        "judgment_sets",
        sa.Column("set_id", CLIENT_ID, primary_key=True),
        sa.Column("queries", sa.Integer, nullable=False),
        sa.Column("judgments", sa.Integer, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "judgments",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("set_id", CLIENT_ID, sa.ForeignKey("judgment_sets.set_id"), nullable=False),
        sa.Column("query", sa.Text, nullable=False),
        sa.Column("object_id", CLIENT_ID, nullable=False),
        sa.Column("grade", sa.Integer, nullable=False),
    )
    op.create_index("ix_judgments_set_seq", "judgments", ["set_id", "seq"])


def downgrade() -> None:
    op.drop_table("judgments")
    op.drop_table("judgment_sets")
    with op.batch_alter_table("tasks") as tasks:
        for column in ("challenger", "n_trials", "promotion", "validation_set"):
            tasks.drop_column(column)
