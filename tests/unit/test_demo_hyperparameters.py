"""Both demos fix every hyperparameter of the default method, so each task is one training run."""

from __future__ import annotations

import pytest

from clicktune.methods.default import DefaultFineTuningMethod
from clicktune.simulate.demo import FULL_HYPERPARAMETERS, QUICK_HYPERPARAMETERS


@pytest.mark.parametrize("hyperparameters", [QUICK_HYPERPARAMETERS, FULL_HYPERPARAMETERS])
def test_demo_fixes_the_whole_search_space(hyperparameters: dict[str, object]) -> None:
    method = DefaultFineTuningMethod()
    assert set(hyperparameters) == set(method.config.search_space)
    assert method.validate_hyperparameters(dict(hyperparameters)) == hyperparameters
