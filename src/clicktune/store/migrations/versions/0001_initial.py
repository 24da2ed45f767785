"""Initial schema: batches, sessions, events, items, tasks, task events, workers.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")
ID = sa.String(24)
CLIENT_ID = sa.String(256)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("batch_id", ID, primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("released_at", sa.Double),
        sa.Column("release_id", CLIENT_ID, unique=True),
        sa.Column("sessions", sa.Integer, nullable=False, server_default="0"),
        sa.Column("sessions_with_events", sa.Integer),
        sa.Column("irrelevant_sessions", sa.Integer),
        sa.Column("events", sa.Integer),
    )
    op.create_index(
        "uq_batches_one_collecting",
        "batches",
        ["status"],
        unique=True,
        sqlite_where=sa.text("status = 'collecting'"),
        postgresql_where=sa.text("status = 'collecting'"),
    )
    op.create_table(
        "sessions",
        sa.Column("session_id", CLIENT_ID, primary_key=True),
        sa.Column("batch_id", ID, sa.ForeignKey("batches.batch_id"), nullable=False),
        sa.Column("session_number", sa.Integer, nullable=False),
        sa.Column("search_query", sa.Text, nullable=False),
        sa.Column("search_results", JSONType, nullable=False),
        sa.Column("search_meta", JSONType, nullable=False),
        sa.Column("user_id", CLIENT_ID),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("is_irrelevant", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column(
            "irrelevant_post_release", sa.Boolean, nullable=False, server_default=sa.text("false")
        ),
        sa.UniqueConstraint("batch_id", "session_number", name="uq_sessions_batch_number"),
    )
    op.create_table(
        "events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", CLIENT_ID, sa.ForeignKey("sessions.session_id"), nullable=False),
        sa.Column("event_id", CLIENT_ID, nullable=False),
        sa.Column("object_id", CLIENT_ID, nullable=False),
        sa.Column("event_type", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("received_at", sa.Double, nullable=False),
        sa.Column("meta", JSONType, nullable=False),
        sa.Column("post_release", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.UniqueConstraint("session_id", "event_id", name="uq_events_session_event"),
    )
    op.create_table(
        "items",
        sa.Column("object_id", CLIENT_ID, primary_key=True),
        sa.Column("text", sa.Text),
        sa.Column("fields", JSONType, nullable=False),
        sa.Column("meta", JSONType, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
    )
    op.create_table(
        "tasks",
        sa.Column("id", ID, primary_key=True),
        sa.Column("fine_tuning_method", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("batch_id", ID, sa.ForeignKey("batches.batch_id"), nullable=False),
        sa.Column("metadata", JSONType, nullable=False),
        sa.Column("hyperparameters", JSONType, nullable=False),
        sa.Column("idempotency_key", CLIENT_ID, unique=True),
        sa.Column("request_hash", sa.String(64)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("claims", sa.Integer, nullable=False, server_default="0"),
        sa.Column("lease_owner", sa.String(128)),
        sa.Column("lease_expires_at", sa.Double),
        sa.Column("heartbeat_at", sa.Double),
        sa.Column("progress", JSONType),
        sa.Column("metrics", JSONType),
        sa.Column("best_run_id", sa.String(64)),
        sa.Column("best_model_uri", sa.Text),
        sa.Column("promoted", sa.Boolean),
        sa.Column("mlflow_experiment", sa.Text),
        sa.Column("error", JSONType),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("updated_at", sa.Double, nullable=False),
        sa.Column("started_at", sa.Double),
        sa.Column("finished_at", sa.Double),
    )
    op.create_index("ix_tasks_status_created", "tasks", ["status", "created_at"])
    op.create_table(
        "task_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("id", ID, nullable=False, unique=True),
        sa.Column("task_id", ID, sa.ForeignKey("tasks.id"), nullable=False),
        sa.Column("created_at", sa.Double, nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("data", JSONType, nullable=False),
    )
    op.create_index("ix_task_events_task_seq", "task_events", ["task_id", "seq"])
    op.create_table(
        "workers",
        sa.Column("worker_id", sa.String(128), primary_key=True),
        sa.Column("hostname", sa.String(256), nullable=False),
        sa.Column("pid", sa.Integer, nullable=False),
        sa.Column("started_at", sa.Double, nullable=False),
        sa.Column("seen_at", sa.Double, nullable=False),
    )


def downgrade() -> None:
    for table in ("workers", "task_events", "tasks", "items", "events", "sessions", "batches"):
        op.drop_table(table)
