"""A worker sees one device: the one configured, or the first CUDA device."""

from __future__ import annotations

import pytest

from clicktune.device import VISIBLE_DEVICES, pin_device


@pytest.mark.parametrize(
    ("configured", "visible", "pinned"),
    [
        (None, None, "0"),
        (None, "2,3", "2"),
        ("cuda", "5", "5"),
        ("cuda:1", None, "1"),
        ("cuda:1", "4, 6", "6"),
        ("cpu", "0,1", ""),
    ],
)
def test_one_device_is_visible(configured: str | None, visible: str | None, pinned: str) -> None:
    environ = {} if visible is None else {VISIBLE_DEVICES: visible}
    assert pin_device(configured, environ) == pinned
    assert environ[VISIBLE_DEVICES] == pinned


def test_a_device_that_is_not_visible_is_refused() -> None:
    with pytest.raises(ValueError, match="only 2 are visible"):
        pin_device("cuda:2", {VISIBLE_DEVICES: "0,1"})
