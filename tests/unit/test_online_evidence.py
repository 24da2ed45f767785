"""Online evidence (docs/evaluation.md): team-draft interleaving, the online metrics of a session,
and the A/B and interleaving comparisons with their verdicts, on hand-computed examples."""

from __future__ import annotations

from typing import Any

import pytest

from clicktune.evaluation.interleaving import team_draft
from clicktune.evaluation.online_evidence import MIN_SESSIONS, OnlineEvidence, session_metrics

WEIGHTS = {"click": 1.0, "add_to_cart": 2.0, "purchase": 3.0}
CHAMPION, CHALLENGER = "m/v1", "m/v2"


def test_team_draft_alternates_fairly_and_is_the_same_for_a_session() -> None:
    rankings = {"A": ["a", "b", "c", "d"], "B": ["b", "e", "a", "f"]}
    merged = team_draft("s-1", rankings, 6)
    assert merged == team_draft("s-1", rankings, 6)
    assert sorted(oid for oid, _ in merged) == ["a", "b", "c", "d", "e", "f"]
    teams = [team for _, team in merged]
    for n in range(2, 7, 2):  # after each pair of picks, each team has picked once more
        assert teams[:n].count("A") == teams[:n].count("B") == n // 2
    # Each team's results keep that team's order.
    for team, ranking in rankings.items():
        picked = [oid for oid, t in merged if t == team]
        assert picked == [oid for oid in ranking if oid in picked]
    firsts = {team_draft(f"s-{n}", rankings, 2)[0][1] for n in range(40)}
    assert firsts == {"A", "B"}  # the coin differs between sessions
    assert team_draft("s", {"A": ["a", "b"], "B": []}, 5) == [("a", "A"), ("b", "A")]


def session(
    n: int, events: list[tuple[str, str]], served_by: str | None = None, **extra: Any
) -> dict[str, Any]:
    return {
        "session_id": f"s-{n}",
        "user_id": extra.pop("user_id", f"u-{n}"),
        "search_results": extra.pop(
            "results", [{"object_id": oid} for oid in ("a", "b", "c", "d")]
        ),
        "events": [{"object_id": oid, "event_type": kind} for oid, kind in events],
        "served_by": served_by,
        "is_irrelevant": extra.pop("is_irrelevant", False),
    }


def test_online_metrics_of_a_session() -> None:
    clicked = session(1, [("c", "click"), ("b", "add_to_cart"), ("c", "purchase")])
    assert session_metrics(clicked, WEIGHTS) == {
        "click_through": 1.0,
        "reciprocal_rank": 0.5,  # b, at position 2, is the first result with an event
        "weighted_clicks_at_10": 5.0,  # b 2 + c 3 (its largest)
        "abandonment": 0.0,
    }
    nothing = session(2, [], is_irrelevant=True)
    assert session_metrics(nothing, WEIGHTS) == {
        "click_through": 0.0,
        "reciprocal_rank": 0.0,
        "weighted_clicks_at_10": 0.0,
        "abandonment": 1.0,
    }


def ab_traffic(champion_buys: int, challenger_buys: int, per_arm: int) -> OnlineEvidence:
    """`per_arm` sessions on each arm; the first n of each buy the top result (weight 3), the rest
    click the third (weight 1)."""
    evidence = OnlineEvidence(WEIGHTS)
    for arm, buys in ((CHAMPION, champion_buys), (CHALLENGER, challenger_buys)):
        for n in range(per_arm):
            event = ("a", "purchase") if n < buys else ("c", "click")
            evidence.add(session(hash((arm, n)), [event], served_by=arm))
    return evidence


def test_ab_comparison_by_hand_and_its_verdicts() -> None:
    report = ab_traffic(champion_buys=20, challenger_buys=50, per_arm=60).report(
        CHAMPION, CHALLENGER, seed=0
    )
    ab = report["ab"]
    # Weighted clicks (primary): champion (20·3 + 40·1) / 60, challenger (50·3 + 10·1) / 60.
    assert ab["champion"]["weighted_clicks_at_10"] == pytest.approx((20 * 3 + 40) / 60)
    assert ab["difference"] == pytest.approx((50 * 3 + 10 - 20 * 3 - 40) / 60)
    # Reciprocal rank beside it: champion (20·1 + 40·⅓) / 60.
    assert ab["champion"]["reciprocal_rank"] == pytest.approx((20 + 40 / 3) / 60)
    low, high = ab["interval"]
    assert low < ab["difference"] < high
    assert (ab["verdict"], report["verdict"]) == ("better", "better")
    assert report["interleaving"] is None
    assert [arm["sessions"] for arm in report["arms"]] == [60, 60]
    worse = ab_traffic(50, 20, 60).report(CHAMPION, CHALLENGER, seed=0)
    assert worse["verdict"] == "worse"
    same = ab_traffic(30, 31, 60).report(CHAMPION, CHALLENGER, seed=0)
    assert same["verdict"] == "inconclusive"
    few = ab_traffic(5, 20, MIN_SESSIONS - 1).report(CHAMPION, CHALLENGER, seed=0)
    assert few["verdict"] == "not_enough_traffic" and few["ab"]["interval"] is None
    again = ab_traffic(20, 50, 60).report(CHAMPION, CHALLENGER, seed=0)
    assert again["ab"]["interval"] == ab["interval"]  # seeded


def interleaved(wins: int, losses: int, ties: int) -> OnlineEvidence:
    results = [
        {"object_id": "a", "served_by": CHALLENGER},
        {"object_id": "b", "served_by": CHAMPION},
        {"object_id": "c", "served_by": CHALLENGER},
    ]
    evidence = OnlineEvidence(WEIGHTS)
    outcomes = (
        [["a"]] * wins + [["b"]] * losses + [["a", "b"]] * (ties // 2) + [[]] * (ties - ties // 2)
    )
    for n, clicks in enumerate(outcomes):
        evidence.add(session(n, [(oid, "click") for oid in clicks], results=results))
    return evidence


def test_interleaving_counts_wins_per_session_and_decides() -> None:
    report = interleaved(wins=45, losses=15, ties=10).report(CHAMPION, CHALLENGER, seed=0)
    part = report["interleaving"]
    assert (part["wins"], part["losses"], part["ties"], part["sessions"]) == (45, 15, 10, 70)
    assert part["share"] == pytest.approx(0.75)
    low, high = part["interval"]
    assert 0.5 < low < 0.75 < high
    assert (part["verdict"], report["verdict"]) == ("better", "better")
    assert report["ab"] is None  # no session says which model served it whole
    assert interleaved(15, 45, 10).report(CHAMPION, CHALLENGER, seed=0)["verdict"] == "worse"
    assert interleaved(30, 28, 4).report(CHAMPION, CHALLENGER, seed=0)["verdict"] == "inconclusive"
    few = interleaved(20, 5, 40).report(CHAMPION, CHALLENGER, seed=0)
    assert few["verdict"] == "not_enough_traffic"
    assert OnlineEvidence(WEIGHTS).report(CHAMPION, None, seed=0)["verdict"] == "not_enough_traffic"
