"""Simulated search sessions: the serving model's page for a query and a user's events on it."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from clicktune.simulate.click_model import PositionBasedClickModel, SessionOutcome
from clicktune.simulate.collection import Collection

PAGE_SIZE = 10

Search = Callable[[Sequence[str], int], list[list[str]]]
"""(query texts, k) → the ids of each query's k best documents, best first."""


@dataclass(frozen=True)
class Page:
    """What one search showed: the results, and which model served them (A/B: the whole page;
    interleaving: each result's team)."""

    shown: tuple[str, ...]
    served_by: str | None = None
    teams: tuple[str, ...] | None = None


Serve = Callable[[str, str, str, str], Page]
"""(session id, user id, query id, query text) → the page that session showed."""


@dataclass(frozen=True)
class SimulatedSession:
    session_id: str
    query_id: str
    query: str
    shown: tuple[str, ...]
    outcome: SessionOutcome
    user_id: str | None = None
    served_by: str | None = None
    teams: tuple[str, ...] | None = None

    def session_body(self) -> dict[str, Any]:
        """The `POST /clickstream/session` body (server time, as a live search application)."""
        results: list[dict[str, Any]] = [{"object_id": object_id} for object_id in self.shown]
        if self.teams is not None:
            for result, team in zip(results, self.teams, strict=True):
                result["served_by"] = team
        body: dict[str, Any] = {
            "session_id": self.session_id,
            "search_query": self.query,
            "search_results": results,
            "search_meta": {"simulated": True, "query_id": self.query_id},
        }
        if self.user_id is not None:
            body["user_id"] = self.user_id
        if self.served_by is not None:
            body["served_by"] = self.served_by
        return body

    def events_body(self) -> dict[str, Any] | None:
        """The `POST /clickstream/session/events` body, or None without events.

        Event ids are derived from the session id, so resending is a safe retry.
        """
        if not self.outcome.interactions:
            return None
        return {
            "session_id": self.session_id,
            "events": [
                {
                    "event_id": f"{self.session_id}-{n}",
                    "object_id": interaction.object_id,
                    "event_type": interaction.event_type,
                }
                for n, interaction in enumerate(self.outcome.interactions)
            ],
        }

    def live_body(self) -> dict[str, Any]:
        """The session with its events inline: one `POST /clickstream/session` body, or one
        member of a `POST /clickstream/sessions` batch."""
        events = self.events_body()
        return {**self.session_body(), "events": (events or {}).get("events", [])}

    def import_line(self) -> dict[str, Any]:
        """One line of `POST /clickstream/import`: the session with its events inside.

        Without timestamps (the server stamps them), so a line is the same every time and
        importing it again is a safe retry, also after the live endpoints got it.
        """
        return {**self.live_body(), "is_irrelevant": self.outcome.irrelevant}


def simulate_sessions(
    collection: Collection,
    query_ids: Sequence[str],
    search: Search,
    click_model: PositionBasedClickModel,
    *,
    sessions_per_query: int = 3,
    seed: int = 0,
    session_prefix: str = "sim",
    page_size: int = PAGE_SIZE,
) -> Iterator[SimulatedSession]:
    """`sessions_per_query` sessions for each query, each shown `search`'s page of its query."""
    texts = [collection.queries[query_id].text for query_id in query_ids]
    pages = dict(zip(query_ids, search(texts, page_size), strict=True))
    return served_sessions(
        collection,
        query_ids,
        lambda _session, _user, query_id, _text: Page(tuple(pages[query_id])),
        click_model,
        sessions_per_query=sessions_per_query,
        seed=seed,
        session_prefix=session_prefix,
        users=False,
    )


def served_sessions(
    collection: Collection,
    query_ids: Sequence[str],
    serve: Serve,
    click_model: PositionBasedClickModel,
    *,
    sessions_per_query: int = 3,
    seed: int = 0,
    session_prefix: str = "sim",
    users: bool = True,
) -> Iterator[SimulatedSession]:
    """`sessions_per_query` sessions for each query, the same for the same seed and pages.

    Each session has its own random stream (seeded by seed, query and session number), so a
    query's simulated users do not change when other queries or the order of queries change;
    `users`: each session is a user of its own (named for A/B routing).
    """
    if sessions_per_query < 1:
        raise ValueError("sessions_per_query must be >= 1")
    for query_id in query_ids:
        text = collection.queries[query_id].text
        grades = collection.qrels.get(query_id, {})
        for n in range(sessions_per_query):
            session_id = f"{session_prefix}-{seed}-{query_id}-{n}"
            user_id = f"user-{seed}-{query_id}-{n}" if users else None
            page = serve(session_id, user_id or "", query_id, text)
            rng = random.Random(f"{seed}:{query_id}:{n}")
            yield SimulatedSession(
                session_id=session_id,
                query_id=query_id,
                query=text,
                shown=page.shown,
                outcome=click_model.simulate(list(page.shown), grades, rng),
                user_id=user_id,
                served_by=page.served_by,
                teams=page.teams,
            )
