"""OpenAI-style embeddings from a method's current model or a task's best model.

Models load lazily in the API process (no torch until the first request) and stay cached, a few
at a time. A method's champion is re-checked in the registry at most every
`embeddings_champion_ttl_s` seconds, so a new promotion is served without a restart.
"""

from __future__ import annotations

import base64
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import Engine

from clicktune.api.deps import get_engine, get_registry, get_settings
from clicktune.api.errors import ApiError
from clicktune.api.routers.models import task_with_model
from clicktune.api.schemas.common import NonEmptyText
from clicktune.logs import get_logger
from clicktune.methods.embedding import EmbeddingFineTuningMethod
from clicktune.methods.registry import MethodRegistry
from clicktune.settings import Settings

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

router = APIRouter(tags=["embeddings"])
log = get_logger(__name__)


class EmbeddingsRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")

    input: str | list[str] = Field(description="A text or a list of texts to embed.")
    model: Annotated[NonEmptyText, StringConstraints(max_length=256)] = Field(
        description="A method name (its current model) or a task id (that task's best model)."
    )
    encoding_format: Literal["float", "base64"] = Field(
        "float", description="`base64`: little-endian float32 bytes, as OpenAI clients ask for."
    )

    @field_validator("input", mode="before")
    @classmethod
    def _strings(cls, value: Any) -> Any:
        """One clear message (param `input`) instead of one per member of the union."""
        if isinstance(value, str):
            return value
        if not isinstance(value, list):
            raise PydanticCustomError("invalid_value", "must be a string or a list of strings")
        for index, text in enumerate(value):
            if not isinstance(text, str):
                raise PydanticCustomError("invalid_value", f"item {index} must be a string")
        return value


class ServedModels:
    """Loaded models by folder (LRU) and each method's resolved folder (with a TTL)."""

    def __init__(self, settings: Settings) -> None:
        from clicktune.tracking.serving import ModelStore

        self.settings = settings
        self.store = ModelStore(settings)
        self._models: OrderedDict[Path, SentenceTransformer] = OrderedDict()
        self._methods: dict[str, tuple[float, Path]] = {}
        self._lock = threading.Lock()

    def for_method(self, method: EmbeddingFineTuningMethod) -> SentenceTransformer:
        name = method.meta.name
        checked = self._methods.get(name)
        if (
            checked is None
            or time.monotonic() - checked[0] > self.settings.embeddings_champion_ttl_s
        ):
            champion = self.store.champion(method.registered_model_name)
            folder = (
                Path(method.initial_model_path())
                if champion is None
                else self.store.version_model_dir(method.registered_model_name, champion)
            )
            self._methods[name] = (time.monotonic(), folder)
        else:
            folder = checked[1]
        return self._load(folder, method)

    def for_task(self, task_id: str, best_model_uri: str) -> SentenceTransformer:
        return self._load(self.store.task_model_dir(task_id, best_model_uri), None)

    def _load(self, folder: Path, method: EmbeddingFineTuningMethod | None) -> SentenceTransformer:
        with self._lock:
            model = self._models.get(folder)
            if model is None:
                if method is not None:
                    model = method.load_model(folder)
                else:
                    from sentence_transformers import SentenceTransformer

                    model = SentenceTransformer(str(folder))
                self._models[folder] = model
                while len(self._models) > max(1, self.settings.embeddings_cached_models):
                    self._models.popitem(last=False)
            self._models.move_to_end(folder)
            return model


_state_lock = threading.Lock()


def served_models(request: Request) -> ServedModels:
    """The app's model cache, made on first use (so the API starts without torch)."""
    state = request.app.state
    with _state_lock:
        if getattr(state, "served_models", None) is None:
            state.served_models = ServedModels(state.settings)
    return state.served_models


def _texts(body: EmbeddingsRequest, settings: Settings) -> list[str]:
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise ApiError(422, "invalid_request", "input: must not be an empty list.", "input")
    if len(texts) > settings.embeddings_max_inputs:
        raise ApiError(
            422,
            "too_many_inputs",
            f"input: at most {settings.embeddings_max_inputs} texts per request, got {len(texts)}.",
            "input",
        )
    for index, text in enumerate(texts):
        param = "input" if isinstance(body.input, str) else f"input.{index}"
        if not text.strip():
            raise ApiError(422, "invalid_request", f"{param}: must not be empty.", param)
        if "\x00" in text or _has_lone_surrogate(text):
            raise ApiError(
                422, "invalid_request", f"{param}: must be valid Unicode without NUL.", param
            )
    return texts


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _resolve(
    name: str, registry: MethodRegistry, engine: Engine, served: ServedModels
) -> SentenceTransformer:
    method = registry.get(name)
    if method is not None:
        if not isinstance(method, EmbeddingFineTuningMethod):
            raise ApiError(
                404, "model_not_found", f"Method {name!r} does not serve embeddings.", "model"
            )
        return _loaded(name, lambda: served.for_method(method))
    try:
        task = task_with_model(engine, name)
    except ApiError as exc:
        if exc.code != "task_not_found":
            raise ApiError(exc.status, exc.code, exc.message, "model") from exc
        raise ApiError(
            404,
            "model_not_found",
            f"No method or task called {name!r}; methods: {registry.names()}.",
            "model",
        ) from exc
    return _loaded(name, lambda: served.for_task(task["id"], task["best_model_uri"]))


def _loaded(name: str, load: Callable[[], SentenceTransformer]) -> SentenceTransformer:
    """The model, or 503 when it cannot be fetched or loaded (the store, not the client, failed)."""
    try:
        return load()
    except Exception as exc:
        log.exception("embedding_model_unavailable", model=name)
        raise ApiError(
            503,
            "model_unavailable",
            f"The model for {name!r} cannot be loaded now: {type(exc).__name__}: {exc}",
            "model",
        ) from exc


@router.post("/embeddings")
def create_embeddings(
    body: EmbeddingsRequest,
    settings: Annotated[Settings, Depends(get_settings)],
    registry: Annotated[MethodRegistry, Depends(get_registry)],
    engine: Annotated[Engine, Depends(get_engine)],
    served: Annotated[ServedModels, Depends(served_models)],
) -> dict[str, Any]:
    """Embed `input` with `model`; the vectors are what `SentenceTransformer(folder).encode`
    gives for the same model folder."""
    texts = _texts(body, settings)
    model = _resolve(body.model, registry, engine, served)
    vectors = model.encode(texts, convert_to_numpy=True, show_progress_bar=False)
    tokens = sum(
        len(ids)
        for ids in model.tokenizer(texts, truncation=True, max_length=model.max_seq_length)[
            "input_ids"
        ]
    )
    data = []
    for index, vector in enumerate(vectors):
        embedding: list[float] | str = (
            base64.b64encode(vector.astype("<f4").tobytes()).decode("ascii")
            if body.encoding_format == "base64"
            else vector.astype(float).tolist()
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": body.model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
