"""Fast JSON writing keeps every value a client may send exactly as the standard library would."""

from __future__ import annotations

import json

import pytest

from clicktune.jsontext import canonical_hash, json_bytes, json_text

VALUES = [
    {"object_id": "doc-1", "rank": 0.99, "meta": {}},
    {"text": 'Grüße ✓ \u2028 "quoted" \\', "nested": [1, 2.5, None, True, {"a": []}]},
    {"small": 1e-05, "large": 1e16, "negative": -0.0},
    {"beyond_64_bits": 10**30, "negative": -(2**63) - 1, "top": 2**64 - 1},
]


@pytest.mark.parametrize("value", VALUES)
def test_the_text_reads_back_as_the_same_value(value: object) -> None:
    assert json.loads(json_text(value)) == value
    assert json.loads(json_bytes(value)) == value


def test_integers_beyond_64_bits_stay_exact() -> None:
    value = {"id": 123456789012345678901234567890}
    assert json_text(value) == '{"id":123456789012345678901234567890}'
    assert json.loads(json_text(value))["id"] == 123456789012345678901234567890


def test_the_canonical_hash_is_the_one_stored_rows_hold() -> None:
    session = {
        "session_id": "s-1",
        "search_query": "café",
        "search_results": [{"object_id": "o", "rank": None, "meta": {}}],
        "search_meta": {},
        "user_id": None,
        "created_at": 1.5,
    }
    reordered = dict(reversed(list(session.items())))
    expected = "eefa2c39061e726e93262a8e138fd9543c418fb706d92315e109efe972672247"
    assert canonical_hash(session) == canonical_hash(reordered) == expected
