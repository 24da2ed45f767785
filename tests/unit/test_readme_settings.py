"""The README's settings table is the one place users look: every setting must be in it."""

from pathlib import Path

from clicktune.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_is_documented_in_the_readme() -> None:
    text = README.read_text()
    missing = [
        f"CLICKTUNE_{name.upper()}"
        for name in Settings.model_fields
        if f"`CLICKTUNE_{name.upper()}`" not in text
    ]
    assert missing == []
