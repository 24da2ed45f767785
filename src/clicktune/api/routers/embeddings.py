"""OpenAI-style embeddings from a method's current model or a task's best model.

Models load lazily in the API process (no torch until the first request) and stay cached
(`tracking/model_cache.py`).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from typing import TypeVar

import numpy as np
from fastapi import APIRouter, Response
from sqlalchemy import Engine

from clicktune.api.deps import (
    EngineDep,
    MetricsDep,
    RegistryDep,
    ServedModelsDep,
    SettingsDep,
)
from clicktune.api.routers.models import task_with_model
from clicktune.api.schemas.embeddings import (
    Embedding,
    EmbeddingsRequest,
    EmbeddingsResponse,
    EmbeddingsUsage,
)
from clicktune.errors import (
    InvalidInput,
    ModelNotFound,
    ModelUnavailable,
    NoChallenger,
    unavailable_on_error,
)
from clicktune.methods.embedding import EmbeddingFineTuningMethod
from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings
from clicktune.store.tasks import TaskHasNoModel, TaskNotFound
from clicktune.tracking.model_cache import Served, ServedModels
from clicktune.tracking.registry import CHALLENGER, CHAMPION, Alias

Loaded = TypeVar("Loaded")

router = APIRouter(tags=["embeddings"])
MODEL_VERSION_HEADER = "X-Clicktune-Model-Version"


def _texts(body: EmbeddingsRequest, settings: Settings) -> list[str]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise InvalidInput("input: must not be an empty list.", "input")
    if len(texts) > settings.embeddings_max_inputs:
        raise InvalidInput(
            f"input: at most {settings.embeddings_max_inputs} texts per request, got {len(texts)}.",
            "input",
            code="too_many_inputs",
        )
    for index, text in enumerate(texts):
        param = "input" if isinstance(body.input, str) else f"input.{index}"
        if not text.strip():
            raise InvalidInput(f"{param}: must not be empty.", param)
        if len(text) > settings.embeddings_max_chars:
            raise InvalidInput(
                f"{param}: {len(text)} characters; at most {settings.embeddings_max_chars} "
                "(CLICKTUNE_EMBEDDINGS_MAX_CHARS).",
                param,
                code="input_too_long",
            )
        if "\x00" in text or _has_lone_surrogate(text):
            raise InvalidInput(f"{param}: must be valid Unicode without NUL.", param)
    return texts


def _shortened(vectors: np.ndarray, dimensions: int) -> np.ndarray:
    """The first `dimensions` of each vector at unit length, as OpenAI's `dimensions` gives."""
    kept = vectors[:, :dimensions]
    norms = np.linalg.norm(kept, axis=1, keepdims=True)
    return kept / np.where(norms == 0, 1.0, norms)


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


AB = "ab"


def _resolve(
    body: EmbeddingsRequest,
    registry: MethodRegistry,
    engine: Engine,
    served: ServedModels,
    settings: Settings,
) -> Served:
    """`<method>` (its champion), `<method>@champion|challenger|ab`, or a task id."""
    name = body.model
    method_name, _, alias = name.rpartition("@")
    if registry.get(name) is not None or alias not in (CHAMPION, CHALLENGER, AB):
        method_name, alias = name, CHAMPION
    method = registry.get(method_name)
    if method is None:
        return _task_model(name, registry, engine, served)
    if not isinstance(method, EmbeddingFineTuningMethod):
        raise ModelNotFound(f"Method {name!r} does not serve embeddings.", "model")
    if alias == AB:
        if body.user is None:
            raise InvalidInput(f"user: {name!r} routes by user; send `user`.", "user")
        user = body.user
        alias = _loaded(
            name,
            lambda: _arm(method.registered_model_name, user, served, settings.challenger_share),
        )
    model = _loaded(
        name,
        lambda: served.alias(
            method.registered_model_name,
            CHALLENGER if alias == CHALLENGER else CHAMPION,
            method.initial_model_path,
            method.load_model,
        ),
    )
    if model is None:
        raise NoChallenger(
            f"Method {method_name!r} has no challenger now: its tasks promote on judged "
            "evidence, or none has run without a judged set since the last decision.",
            "model",
        )
    return model


def _arm(registered_model_name: str, user: str, served: ServedModels, share: float) -> Alias:
    """The user's arm of an A/B test: the same user always lands in the same one (a stable hash
    of the model and the user), `share` of users in the challenger's while there is one."""
    if served.version(registered_model_name, CHALLENGER) is None:
        return CHAMPION
    digest = hashlib.sha256(f"{registered_model_name}\x00{user}".encode()).digest()
    return CHALLENGER if int.from_bytes(digest[:8], "big") / 2**64 < share else CHAMPION


def _task_model(
    name: str, registry: MethodRegistry, engine: Engine, served: ServedModels
) -> Served:
    try:
        task = task_with_model(engine, name)
    except TaskNotFound as exc:
        raise ModelNotFound(
            f"No method or task called {name!r}; methods: {registry.names()}.", "model"
        ) from exc
    except TaskHasNoModel as exc:
        raise exc.with_param("model") from None
    best_model_uri = task.best_model_uri
    assert best_model_uri is not None
    return _loaded(name, lambda: served.task_model(task.id, best_model_uri))


def _loaded(name: str, load: Callable[[], Loaded]) -> Loaded:
    """What `load` reads of the model (its version, the model itself), or `ModelUnavailable`
    when the model store cannot answer (the store, not the client, failed)."""
    with unavailable_on_error(
        ModelUnavailable, f"The model for {name!r} cannot be loaded now", "model", model=name
    ):
        return load()


@router.post("/embeddings", response_model=EmbeddingsResponse)
def create_embeddings(
    body: EmbeddingsRequest,
    response: Response,
    settings: SettingsDep,
    registry: RegistryDep,
    engine: EngineDep,
    served: ServedModelsDep,
    metrics: MetricsDep,
) -> EmbeddingsResponse:
    """Embed `input` with `model`; the vectors are what `SentenceTransformer(folder).encode`
    gives for the same model folder."""
    texts = _texts(body, settings)
    answering = _resolve(body, registry, engine, served, settings)
    size = answering.model.get_embedding_dimension()
    if body.dimensions is not None and size is not None and body.dimensions > size:
        raise InvalidInput(
            f"dimensions: the model's vectors have {size} dimensions, fewer than "
            f"{body.dimensions}.",
            "dimensions",
        )
    vectors, tokens = answering.embed(texts)
    metrics.embeddings.labels(answering.version).inc(len(texts))
    if body.dimensions is not None:
        vectors = _shortened(vectors, body.dimensions)
    data = [
        Embedding(
            index=index,
            embedding=(
                base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
                if body.encoding_format == "base64"
                else vector.astype(float).tolist()
            ),
        )
        for index, vector in enumerate(vectors)
    ]
    response.headers[MODEL_VERSION_HEADER] = answering.version
    return EmbeddingsResponse(
        data=data,
        model=body.model,
        model_version=answering.version,
        usage=EmbeddingsUsage(prompt_tokens=tokens, total_tokens=tokens),
    )
