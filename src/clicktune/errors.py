"""The exceptions methods, training and evaluation share: how a task's work ends otherwise.

They sit at the bottom of the package so that `training` and `evaluation` can raise them without
importing `methods`; plugins import them from `clicktune`.
"""

from __future__ import annotations


class InvalidHyperparameter(ValueError):
    """A task fixed a hyperparameter the method does not have, or a value it cannot take."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message)
        self.name = name
        self.message = message


class TaskCanceled(Exception):
    """Raised inside a method when the context reports the task was canceled (or its lease lost)."""


class TaskFailed(Exception):
    """A method's deliberate failure: ends the task `error` with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
