"""The decision a batch's live traffic makes about the challenger, from in-memory sessions and an
in-memory registry: made before training, applied only in the completing step and only when the
champion and challenger are still those it was made about."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

from clicktune.tracking.registry import CHALLENGER, CHAMPION, AliasMove
from clicktune.tuning.config import EmbeddingMethodConfig
from clicktune.tuning.live_decision import apply_live, decide_live
from clicktune.tuning.testing import InMemoryTaskContext

CONFIG = EmbeddingMethodConfig()


class FakeRegistry:
    """A registered model `m` with its aliases in a dict; records the moves."""

    name = "m"

    def __init__(self, champion: int | None, challenger: int | None) -> None:
        self.aliases: dict[str, Any] = {}
        for alias, number in ((CHAMPION, champion), (CHALLENGER, challenger)):
            if number is not None:
                self.aliases[alias] = SimpleNamespace(version=number, run_id=f"run-of-v{number}")
        self.moves: list[tuple[str, str | None, AliasMove]] = []

    def version(self, alias: str) -> Any:
        return self.aliases.get(alias)

    def promote(self, run_id: str, move: AliasMove) -> str:
        self.moves.append(("promote", run_id, move))
        return "3"

    def retire_challenger(self, move: AliasMove) -> str | None:
        self.moves.append(("retire", None, move))
        return "2"


def interleaved(winner: str, loser: str, sessions: int = 40, wins_every: int = 4) -> list[dict]:
    """Pages merging both models; the clicked result is `winner`'s but every `wins_every`-th."""
    pages = []
    for number in range(sessions):
        team = loser if number % wins_every == wins_every - 1 else winner
        other = loser if team == winner else winner
        pages.append(
            {
                "search_query": f"q{number}",
                "search_results": [
                    {"object_id": "a", "served_by": other},
                    {"object_id": "b", "served_by": team},
                ],
                "events": [{"object_id": "b"}],
            }
        )
    return pages


def context(tmp_path: Path, sessions: list[dict]) -> InMemoryTaskContext:
    return InMemoryTaskContext(work_dir=tmp_path, sessions=sessions)


def test_without_a_challenger_nothing_is_decided(tmp_path: Path) -> None:
    registry: Any = FakeRegistry(champion=1, challenger=None)
    assert decide_live(context(tmp_path, interleaved("m/v1", "m/v2")), CONFIG, registry) is None


def test_a_challenger_that_wins_the_interleaving_is_promoted(tmp_path: Path) -> None:
    registry: Any = FakeRegistry(champion=None, challenger=2)
    decided = decide_live(context(tmp_path, interleaved("m/v2", "m/initial")), CONFIG, registry)
    assert decided is not None and decided.promotes
    assert (decided.champion, decided.challenger, decided.challenger_run_id) == (
        None,
        "2",
        "run-of-v2",
    )
    report = decided.report
    assert (report["decision"], report["verdict"], report["decided_by"]) == (
        "promoted",
        "better",
        "interleaving",
    )
    assert report["reason"].startswith(
        "Challenger m/v2 is better online (interleaving: it won 30 of 40 decided sessions"
    )
    assert registry.moves == []  # decided, not applied

    applied = apply_live(decided, registry, "task-1")
    assert applied == report
    [(kind, run_id, move)] = registry.moves
    assert (kind, run_id) == ("promote", "run-of-v2")
    assert move == AliasMove(
        "task-1", report["reason"], {"evidence": "online", "verdict": "better"}
    )


def test_a_challenger_that_loses_is_retired(tmp_path: Path) -> None:
    registry: Any = FakeRegistry(champion=1, challenger=2)
    decided = decide_live(context(tmp_path, interleaved("m/v1", "m/v2")), CONFIG, registry)
    assert decided is not None and not decided.promotes
    assert decided.report["decision"] == "retired"
    assert decided.report["reason"].startswith("Challenger m/v2 is worse online")
    apply_live(decided, registry, "task-1")
    assert [kind for kind, _, _ in registry.moves] == ["retire"]


def test_too_little_traffic_keeps_the_challenger_and_moves_nothing(tmp_path: Path) -> None:
    registry: Any = FakeRegistry(champion=1, challenger=2)
    few = interleaved("m/v2", "m/v1", sessions=6)
    decided = decide_live(context(tmp_path, few), CONFIG, registry)
    assert decided is not None and decided.report["decision"] == "kept"
    assert decided.report["reason"] == (
        "Online traffic does not decide yet (interleaving: not enough traffic yet): challenger "
        "m/v2 stays."
    )
    assert apply_live(decided, registry, "task-1") is decided.report
    assert registry.moves == []


def test_a_batch_without_the_challengers_traffic_keeps_it(tmp_path: Path) -> None:
    registry: Any = FakeRegistry(champion=1, challenger=2)
    plain = [{"search_query": "q", "search_results": ["a"], "events": [{"object_id": "a"}]}]
    decided = decide_live(context(tmp_path, plain), CONFIG, registry)
    assert decided is not None and decided.report["decision"] == "kept"
    assert decided.report["reason"] == (
        "The batch has no traffic served by challenger m/v2: it stays challenger."
    )


def test_a_decision_about_aliases_that_moved_meanwhile_is_not_applied(tmp_path: Path) -> None:
    registry: Any = FakeRegistry(champion=1, challenger=2)
    decided = decide_live(context(tmp_path, interleaved("m/v2", "m/v1")), CONFIG, registry)
    assert decided is not None and decided.promotes
    registry.aliases[CHAMPION] = SimpleNamespace(version=5, run_id="run-of-v5")
    applied = apply_live(decided, registry, "task-1")
    assert applied["decision"] == "kept"
    assert applied["reason"].endswith(
        "Not applied: the champion or challenger changed while this task ran."
    )
    assert registry.moves == []
