"""The five statuses of a fine-tuning task (API.md), shared by the store, the API and clients."""

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
RESTARTABLE_STATUSES = frozenset({TaskStatus.ERROR, TaskStatus.CANCELED})
ACTIVE_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})
