"""Team-draft interleaving (Radlinski, Kurup & Joachims, 2008): two rankings merged into one list
where each result belongs to the team (model) that picked it.

In each round the team with fewer picks chooses next (a coin decides a tie) and adds its best
result not shown yet; the coin is seeded by the session id, so a retry gets the same list.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Mapping, Sequence


def team_draft(
    session_id: str, rankings: Mapping[str, Sequence[str]], limit: int
) -> list[tuple[str, str]]:
    """`(object_id, team)` pairs, at most `limit`, from `team → ranking` (best first)."""
    seed = int.from_bytes(hashlib.sha256(session_id.encode()).digest()[:8], "big")
    coin = random.Random(seed)
    teams = sorted(rankings)
    cursors = dict.fromkeys(teams, 0)
    picks = dict.fromkeys(teams, 0)
    merged: list[tuple[str, str]] = []
    shown: set[str] = set()

    def next_unshown(team: str) -> str | None:
        ranking = rankings[team]
        while cursors[team] < len(ranking) and ranking[cursors[team]] in shown:
            cursors[team] += 1
        return ranking[cursors[team]] if cursors[team] < len(ranking) else None

    while len(merged) < limit:
        able = [team for team in teams if next_unshown(team) is not None]
        if not able:
            break
        fewest = min(picks[team] for team in able)
        turn = [team for team in able if picks[team] == fewest]
        team = turn[0] if len(turn) == 1 else coin.choice(turn)
        object_id = next_unshown(team)
        assert object_id is not None
        merged.append((object_id, team))
        shown.add(object_id)
        picks[team] += 1
    return merged
