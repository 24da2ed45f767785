"""Field types every input shares, strict enough that storage never fails.

Both databases must be able to store and return whatever passes: no NUL characters or lone
surrogates in strings, no NaN or infinity, JSON objects of bounded depth and (checked against the
settings, by `check_json_size`) bounded size.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any

from pydantic import AfterValidator, Field, StringConstraints
from pydantic_core import PydanticCustomError

from clicktune.errors import InvalidInput

MAX_JSON_DEPTH = 32
MAX_QUERY_CHARS = 4096
MAX_TEXT_CHARS = 32768
# The largest integer both databases store: query parameters above it are refused, not a 500.
MAX_STORED_INT = 2**63 - 1
# Integers past this have no portable JSON meaning (and Python refuses to print the huge ones).
_MAX_JSON_INT = 10**300


def _invalid(message: str) -> PydanticCustomError:
    return PydanticCustomError("invalid_value", message)


def _storable_text(value: str) -> str:
    if "\x00" in value:
        raise _invalid("must not contain NUL characters")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _invalid("must be valid Unicode (no lone surrogates)") from None
    return value


def _not_blank(value: str) -> str:
    if not value.strip():
        raise _invalid("must not be empty")
    return value


def _storable_json(value: dict[str, Any]) -> dict[str, Any]:
    pending: list[tuple[Any, int]] = [(value, 1)]
    while pending:
        node, depth = pending.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise _invalid(f"must not nest deeper than {MAX_JSON_DEPTH} levels")
            children = node.items() if isinstance(node, dict) else enumerate(node)
            for key, child in children:
                if isinstance(key, str):
                    _storable_text(key)
                pending.append((child, depth + 1))
        elif isinstance(node, str):
            _storable_text(node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise _invalid("must not contain NaN or infinite numbers")
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > _MAX_JSON_INT:
            raise _invalid("must not contain integers beyond 1e300")
    return value


Text = Annotated[str, Field(strict=True), AfterValidator(_storable_text)]
NonEmptyText = Annotated[
    str,
    StringConstraints(strict=True, min_length=1),
    AfterValidator(_storable_text),
    AfterValidator(_not_blank),
]
CLIENT_ID_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
"""No control characters: an id with a newline could be stored but never reached by its path,
and would write raw to logs. A lone surrogate fails any pattern. Checked in pydantic-core: ids
are most of the strings on the ingest path."""
ClientId = Annotated[
    str, StringConstraints(strict=True, min_length=1, max_length=256, pattern=CLIENT_ID_PATTERN)
]
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
Epoch = Annotated[
    float,
    Field(strict=True, ge=0, allow_inf_nan=False, description="UNIX epoch seconds."),
]
JsonObject = Annotated[dict[str, Any], AfterValidator(_storable_json)]


def json_size(value: Any) -> int:
    return len(json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode())


def check_json_size(value: dict[str, Any], max_bytes: int, param: str) -> None:
    """`InvalidInput` `meta_too_large` when the object's JSON is over `max_bytes`."""
    if value and json_size(value) > max_bytes:
        raise InvalidInput(
            f"{param} is larger than {max_bytes} bytes.", param, code="meta_too_large"
        )


def check_count(count: int, limit: int, code: str, param: str) -> None:
    """`InvalidInput` with `code` when `param` has more than `limit` entries."""
    if count > limit:
        raise InvalidInput(
            f"{param} has {count} entries; at most {limit} are allowed.", param, code=code
        )
