"""What every benchmark writes next to its figures: when, which commit, on what machine."""

from __future__ import annotations

import os
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "RESULTS.md"


def git_commit() -> str:
    """The short commit, marked when the working tree has uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{commit} (uncommitted changes)" if dirty else commit


def machine() -> str:
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.platform()}, "
        f"Python {platform.python_version()}"
    )


def append_section(title: str, lines: list[str]) -> None:
    """Append `## <title> — <UTC time>` and `lines` to bench/RESULTS.md."""
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    new_file = not RESULTS.exists()
    with RESULTS.open("a") as out:
        if new_file:
            out.write("# Benchmark results\n")
        out.write("\n".join(["", f"## {title} — {stamp}", "", *lines, ""]))
