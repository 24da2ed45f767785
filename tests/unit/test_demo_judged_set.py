"""The demo's judged set leaves training queries: a task keeps judged queries out of training, and a
judged set covering every training query ends the task with `no_training_data`."""

from __future__ import annotations

import pytest

from clicktune.simulate.demo import demo_collection, judged_queries


@pytest.mark.parametrize("quick", [True, False])
def test_the_judged_set_leaves_queries_to_learn_from(quick: bool) -> None:
    train, _test = demo_collection(quick, seed=0).split(0)
    judged = judged_queries(train)
    assert judged and set(judged) < set(train)
    assert len(train) - len(judged) >= len(judged)
