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


async def _tick(ticks: list[int]) -> None:
    """Count the event loop's turns (every 10 ms) until cancelled."""
    while True:
        ticks[0] += 1
        await asyncio.sleep(0.01)


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
            assert await asyncio.to_thread(fresh.wait_for_copies)

            # A frozen Redis: the call waits in a worker thread, the loop keeps running.
            redis_server.freeze()
            ticks = [0]
            task = asyncio.create_task(_tick(ticks))
            started = time.monotonic()
            answer = await a.fetch("c1")  # local copy; the shared read times out
            took = time.monotonic() - started
            task.cancel()
            assert (answer.value, answer.origin) == (CRED, "cache")
            assert took <= tiers[0].worst_case_seconds + 1.0, took
            assert ticks[0] >= 10, (ticks, took)  # the loop ran while the tier waited
            assert tiers[0].breaker.state == "open"
        finally:
            redis_server.thaw()
            backend.up()
            await source.aclose()
            for tier in tiers:
                tier.close()

    asyncio.run(main())


def test_an_async_redis_tier_serves_an_async_fleet(
        redis_server: RedisServer, make_vault: Callable[..., vault.Vault]) -> None:
    """AsyncRedisTier (redis.asyncio) through AsyncFallbackCache: write-through, a new host
    served from Redis during an outage, and a frozen Redis that never blocks the loop."""
    from vault.cache.redis import AsyncRedisTier
    from vault.testing import AsyncMemorySource

    source = AsyncMemorySource({"c1": CRED})

    async def main() -> None:
        tiers = [AsyncRedisTier.from_url(redis_server.url, breaker=CircuitBreaker(1, 30))
                 for _ in range(2)]
        try:
            assert tiers[0].worst_case_seconds <= 2.0
            info = await tiers[0].server_info()
            assert info.version.startswith("7") and not info.problems
            a = AsyncFallbackCache(source, make_vault("a"), shared=tiers[0])
            assert a.shared is tiers[0]
            assert (await a.fetch("c1")).origin == "source"
            assert len(await tiers[0].stems()) == 1 and len(await tiers[0].reports()) == 1
            source.fail_with()
            fresh = AsyncFallbackCache(source, make_vault("fresh"), shared=tiers[1])
            fetched = await fresh.fetch("c1")
            assert (fetched.value, fetched.origin) == (CRED, "shared")
            assert (await a.save("c1", {"n": 2})).journaled
            assert await fresh.get("c1") == {"n": 2}
            assert await asyncio.to_thread(fresh.wait_for_copies)

            redis_server.freeze()
            ticks = [0]
            task = asyncio.create_task(_tick(ticks))
            started = time.monotonic()
            answer = await fresh.fetch("c1")
            took = time.monotonic() - started
            task.cancel()
            assert (answer.value, answer.origin) == ({"n": 2}, "cache")
            assert took <= tiers[1].worst_case_seconds + 1.5, took
            assert ticks[0] >= 10, (ticks, took)
            assert tiers[1].breaker.state == "open"
        finally:
            redis_server.thaw()
            for tier in tiers:
                await tier.aclose()

    asyncio.run(main())


def test_the_shared_tier_contract_holds_for_the_async_tier(redis_server: RedisServer) -> None:
    """SharedTierContract, through the bridge the async cache uses (a loop in a thread)."""
    import threading

    from vault.cache.redis import LoopBridge
    from vault.testing import SharedTierContract

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        tier = asyncio.run_coroutine_threadsafe(_make_tier(redis_server.url), loop).result(5)
        bridge = LoopBridge(tier)
        bridge.bind(loop)
        contract = SharedTierContract()
        names = [n for n in dir(contract) if n.startswith("test_")]
        assert len(names) >= 8
        for name in names:
            for stem in list(bridge.stems()):
                bridge.delete_if(stem, bridge.get(stem) or b"")
            getattr(contract, name)(bridge)
        asyncio.run_coroutine_threadsafe(tier.aclose(), loop).result(5)
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


async def _make_tier(url: str) -> object:
    from vault.cache.redis import AsyncRedisTier

    return AsyncRedisTier.from_url(url)
