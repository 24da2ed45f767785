"""Live traffic through the API: `/embeddings` routing (A/B) with the model version that answered,
interleaved lists, and a batch's comparison of the champion and the challenger."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from clicktune.api.app import create_app
from clicktune.settings import Settings
from tests.api.test_clickstream import assert_error
from tests.pipeline_support import (
    TINY_METHOD,
    register_tiny_model,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def embed(api: TestClient, model: str, **extra: str) -> str:
    response = api.post("/api/v1/embeddings", json={"input": "navy tote", "model": model, **extra})
    assert response.status_code == 200, response.text
    version = response.json()["model_version"]
    assert response.headers["X-Clicktune-Model-Version"] == version
    return version


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_ab_routes_each_user_to_one_arm_for_good(api: TestClient, psettings: Settings) -> None:
    assert embed(api, TINY_METHOD) == f"{TINY_METHOD}/initial"
    # Without a challenger every user gets the champion.
    assert embed(api, f"{TINY_METHOD}@ab", user="u-1") == f"{TINY_METHOD}/initial"
    assert_error(
        api.post("/api/v1/embeddings", json={"input": "x", "model": f"{TINY_METHOD}@ab"}),
        422,
        "invalid_request",
        "user",
    )
    challenger = register_tiny_model(psettings, "challenger", "task-1", seed=1)
    assert embed(api, f"{TINY_METHOD}@challenger") == challenger == f"{TINY_METHOD}/v1"
    arms = {f"u-{n}": embed(api, f"{TINY_METHOD}@ab", user=f"u-{n}") for n in range(60)}
    assert set(arms.values()) == {f"{TINY_METHOD}/initial", challenger}
    assert 15 <= sum(arm == challenger for arm in arms.values()) <= 45  # share 0.5
    for user in ("u-1", "u-2", "u-3"):
        assert {embed(api, f"{TINY_METHOD}@ab", user=user) for _ in range(3)} == {arms[user]}
    none = psettings.model_copy(update={"challenger_share": 0.0})
    with TestClient(create_app(none)) as only_champion:
        assert {embed(only_champion, f"{TINY_METHOD}@ab", user=u) for u in arms} == {
            f"{TINY_METHOD}/initial"
        }


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_interleave_merges_by_team_draft(api: TestClient, psettings: Settings) -> None:
    body = {
        "session_id": "s-1",
        "method": TINY_METHOD,
        "rankings": {"champion": ["a", "b", "c"], "challenger": ["b", "d", "a"]},
        "limit": 4,
    }
    alone = api.post("/api/v1/clickstream/interleave", json=body).json()
    assert alone["challenger"] is None
    assert alone["results"] == [
        {"object_id": oid, "served_by": f"{TINY_METHOD}/initial"} for oid in ("a", "b", "c")
    ]
    challenger = register_tiny_model(psettings, "challenger", "task-1")
    merged = api.post("/api/v1/clickstream/interleave", json=body).json()
    assert merged == api.post("/api/v1/clickstream/interleave", json=body).json()
    assert (merged["champion"], merged["challenger"]) == (f"{TINY_METHOD}/initial", challenger)
    assert sorted(r["object_id"] for r in merged["results"]) == ["a", "b", "c", "d"]
    assert {r["served_by"] for r in merged["results"]} == {merged["champion"], challenger}
    assert_error(
        api.post("/api/v1/clickstream/interleave", json={**body, "method": "nope"}),
        404,
        "method_not_found",
    )
    assert_error(
        api.post("/api/v1/clickstream/interleave", json={**body, "limit": 0}),
        422,
        "invalid_request",
        "limit",
    )


def test_a_batch_comparison_from_interleaved_sessions(api: TestClient, psettings: Settings) -> None:
    champion = f"{TINY_METHOD}/initial"
    challenger = register_tiny_model(psettings, "challenger", "task-1")
    results = [
        {"object_id": "a", "served_by": challenger},
        {"object_id": "b", "served_by": champion},
    ]
    for n in range(40):
        clicked = "a" if n < 30 else "b"
        session = {
            "session_id": f"s-{n}",
            "search_query": "q",
            "search_results": results,
            "user_id": f"u-{n}",
        }
        assert api.post("/api/v1/clickstream/session", json=session).status_code == 201
        events = {"session_id": f"s-{n}", "events": [{"event_id": "e", "object_id": clicked}]}
        assert api.post("/api/v1/clickstream/session/events", json=events).status_code == 200
    stored = api.get("/api/v1/clickstream/session/s-0").json()
    assert stored["search_results"][0]["served_by"] == challenger
    batch_id = api.post("/api/v1/clickstream/internal/batch/release", json={}).json()["batch_id"]
    report = api.get(
        f"/api/v1/clickstream/batches/{batch_id}/comparison", params={"method": TINY_METHOD}
    ).json()
    assert (report["champion"], report["challenger"]) == (champion, challenger)
    part = report["interleaving"]
    assert (part["wins"], part["losses"], part["ties"]) == (30, 10, 0)
    assert part["share"] == 0.75 and report["verdict"] == part["verdict"] == "better"
    assert report["ab"] is None and report["arms"] == []
    assert_error(
        api.get("/api/v1/clickstream/batches/nope/comparison", params={"method": TINY_METHOD}),
        404,
        "batch_not_found",
    )
