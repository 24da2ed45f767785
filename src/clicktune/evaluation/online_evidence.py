"""Online evidence: live traffic split between a method's champion and its challenger.

Two forms (docs/evaluation.md). **A/B**: each session says which model served it (`served_by`); per
arm, the online metrics below, and the challenger's difference on the primary one with a
bootstrap interval over users (sessions without a user count as their own user). **Interleaving**:
each session showed a team-draft merge of both rankings, each result saying which model
contributed it; a session is won by the team with more clicks on its results, and the evidence is
the challenger's share of the sessions that were not ties, with an interval over users.

Online metrics of a session (higher is better but for abandonment):
- `click_through`: 1 when the session has an event on a result;
- `reciprocal_rank`: 1 / position of the first result with an event (0 without one);
- `weighted_clicks_at_10`: the event weights on the first ten results (each result its largest);
- `abandonment`: 1 when the user marked the session irrelevant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from clicktune.evaluation.comparison import RESAMPLES, bootstrap_interval

ONLINE_METRICS = ("click_through", "reciprocal_rank", "weighted_clicks_at_10", "abandonment")
PRIMARY_METRIC = "weighted_clicks_at_10"
"""The A/B metric that decides. Measured in the simulator (bench/RESULTS.md, "Online metrics",
six challengers on esci_us_srw150 and scifact, from 0.22 nDCG@10 worse to 0.025 better than the
base model): the only one of the four whose A/B difference had the judged truth's sign for all six
(the others 5 of 6: click-through and reciprocal rank favoured a model 0.022 worse that gets as
many clicks but fewer purchases, abandonment did not move)."""
MIN_SESSIONS = 30
"""Fewer sessions per arm (A/B) or decided sessions (interleaving): `not_enough_traffic`."""

Verdict = Literal["better", "worse", "inconclusive", "not_enough_traffic"]


def session_metrics(
    session: Mapping[str, Any], weights: Mapping[str, float], default_weight: float = 1.0
) -> dict[str, float]:
    """The online metrics of one session (see the module docstring)."""
    shown = [result["object_id"] for result in session["search_results"]]
    best: dict[str, float] = {}
    for event in session.get("events") or ():
        weight = weights.get(event["event_type"], default_weight)
        best[event["object_id"]] = max(weight, best.get(event["object_id"], 0.0))
    first = next((position for position, oid in enumerate(shown, 1) if oid in best), None)
    return {
        "click_through": 1.0 if first is not None else 0.0,
        "reciprocal_rank": 1.0 / first if first is not None else 0.0,
        "weighted_clicks_at_10": float(sum(best.get(oid, 0.0) for oid in shown[:10])),
        "abandonment": 1.0 if session.get("is_irrelevant") else 0.0,
    }


def user_of(session: Mapping[str, Any]) -> str:
    """Who the bootstrap resamples: the user, or the session when it names none."""
    return session.get("user_id") or f"session:{session['session_id']}"


@dataclass
class _Arm:
    sessions: int = 0
    totals: dict[str, float] = field(default_factory=lambda: dict.fromkeys(ONLINE_METRICS, 0.0))
    users: dict[str, list[float]] = field(default_factory=dict)
    """user → [sessions, sum of the primary metric]"""

    def add(self, user: str, metrics: Mapping[str, float], primary: str) -> None:
        self.sessions += 1
        for name in ONLINE_METRICS:
            self.totals[name] += metrics[name]
        counts = self.users.setdefault(user, [0.0, 0.0])
        counts[0] += 1
        counts[1] += metrics[primary]

    def summary(self, served_by: str) -> dict[str, Any]:
        means = {name: value / max(self.sessions, 1) for name, value in self.totals.items()}
        return {
            "served_by": served_by,
            "sessions": self.sessions,
            "users": len(self.users),
            **means,
        }

    def user_means(self) -> np.ndarray:
        return np.array([total / count for count, total in self.users.values()])


@dataclass
class OnlineEvidence:
    """Everything a batch's traffic says about its models, gathered in one pass."""

    weights: Mapping[str, float]
    default_weight: float = 1.0
    primary: str = PRIMARY_METRIC
    resamples: int = RESAMPLES
    arms: dict[str, _Arm] = field(default_factory=dict)
    duels: dict[tuple[str, str], dict[str, list[int]]] = field(default_factory=dict)
    """(one version, the other) → user → [wins of the first, wins of the second, ties]"""

    def add(self, session: Mapping[str, Any]) -> None:
        user = user_of(session)
        served_by = session.get("served_by")
        if served_by:
            metrics = session_metrics(session, self.weights, self.default_weight)
            self.arms.setdefault(served_by, _Arm()).add(user, metrics, self.primary)
        teams = {
            r["object_id"]: r["served_by"] for r in session["search_results"] if "served_by" in r
        }
        names = sorted(set(teams.values()))
        if len(names) != 2:
            return
        clicked = {event["object_id"] for event in session.get("events") or ()}
        credit = dict.fromkeys(names, 0)
        for object_id in clicked:
            if object_id in teams:
                credit[teams[object_id]] += 1
        first, second = names
        counts = self.duels.setdefault((first, second), {}).setdefault(user, [0, 0, 0])
        if credit[first] > credit[second]:
            counts[0] += 1
        elif credit[second] > credit[first]:
            counts[1] += 1
        else:
            counts[2] += 1

    def add_all(self, sessions: Iterable[Mapping[str, Any]]) -> OnlineEvidence:
        for session in sessions:
            self.add(session)
        return self

    def report(
        self, champion: str, challenger: str | None, *, seed: int, min_gain: float = 0.0
    ) -> dict[str, Any]:
        """Per-arm figures and, for the champion and challenger, the A/B and interleaving
        comparisons with their verdicts; `verdict` is interleaving's when it has enough decided
        sessions, else the A/B test's."""
        report: dict[str, Any] = {
            "champion": champion,
            "challenger": challenger,
            "arms": [arm.summary(name) for name, arm in sorted(self.arms.items())],
            "ab": None,
            "interleaving": None,
            "verdict": "not_enough_traffic",
        }
        if challenger is None:
            return report
        if champion in self.arms or challenger in self.arms:
            report["ab"] = self._ab(champion, challenger, seed, min_gain)
        if tuple(sorted((champion, challenger))) in self.duels:
            report["interleaving"] = self._interleaving(champion, challenger, seed)
        deciding = report["interleaving"]
        if deciding is None or deciding["verdict"] == "not_enough_traffic":
            deciding = report["ab"] or deciding
        if deciding is not None:
            report["verdict"] = deciding["verdict"]
        return report

    def _ab(self, champion: str, challenger: str, seed: int, min_gain: float) -> dict[str, Any]:
        arms = {name: self.arms.get(name, _Arm()) for name in (champion, challenger)}
        before, after = arms[champion].user_means(), arms[challenger].user_means()
        sign = -1.0 if self.primary == "abandonment" else 1.0  # less abandonment is better
        part: dict[str, Any] = {
            "metric": self.primary,
            "champion": arms[champion].summary(champion),
            "challenger": arms[challenger].summary(challenger),
            "difference": None,
            "interval": None,
            "verdict": "not_enough_traffic",
        }
        if min(arms[champion].sessions, arms[challenger].sessions) < MIN_SESSIONS:
            return part
        difference = sign * (after.mean() - before.mean())
        if len(after) < 2 or len(before) < 2:
            low = high = difference
        else:
            low, high = bootstrap_interval(
                (after, before),
                lambda a, b, axis=-1: sign * (a.mean(axis) - b.mean(axis)),
                seed=seed,
            )
        part |= {
            "difference": float(difference),
            "interval": [low, high],
            "verdict": _verdict(low, high, min_gain),
        }
        return part

    def _interleaving(self, champion: str, challenger: str, seed: int) -> dict[str, Any]:
        pair = tuple(sorted((champion, challenger)))
        per_user = np.array(list(self.duels[pair].values()), dtype=np.float64)
        wins_first, wins_second, ties = per_user.sum(axis=0)
        wins, losses = (
            (wins_second, wins_first) if pair[1] == challenger else (wins_first, wins_second)
        )
        column = 1 if pair[1] == challenger else 0
        won, lost = per_user[:, column], per_user[:, 1 - column]
        decided = wins + losses
        part: dict[str, Any] = {
            "sessions": int(decided + ties),
            "wins": int(wins),
            "losses": int(losses),
            "ties": int(ties),
            "share": float(wins / decided) if decided else None,
            "interval": None,
            "verdict": "not_enough_traffic",
        }
        if decided < MIN_SESSIONS:
            return part
        low, high = bootstrap_interval(
            (won, lost),
            lambda w, ls, axis=-1: w.sum(axis) / np.maximum((w + ls).sum(axis), 1),
            seed=seed,
            paired=True,
            resamples=self.resamples,
        )
        part |= {"interval": [low, high], "verdict": _verdict(low - 0.5, high - 0.5, 0.0)}
        return part


def _verdict(low: float, high: float, min_gain: float) -> Verdict:
    if low > min_gain:
        return "better"
    if high < 0:
        return "worse"
    return "inconclusive"
