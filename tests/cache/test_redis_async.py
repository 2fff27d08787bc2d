"""AsyncFallbackCache with the shared tier, on a real PostgreSQL and a real redis-server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import vault
from tests.helpers.backends import PostgresBackend
from tests.hygiene import CANARY_VALUE
from tests.realparts import PostgresServer, RedisServer
from vault.cache import AsyncFallbackCache, CircuitBreaker
from vault.cache.redis import RedisTier

CRED = {"token": CANARY_VALUE, "noiseKey": bytes(range(32))}


def test_an_async_fleet_host_never_blocks_its_event_loop(
        pg: PostgresServer, redis_server: RedisServer,
        make_vault: Callable[..., vault.Vault]) -> None:
    backend = PostgresBackend(pg)
    with backend.source() as source:
        source.save("c1", CRED)

    async def main() -> None:
        tiers = [RedisTier.from_url(redis_server.url, breaker=CircuitBreaker(1, 30))
                 for _ in range(2)]
        source = backend.async_source()
        try:
            a = AsyncFallbackCache(source, make_vault("a"), shared=tiers[0])
            assert (await a.fetch("c1")).origin == "source"
            backend.down()
            fresh = AsyncFallbackCache(source, make_vault("fresh"), shared=tiers[1])
            fetched = await fresh.fetch("c1")
            assert (fetched.value, fetched.origin) == (CRED, "shared")

            # A frozen Redis: the call waits in a worker thread, the loop keeps running.
            redis_server.freeze()
            ticks = 0

            async def ticker() -> None:
                nonlocal ticks
                while True:
                    ticks += 1
                    await asyncio.sleep(0.01)

            task = asyncio.create_task(ticker())
            started = time.monotonic()
            answer = await a.fetch("c1")  # local copy; the shared read times out
            took = time.monotonic() - started
            task.cancel()
            assert (answer.value, answer.origin) == (CRED, "cache")
            assert took <= tiers[0].worst_case_seconds + 1.0, took
            assert ticks >= 10, (ticks, took)  # the loop ran while the tier waited
            assert tiers[0].breaker.state == "open"
        finally:
            redis_server.thaw()
            backend.up()
            await source.aclose()
            for tier in tiers:
                tier.close()

    asyncio.run(main())
