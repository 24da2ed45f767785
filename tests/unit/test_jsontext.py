"""Fast JSON writing keeps every value a client may send exactly as the standard library would."""

from __future__ import annotations

import json

import pytest

from clicktune.jsontext import json_bytes, json_text

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
