"""The schema, as SQLAlchemy Core tables. Alembic migrations in `migrations/` create exactly this.

Times are epoch seconds (float) on both databases; the API formats them.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB

metadata = MetaData()

ID = String(24)
CLIENT_ID = String(256)
JSONType = JSON().with_variant(JSONB(), "postgresql")

batches = Table(
    "batches",
    metadata,
    Column("batch_id", ID, primary_key=True),
    Column("status", String(16), nullable=False),  # collecting | released
    Column("created_at", Double, nullable=False),
    Column("released_at", Double),
    Column("release_id", CLIENT_ID, unique=True),
    # `sessions` is also the last session_number handed out: registrations increment it under the
    # batch row's lock, which is what makes session numbers dense and release atomic.
    Column("sessions", Integer, nullable=False, server_default="0"),
    # Frozen at release; null while collecting (then counted live).
    Column("sessions_with_events", Integer),
    Column("irrelevant_sessions", Integer),
    Column("events", Integer),
    Index(
        "uq_batches_one_collecting",
        "status",
        unique=True,
        sqlite_where=text("status = 'collecting'"),
        postgresql_where=text("status = 'collecting'"),
    ),
)

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", CLIENT_ID, primary_key=True),
    Column("batch_id", ID, ForeignKey("batches.batch_id"), nullable=False),
    Column("session_number", Integer, nullable=False),
    Column("search_query", Text, nullable=False),
    # [{"object_id", "rank", "meta"}] in the order shown (position 1 first).
    Column("search_results", JSONType, nullable=False),
    Column("search_meta", JSONType, nullable=False),
    Column("user_id", CLIENT_ID),
    # The model version that produced the results (A/B); interleaving: per result, in
    # search_results.
    Column("served_by", CLIENT_ID),
    Column("created_at", Double, nullable=False),
    Column("received_at", Double, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("is_irrelevant", Boolean, nullable=False, server_default=text("false")),
    # Marked irrelevant after its batch was released: shown on the session, not part of the batch.
    Column("irrelevant_post_release", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("batch_id", "session_number", name="uq_sessions_batch_number"),
)

events = Table(
    "events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("session_id", CLIENT_ID, ForeignKey("sessions.session_id"), nullable=False),
    Column("event_id", CLIENT_ID, nullable=False),
    Column("object_id", CLIENT_ID, nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("received_at", Double, nullable=False),
    Column("meta", JSONType, nullable=False),
    # Stored after its session's batch was released: never part of that batch's content.
    Column("post_release", Boolean, nullable=False, server_default=text("false")),
    UniqueConstraint("session_id", "event_id", name="uq_events_session_event"),
)

items = Table(
    "items",
    metadata,
    Column("object_id", CLIENT_ID, primary_key=True),
    Column("text", Text),
    Column("fields", JSONType, nullable=False),
    Column("meta", JSONType, nullable=False),
    Column("updated_at", Double, nullable=False),
)

tasks = Table(
    "tasks",
    metadata,
    Column("id", ID, primary_key=True),
    Column("fine_tuning_method", String(256), nullable=False),
    Column("status", String(16), nullable=False),  # pending | processing | done | canceled | error
    Column("batch_id", ID, ForeignKey("batches.batch_id"), nullable=False),
    Column("metadata", JSONType, nullable=False),
    Column("hyperparameters", JSONType, nullable=False),
    Column("idempotency_key", CLIENT_ID, unique=True),
    Column("request_hash", String(64)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    # Claims since the task was created or last restarted (a clean hand-back undoes its claim):
    # `Settings.worker_max_attempts` bounds these, so a restart gives a task a fresh allowance.
    Column("claims", Integer, nullable=False, server_default="0"),
    Column("lease_owner", String(128)),
    Column("lease_expires_at", Double),
    Column("heartbeat_at", Double),
    Column("progress", JSONType),
    Column("metrics", JSONType),
    Column("best_run_id", String(64)),
    Column("best_model_uri", Text),
    Column("promoted", Boolean),
    Column("mlflow_experiment", Text),
    Column("error", JSONType),
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
    Column("started_at", Double),
    Column("finished_at", Double),
    # The evidence a task decides on (docs/evaluation.md): a judged set's id, the promotion policy
    # (auto | always | never), a fixed number of runs, and whether its model became challenger.
    Column("validation_set", CLIENT_ID),
    Column("promotion", String(16), nullable=False, server_default="auto"),
    Column("n_trials", Integer),
    Column("challenger", Boolean),
    # When the worker won the completing step (its decision's side effects run from here; a
    # cancel is refused). Kept on a takeover: the new owner completes what was begun.
    Column("completing_at", Double),
    Index("ix_tasks_status_created", "status", "created_at"),
    # One active (pending or processing) task per method and batch: a second is 409 task_exists.
    Index(
        "uq_tasks_one_active_per_batch",
        "fine_tuning_method",
        "batch_id",
        unique=True,
        sqlite_where=text("status IN ('pending', 'processing')"),
        postgresql_where=text("status IN ('pending', 'processing')"),
    ),
)

task_events = Table(
    "task_events",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("id", ID, nullable=False, unique=True),
    Column("task_id", ID, ForeignKey("tasks.id"), nullable=False),
    Column("created_at", Double, nullable=False),
    Column("level", String(16), nullable=False),
    Column("message", Text, nullable=False),
    Column("data", JSONType, nullable=False),
    Index("ix_task_events_task_seq", "task_id", "seq"),
)

workers = Table(
    "workers",
    metadata,
    Column("worker_id", String(128), primary_key=True),
    Column("hostname", String(256), nullable=False),
    Column("pid", Integer, nullable=False),
    Column("started_at", Double, nullable=False),
    Column("seen_at", Double, nullable=False),
)

judgment_sets = Table(
    "judgment_sets",
    metadata,
    Column("set_id", CLIENT_ID, primary_key=True),
    Column("queries", Integer, nullable=False),
    Column("judgments", Integer, nullable=False),
    Column("digest", String(64), nullable=False),  # of the content: which version a task used
    Column("created_at", Double, nullable=False),
    Column("updated_at", Double, nullable=False),
)

judgments = Table(
    "judgments",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("set_id", CLIENT_ID, ForeignKey("judgment_sets.set_id"), nullable=False),
    Column("query", Text, nullable=False),
    Column("object_id", CLIENT_ID, nullable=False),
    Column("grade", Integer, nullable=False),
    Index("ix_judgments_set_seq", "set_id", "seq"),
)
