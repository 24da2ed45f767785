"""The position-based click model of the quality benchmark (docs/benchmarks.md §1).

A user examines position p (1-based) with probability `(1/p)^eta` and clicks an examined result
with probability `eps + (1 - eps) * (2^grade - 1) / (2^max_grade - 1)`, so unjudged and
non-relevant results still get noise clicks. A clicked result of the top grade is also added to
the cart with `add_to_cart_probability`. A session without clicks whose page holds no relevant
result is marked irrelevant with `irrelevant_probability`.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class ClickModelConfig:
    eta: float = 1.0
    eps: float = 0.1
    add_to_cart_probability: float = 0.3
    irrelevant_probability: float = 0.5

    def __post_init__(self) -> None:
        if self.eta < 0:
            raise ValueError("eta must be >= 0")
        for name in ("eps", "add_to_cart_probability", "irrelevant_probability"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1]")


@dataclass(frozen=True)
class Interaction:
    """One event a simulated user produced on a shown result."""

    object_id: str
    event_type: str


@dataclass(frozen=True)
class SessionOutcome:
    """What one simulated user did on one result page."""

    interactions: tuple[Interaction, ...]
    irrelevant: bool

    @property
    def clicked(self) -> list[str]:
        return [i.object_id for i in self.interactions if i.event_type == "click"]


class PositionBasedClickModel:
    """Seeded user simulator: the same `rng` state and page give the same outcome."""

    def __init__(self, max_grade: int, config: ClickModelConfig | None = None) -> None:
        if max_grade < 1:
            raise ValueError("max_grade must be >= 1")
        self.max_grade = max_grade
        self.config = config or ClickModelConfig()

    def examination_probability(self, position: int) -> float:
        return (1.0 / position) ** self.config.eta

    def click_probability(self, grade: int) -> float:
        """Probability of a click once examined; unjudged results count as grade 0."""
        grade = min(max(grade, 0), self.max_grade)
        attractiveness = (2**grade - 1) / (2**self.max_grade - 1)
        return self.config.eps + (1.0 - self.config.eps) * attractiveness

    def simulate(
        self, shown: Sequence[str], grades: Mapping[str, int], rng: random.Random
    ) -> SessionOutcome:
        """One user's events on the page `shown` (position 1 first)."""
        interactions: list[Interaction] = []
        for position, object_id in enumerate(shown, start=1):
            grade = grades.get(object_id, 0)
            examined = rng.random() < self.examination_probability(position)
            if not (examined and rng.random() < self.click_probability(grade)):
                continue
            interactions.append(Interaction(object_id, "click"))
            if grade >= self.max_grade and rng.random() < self.config.add_to_cart_probability:
                interactions.append(Interaction(object_id, "add_to_cart"))
        irrelevant = False
        if not interactions and not any(grades.get(object_id, 0) > 0 for object_id in shown):
            irrelevant = rng.random() < self.config.irrelevant_probability
        return SessionOutcome(tuple(interactions), irrelevant)
