"""Simulated users on live traffic split between a method's champion and its challenger.

As an application would: A/B asks the service's `/embeddings` for `<method>@ab` with each user,
ranks with the returned query vector in the index of the model that answered, and sends the
model version back as the session's `served_by`; interleaving ranks with both models, asks the
service to merge (`/clickstream/interleave`) and shows the merged list with each result's team.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from clicktune.client import ClicktuneClient
from clicktune.errors import NoChallenger
from clicktune.evaluation.retrieval import DenseRetriever
from clicktune.simulate.collection import Collection
from clicktune.simulate.serving import CorpusEncoding
from clicktune.simulate.sessions import PAGE_SIZE, Page, Serve


@dataclass(frozen=True)
class Arms:
    """The champion's and the challenger's served versions and a retriever for each."""

    method: str
    champion: str
    challenger: str
    retrievers: dict[str, DenseRetriever]


def load_arms(
    client: ClicktuneClient,
    method: str,
    collection: Collection,
    encoding: CorpusEncoding,
    models_dir: Path,
    initial_model: Path,
) -> Arms:
    """Both models of the method, downloaded once (a version is its producing task's model; the
    champion before any promotion is the method's initial model, `initial_model` here)."""
    models = client.method_models(method)
    if models["challenger"] is None:
        raise NoChallenger(f"method {method!r} has no challenger to compare with its champion")
    retrievers = {}
    versions = []
    for alias in ("champion", "challenger"):
        found = models[alias]
        if found is None:  # no promotion yet: the initial model serves
            folder = initial_model
            version = client.embed(["a query"], f"{method}@champion").model_version
        else:
            folder = models_dir / found["task_id"]
            if not folder.exists():
                client.download_model(found["task_id"], folder)
            version = found["model_version"]
        retrievers[version] = encoding.retriever(folder, collection, show_progress=True)
        versions.append(version)
    return Arms(method, versions[0], versions[1], retrievers)


def ab_serve(client: ClicktuneClient, arms: Arms, page_size: int = PAGE_SIZE) -> Serve:
    """Each user's page from the model the service's `@ab` routing picked for that user."""

    def serve(_session_id: str, user_id: str, _query_id: str, query: str) -> Page:
        embedded = client.embed([query], f"{arms.method}@ab", user=user_id)
        retriever = arms.retrievers[embedded.model_version]
        vectors = np.asarray(embedded.vectors, dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        [page] = retriever.search_encoded(vectors, page_size)
        return Page(tuple(page), served_by=embedded.model_version)

    return serve


def interleave_serve(
    client: ClicktuneClient,
    arms: Arms,
    collection: Collection,
    query_ids: list[str],
    page_size: int = PAGE_SIZE,
) -> Serve:
    """Each session's page merged by the service from both models' pages of its query."""
    texts = [collection.queries[q].text for q in query_ids]
    pages = {
        version: dict(zip(query_ids, retriever.search(texts, page_size), strict=True))
        for version, retriever in arms.retrievers.items()
    }

    def serve(session_id: str, _user_id: str, query_id: str, _query: str) -> Page:
        merged = client.interleave(
            session_id,
            arms.method,
            pages[arms.champion][query_id],
            pages[arms.challenger][query_id],
            limit=page_size,
        )
        results = merged["results"]
        return Page(
            tuple(r["object_id"] for r in results), teams=tuple(r["served_by"] for r in results)
        )

    return serve
