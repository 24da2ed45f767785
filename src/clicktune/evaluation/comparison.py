"""Paired comparison of two models over the same queries: the gain with its uncertainty.

The gain is the mean of per-query differences (candidate minus baseline); its interval is a
seeded bootstrap over queries (`scipy.stats.bootstrap`, BCa), so the same scores and seed give
the same interval. docs/evaluation.md: promote only when the interval's lower bound clears the
minimum gain.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

RESAMPLES = 10_000
CONFIDENCE = 0.95
TIE = 1e-12
"""Per-query differences smaller than this are ties."""


@dataclass(frozen=True)
class Comparison:
    """A candidate against a baseline on one metric, paired over `queries` queries."""

    metric: str
    queries: int
    baseline: float
    candidate: float
    gain: float
    interval: tuple[float, float]
    wins: int
    ties: int
    losses: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "interval": list(self.interval)}


def paired_comparison(
    metric: str,
    baseline: Mapping[str, float],
    candidate: Mapping[str, float],
    *,
    seed: int,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> Comparison:
    """Compare per-query scores of the queries both have (raises `ValueError` when none)."""
    queries = sorted(set(baseline) & set(candidate))
    if not queries:
        raise ValueError("no query was scored for both models")
    before = np.array([baseline[q] for q in queries], dtype=np.float64)
    after = np.array([candidate[q] for q in queries], dtype=np.float64)
    differences = after - before
    gain = float(differences.mean())
    if len(queries) < 2 or np.ptp(differences) <= TIE:
        interval = (gain, gain)  # no spread to resample: the gain is what it is
    else:
        interval = bootstrap_interval(
            (differences,), _mean, seed=seed, resamples=resamples, confidence=confidence
        )
    return Comparison(
        metric=metric,
        queries=len(queries),
        baseline=float(before.mean()),
        candidate=float(after.mean()),
        gain=gain,
        interval=interval,
        wins=int((differences > TIE).sum()),
        ties=int((np.abs(differences) <= TIE).sum()),
        losses=int((differences < -TIE).sum()),
    )


Statistic = Callable[..., Any]
"""`statistic(*samples, axis)`, vectorized over `axis` as `scipy.stats.bootstrap` calls it."""


def bootstrap_interval(
    samples: tuple[np.ndarray, ...],
    statistic: Statistic,
    *,
    seed: int,
    paired: bool = False,
    resamples: int = RESAMPLES,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """A seeded two-sided interval of `statistic` (BCa; percentile where BCa is undefined,
    e.g. nearly all ties). `paired`: the samples are resampled together (one row per unit)."""
    interval = _bootstrap(samples, statistic, "BCa", seed, paired, resamples, confidence)
    if not all(np.isfinite(interval)):
        interval = _bootstrap(samples, statistic, "percentile", seed, paired, resamples, confidence)
    return interval


def _mean(sample: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.mean(sample, axis=axis)


def _bootstrap(
    samples: tuple[np.ndarray, ...],
    statistic: Statistic,
    method: str,
    seed: int,
    paired: bool,
    resamples: int,
    confidence: float,
) -> tuple[float, float]:
    from scipy import stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", category=RuntimeWarning)
        result = stats.bootstrap(
            samples,
            statistic,
            n_resamples=resamples,
            confidence_level=confidence,
            method=method,
            paired=paired,
            vectorized=True,
            batch=1000,
            rng=np.random.default_rng(seed),
        )
    return float(result.confidence_interval.low), float(result.confidence_interval.high)
