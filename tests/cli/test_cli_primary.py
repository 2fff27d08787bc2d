"""The CLI and a sealed primary table (issue 14): migrate --primary, rotate and retire."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import vault
from tests.cli.test_cli_maintenance import env_vault
from tests.helpers.clirunner import PLAINTEXT, Cli
from vault.sources import SQLiteSource, TableTarget

NAMES = [f"company-{i}" for i in range(40)]


def stored(db: Path) -> dict[str, object]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute("SELECT name, value FROM credentials").fetchall())
    finally:
        conn.close()


def test_migrate_rotate_and_retire_a_sealed_primary(cli: Cli) -> None:
    ring = env_vault(cli)
    db = cli.home / "app.db"
    with SQLiteSource(db) as plain:
        plain.create_schema()
        for name in NAMES:
            plain.save(name, {"secret": PLAINTEXT, "name": name})
    env = {"key_source": "env", "primary": f"sqlite://{db}"}

    mixed = cli.run("status", "--json", keys=ring.to_text(), primary_sealed="true", **env)
    report = json.loads(mixed.stdout)
    assert report["primary_rows"] == {"plaintext": 40} and mixed.returncode == 1
    assert any("mixed" in problem for problem in report["problems"])
    dry = cli.run("migrate", "--primary", "--json", keys=ring.to_text(), **env)
    assert dry.returncode == 0, dry.stderr
    assert json.loads(dry.stdout) == {"applied": False, "plaintext_rows": 40,
                                      "sealed_rows": {}, "marked": False}
    assert all(isinstance(v, str) for v in stored(db).values())  # nothing changed

    done = cli.run("migrate", "--primary", "--apply", "--json", keys=ring.to_text(), **env)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["rows"], result["failed"], result["marked"]) == (40, 0, True)
    rows = stored(db)
    assert all(isinstance(v, bytes) and v.startswith(b"CVLT") for v in rows.values())
    status = cli.run("status", keys=ring.to_text(), primary_sealed="true", **env)
    assert f"primary     40 rows (40 under {ring.primary.id})" in status.stdout
    assert not any(PLAINTEXT.encode() in v for v in rows.values() if isinstance(v, bytes))

    published = cli.run("rotate", keys=ring.to_text(), primary_sealed="true", **env)
    assert published.returncode == 0, published.stderr
    text = published.stdout.strip().removeprefix("CREDSEAL_KEYS=")
    cli.allowed.append(text)
    new_ring = vault.KeyRing.from_text(text)
    cli.add_ring(new_ring)
    refused = cli.run("retire", ring.primary.id, keys=new_ring.to_text(), primary_sealed="true",
                      **env)
    assert refused.returncode != 0 and "primary items" in refused.stderr, refused.stderr

    rotated = cli.run("rotate", "--rewrap-only", "--json", keys=new_ring.to_text(),
                      primary_sealed="true", **env)
    assert rotated.returncode == 0, rotated.stderr
    report = json.loads(rotated.stdout)
    assert report["primary"]["rewrapped"] == 40 and report["primary"]["failed"] == 0
    # the audit record counts the table's rows per old key
    last = json.loads((cli.dir / "audit.jsonl").read_text().splitlines()[-1])
    assert last["action"] == "rotate"
    assert last["targets"]["primary"] == {"rewrapped": 40, "failed": 0, "skipped": 0,
                                          "by_key": {ring.primary.id: 40}}
    with SQLiteSource(db, keys=new_ring) as sealed:
        assert dict(TableTarget(sealed).key_ids()) == {new_ring.primary.id: 40}
        assert sealed.load(NAMES[7]) == {"secret": PLAINTEXT, "name": NAMES[7]}
    verified = cli.run("verify", "--json", keys=new_ring.to_text(), primary_sealed="true", **env)
    assert verified.returncode == 0, verified.stdout
    assert json.loads(verified.stdout)["primary_checked"] == 40
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("UPDATE credentials SET value = (SELECT value FROM credentials WHERE name = ?) "
                 "WHERE name = ?", (NAMES[1], NAMES[2]))  # a row moved to another name
    conn.close()
    broken = cli.run("verify", keys=new_ring.to_text(), primary_sealed="true", **env)
    assert broken.returncode == 1 and f"primary row '{NAMES[2]}'" in broken.stdout
    retired = cli.run("retire", ring.primary.id, keys=new_ring.to_text(), primary_sealed="true",
                      **env)
    assert retired.returncode == 0, retired.stderr
    cli.allowed.append(retired.stdout.strip().removeprefix("CREDSEAL_KEYS="))
