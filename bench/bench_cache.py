"""How fast does ``FallbackCache.get`` answer while the database is down?

Goal: p99 <= 5 ms with the breaker open, against about 2 s per call without a breaker (the
connect timeout to a server that accepts and never answers). Also the ratio against a ``get``
served by a healthy PostgreSQL. Starts a throwaway PostgreSQL cluster (the tests' helper,
``tests.realparts.PostgresServer``), which needs ``postgresql`` installed. Prints, asserts
nothing. Run: ``.venv/bin/python -m bench.bench_cache``.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import vault
from bench.timing import Timing, interleave, ratio_line, us, verdict
from tests.realparts import PostgresServer, _pg_bindir, free_port
from vault.cache import CircuitBreaker, FallbackCache
from vault.sources.postgres import PostgresSource
from vault.sources.sqlite import SQLiteSource

ROUNDS = 3000
CRED = {"noiseKey": {"private": os.urandom(32), "public": os.urandom(32)},
        "registrationId": 4711, "me": {"id": "4915100000000:7@s.whatsapp.net", "name": "Shop"},
        "signedPreKey": {"keyPair": {"private": os.urandom(32), "public": os.urandom(33)},
                         "signature": os.urandom(64), "keyId": 1}}


def line(timing: Timing) -> str:
    """p50, p99 and max of one candidate."""
    return (f"{timing.name:<28} p50 {us(timing.median):>12}   p99 {us(timing.quantile(0.99)):>12}"
            f"   max {us(max(timing.samples)):>12}")


def start_server() -> PostgresServer:
    """A throwaway cluster on a free port (runuser postgres when run as root)."""
    bindir = _pg_bindir()
    if bindir is None:
        raise SystemExit("PostgreSQL is not installed: apt-get install postgresql")
    run_as = "postgres" if os.geteuid() == 0 else None
    server = PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="credseal-bench-pg-")),
                            free_port(), run_as)
    server.init()
    return server


def main(argv: list[str] | None = None) -> None:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="500 rounds instead of 3,000")
    rounds = 500 if parser.parse_args(argv).quick else ROUNDS
    logging.getLogger("vault.cache").setLevel(logging.ERROR)  # the degraded warnings
    server = start_server()
    workdir = Path(tempfile.mkdtemp(prefix="credseal-bench-"))
    blackhole = socket.socket()
    blackhole.bind(("127.0.0.1", 0))
    blackhole.listen(64)  # accepts connections (kernel backlog), never answers
    dead_dsn = server.dsn_for(port=blackhole.getsockname()[1])
    sources: list[PostgresSource | SQLiteSource] = []
    try:
        v = vault.Vault(workdir / "vault", keys=vault.KeyRing([vault.Key.generate()]), ttl=3600)
        pg = PostgresSource(server.dsn, table="bench")
        sqlite = SQLiteSource(workdir / "app.db")
        down = PostgresSource(dead_dsn, table="bench")
        sources += [pg, sqlite, down]
        pg.create_schema()
        sqlite.create_schema()
        healthy = FallbackCache(pg, v)
        healthy.save("company-42", CRED)
        sqlite_cache = FallbackCache(sqlite, vault.Vault(workdir / "v2", keys=v.keys))
        sqlite_cache.save("company-42", CRED)
        open_breaker = FallbackCache(down, v, breaker=CircuitBreaker(1, 3600))
        start = time.perf_counter()
        open_breaker.get("company-42")  # the one call that waits: it opens the breaker
        first = time.perf_counter() - start

        results = interleave({"healthy PostgreSQL": lambda: healthy.get("company-42"),
                              "healthy SQLite": lambda: sqlite_cache.get("company-42"),
                              "down, breaker open": lambda: open_breaker.get("company-42")},
                             rounds)
        no_breaker = FallbackCache(down, v, breaker=CircuitBreaker(10**9, 1))
        slow = []
        for _ in range(3):
            start = time.perf_counter()
            no_breaker.get("company-42")
            slow.append(time.perf_counter() - start)

        print(f"FallbackCache.get of a {len(vault.codec.dumps(CRED))}-byte credential, "
              f"{rounds} interleaved rounds")
        for timing in results.values():
            print("  " + line(timing))
        print("  " + line(Timing("down, no breaker (3 calls)", tuple(slow))))
        print(f"  first call to the dead server (opens the breaker): {first:.2f} s")
        down_open = results["down, breaker open"]
        print(ratio_line("down with breaker open vs healthy PostgreSQL", down_open,
                         results["healthy PostgreSQL"], "p99 <= 5 ms"))
        print(f"p99 with the breaker open: {down_open.quantile(0.99) * 1000:.3f} ms "
              f"(goal <= 5 ms: {verdict(down_open.quantile(0.99) * 1000, '<=', 5.0)}); "
              "without a breaker every call waits "
              f"{min(slow):.2f} s, {min(slow) / down_open.median:,.0f}x longer")
    finally:
        for source in sources:
            source.close()
        blackhole.close()
        server.destroy()
        shutil.rmtree(workdir, ignore_errors=True)  # the vault and app.db of the run


if __name__ == "__main__":
    main()
