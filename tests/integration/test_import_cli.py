"""`clicktune import-clickstream` and `clicktune import-items` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from clicktune.settings import Settings
from clicktune.store import clickstream, items
from clicktune.store.engine import read_transaction

CLICKTUNE = str(Path(sys.executable).parent / "clicktune")


def run_cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "CLICKTUNE_DATA_DIR": str(settings.data_dir),
        "CLICKTUNE_DATABASE_URL": settings.effective_database_url,
    }
    return subprocess.run(
        [CLICKTUNE, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def test_import_clickstream_file(tmp_path: Path, settings: Settings, engine: Engine) -> None:
    sessions = [
        {
            "session_id": f"s-{n}",
            "search_query": f"query {n}",
            "search_results": [{"object_id": "o-1"}, {"object_id": "o-2"}],
            "created_at": 1_600_000_000 + n,
            "events": [{"event_id": "e-1", "object_id": "o-2", "created_at": 1_600_000_100 + n}],
        }
        for n in range(1200)
    ]
    lines = [json.dumps(session) for session in sessions]
    lines.insert(600, "{broken")
    lines.append(json.dumps({"session_id": "s-bad", "search_query": "q"}))
    source = write_lines(tmp_path / "clicks.jsonl", lines)

    first = run_cli(settings, "import-clickstream", str(source))
    assert first.returncode == 1, first.stderr
    assert "sessions 1200, events 1200, duplicates 0, bad lines 2" in first.stdout
    assert "line 601: invalid_json" in first.stdout
    assert "line 1202: invalid_request (search_results)" in first.stdout
    with read_transaction(engine) as conn:
        batch = clickstream.list_batches(conn, "collecting", 10, 0)[0][0]
        session = clickstream.get_session(conn, "s-1199")
    assert (batch["sessions"], batch["events"]) == (1200, 1200)
    assert session is not None and session["created_at"] == 1_600_001_199

    again = run_cli(settings, "import-clickstream", str(source))
    assert "sessions 0, events 0, duplicates 2400, bad lines 2" in again.stdout

    missing = run_cli(settings, "import-clickstream", str(tmp_path / "missing.jsonl"))
    assert missing.returncode == 2


def test_import_items_file(tmp_path: Path, settings: Settings, engine: Engine) -> None:
    lines = [json.dumps({"object_id": f"o-{n}", "text": f"text {n}"}) for n in range(700)]
    lines.append(
        json.dumps({"object_id": "o-fields", "fields": {"title": "T"}, "item_info": {"a": 1}})
    )
    result = run_cli(settings, "import-items", str(write_lines(tmp_path / "items.jsonl", lines)))
    assert result.returncode == 0, result.stderr
    assert "upserted 701, bad lines 0" in result.stdout
    with read_transaction(engine) as conn:
        found = items.get_items(conn, ["o-0", "o-699", "o-fields", "o-unknown"])
    assert set(found) == {"o-0", "o-699", "o-fields"}
    assert found["o-fields"]["meta"] == {"a": 1}
