"""`/embeddings` as OpenAI's own Python client uses it, over a real HTTP server."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import numpy as np
import openai
import pytest
import uvicorn
from sentence_transformers import SentenceTransformer

from clicktune.api.app import create_app
from clicktune.settings import Settings
from clicktune.simulate.service import free_port
from tests.pipeline_support import TINY_METHOD, tiny_model_path

pytestmark = pytest.mark.usefixtures("one_thread")

TEXTS = ["crimson sneaker", "hat in blue by zenith"]


@pytest.fixture
def base_url(psettings: Settings) -> Iterator[str]:
    """The API served by uvicorn on a free port, in this process."""
    port = free_port()
    config = uvicorn.Config(create_app(psettings), port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/api/v1"
    server.should_exit = True
    thread.join(timeout=30)


def test_the_openai_client_gets_the_models_vectors(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="unused-without-keys", max_retries=0)
    expected = SentenceTransformer(str(tiny_model_path())).encode(TEXTS)

    answer = client.embeddings.create(input=TEXTS, model=TINY_METHOD)  # base64 by default
    got = np.array([item.embedding for item in answer.data], dtype=np.float32)
    assert np.allclose(got, expected, atol=1e-6)
    assert answer.model == TINY_METHOD
    assert answer.usage.prompt_tokens > 0

    short = client.embeddings.create(input=TEXTS, model=TINY_METHOD, dimensions=8)
    vectors = np.array([item.embedding for item in short.data])
    assert vectors.shape == (2, 8)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    direction = expected[:, :8] / np.linalg.norm(expected[:, :8], axis=1, keepdims=True)
    assert np.allclose(vectors, direction, atol=1e-5)

    with pytest.raises(openai.NotFoundError) as missing:
        client.embeddings.create(input="x", model="No Such Model")
    assert missing.value.status_code == 404
    with pytest.raises(openai.UnprocessableEntityError):
        client.embeddings.create(input="x", model=TINY_METHOD, dimensions=10**6)
