"""bandit, what reviewers run first, reports nothing of medium or high severity on vault/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import vault

PACKAGE = Path(vault.__file__).parent


def test_bandit_reports_no_medium_or_high_finding(tmp_path: Path) -> None:
    """``bandit -ll -r vault`` finds nothing; the only ``# nosec`` lines are the SQLite
    source's statements, whose one spliced part is a checked, quoted identifier."""
    report = tmp_path / "bandit.json"
    subprocess.run([sys.executable, "-m", "bandit", "-q", "-ll", "-r", str(PACKAGE), "-f",
                    "json", "-o", str(report)], capture_output=True, text=True, timeout=300)
    data = json.loads(report.read_text())
    assert data["errors"] == []
    assert [(r["filename"], r["line_number"], r["test_id"]) for r in data["results"]] == []
    nosec = sorted(str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
                   if "# nosec" in path.read_text())
    assert nosec == ["sources/sqlite.py"]
    # one per SQLite statement with the table spliced in (versions, the sealed table's walk)
    assert data["metrics"]["_totals"]["skipped_tests"] == 9
