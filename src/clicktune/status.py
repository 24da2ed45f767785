"""A fine-tuning task's vocabulary (docs/api.md): its five statuses, its lifecycle and its promotion
policies, shared by the store, the API, the methods and clients."""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    """Every change between them is a compare-and-set in the store."""

    PENDING = "pending"
    PROCESSING = "processing"
    DONE = "done"
    CANCELED = "canceled"
    ERROR = "error"

    @property
    def finished(self) -> bool:
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({TaskStatus.DONE, TaskStatus.CANCELED, TaskStatus.ERROR})
ACTIVE_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})


class TaskPhase(StrEnum):
    """Where a task is in its lifecycle: its status, with `processing` split in two. Once the
    worker enters the completing step (the store's `completing_at`), it is applying the task's
    decision (alias moves, the previous iteration's removal): a cancel is refused from there, and
    the task ends done or error. Clients see `completing` as `processing`."""

    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETING = "completing"
    DONE = "done"
    CANCELED = "canceled"
    ERROR = "error"

    @classmethod
    def of(cls, status: TaskStatus, completing: bool) -> TaskPhase:
        if status is TaskStatus.PROCESSING and completing:
            return cls.COMPLETING
        return cls(status.value)


TRANSITIONS: dict[str, tuple[frozenset[TaskPhase], TaskPhase]] = {
    "create": (frozenset(), TaskPhase.PENDING),
    "claim": (frozenset({TaskPhase.PENDING, TaskPhase.PROCESSING}), TaskPhase.PROCESSING),
    "hand_back": (frozenset({TaskPhase.PROCESSING}), TaskPhase.PENDING),
    "begin_completing": (
        frozenset({TaskPhase.PROCESSING, TaskPhase.COMPLETING}),
        TaskPhase.COMPLETING,
    ),
    "complete": (frozenset({TaskPhase.PROCESSING, TaskPhase.COMPLETING}), TaskPhase.DONE),
    "fail": (frozenset({TaskPhase.PROCESSING, TaskPhase.COMPLETING}), TaskPhase.ERROR),
    "cancel": (frozenset({TaskPhase.PENDING, TaskPhase.PROCESSING}), TaskPhase.CANCELED),
    "restart": (frozenset({TaskPhase.ERROR, TaskPhase.CANCELED}), TaskPhase.PENDING),
}
"""Every change of a task, from the phases it may start in to the one it ends in. `claim` takes
a pending task, or a processing one whose lease expired (another worker's, lost); `hand_back`
returns a task to the queue when its worker shuts down before completing; `fail` is also how a
task ends after too many lost claims (`worker_lost`)."""


def may(transition: str, phase: TaskPhase) -> bool:
    """Whether a task in `phase` may take `transition`."""
    return phase in TRANSITIONS[transition][0]


class Promotion(StrEnum):
    """What may change the method's champion when a task ends (docs/evaluation.md)."""

    AUTO = "auto"
    """Judged evidence decides; without a judged set the model becomes the challenger."""
    ALWAYS = "always"
    """The best run becomes champion, whatever the evidence says."""
    NEVER = "never"
    """Nothing changes the champion or the challenger; the model is only downloadable."""
