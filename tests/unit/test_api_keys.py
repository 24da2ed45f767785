"""CLICKTUNE_API_KEYS: a key has one role and is long enough; errors never show a key."""

from __future__ import annotations

import pytest

from clicktune.settings import MIN_API_KEY_CHARS, parse_api_keys

GOOD = "k" * MIN_API_KEY_CHARS


def test_good_keys_map_to_their_roles() -> None:
    assert parse_api_keys(f"admin:{GOOD}a, ingest:{GOOD}b") == {
        f"{GOOD}a": "admin",
        f"{GOOD}b": "ingest",
    }


@pytest.mark.parametrize(
    ("value", "said"),
    [
        (f"admin:{GOOD}, ingest:{GOOD}", "entries 1 and 2 have the same key"),
        (f"admin:{GOOD}, admin:{GOOD}", "entries 1 and 2 have the same key"),
        (f"admin:{GOOD}, ingest:x-secret-9", "entry 2 has a key of fewer than 16 characters"),
        (f"admin:{GOOD}, owner:{GOOD}z", "entry 2 is not `role:key`"),
    ],
)
def test_bad_keys_are_refused_without_showing_them(value: str, said: str) -> None:
    with pytest.raises(ValueError, match="CLICKTUNE_API_KEYS") as refused:
        parse_api_keys(value)
    assert said in str(refused.value)
    assert GOOD not in str(refused.value) and "x-secret-9" not in str(refused.value)
