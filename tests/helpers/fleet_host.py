"""One host of a fleet, as a child process: a FallbackCache on PostgreSQL and Redis.

Usage: python -m tests.helpers.fleet_host CREDSEAL_DIR TABLE, with TEST_PG_DSN, TEST_REDIS_URL
(or TEST_REDIS_SENTINELS, ``host:port,...``, and TEST_REDIS_SERVICE) and CREDSEAL_KEYS
(the ring: one for the whole fleet, the env key source's way) in the environment. It reads
one action per line on stdin and answers each with one line, both in the codec's tagged JSON
(values hold bytes):
``["get", name]``, ``["save", name, value]``, ``["delete", name]``, ``["prefetch", [names]]``,
``["sync"]`` (wait for copies taken from Redis to be in the vault), ``["pending"]``,
``["events"]`` (the event kinds since the last ask). Values never go in argv.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import vault
from vault import codec
from vault.cache import CacheEvent, CircuitBreaker, FallbackCache
from vault.cache.redis import RedisTier
from vault.errors import VaultError
from vault.sources.postgres import PostgresSource


def main() -> None:
    """Serve actions from stdin until it closes."""
    logging.basicConfig(level=logging.ERROR, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    directory, table = sys.argv[1], sys.argv[2]
    ring = vault.KeyRing.from_text(os.environ["CREDSEAL_KEYS"])
    events: list[CacheEvent] = []
    source = PostgresSource(os.environ["TEST_PG_DSN"], table=table, connect_timeout=2,
                            statement_timeout=2)
    # Short breaker resets, so that a test sees both tiers come back within seconds.
    tier_breaker = CircuitBreaker(failure_threshold=1, reset_after=0.5)
    if os.environ.get("TEST_REDIS_SENTINELS"):  # host:port,host:port and the service name
        sentinels = [(h, int(p)) for h, _, p in (item.rpartition(":") for item in
                                                 os.environ["TEST_REDIS_SENTINELS"].split(","))]
        tier = RedisTier.from_sentinel(sentinels, os.environ["TEST_REDIS_SERVICE"],
                                       breaker=tier_breaker)
    else:
        tier = RedisTier.from_url(os.environ["TEST_REDIS_URL"], breaker=tier_breaker)
    cache = FallbackCache(source, vault.Vault(directory, keys=ring, ttl=3600), shared=tier,
                          on_event=events.append,
                          breaker=CircuitBreaker(failure_threshold=1, reset_after=0.5))
    try:
        for line in sys.stdin:
            op, *args = codec.loads(line)
            out: dict[str, Any] = {"op": op}
            try:
                if op == "get":
                    fetched = cache.fetch(args[0])
                    out.update(value=fetched.value, origin=fetched.origin)
                elif op == "save":
                    out.update(journaled=cache.save(args[0], args[1]).journaled)
                elif op == "delete":
                    out.update(journaled=cache.delete(args[0]).journaled)
                elif op == "prefetch":
                    report = cache.prefetch(args[0])
                    out.update(found=report.found, copied=report.copied)
                elif op == "sync":
                    out.update(done=cache.wait_for_copies())
                elif op == "pending":
                    pending = cache.pending
                    out.update(count=pending.count, conflicts=pending.conflicts)
                elif op == "events":
                    out.update(kinds=[event.kind for event in events])
                    events.clear()
            except VaultError as exc:
                out.update(error=type(exc).__name__)
            print(codec.dumps(out).decode(), flush=True)
    finally:
        cache.close()
        tier.close()
        source.close()


if __name__ == "__main__":
    main()
