"""`CLICKTUNE_ACCESS_LOG=1`: the API logs a line per request, a key in its query string hidden;
off by default."""

from __future__ import annotations

from pathlib import Path

import httpx

from clicktune.simulate.service import instance_env, local_url, running


def test_the_access_log_is_a_setting(tmp_path: Path) -> None:
    for enabled in (True, False):
        env = instance_env(tmp_path / f"data-{enabled}", access_log=str(int(enabled)))
        log = tmp_path / f"api-{enabled}.log"
        with running("api", env, local_url(env), log=log):
            httpx.get(f"{local_url(env)}/api/v1/clickstream/batches?limit=7")
            httpx.get(f"{local_url(env)}/api/v1/ping?api_key=k3y-in-the-url&x=%1b%5b2J")
        text = log.read_text()
        logged = "GET /api/v1/clickstream/batches?limit=7" in text
        assert logged is enabled
        assert "k3y-in-the-url" not in text and "\x1b" not in text
        assert ("GET /api/v1/ping?api_key=***&x=%1b%5b2J" in text) is enabled
