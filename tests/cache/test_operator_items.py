"""Tests of issue 12's cache and vault items: sync/async sources refused at construction,
rate-limited journaling and replay logs, the caches as context managers with a settable
``warn_interval``, and ``Vault.get(name, default)``."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import vault
from tests.helpers.backends import FakeClock, SQLiteBackend, run_service
from tests.hygiene import CANARY_VALUE
from vault import _clock
from vault._store.journal import Journal
from vault._store.store import entries_of
from vault.cache import (
    JOURNALED,
    RECOVERED,
    REPLAYED,
    STILL_DEGRADED,
    AsyncFallbackCache,
    CacheEvent,
    FallbackCache,
)
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    EntryExpiredError,
    EntryNotFoundError,
    FormatError,
    UnknownKeyError,
)
from vault.sources import ThreadedAsyncSource
from vault.sources.postgres import AsyncPostgresSource, PostgresSource
from vault.sources.sqlite import SQLiteSource
from vault.testing import AsyncMemorySource, MemorySource

# Never contacted: the PostgreSQL sources connect on first use, and these tests only build caches.
UNUSED_DSN = "postgresql://credseal@127.0.0.1:1/none"
VALUE = {"token": CANARY_VALUE, "registrationId": 4711}


@pytest.fixture
def sqlite_source(tmp_path: Path) -> Iterator[SQLiteSource]:
    """A SQLite source on a temp file with its table, closed at the end."""
    with SQLiteSource(tmp_path / "primary.db") as source:
        source.create_schema()
        yield source


@pytest.fixture
def clock() -> FakeClock:
    """A fake monotonic clock for the breaker and the warning interval."""
    return FakeClock()


def cache_records(caplog: pytest.LogCaptureFixture, level: int) -> list[logging.LogRecord]:
    """The ``vault.cache`` log records at exactly ``level``."""
    return [r for r in caplog.records if r.name == "vault.cache" and r.levelno == level]


def kind(record: logging.LogRecord) -> str:
    """The kind of the CacheEvent attached to a log record."""
    event: CacheEvent = record.credseal_event  # type: ignore[attr-defined]
    return event.kind


def degraded_cache(make_vault: Callable[..., vault.Vault], clock: FakeClock,
                   events: list[CacheEvent] | None = None
                   ) -> tuple[MemorySource, vault.Vault, FallbackCache]:
    """A cache on a memory source holding "c1" (cached), then down and already degraded."""
    source, v = MemorySource(), make_vault()
    cache = FallbackCache(source, v, clock=clock, warn_interval=60,
                          on_event=None if events is None else events.append)
    cache.save("c1", VALUE)
    source.fail_with()
    assert cache.get("c1") == VALUE and cache.degraded
    return source, v, cache


# ---- sync and async sources are not mixed


def test_sync_cache_refuses_an_async_source(make_vault: Callable[..., vault.Vault]) -> None:
    """FallbackCache on AsyncPostgresSource (or the async memory source) is refused at once,
    with a hint naming the async cache, instead of serving coroutines as credentials."""
    v = make_vault()
    for source in (AsyncPostgresSource(UNUSED_DSN), AsyncMemorySource()):
        with pytest.raises(ConfigurationError, match="needs a sync source") as info:
            FallbackCache(source, v)  # type: ignore[arg-type]
        assert info.value.hint is not None and "AsyncFallbackCache" in info.value.hint
        assert UNUSED_DSN not in str(info.value) + info.value.hint


def test_sync_cache_refuses_a_threaded_async_source(
        make_vault: Callable[..., vault.Vault], sqlite_source: SQLiteSource) -> None:
    """A ThreadedAsyncSource given to the sync cache: the hint says to pass the source it
    wraps."""
    with pytest.raises(ConfigurationError) as info:
        FallbackCache(ThreadedAsyncSource(sqlite_source), make_vault())  # type: ignore[arg-type]
    assert info.value.hint is not None and "ThreadedAsyncSource" in info.value.hint
    assert ".source" in info.value.hint


def test_async_cache_refuses_a_sync_source(make_vault: Callable[..., vault.Vault],
                                           sqlite_source: SQLiteSource) -> None:
    """AsyncFallbackCache on PostgresSource, SQLiteSource or MemorySource raises
    ConfigurationError naming ThreadedAsyncSource at construction, not a bare TypeError later."""
    v = make_vault()
    pg = PostgresSource(UNUSED_DSN)
    try:
        for source in (pg, sqlite_source, MemorySource()):
            with pytest.raises(ConfigurationError, match="is a sync source") as info:
                AsyncFallbackCache(source, v)  # type: ignore[arg-type]
            assert info.value.hint is not None and "ThreadedAsyncSource" in info.value.hint
    finally:
        pg.close()


def test_something_that_is_no_source_is_refused(make_vault: Callable[..., vault.Vault]) -> None:
    """An object without load, save and delete is refused by both caches."""
    v = make_vault()
    for cls in (FallbackCache, AsyncFallbackCache):
        with pytest.raises(ConfigurationError, match="not a credential source"):
            cls(object(), v)  # type: ignore[arg-type]


def test_sources_of_the_right_kind_still_work(make_vault: Callable[..., vault.Vault],
                                              sqlite_source: SQLiteSource) -> None:
    """The sync cache takes SQLiteSource; the async cache takes ThreadedAsyncSource and the
    async memory source."""
    v = make_vault()
    FallbackCache(sqlite_source, v).save("c1", VALUE)

    async def main() -> None:
        assert await AsyncFallbackCache(ThreadedAsyncSource(sqlite_source), v).get("c1") == VALUE
        memory = AsyncMemorySource({"c2": {"v": 2}})
        assert await AsyncFallbackCache(memory, v).get("c2") == {"v": 2}

    asyncio.run(main())


# ---- logs: journaling rate-limited, replay a WARNING, recovery after a restart


def test_journaled_saves_warn_once_per_interval(
        make_vault: Callable[..., vault.Vault], clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    """20 journaled saves within warn_interval log one WARNING (the others INFO, with their
    record ids); the next one after the interval counts the ones held back."""
    _, v, cache = degraded_cache(make_vault, clock)
    caplog.clear()  # the degraded warning of the first outage call
    with caplog.at_level(logging.INFO, logger="vault.cache"):
        results = [cache.save("c1", {"i": i, "token": CANARY_VALUE}) for i in range(20)]
    assert all(r.journaled for r in results) and len(Journal(v).ids()) == 20
    [warning] = cache_records(caplog, logging.WARNING)
    assert kind(warning) == JOURNALED and str(results[0].record_id) in warning.getMessage()
    infos = [r for r in cache_records(caplog, logging.INFO) if kind(r) == JOURNALED]
    assert len(infos) == 19 and all(str(results[i + 1].record_id) in infos[i].getMessage()
                                    for i in range(19))
    caplog.clear()
    clock.advance(60)
    with caplog.at_level(logging.WARNING, logger="vault.cache"):
        cache.save("c1", {"i": 20})
    journaled = [r for r in cache_records(caplog, logging.WARNING) if kind(r) == JOURNALED]
    assert len(journaled) == 1 and "19 more write(s) journaled" in journaled[0].getMessage()
    assert all(CANARY_VALUE not in r.getMessage() for r in caplog.records)


def test_replay_is_one_warning_with_the_count_and_the_oldest_time(
        make_vault: Callable[..., vault.Vault], clock: FakeClock,
        caplog: pytest.LogCaptureFixture) -> None:
    """The replay of 20 journaled writes is one WARNING naming the count and when the oldest
    was written; the recovery event counts them too."""
    source, v, cache = degraded_cache(make_vault, clock)
    for i in range(20):
        cache.save("c1", {"i": i})  # each based on the one before: all apply
    oldest = next(Journal(v).records()).at.isoformat(timespec="seconds")
    source.recover()
    clock.advance(cache.breaker.reset_after)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="vault.cache"):
        assert cache.get("c1") == {"i": 19}
    [replayed] = [r for r in cache_records(caplog, logging.WARNING) if kind(r) == REPLAYED]
    assert "replayed 20 journaled write(s)" in replayed.getMessage()
    assert oldest in replayed.getMessage()
    [recovered] = [r for r in cache_records(caplog, logging.WARNING) if kind(r) == RECOVERED]
    assert "20 journaled write(s) replayed" in recovered.getMessage()
    assert Journal(v).ids() == [] and source.snapshot()["c1"] == {"i": 19}


def test_a_restarted_process_logs_the_recovery_when_it_replays(
        tmp_path: Path, make_vault: Callable[..., vault.Vault], ring: vault.KeyRing) -> None:
    """A service restarted after an outage replays the journal its predecessor left and logs,
    at WARNING, the replay summary and that the source is reachable again."""
    backend, directory = SQLiteBackend(tmp_path / "app.db"), make_vault().directory
    run_service(directory, backend, ring.to_text(), [["save", "c1", {"v": 0}]])
    backend.down()
    out, _ = run_service(directory, backend, ring.to_text(),
                         [["save", "c1", {"v": 1}], ["save", "c1", {"v": 2}]])
    assert all(line["journaled"] for line in out)
    backend.up()
    out, log = run_service(directory, backend, ring.to_text(), [["get", "c1"]])
    assert out[0]["value"] == {"v": 2} and not out[0]["degraded"]
    assert "WARNING vault.cache: replayed 2 journaled write(s)" in log
    assert "WARNING vault.cache: credential source reachable again: 2 journaled write(s)" in log


def test_a_fresh_cache_reports_recovery_after_replaying_an_old_journal(
        make_vault: Callable[..., vault.Vault], clock: FakeClock) -> None:
    """A cache that never saw the outage (a new process on the same vault) reports the
    replay and then a recovery event, in that order."""
    source, v, cache = degraded_cache(make_vault, clock)
    cache.save("c1", {"v": 1})
    source.recover()
    events: list[CacheEvent] = []
    fresh = FallbackCache(source, v, on_event=events.append, clock=clock)
    assert fresh.get("c1") == {"v": 1}
    assert [e.kind for e in events] == [REPLAYED, RECOVERED]
    assert all(e.level == logging.WARNING for e in events)
    assert events[1].message.startswith("credential source reachable again: 1 journaled")


# ---- context managers and warn_interval


def test_sync_cache_is_a_context_manager_that_leaves_the_source_open(
        make_vault: Callable[..., vault.Vault], sqlite_source: SQLiteSource) -> None:
    """``with FallbackCache(...)`` closes the cache (later calls are refused) but not the
    caller's source, whose connection stays open."""
    with FallbackCache(sqlite_source, make_vault()) as cache:
        cache.save("c1", VALUE)
        connection = sqlite_source._conn
        assert connection is not None and not cache.closed
    assert cache.closed and sqlite_source._conn is connection
    assert sqlite_source.load("c1") == VALUE
    with pytest.raises(ConfigurationError, match="closed"):
        cache.get("c1")
    with pytest.raises(ConfigurationError, match="closed"):
        cache.replay()
    cache.close()  # idempotent


def test_async_cache_is_an_async_context_manager_that_leaves_the_source_open(
        make_vault: Callable[..., vault.Vault], sqlite_source: SQLiteSource) -> None:
    """``async with AsyncFallbackCache(...)`` closes the cache, never the source it was given;
    ``aclose()`` is idempotent."""
    threaded = ThreadedAsyncSource(sqlite_source)

    async def main() -> None:
        async with AsyncFallbackCache(threaded, make_vault()) as cache:
            await cache.save("c1", VALUE)
            connection = sqlite_source._conn
        assert cache.closed and sqlite_source._conn is connection
        assert await threaded.load("c1") == VALUE
        with pytest.raises(ConfigurationError, match="closed"):
            await cache.get("c1")
        await cache.aclose()

    asyncio.run(main())


def test_setting_warn_interval_takes_effect(make_vault: Callable[..., vault.Vault],
                                            clock: FakeClock) -> None:
    """``cache.warn_interval = 5`` after construction paces the "still degraded" warnings."""
    events: list[CacheEvent] = []
    _, _, cache = degraded_cache(make_vault, clock, events)
    cache.warn_interval = 5
    assert cache.warn_interval == 5.0
    clock.advance(5)
    cache.get("c1")
    assert [e.kind for e in events][-1] == STILL_DEGRADED


def test_bad_warn_interval_is_refused(make_vault: Callable[..., vault.Vault],
                                      sqlite_source: SQLiteSource) -> None:
    """A negative, non-finite or non-numeric warn_interval raises ConfigurationError, at
    construction and when set later (the old value stays)."""
    v = make_vault()
    bad: list[Any] = [-1, math.nan, math.inf, "60", True, None]
    for value in bad:
        with pytest.raises(ConfigurationError, match="warn_interval"):
            FallbackCache(sqlite_source, v, warn_interval=value)
    cache = FallbackCache(sqlite_source, v, warn_interval=30)
    for value in bad:
        with pytest.raises(ConfigurationError, match="warn_interval"):
            cache.warn_interval = value
    assert cache.warn_interval == 30.0
    cache.warn_interval = 0
    assert cache.warn_interval == 0.0


# ---- Vault.get(name, default) and `name in v`


def test_vault_get_default_is_for_a_missing_entry_only(
        make_vault: Callable[..., vault.Vault]) -> None:
    """``get(name, default)`` returns the default for a missing entry; ``get(name)`` still
    raises EntryNotFoundError; a present entry is returned; ``in`` tells the two apart."""
    v = make_vault()
    assert v.get("missing", None) is None and v.get("missing", 7) == 7
    assert v.get("missing", default="d") == "d"
    with pytest.raises(EntryNotFoundError):
        v.get("missing")
    v.put("c1", VALUE)
    assert v.get("c1", None) == VALUE and v.get("c1") == VALUE
    assert "c1" in v and "missing" not in v and 3 not in v


def test_vault_get_default_never_hides_a_failed_entry(
        make_vault: Callable[..., vault.Vault], monkeypatch: pytest.MonkeyPatch) -> None:
    """An expired entry, one that fails authentication and one under a key the ring lacks
    raise even with a default."""
    v = make_vault(ttl=60)
    v.put("old", {"v": 1})
    v.put("tampered", {"v": 2})
    v.put("foreign", {"v": 3})
    path = Path(entries_of(v).path("tampered"))
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    other = vault.Vault(v.directory, keys=vault.KeyRing([vault.Key.generate()]))
    with pytest.raises(UnknownKeyError):
        other.get("foreign", None)
    with pytest.raises((DecryptionError, FormatError)):
        v.get("tampered", None)
    later = _clock.now_ms() + 3_600_000
    monkeypatch.setattr("vault._clock.now_ms", lambda: later)
    with pytest.raises(EntryExpiredError):
        v.get("old", None)
