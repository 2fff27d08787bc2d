"""The fallback cache in an asyncio service, on the embedded SQLite default.

    python examples/async_service.py

SQLite is reached through ``ThreadedAsyncSource`` (the sync source in worker threads); with
PostgreSQL use ``vault.sources.postgres.AsyncPostgresSource(dsn)`` instead, unchanged
otherwise. The vault's file I/O runs in worker threads too, so the event loop never blocks.
One process: the database goes away while tasks keep reading, an update is journaled, and it
is replayed when the database is back (the quickstart shows a restart in between).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import tempfile
from pathlib import Path

import vault
from vault.cache import AsyncFallbackCache, CircuitBreaker
from vault.sources import ThreadedAsyncSource
from vault.sources.sqlite import SQLiteSource

NAME = "company-42"


async def worker(cache: AsyncFallbackCache, n: int) -> str:
    """A request handler: fetch the credential, say where it came from."""
    got = await cache.fetch(NAME)
    return f"task {n}: {got.origin}, registrationId={got.value['registrationId']}"


async def main() -> None:
    """Healthy reads, an outage with concurrent readers and a journaled save, recovery."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="     log: %(levelname)s %(name)s: %(message)s")
    workdir = Path(tempfile.mkdtemp(prefix="credseal-async-"))
    db, away = workdir / "app.db", workdir / "app.db.offline"
    v = vault.Vault(workdir / "vault-data", keys=vault.KeyRing([vault.Key.generate()]), ttl=3600)
    with SQLiteSource(db) as sqlite:
        sqlite.create_schema()
        # A short back-off so that this demo notices the recovery quickly (default 10 s).
        cache = AsyncFallbackCache(ThreadedAsyncSource(sqlite), v,
                                   breaker=CircuitBreaker(failure_threshold=1, reset_after=0.5))
        await cache.save(NAME, {"token": os.urandom(16), "registrationId": 4711})
        print("1. healthy:", *await asyncio.gather(*(worker(cache, n) for n in range(3))),
              sep="\n   ")
        db.rename(away)
        print("2. the database goes away; three tasks read at once:")
        print("  ", "\n   ".join(await asyncio.gather(*(worker(cache, n) for n in range(3)))))
        result = await cache.save(NAME, {"token": os.urandom(16), "registrationId": 4712})
        print(f"   saved registrationId=4712: journaled={result.journaled}, "
              f"degraded={cache.degraded}")
        away.rename(db)
        await asyncio.sleep(0.6)  # the breaker's back-off
        print("3. the database is back:", await worker(cache, 0), sep="\n   ")
        stored = await asyncio.to_thread(sqlite.load, NAME)
        print(f"   SQLite holds registrationId={stored['registrationId']}")


if __name__ == "__main__":
    asyncio.run(main())
