"""Tests of vault.cache_async: the asyncio fallback cache, on real SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

import vault
from tests.helpers.backends import (  # noqa: F401 (fixtures)
    Backend,
    FakeClock,
    PostgresBackend,
    SQLiteBackend,
    backend_fixture,
    pg_backend_fixture,
    run_service,
    sqlite_backend_fixture,
)
from tests.hygiene import CANARY_VALUE
from tests.realparts import PostgresServer
from vault._store.entries import name_stem
from vault._store.journal import Journal
from vault._store.store import entries_of
from vault.cache import AsyncFallbackCache, CacheEvent, CircuitBreaker
from vault.errors import SourceUnavailableError
from vault.sources import is_outage
from vault.sources.postgres import AsyncPostgresSource

CRED = {"token": CANARY_VALUE, "noiseKey": os.urandom(32), "registrationId": 4711}
Body = Callable[[AsyncFallbackCache, Any], Awaitable[None]]


class AsyncRecorder:
    """An async source wrapper that logs every call it passes on."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    async def load(self, name: str) -> Any:
        """Log, then load."""
        self.calls.append(("load", name))
        return await self.inner.load(name)

    async def save(self, name: str, value: Any) -> None:
        """Log, then save."""
        self.calls.append(("save", name))
        await self.inner.save(name, value)

    async def delete(self, name: str) -> None:
        """Log, then delete."""
        self.calls.append(("delete", name))
        await self.inner.delete(name)


async def close(source: Any) -> None:
    """Close an async source (or the sync source inside a ThreadedAsyncSource)."""
    if hasattr(source, "aclose"):
        await source.aclose()
    else:
        source.source.close()


def run(backend: Backend, v: vault.Vault, body: Body, *, source: Any = None,
        seed: bool = True, **kwargs: Any) -> list[CacheEvent]:
    """Run ``body(cache, raw_source)`` in a new event loop with a cache on ``backend`` holding
    CRED as "c1" (unless ``seed`` is false); return the events."""
    events: list[CacheEvent] = []

    async def main() -> None:
        raw = source if source is not None else backend.async_source()
        try:
            if seed:
                await raw.save("c1", CRED)
            wrap = kwargs.pop("wrap", lambda s: s)
            cache = AsyncFallbackCache(wrap(raw), v, on_event=events.append, **kwargs)
            await body(cache, raw)
        finally:
            await close(raw)

    asyncio.run(main())
    return events


def test_healthy_get_writes_through(backend: Backend,
                                    make_vault: Callable[..., vault.Vault]) -> None:
    """A healthy fetch returns the source's value and leaves the encrypted copy."""
    v = make_vault()

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        fetched = await cache.fetch("c1")
        assert fetched.value == CRED and fetched.origin == "source"
        assert await cache.get("missing") is None

    assert run(backend, v, body) == [] and v.get("c1") == CRED


def test_none_from_the_source_deletes_the_copy(backend: Backend,
                                               make_vault: Callable[..., vault.Vault]) -> None:
    """A credential removed at the source is removed from the vault too."""
    v = make_vault()

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        await cache.get("c1")
        await raw.delete("c1")
        assert await cache.get("c1") is None

    run(backend, v, body)
    assert v.names() == []


def test_outage_serves_the_cached_copy_with_a_warning(
        backend: Backend, make_vault: Callable[..., vault.Vault]) -> None:
    """During an outage the vault's copy is served, degraded, with one warning event."""
    v = make_vault()

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        await cache.get("c1")
        backend.down()
        fetched = await cache.fetch("c1")
        assert fetched.value == CRED and fetched.origin == "cache" and cache.degraded
        backend.up()

    [event] = run(backend, v, body)
    assert event.kind == "degraded" and event.name == "c1" and event.cause


def test_expired_copy_raises_source_unavailable(backend: Backend,
                                                make_vault: Callable[..., vault.Vault]) -> None:
    """A copy past its TTL is not served; the driver's error is the cause."""
    v = make_vault(ttl=60)
    entries_of(v).put("c1", CRED, time.time_ns() // 1_000_000 - 120_000)

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        backend.down()
        with pytest.raises(SourceUnavailableError, match="expired") as info:
            await cache.get("c1")
        assert info.value.__cause__ is not None and is_outage(info.value.__cause__)
        backend.up()

    run(backend, v, body, seed=False)


def test_corrupt_copy_during_an_outage_is_quarantined(
        sqlite_backend: SQLiteBackend, make_vault: Callable[..., vault.Vault]) -> None:
    """A copy that fails to open is quarantined with an error event and treated as a miss."""
    v = make_vault()

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        await cache.get("c1")
        path = v.directory / f"{name_stem('c1')}.cve"
        path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
        sqlite_backend.down()
        with pytest.raises(SourceUnavailableError):
            await cache.get("c1")

    events = run(sqlite_backend, v, body)
    assert "quarantined" in [e.kind for e in events] and v.names() == []


def test_writes_during_an_outage_are_replayed_in_order_before_the_next_read(
        backend: Backend, make_vault: Callable[..., vault.Vault]) -> None:
    """Saves and deletes during an outage are journaled, read back, and reach the source in
    order before anything else is read from it; recovery clears degraded."""
    v, clock = make_vault(), FakeClock()
    recorders: list[AsyncRecorder] = []

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        await cache.save("c1", {"v": 0})
        await cache.save("c2", {"v": 0})  # known values: each journaled write is based on one
        backend.install_audit()
        backend.down()
        results = [await cache.save("c1", {"v": 1}), await cache.save("c2", {"v": 1}),
                   await cache.delete("c2"), await cache.save("c1", {"v": 2})]
        assert all(r.journaled for r in results) and len(Journal(v).ids()) == 4
        assert await cache.get("c1") == {"v": 2} and await cache.get("c2") is None
        backend.up()
        clock.advance(cache.breaker.reset_after)
        recorders[0].calls.clear()
        fetched = await cache.fetch("c1")
        assert fetched.origin == "source" and fetched.value == {"v": 2} and not cache.degraded
        # No save_if on the recorder: each replayed write is a load, a compare, a write.
        assert recorders[0].calls == [("load", "c1"), ("save", "c1"), ("load", "c2"),
                                      ("save", "c2"), ("load", "c2"), ("delete", "c2"),
                                      ("load", "c1"), ("save", "c1"), ("load", "c1")]

    events = run(backend, v, body, clock=clock,
                 wrap=lambda s: recorders.append(AsyncRecorder(s)) or recorders[0])
    assert backend.audit() == [("save", "c1", {"v": 1}), ("save", "c2", {"v": 1}),
                               ("delete", "c2", None), ("save", "c1", {"v": 2})]
    assert [e.kind for e in events][-2:] == ["replayed", "recovered"] and Journal(v).ids() == []


def test_stale_cached_value_is_never_written_back(
        backend: Backend, make_vault: Callable[..., vault.Vault]) -> None:
    """Serving from the cache writes nothing to the source; a newer value there wins."""
    v, clock = make_vault(), FakeClock()

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        await cache.get("c1")
        backend.install_audit()
        backend.down()
        assert (await cache.fetch("c1")).origin == "cache"
        backend.up()
        backend.write_behind("c1", {"v": "newer"})
        clock.advance(cache.breaker.reset_after)
        assert await cache.get("c1") == {"v": "newer"}

    run(backend, v, body, clock=clock)
    assert backend.audit() == [("save", "c1", {"v": "newer"})] and v.get("c1") == {"v": "newer"}


def test_warnings_are_rate_limited(sqlite_backend: SQLiteBackend,
                                   make_vault: Callable[..., vault.Vault]) -> None:
    """Degraded is reported once, then at most once per interval; recovery once."""
    v, clock = make_vault(), FakeClock()

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        await cache.get("c1")
        sqlite_backend.down()
        for step in (0, 10, 20, 35, 10, 5):
            clock.advance(step)
            await cache.get("c1")
        sqlite_backend.up()
        clock.advance(100)
        await cache.get("c1")

    events = run(sqlite_backend, v, body, clock=clock, warn_interval=60,
                 breaker=CircuitBreaker(1, 100, clock=clock))
    assert [e.kind for e in events] == ["degraded", "still_degraded", "recovered"]


def test_cancelled_replay_does_not_keep_the_journal_lock(
        sqlite_backend: SQLiteBackend, make_vault: Callable[..., vault.Vault]) -> None:
    """A task cancelled while waiting for the replay lock never leaves the lock held."""
    v = make_vault()

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        await cache.get("c1")
        sqlite_backend.down()
        await cache.save("c1", {"v": 1})
        sqlite_backend.up()
        cache.breaker.reset()
        held = cache.journal.replay_lock()
        held.acquire()
        task = asyncio.ensure_future(cache.get("c1"))
        await asyncio.sleep(0.1)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        threading.Timer(0.05, held.release).start()
        await asyncio.sleep(0.3)
        fetched = await cache.fetch("c1")
        assert fetched.origin == "source" and fetched.value == {"v": 1}

    run(sqlite_backend, v, body)
    assert Journal(v).ids() == []


def test_programming_errors_propagate(pg_backend: PostgresBackend, pg: PostgresServer,
                                      make_vault: Callable[..., vault.Vault]) -> None:
    """A missing table reaches the caller; the cache is not degraded."""
    import psycopg

    source = AsyncPostgresSource(pg.dsn, table=pg.fresh_table_name())

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        with pytest.raises(psycopg.errors.UndefinedTable):
            await cache.get("c1")
        assert not cache.degraded and cache.breaker.failures == 0

    run(pg_backend, make_vault(), body, source=source, seed=False)


@pytest.mark.parametrize("outage", ["stopped_fast", "crashed", "refused", "unresolvable_host",
                                    "auth_failure"])
def test_postgres_outage_serves_cached_credentials(
        pg: PostgresServer, pg_backend: PostgresBackend, make_vault: Callable[..., vault.Vault],
        refused_port: int, unresolvable_host: str, outage: str) -> None:
    """Every kind of PostgreSQL outage gives the cached copy, degraded; a stopped server that
    comes back is used again."""
    v, clock = make_vault(), FakeClock()
    run(pg_backend, v, lambda cache, raw: cache.get("c1"))
    dsn = {"refused": pg.dsn_for(port=refused_port),
           "unresolvable_host": pg.dsn_for(host=unresolvable_host),
           "auth_failure": pg.bad_auth_dsn}.get(outage, pg.dsn)

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        if outage in ("stopped_fast", "crashed"):
            assert (await cache.fetch("c1")).origin == "source"
            with pg.connect() as conn:
                conn.execute("CHECKPOINT")  # the test server runs without fsync
            pg.stop("fast" if outage == "stopped_fast" else "immediate")
        fetched = await cache.fetch("c1")
        assert fetched.origin == "cache" and fetched.value == CRED and cache.degraded
        if outage in ("stopped_fast", "crashed"):
            pg.start()
            clock.advance(cache.breaker.reset_after)
            assert (await cache.fetch("c1")).origin == "source" and not cache.degraded

    source = AsyncPostgresSource(dsn, table=pg_backend.table)
    run(pg_backend, v, body, source=source, seed=False, clock=clock)


def test_postgres_blackhole_then_breaker(pg: PostgresServer, pg_backend: PostgresBackend,
                                         make_vault: Callable[..., vault.Vault],
                                         blackhole_addr: tuple[str, int]) -> None:
    """A silent server costs one connect timeout, then the open breaker answers at once."""
    v = make_vault()
    run(pg_backend, v, lambda cache, raw: cache.get("c1"))
    host, port = blackhole_addr
    recorders: list[AsyncRecorder] = []

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        start = time.monotonic()
        assert (await cache.fetch("c1")).origin == "cache"
        waited = time.monotonic() - start
        assert all([(await cache.fetch("c1")).origin == "cache" for _ in range(50)])
        assert waited < 10 and time.monotonic() - start - waited < 5
        assert recorders[0].calls == [("load", "c1")]

    source = AsyncPostgresSource(pg.dsn_for(host=host, port=port), table=pg_backend.table)
    run(pg_backend, v, body, source=source, seed=False, breaker=CircuitBreaker(1, 60),
        wrap=lambda s: recorders.append(AsyncRecorder(s)) or recorders[0])


def test_postgres_cut_connection_is_not_an_outage(
        pg: PostgresServer, pg_backend: PostgresBackend,
        make_vault: Callable[..., vault.Vault]) -> None:
    """A terminated backend is replaced transparently by the async source."""
    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        await cache.get("c1")
        pg.terminate_backends()
        assert (await cache.fetch("c1")).origin == "source" and not cache.degraded

    assert run(pg_backend, make_vault(), body) == []


def test_sync_process_journal_is_replayed_by_the_async_cache(
        backend: Backend, make_vault: Callable[..., vault.Vault], ring: vault.KeyRing,
        caplog: pytest.LogCaptureFixture) -> None:
    """A journal written by a (sync) service process is replayed by an async one."""
    v = make_vault()
    run_service(v.directory, backend, ring.to_text(), [["save", "c1", {"v": 0}]])
    backend.down()
    out, _ = run_service(v.directory, backend, ring.to_text(), [["save", "c1", {"v": 5}]])
    assert out[0]["journaled"]
    backend.up()

    async def body(cache: AsyncFallbackCache, raw: Any) -> None:
        with caplog.at_level(logging.INFO, logger="vault.cache"):
            assert await cache.get("c1") == {"v": 5}

    run(backend, v, body, seed=False)
    assert backend.raw("c1") == {"v": 5} and Journal(v).ids() == []
    assert any("replayed 1" in r.getMessage() for r in caplog.records)
