"""The examples run and tell their story (quickstart, PostgreSQL service, asyncio service)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hygiene import record
from tests.realparts import PostgresServer

ROOT = Path(__file__).resolve().parents[1]


def run_example(name: str, tmp_path: Path, env: dict[str, str] | None = None) -> str:
    """Run examples/<name> and return its output (it must exit 0).

    The examples leave their work directory for the reader to look at (in the temp
    directory); TMPDIR puts it in the test's ``tmp_path``, so that pytest removes it.
    """
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name)], cwd=ROOT,
                          env={**os.environ, **(env or {}), "TMPDIR": str(tmp_path)},
                          capture_output=True, text=True, timeout=120)
    record(proc.stdout + proc.stderr, f"examples/{name} output")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_quickstart_tells_the_outage_story(tmp_path: Path) -> None:
    """The quickstart serves from the cache with a warning after a restart, journals the
    update and shows it replayed into SQLite."""
    out = run_example("quickstart.py", tmp_path)
    assert "'company-42' from the cache: registrationId=4711" in out
    assert "'registrationId' in clear: False" in out  # the cached copy is ciphertext
    assert "WARNING vault.cache: credential source unavailable" in out
    assert "journaled=True" in out and "replayed 1 journaled write" in out
    assert "SQLite itself now holds registrationId=4712; pending journal records: 0." in out
    assert len({line.split("]")[0] for line in out.splitlines() if "[pid" in line}) == 3


def test_async_service_example(tmp_path: Path) -> None:
    """The asyncio example serves cached copies during the outage and replays the update."""
    out = run_example("async_service.py", tmp_path)
    assert out.count(": cache, registrationId=4711") == 3
    assert "SQLite holds registrationId=4712" in out


@pytest.mark.parametrize("outage", ["simulated", "real"])
def test_postgres_service_example(pg: PostgresServer, outage: str, tmp_path: Path) -> None:
    """The PostgreSQL example tells the same story, with a simulated or a real outage."""
    env = {"EXAMPLE_PG_DSN": pg.dsn, "EXAMPLE_PG_TABLE": pg.fresh_table_name("example")}
    if outage == "real":
        data = str(pg.data_dir)
        env["EXAMPLE_PG_STOP"] = shlex.join(pg._command("pg_ctl", "stop", "-D", data, "-m",
                                                          "fast", "-w"))
        env["EXAMPLE_PG_START"] = shlex.join(pg._command(
            "pg_ctl", "start", "-D", data, "-l", str(pg.log_path), "-w"))
    out = run_example("postgres_service.py", tmp_path, env)
    assert "'company-42' from the cache: registrationId=4711, degraded=True" in out
    assert "journaled=True" in out and "replayed 1 journaled write" in out
    assert "'company-42' from the source: registrationId=4712, degraded=False" in out


def test_postgres_example_needs_a_dsn() -> None:
    """Without EXAMPLE_PG_DSN the PostgreSQL example says what to set."""
    env = {k: v for k, v in os.environ.items() if k != "EXAMPLE_PG_DSN"}
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "postgres_service.py")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "EXAMPLE_PG_DSN" in proc.stderr


def test_keyring_backend_example(tmp_path: Path) -> None:
    out = run_example("keyring_backend.py", tmp_path)
    assert "backend: CredsealKeyring" in out and "token read back: True" in out
    files = out.split("files: ", 1)[1].strip().split(", ")
    assert files[1:] == ["keyfile.json", "vault.state"] and files[0].endswith(".cve")
    assert "pypi" not in files[0]  # the entry's name shows neither service nor user


def test_metrics_example(tmp_path: Path) -> None:
    out = run_example("metrics.py", tmp_path)
    assert "credseal.cache.answers{dir=" in out and ",origin=source} 1" in out
    assert "vault} 0" in out.split("credseal.cache.degraded", 1)[1].splitlines()[0]
