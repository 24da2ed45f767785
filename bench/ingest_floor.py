"""The framework floor of `bench/ingest.py`: an endpoint that does nothing, served by uvicorn as
`clicktune api` serves the API, so its CPU per request is what FastAPI and uvicorn cost alone."""

from __future__ import annotations

from fastapi import FastAPI, Response

app = FastAPI()


@app.get("/api/v1/ping")
async def ping() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/floor", status_code=201)
async def floor() -> Response:
    return Response(status_code=201)
