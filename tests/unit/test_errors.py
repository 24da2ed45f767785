"""One error model: every code a `ClicktuneError` class declares has its status in the API's one
table, and the code with two statuses answers each by its error's type."""

from __future__ import annotations

import ast
from pathlib import Path

from clicktune.api.errors import ERROR_STATUS, status_of
from clicktune.errors import InvalidHyperparameter, JudgmentSetNotFound
from clicktune.store.clickstream import NoCollectingBatch, NothingToRelease

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "clicktune"


def _called(call: ast.Call) -> str | None:
    return getattr(call.func, "id", None)


def _declared_codes() -> set[str]:
    """Every error code written in the package: a class's `code = "…"`, an `InvalidInput`'s
    `code="…"`, and the code `check_count(count, limit, "<code>", param)` is given."""
    codes = set()
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef):
                for statement in node.body:
                    if (
                        isinstance(statement, ast.Assign)
                        and [getattr(t, "id", None) for t in statement.targets] == ["code"]
                        and isinstance(statement.value, ast.Constant)
                    ):
                        codes.add(statement.value.value)
            elif isinstance(node, ast.Call):
                for keyword in node.keywords if _called(node) == "InvalidInput" else ():
                    if keyword.arg == "code" and isinstance(keyword.value, ast.Constant):
                        codes.add(keyword.value.value)
                counted = _called(node) == "check_count" and len(node.args) > 2
                if counted and isinstance(node.args[2], ast.Constant):
                    codes.add(node.args[2].value)
    return codes


def test_every_declared_code_has_a_status() -> None:
    codes = _declared_codes()
    assert {"task_not_found", "meta_too_large", "too_many_events"} <= codes
    assert sorted(codes - set(ERROR_STATUS)) == []


def test_a_release_with_nothing_collected_is_not_found_and_a_task_create_conflicts() -> None:
    assert NothingToRelease().code == NoCollectingBatch().code == "no_collecting_batch"
    assert (status_of(NothingToRelease()), status_of(NoCollectingBatch())) == (404, 409)


def test_a_caller_names_the_param_and_the_error_keeps_its_code_and_message() -> None:
    error = JudgmentSetNotFound("golden").with_param("validation_set")
    assert error.detail() == {
        "code": "judgment_set_not_found",
        "message": "No judged set with set_id 'golden'.",
        "param": "validation_set",
    }
    assert status_of(error) == 404


def test_a_plugin_refusal_names_its_parameter() -> None:
    error = InvalidHyperparameter("learning_rate", "learning_rate must be a number")
    assert (error.code, error.param, error.name) == (
        "invalid_hyperparameter",
        "hyperparameters.learning_rate",
        "learning_rate",
    )
    assert status_of(error) == 422
