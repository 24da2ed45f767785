"""The one error model: every refusal or failure clicktune names is a `ClicktuneError`.

Each carries the `code` a client or a task's `error` sees, a `message` and the `param` (the
offending field as a dotted path) when there is one. Domain errors subclass it where they are
raised (the stores, ingest, training) with their fixed code; the API answers each with the status
its code has in one table, and the worker stores a failed task's `{code, message}` from it.

The root sits at the bottom of the package so that every part can raise these; plugins import
`InvalidHyperparameter`, `TaskFailed` and `TaskCanceled` from `clicktune`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

from clicktune.logs import get_logger

log = get_logger(__name__)


class ClicktuneError(Exception):
    """A refusal or failure with the contract's `code`, `message` and `param`.

    Subclasses fix `code`; `code=` gives an instance its own where one class covers a family of
    codes (`InvalidInput`'s limits).
    """

    code = "internal_error"

    def __init__(self, message: str, param: str | None = None, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def with_param(self, param: str | None) -> Self:
        """This error naming `param`: the same refusal where a caller takes the value under
        another name (a judged set's id is `validation_set` in a task create)."""
        self.param = param
        return self

    def detail(self) -> dict[str, str | None]:
        """`{code, message, param}`: the error object of the API's error body and reports."""
        return {"code": self.code, "message": self.message, "param": self.param}


class InvalidInput(ClicktuneError):
    """Input that fails validation or a limit; `code` says which (`invalid_request` by default,
    `meta_too_large`, `too_many_events`, …)."""

    code = "invalid_request"


class InvalidJson(InvalidInput):
    code = "invalid_json"

    def __init__(self, message: str = "The request body is not valid JSON.") -> None:
        super().__init__(message)


class InvalidHyperparameter(ClicktuneError):
    """A task fixed a hyperparameter the method does not have, or a value it cannot take."""

    code = "invalid_hyperparameter"

    def __init__(self, name: str, message: str) -> None:
        super().__init__(message, f"hyperparameters.{name}")
        self.name = name


class JudgmentSetNotFound(ClicktuneError):
    code = "judgment_set_not_found"

    def __init__(self, set_id: str) -> None:
        super().__init__(f"No judged set with set_id {set_id!r}.")
        self.set_id = set_id


class MethodNotFound(ClicktuneError):
    """No registered fine-tuning method (with models, where one must serve them) by that name."""

    code = "method_not_found"

    def __init__(
        self, name: str, known: list[str], param: str, *, with_models: bool = False
    ) -> None:
        kind = "with models named" if with_models else "named"
        super().__init__(
            f"No fine-tuning method {kind} {name!r}; registered methods: {known}.", param
        )


class ModelNotFound(ClicktuneError):
    """What a request names has no model to serve or download."""

    code = "model_not_found"


class NoChallenger(ClicktuneError):
    """A method has no challenger now (the comparison and A/B traffic need one)."""

    code = "no_challenger"


class DependencyUnavailable(ClicktuneError):
    """A service clicktune depends on failed (the model store, MLflow): worth retrying later."""

    code = "dependency_unavailable"


class ModelUnavailable(DependencyUnavailable):
    code = "model_unavailable"


class ModelRegistryUnavailable(DependencyUnavailable):
    code = "model_registry_unavailable"


class DatabaseUnavailable(DependencyUnavailable):
    """The database refused a connection or lost it: an outage or a restart, not the request."""

    code = "unavailable"

    def __init__(self) -> None:
        super().__init__(
            "The database does not answer now; nothing of this request was stored. Retry it: "
            "a resend of the same request is safe."
        )


@contextmanager
def unavailable_on_error(
    error: type[DependencyUnavailable], message: str, param: str | None = None, **context: Any
) -> Iterator[None]:
    """Run a call to a dependency: whatever it raises (a `ClicktuneError` aside) is logged with
    `context` and raised as `error`, `"<message> (<exception type>; …)"`. The exception's text
    stays in the log: it can name the dependency's host, port or path, which a client need not
    know."""
    try:
        yield
    except ClicktuneError:
        raise
    except Exception as exc:
        log.exception(error.code, **context)
        raise error(
            f"{message} ({type(exc).__name__}; the details are in the API's log).", param
        ) from exc


class TaskCanceled(Exception):
    """Raised inside a method when the context reports the task was canceled (or its lease lost)."""


class TaskFailed(ClicktuneError):
    """A method's deliberate failure: ends the task `error` with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message, code=code)
