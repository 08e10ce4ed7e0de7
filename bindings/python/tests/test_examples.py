"""The quickstart runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def test_quickstart_runs_as_written(tmp_path: Path) -> None:
    db = tmp_path / "callbacks.db"
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), str(db)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert out[0].startswith("cb_") and out[0].endswith("Status.SCHEDULED")
    assert out[1] == "2030-03-05T10:00:00Z"
    assert out[2] == "1 dispatched"
    # dispatch's claim is placed once; the same claim again is refused.
    assert out[3].startswith("cb_") and out[3].endswith("Status.DISPATCHED")
    assert out[4].startswith(f"INVALID_TRANSITION cannot place_call callback {out[3].split()[0]}: stale claim")
    assert out[5].startswith("INVALID_TRANSITION cannot cancel callback cb_")
    # A second run finds the same callback (idempotency key) and nothing due.
    again = subprocess.run(
        [sys.executable, str(EXAMPLE), str(db)], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert again[0].split()[0] == out[0].split()[0]
    assert again[2] == "0 dispatched"


def test_the_readme_shows_the_tested_quickstarts() -> None:
    root = Path(__file__).resolve().parents[3]
    readme = (root / "README.md").read_text()
    for example in [EXAMPLE, root / "bindings" / "kotlin" / "examples" / "Quickstart.kt"]:
        assert example.read_text().strip() in readme, f"README lost {example.name}"
