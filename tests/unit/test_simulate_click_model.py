"""The position-based click model: seeded, and right in distribution on a large sample."""

from __future__ import annotations

import math
import random

import pytest

from clicktune.simulate.click_model import ClickModelConfig, PositionBasedClickModel

PAGE = [f"d{i}" for i in range(1, 11)]
SAMPLE = 20_000


def within(observed: int, trials: int, p: float) -> bool:
    """Observed count within 5 standard deviations of a Binomial(trials, p)."""
    sigma = math.sqrt(trials * p * (1 - p)) or 1.0
    return abs(observed - trials * p) <= 5 * sigma


def outcomes(model: PositionBasedClickModel, grades: dict[str, int], seed: int = 7) -> list:
    rng = random.Random(seed)
    return [model.simulate(PAGE, grades, rng) for _ in range(SAMPLE)]


def test_same_seed_same_outcomes_and_another_seed_differs() -> None:
    model = PositionBasedClickModel(max_grade=3)
    grades = {"d1": 3, "d4": 2, "d7": 1}
    assert outcomes(model, grades, seed=1)[:500] == outcomes(model, grades, seed=1)[:500]
    assert outcomes(model, grades, seed=1)[:500] != outcomes(model, grades, seed=2)[:500]


def test_click_rate_per_position_is_examination_times_attractiveness() -> None:
    model = PositionBasedClickModel(max_grade=3, config=ClickModelConfig(eta=1.0, eps=0.1))
    grades = {doc: position % 4 for position, doc in enumerate(PAGE, start=1)}
    results = outcomes(model, grades)
    for position, doc in enumerate(PAGE, start=1):
        grade = grades[doc]
        expected = (1 / position) * (0.1 + 0.9 * (2**grade - 1) / (2**3 - 1))
        clicks = sum(doc in outcome.clicked for outcome in results)
        assert within(clicks, SAMPLE, expected), (position, grade, clicks / SAMPLE, expected)


def test_eta_shapes_examination() -> None:
    flat = PositionBasedClickModel(max_grade=1, config=ClickModelConfig(eta=0.0, eps=0.1))
    assert [flat.examination_probability(p) for p in (1, 5, 10)] == [1.0, 1.0, 1.0]
    steep = PositionBasedClickModel(max_grade=1, config=ClickModelConfig(eta=2.0))
    assert steep.examination_probability(4) == pytest.approx(1 / 16)
    results = outcomes(steep, {doc: 1 for doc in PAGE})
    assert within(sum("d4" in o.clicked for o in results), SAMPLE, 1 / 16)


def test_non_relevant_results_get_noise_clicks_at_eps() -> None:
    model = PositionBasedClickModel(max_grade=2, config=ClickModelConfig(eps=0.25))
    assert model.click_probability(0) == pytest.approx(0.25)
    assert model.click_probability(2) == pytest.approx(1.0)
    assert model.click_probability(-1) == model.click_probability(0)
    results = outcomes(model, {})
    assert within(sum("d1" in o.clicked for o in results), SAMPLE, 0.25)


def test_add_to_cart_follows_a_click_on_a_top_grade_result_only() -> None:
    model = PositionBasedClickModel(
        max_grade=2, config=ClickModelConfig(eta=0.0, add_to_cart_probability=0.3)
    )
    results = outcomes(model, {"d1": 2, "d2": 1})
    carts = [i for o in results for i in o.interactions if i.event_type == "add_to_cart"]
    assert {i.object_id for i in carts} == {"d1"}
    for outcome in results:
        for n, interaction in enumerate(outcome.interactions):
            if interaction.event_type == "add_to_cart":
                assert outcome.interactions[n - 1].object_id == interaction.object_id
                assert outcome.interactions[n - 1].event_type == "click"
    top_clicks = sum("d1" in o.clicked for o in results)
    assert within(len(carts), top_clicks, 0.3)
    never = PositionBasedClickModel(
        max_grade=2, config=ClickModelConfig(add_to_cart_probability=0.0)
    )
    assert all(i.event_type == "click" for o in outcomes(never, {"d1": 2}) for i in o.interactions)


def test_irrelevant_only_without_clicks_on_a_page_without_relevant_results() -> None:
    model = PositionBasedClickModel(
        max_grade=1, config=ClickModelConfig(irrelevant_probability=0.5)
    )
    no_relevant = outcomes(model, {"d3": 0})
    silent = [o for o in no_relevant if not o.interactions]
    assert all(not o.irrelevant for o in no_relevant if o.interactions)
    assert within(sum(o.irrelevant for o in silent), len(silent), 0.5)
    with_relevant = outcomes(model, {"d10": 1})
    assert not any(o.irrelevant for o in with_relevant)


@pytest.mark.parametrize(
    "config",
    [
        {"eta": -1.0},
        {"eps": 1.5},
        {"add_to_cart_probability": -0.1},
        {"irrelevant_probability": 2.0},
    ],
)
def test_invalid_config_is_refused(config: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ClickModelConfig(**config)


def test_max_grade_must_be_positive() -> None:
    with pytest.raises(ValueError):
        PositionBasedClickModel(max_grade=0)
