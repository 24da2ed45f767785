"""Responses the hot paths build themselves."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

from clicktune.jsontext import json_bytes


class FastJSONResponse(JSONResponse):
    """A JSON response written by orjson (`clicktune.jsontext`): the same JSON as Starlette's,
    in a fraction of the time for a session with its events or a page of a batch."""

    def render(self, content: Any) -> bytes:
        return json_bytes(content)
