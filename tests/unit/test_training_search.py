"""Typed search spaces (validation, MLflow round trip) and the Optuna search's order of trials."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from clicktune import InvalidHyperparameter
from clicktune.methods.default import DefaultFineTuningMethod
from clicktune.training.search import HyperparameterSearch, first_trial_sets, params_hash
from clicktune.training.search_space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    parse_params,
    validate_params,
)

SPACE = {
    "learning_rate": FloatParam(1e-6, 1e-4, log=True),
    "num_train_epochs": IntParam(1, 3),
    "per_device_train_batch_size": CategoricalParam((16, 32, 64)),
    "warmup_ratio": FloatParam(0.0, 0.2),
}


def test_default_method_publishes_its_space_and_base_model() -> None:
    described = DefaultFineTuningMethod().describe()
    assert described["name"] == "Default Fine Tuning Method"
    assert described["base_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert described["hyperparameters"] == {
        "learning_rate": {"type": "float", "low": 3e-5, "high": 2e-4, "log": True},
        "num_train_epochs": {"type": "int", "low": 1, "high": 2, "step": 1},
        "per_device_train_batch_size": {"type": "categorical", "choices": [32, 64]},
        "num_hard_negatives": {"type": "categorical", "choices": [1, 2]},
        "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2, "log": False},
    }


@pytest.mark.parametrize(
    ("params", "name", "message"),
    [
        ({"lr": 1e-5}, "lr", "unknown hyperparameter 'lr'"),
        ({"learning_rate": 1.0}, "learning_rate", "between 3e-05 and 0.0002"),
        ({"learning_rate": "fast"}, "learning_rate", "must be a number"),
        ({"learning_rate": True}, "learning_rate", "must be a number"),
        ({"num_train_epochs": 2.5}, "num_train_epochs", "must be an integer"),
        ({"num_train_epochs": 3}, "num_train_epochs", "from 1 to 2"),
        ({"per_device_train_batch_size": 17}, "per_device_train_batch_size", "one of [32, 64]"),
        ({"per_device_train_batch_size": "16"}, "per_device_train_batch_size", "one of"),
    ],
)
def test_invalid_values_name_the_parameter(params: dict, name: str, message: str) -> None:
    with pytest.raises(InvalidHyperparameter) as error:
        DefaultFineTuningMethod().validate_hyperparameters(params)
    assert error.value.name == name
    assert message in error.value.message


def test_valid_values_are_converted_to_their_types() -> None:
    checked = validate_params(SPACE, {"learning_rate": 1e-5, "num_train_epochs": 2.0})
    assert checked == {"learning_rate": 1e-5, "num_train_epochs": 2}
    assert type(checked["num_train_epochs"]) is int
    converted = validate_params({"warmup_ratio": FloatParam(0.0, 2.0)}, {"warmup_ratio": 1})
    assert converted == {"warmup_ratio": 1.0} and type(converted["warmup_ratio"]) is float


def test_params_round_trip_through_mlflow_strings() -> None:
    params = {
        "learning_rate": 3.3e-05,
        "num_train_epochs": 2,
        "per_device_train_batch_size": 32,
        "warmup_ratio": 0.1,
    }
    as_logged = {name: str(value) for name, value in params.items()}
    parsed = parse_params(SPACE, as_logged)
    assert parsed == params
    assert all(type(parsed[name]) is type(params[name]) for name in params)
    assert params_hash(parsed) == params_hash(params)


def test_categorical_parses_strings_and_numbers() -> None:
    spec = CategoricalParam((16, 32))
    assert spec.parse("32") == 32 and spec.parse("32.0") == 32
    assert CategoricalParam(("mean", "cls")).parse("cls") == "cls"
    with pytest.raises(ValueError):
        spec.parse("48")


def run_search(seed: int, fixed: dict, enqueued: list[dict] = ()) -> list[dict]:  # type: ignore[assignment]
    search = HyperparameterSearch(SPACE, fixed, seed=seed)
    search.enqueue(enqueued, skip=set())
    proposals = []
    for value in (0.1, 0.3, 0.2, 0.4):
        token, params = search.ask()
        proposals.append(params)
        search.tell(token, value)
    return proposals


def test_search_is_seeded() -> None:
    assert run_search(1, {}) == run_search(1, {})
    assert run_search(1, {}) != run_search(2, {})


def test_fixed_values_are_held_constant() -> None:
    proposals = run_search(3, {"num_train_epochs": 2, "warmup_ratio": 0.0})
    assert {p["num_train_epochs"] for p in proposals} == {2}
    assert {p["warmup_ratio"] for p in proposals} == {0.0}
    assert len({p["learning_rate"] for p in proposals}) == 4


def test_enqueued_sets_come_first_without_fixed_values_or_duplicates() -> None:
    previous = [
        {
            "learning_rate": 5e-5,
            "num_train_epochs": 3,
            "per_device_train_batch_size": 16,
            "warmup_ratio": 0.1,
        },
        {
            "learning_rate": 5e-5,
            "num_train_epochs": 1,
            "per_device_train_batch_size": 16,
            "warmup_ratio": 0.1,
        },
        {
            "learning_rate": 2e-5,
            "num_train_epochs": 2,
            "per_device_train_batch_size": 64,
            "warmup_ratio": 0.0,
        },
    ]
    proposals = run_search(4, {"num_train_epochs": 2}, previous)
    # The first two collapse into one set once num_train_epochs is fixed to 2.
    assert proposals[0] == {**previous[0], "num_train_epochs": 2}
    assert proposals[1] == previous[2]
    assert proposals[2] not in proposals[:2]


def test_enqueue_skips_sets_already_run() -> None:
    done = {
        "learning_rate": 5e-5,
        "num_train_epochs": 3,
        "per_device_train_batch_size": 16,
        "warmup_ratio": 0.1,
    }
    search = HyperparameterSearch(SPACE, {}, seed=5)
    search.add_result(done, 0.5)
    search.enqueue([done], skip={params_hash(done)})
    _token, params = search.ask()
    assert params != done


def test_all_fixed_is_not_searchable() -> None:
    fixed = {
        "learning_rate": 1e-5,
        "num_train_epochs": 1,
        "per_device_train_batch_size": 16,
        "warmup_ratio": 0.0,
    }
    search = HyperparameterSearch(SPACE, fixed, seed=0)
    assert not search.searchable
    assert search.ask()[1] == fixed


def test_first_trials_that_fit_the_space_are_kept_typed() -> None:
    sets = [
        {"learning_rate": 1e-5, "num_train_epochs": 2.0},
        {"learning_rate": 1.0},
        {"lr": 1e-5},
    ]
    assert first_trial_sets(SPACE, sets) == [{"learning_rate": 1e-5, "num_train_epochs": 2}]


def test_default_first_trial_fits_the_default_space_and_is_tried_first() -> None:
    method = DefaultFineTuningMethod()
    first = first_trial_sets(method.config.search_space, method.config.first_trials)
    assert first == [dict(method.config.first_trials[0])]
    search = HyperparameterSearch(method.config.search_space, {}, seed=1)
    search.enqueue(first, skip=set())
    _, params = search.ask()
    assert params == first[0]


@pytest.mark.parametrize("bf16", [True, False])
def test_bf16_setting_reaches_the_trainer(bf16: bool, tmp_path: Path) -> None:
    method = DefaultFineTuningMethod()
    method.config = dataclasses.replace(method.config, bf16=bf16)
    args = method.training_arguments({"learning_rate": 1e-4}, tmp_path)
    assert args.bf16 is bf16
    assert args.learning_rate == 1e-4
