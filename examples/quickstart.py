"""credseal in one minute: a service keeps its credentials through a database outage.

Run it with ./scripts/quickstart. The database is the embedded SQLite default; everything
happens in a temporary directory. Each "service start" is a new process (this file run with
``--service``), which gets the key through its environment, never its command line.

1. The service saves a WhatsApp-style credential to SQLite (and, encrypted, to the vault).
2. The database goes away; the service restarts and is served from the encrypted cache, with a
   warning, and saves an update, which waits in the encrypted journal.
3. The database is back; the service restarts, the update is replayed into SQLite first.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import vault
from vault.cache import FallbackCache
from vault.sources.sqlite import SQLiteSource

NAME = "company-42"


def service(workdir: Path, phase: str) -> None:
    """One start of the service: open the vault and the database, then do ``phase``."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="     log: %(levelname)s %(name)s: %(message)s")
    ring = vault.KeyRing.from_text(os.environ["CREDSEAL_KEYS"])
    v = vault.Vault(workdir / "vault-data", keys=ring, ttl=3600)
    with SQLiteSource(workdir / "app.db") as source:
        cache = FallbackCache(source, v)
        if phase == "first":
            creds = {"noiseKey": {"private": os.urandom(32), "public": os.urandom(32)},
                     "registrationId": 4711, "me": {"id": "4915100000000:7@s.whatsapp.net"}}
            cache.save(NAME, creds)
        got = cache.fetch(NAME)
        print(f"   [pid {os.getpid()}] {NAME!r} from the {got.origin}: registrationId="
              f"{got.value['registrationId']}, age {got.age_seconds:.1f} s, "
              f"degraded={cache.degraded}")
        if phase == "outage":
            result = cache.save(NAME, {**got.value, "registrationId": 4712})
            print(f"   [pid {os.getpid()}] saved registrationId=4712 during the outage: "
                  f"journaled={result.journaled}")


def start_service(workdir: Path, phase: str, env: dict[str, str]) -> None:
    """Start the service as a new process and wait for it."""
    subprocess.run([sys.executable, __file__, "--service", phase, str(workdir)], env=env,
                   check=True)


def main() -> None:
    """Tell the story: healthy start, outage and restart, recovery and replay."""
    workdir = Path(tempfile.mkdtemp(prefix="credseal-quickstart-"))
    db, away = workdir / "app.db", workdir / "app.db.offline"
    with SQLiteSource(db) as source:
        source.create_schema()
    env = {**os.environ, "CREDSEAL_KEYS": vault.KeyRing([vault.Key.generate()]).to_text()}

    print("1. The service starts and saves its credentials; the database is up.")
    start_service(workdir, "first", env)
    cached = next((workdir / "vault-data").glob("*.cve"))
    info = vault.Vault(workdir / "vault-data", read_only=True).info(NAME)  # no key needed
    print(f"   the encrypted copy {cached.name[:12]}... is {cached.stat().st_size} bytes of "
          f"AES-256-GCM; 'registrationId' in clear: {b'registrationId' in cached.read_bytes()}; "
          f"visible without a key: name {info.name!r}, key {info.key_id}")
    print("2. The database goes away (app.db moved aside) and the service restarts.")
    db.rename(away)
    start_service(workdir, "outage", env)
    print("3. The database is back and the service restarts: the journal is replayed first.")
    away.rename(db)
    start_service(workdir, "recovered", env)
    conn = sqlite3.connect(db)
    try:
        (text,) = conn.execute("SELECT value FROM credentials WHERE name = ?",
                               (NAME,)).fetchone()
    finally:
        conn.close()
    journal = list((workdir / "vault-data" / "journal").glob("*.cvj"))
    print(f"4. SQLite itself now holds registrationId={vault.codec.loads(text)['registrationId']}"
          f"; pending journal records: {len(journal)}.")
    print(f"(files left in {workdir} for you to look at: vault-data/ is the encrypted vault; "
          "app.db is the example's primary database and, like any plain SQLite table, holds "
          f"the credential as plaintext JSON. Remove both with: rm -r {workdir})")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--service":
        service(Path(sys.argv[3]), sys.argv[2])
    else:
        main()
