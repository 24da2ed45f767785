"""One JSON object validated as an input model and checked, its first fault an `InvalidInput`."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from clicktune.errors import InvalidInput, InvalidJson
from clicktune.ingest.fields import CLIENT_ID_PATTERN

Model = TypeVar("Model", bound=BaseModel)

_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})


def _param_path(loc: tuple[Any, ...], located: bool) -> str | None:
    """`a.0.b` from a pydantic location; `located`: its first part says where in the request
    (FastAPI's `body`, `query`, …), not a field."""
    if located and loc and loc[0] in _LOCATIONS:
        loc = loc[1:]
    return ".".join(str(part) for part in loc) or None


def invalid_input(errors: Sequence[Any], *, located: bool = False) -> InvalidInput:
    """The error for pydantic validation errors: the first one names the param.

    `located`: the errors are FastAPI's request errors (their locations start with where in
    the request); else a model validated the object itself.
    """
    first = errors[0] if errors else {"loc": (), "msg": "invalid request", "type": ""}
    if first.get("type") == "json_invalid":
        return InvalidJson()
    param = _param_path(tuple(first.get("loc", ())), located)
    message = str(first.get("msg", "invalid request"))
    if (first.get("ctx") or {}).get("pattern") == CLIENT_ID_PATTERN:
        message = "must not contain control characters (or lone surrogates)"
    if param:
        message = f"{param}: {message}"
    return InvalidInput(message, param)


def parse_json(
    raw: bytes, model: type[Model], check: Callable[[Model], None] | None = None
) -> Model | InvalidInput:
    """One JSON object as `model` (then `check`ed), or the error that refuses it."""
    try:
        try:
            value = model.model_validate_json(raw)
        except ValidationError as exc:
            if exc.errors()[0]["type"] != "json_invalid":
                raise
            # pydantic's parser refuses escaped lone surrogates ("\ud800"), which are JSON:
            # Python's decodes them and the model names the field that cannot hold one.
            try:
                decoded = json.loads(raw)
            except (ValueError, RecursionError):  # not JSON, or nested too deep to be a body
                raise exc from None
            value = model.model_validate(decoded)
        if check is not None:
            check(value)
    except ValidationError as exc:
        return invalid_input(exc.errors(include_url=False))
    except InvalidInput as exc:
        return exc
    return value


def placed_under(error: InvalidInput, where: str) -> InvalidInput:
    """The error of one object of many, its param under the object's place (`items.3`)."""
    return error.with_param(f"{where}.{error.param}" if error.param else where)
