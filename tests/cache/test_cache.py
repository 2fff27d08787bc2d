"""Tests of vault.cache (and vault.cachecore) on real SQLite files and a real PostgreSQL."""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

import vault
from tests.helpers.backends import (  # noqa: F401 (fixtures)
    Backend,
    FakeClock,
    PostgresBackend,
    Recorder,
    SQLiteBackend,
    backend_fixture,
    pg_backend_fixture,
    run_service,
    sqlite_backend_fixture,
    start_service,
)
from tests.hygiene import CANARY_VALUE, secret
from tests.realparts import PostgresServer
from vault._store.entries import name_stem
from vault._store.journal import Journal
from vault._store.store import entries_of
from vault.cache import CacheEvent, CircuitBreaker, FallbackCache
from vault.errors import FormatError, SerializationError, SourceUnavailableError
from vault.sources import is_outage
from vault.sources.postgres import PostgresSource
from vault.sources.sqlite import SQLiteSource

CRED = {"token": CANARY_VALUE, "noiseKey": os.urandom(32), "registrationId": 4711}
JSON_CRED = {"token": "tok-1", "registrationId": 4711}


@pytest.fixture
def events() -> list[CacheEvent]:
    """Events reported through on_event."""
    return []


@pytest.fixture
def clock() -> FakeClock:
    """A fake monotonic clock for the breaker and the warning interval."""
    return FakeClock()


@pytest.fixture
def opened() -> Iterator[Callable[[Any], Any]]:
    """Register sources to close at the end of the test."""
    sources: list[Any] = []

    def keep(source: Any) -> Any:
        sources.append(source)
        return source

    yield keep
    for source in sources:
        source.close()


@pytest.fixture
def setup(make_vault: Callable[..., vault.Vault], events: list[CacheEvent], clock: FakeClock,
          opened: Callable[[Any], Any]) -> Callable[..., tuple[Any, vault.Vault, FallbackCache]]:
    """Return a factory: (source on a backend holding CRED as "c1", vault, cache on both with
    the fake clock and the events list)."""
    def make(backend: Backend, **kwargs: Any) -> tuple[Any, vault.Vault, FallbackCache]:
        source = opened(backend.source())
        source.save("c1", CRED)
        v = make_vault(**kwargs.pop("vault_kwargs", {}))
        wrapped = kwargs.pop("wrap", lambda s: s)(source)
        cache = FallbackCache(wrapped, v, on_event=events.append, clock=clock, **kwargs)
        return source, v, cache
    return make


def entry_file(v: vault.Vault, name: str) -> Path:
    """The file holding entry ``name``."""
    return v.directory / f"{name_stem(name)}.cve"


def kinds(events: list[CacheEvent]) -> list[str]:
    """The kinds of ``events``, in order."""
    return [event.kind for event in events]


# --------------------------------------------------------------------------- healthy source


def test_healthy_get_reads_the_source_and_writes_through(
        backend: Backend, setup: Callable[..., Any], events: list[CacheEvent]) -> None:
    """A healthy fetch returns the source's value and leaves an encrypted copy."""
    _, v, cache = setup(backend)
    fetched = cache.fetch("c1")
    assert fetched.value == CRED and fetched.origin == "source" and fetched.age_seconds == 0
    assert v.get("c1") == CRED and not cache.degraded and events == []
    assert CANARY_VALUE not in repr(fetched) and cache.get("missing") is None


def test_write_through_only_when_changed_or_half_ttl(
        sqlite_backend: SQLiteBackend, make_vault: Callable[..., vault.Vault],
        opened: Callable[[Any], Any]) -> None:
    """The copy is rewritten when the value changes or has used half its TTL, not per get."""
    source = opened(sqlite_backend.source())
    source.save("c1", {"v": 1})
    v = make_vault(ttl=100)
    cache = FallbackCache(source, v)
    cache.get("c1")
    inode = entry_file(v, "c1").stat().st_ino
    for _ in range(3):
        cache.get("c1")
    assert entry_file(v, "c1").stat().st_ino == inode
    sqlite_backend.write_behind("c1", {"v": 2})
    assert cache.get("c1") == {"v": 2} and v.get("c1") == {"v": 2}
    inode = entry_file(v, "c1").stat().st_ino
    FallbackCache(source, v).get("c1")  # a restarted service: compares with the copy
    assert entry_file(v, "c1").stat().st_ino == inode
    entries_of(v).put("c1", {"v": 2}, time.time_ns() // 1_000_000 - 60_000)  # 60 % of the TTL
    inode = entry_file(v, "c1").stat().st_ino
    FallbackCache(source, v).get("c1")
    assert entry_file(v, "c1").stat().st_ino != inode
    assert time.time() - v.read("c1").created_at.timestamp() < 30


def test_copy_is_refreshed_by_the_same_cache_after_half_its_ttl(
        sqlite_backend: SQLiteBackend, make_vault: Callable[..., vault.Vault],
        opened: Callable[[Any], Any]) -> None:
    """A long-running cache re-seals an unchanged value once half the TTL has passed."""
    source = opened(sqlite_backend.source())
    source.save("c1", {"v": 1})
    v = make_vault(ttl=0.4)
    cache = FallbackCache(source, v)
    cache.get("c1")
    inode = entry_file(v, "c1").stat().st_ino
    time.sleep(0.25)
    cache.get("c1")
    assert entry_file(v, "c1").stat().st_ino != inode


def test_none_from_the_source_deletes_the_copy_for_good(
        backend: Backend, setup: Callable[..., Any]) -> None:
    """A credential removed at the source is removed from the vault and not served later."""
    source, v, cache = setup(backend)
    cache.get("c1")
    source.delete("c1")
    assert cache.get("c1") is None and v.names() == []
    backend.down()
    with pytest.raises(SourceUnavailableError):
        cache.get("c1")


def test_corrupt_copy_is_quarantined_and_replaced_when_healthy(
        backend: Backend, setup: Callable[..., Any], events: list[CacheEvent]) -> None:
    """A tampered copy met on a healthy get is quarantined and rewritten from the source."""
    _, v, cache = setup(backend)
    cache.get("c1")
    path = entry_file(v, "c1")
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x40
    path.write_bytes(bytes(data))
    fresh = FallbackCache(cache.source, v, on_event=events.append)
    assert fresh.get("c1") == CRED and v.get("c1") == CRED
    assert kinds(events) == ["quarantined"] and events[0].level == logging.ERROR
    assert len(list((v.directory / "quarantine").iterdir())) == 1


def test_cache_write_failure_is_logged_not_raised(
        backend: Backend, setup: Callable[..., Any], events: list[CacheEvent]) -> None:
    """A value the vault refuses still reaches the caller; one error event, rate-limited."""
    _, v, cache = setup(backend, vault_kwargs={"max_entry_size": 16})
    assert cache.get("c1") == CRED and cache.get("c1") == CRED
    assert kinds(events) == ["cache_write_failed"] and v.names() == []


def test_programming_errors_propagate(backend: Backend, make_vault: Callable[..., vault.Vault],
                                      opened: Callable[[Any], Any]) -> None:
    """A missing table is not an outage: it reaches the caller and the breaker stays closed."""
    if isinstance(backend, SQLiteBackend):
        source = opened(SQLiteSource(backend.path, table="no_such_table"))
    else:
        assert isinstance(backend, PostgresBackend)
        source = opened(PostgresSource(backend.pg.dsn, table=backend.pg.fresh_table_name()))
    cache = FallbackCache(source, make_vault())
    with pytest.raises((sqlite3.OperationalError, psycopg.ProgrammingError)):
        cache.get("c1")
    assert not cache.degraded and cache.breaker.state == "closed" and cache.breaker.failures == 0


def test_save_validates_before_touching_anything(backend: Backend,
                                                 setup: Callable[..., Any]) -> None:
    """None, unserializable values and bad names are refused before the source is called."""
    recorder: list[Recorder] = []
    _, v, cache = setup(backend, wrap=lambda s: recorder.append(Recorder(s)) or recorder[0])
    with pytest.raises(SerializationError):
        cache.save("c1", None)
    with pytest.raises(SerializationError):
        cache.save("c1", {1, 2})
    for bad in ("", "a\x00b", "x" * 1025):
        with pytest.raises(FormatError):
            cache.save(bad, 1)
        with pytest.raises(FormatError):
            cache.get(bad)
    assert recorder[0].calls == [] and v.names() == []


# --------------------------------------------------------------------------- outages


def test_outage_serves_the_cached_copy_with_a_warning(
        backend: Backend, setup: Callable[..., Any], events: list[CacheEvent],
        caplog: pytest.LogCaptureFixture) -> None:
    """The vault's copy is served, degraded, with one warning naming name, age and cause."""
    _, _, cache = setup(backend)
    cache.get("c1")
    backend.down()
    with caplog.at_level(logging.WARNING, logger="vault.cache"):
        fetched = cache.fetch("c1")
    assert fetched.value == CRED and fetched.origin == "cache" and fetched.age_seconds >= 0
    assert cache.degraded
    [event] = events
    assert (event.kind, event.name, event.level) == ("degraded", "c1", logging.WARNING)
    assert event.cause and "Error" in event.cause and event.age_seconds is not None
    [log] = [r for r in caplog.records if r.name == "vault.cache"]
    assert "'c1'" in log.getMessage() and "age" in log.getMessage()
    assert CANARY_VALUE not in log.getMessage()


def test_expired_copy_raises_source_unavailable_chaining_the_driver_error(
        backend: Backend, setup: Callable[..., Any]) -> None:
    """A copy past its TTL is not served: SourceUnavailableError from the driver's error."""
    _, v, cache = setup(backend, vault_kwargs={"ttl": 60})
    entries_of(v).put("c1", CRED, time.time_ns() // 1_000_000 - 120_000)
    backend.down()
    with pytest.raises(SourceUnavailableError, match="expired") as info:
        cache.get("c1")
    cause = info.value.__cause__
    assert cause is not None and is_outage(cause) and not isinstance(cause, vault.VaultError)


def test_no_copy_raises_source_unavailable(backend: Backend, setup: Callable[..., Any]) -> None:
    """With no cached copy at all the caller gets SourceUnavailableError."""
    _, _, cache = setup(backend)
    backend.down()
    with pytest.raises(SourceUnavailableError, match="no cached copy"):
        cache.get("c1")
    assert cache.degraded


def test_corrupt_copy_during_an_outage_is_quarantined(
        backend: Backend, setup: Callable[..., Any], events: list[CacheEvent]) -> None:
    """A copy that fails to open is moved aside with an error event and treated as a miss."""
    _, v, cache = setup(backend)
    cache.get("c1")
    path = entry_file(v, "c1")
    path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    backend.down()
    with pytest.raises(SourceUnavailableError):
        cache.get("c1")
    assert "quarantined" in kinds(events) and not path.exists()
    assert len(list((v.directory / "quarantine").iterdir())) == 1


def test_copy_under_an_unknown_key_is_left_alone(
        sqlite_backend: SQLiteBackend, setup: Callable[..., Any],
        events: list[CacheEvent]) -> None:
    """A copy sealed under a key the ring lacks (rotation in progress) is not quarantined."""
    _, v, cache = setup(sqlite_backend)
    vault.Vault(v.directory, keys=vault.KeyRing([vault.Key.generate()])).put("c1", CRED)
    sqlite_backend.down()
    with pytest.raises(SourceUnavailableError, match="UnknownKeyError"):
        cache.get("c1")
    assert "cache_unusable" in kinds(events) and entry_file(v, "c1").exists()


def test_save_and_delete_during_an_outage_are_journaled_and_replayed_in_order(
        backend: Backend, setup: Callable[..., Any], events: list[CacheEvent],
        clock: FakeClock) -> None:
    """Writes during an outage go to the vault and the journal, and reach the source in order
    when it is back; recovery clears degraded."""
    _, v, cache = setup(backend)
    cache.save("c1", {"v": 0})
    cache.save("c2", {"v": 0})  # known values: each journaled write is based on one
    backend.install_audit()
    backend.down()
    results = [cache.save("c1", {"v": 1}), cache.save("c2", {"v": 1}),
               cache.save("c1", {"v": 2}), cache.delete("c2")]
    assert all(r.journaled and r.record_id for r in results)
    assert [r.record_id for r in results] == Journal(v).ids()
    assert cache.get("c1") == {"v": 2} and cache.get("c2") is None  # read your writes
    backend.up()
    clock.advance(cache.breaker.reset_after)
    fetched = cache.fetch("c1")
    assert fetched.value == {"v": 2} and fetched.origin == "source" and not cache.degraded
    assert backend.audit() == [("save", "c1", {"v": 1}), ("save", "c2", {"v": 1}),
                               ("save", "c1", {"v": 2}), ("delete", "c2", None)]
    assert Journal(v).ids() == [] and backend.raw("c2") is None
    assert kinds(events)[-2:] == ["replayed", "recovered"]


def test_keyless_journal_header_never_blocks_a_healthy_source(
        sqlite_backend: SQLiteBackend, setup: Callable[..., Any],
        events: list[CacheEvent]) -> None:
    """One well-formed journal header naming a key id the ring never held used to make every
    call skip the healthy source (journal_blocked) until the cached copies expired: now it is
    quarantined with an error event, like a corrupt record, and the source is read."""
    recorders: list[Recorder] = []
    _, v, cache = setup(sqlite_backend,
                        wrap=lambda s: recorders.append(Recorder(s)) or recorders[0])
    cache.get("c1")
    Journal(v).append_save("c1", {"v": 1})
    corrupt = Journal(v).ids()[0]
    path = v.directory / "journal" / f"{corrupt}.cvj"
    path.write_bytes(path.read_bytes()[:-1] + bytes([path.read_bytes()[-1] ^ 1]))
    Journal(vault.Vault(v.directory, keys=vault.KeyRing([vault.Key.generate()]))
            ).append_save("c1", {"v": 2})
    recorders[0].calls.clear()
    fetched = cache.fetch("c1")
    assert fetched.origin == "source" and fetched.value == CRED
    assert recorders[0].calls == [("load", "c1")]
    assert kinds(events) == ["quarantined", "quarantined"] and not cache.degraded
    assert Journal(v).ids() == [] and len(list((v.directory / "quarantine").glob("*.cvj"))) == 2


def test_save_fails_loudly_when_the_journal_cannot_be_written(
        sqlite_backend: SQLiteBackend, setup: Callable[..., Any]) -> None:
    """If the source is down and the journal cannot be written, save raises."""
    _, v, cache = setup(sqlite_backend)
    (v.directory / "journal").write_bytes(b"not a directory")
    sqlite_backend.down()
    with pytest.raises(SourceUnavailableError, match="journal could not be written") as info:
        cache.save("c1", {"v": 1})
    assert info.value.__cause__ is not None and is_outage(info.value.__cause__)
    assert v.names() == []


def test_replay_comes_before_the_next_read(backend: Backend, setup: Callable[..., Any],
                                           clock: FakeClock) -> None:
    """After recovery the pending write reaches the source before anything is read from it."""
    recorders: list[Recorder] = []
    _, _, cache = setup(backend, wrap=lambda s: recorders.append(Recorder(s)) or recorders[0])
    cache.save("c1", {"v": 0})
    backend.down()
    cache.save("c1", {"v": 9})
    backend.up()
    clock.advance(cache.breaker.reset_after)
    recorders[0].calls.clear()
    assert cache.get("c1") == {"v": 9}
    # The recorder has no save_if: the replay loads and compares, saves, then the get loads.
    assert recorders[0].calls == [("load", "c1"), ("save", "c1"), ("load", "c1")]


def test_stale_cached_value_is_never_written_back(
        backend: Backend, setup: Callable[..., Any], clock: FakeClock) -> None:
    """Serving from the cache never writes to the source; a newer value there wins."""
    recorders: list[Recorder] = []
    _, v, cache = setup(backend, wrap=lambda s: recorders.append(Recorder(s)) or recorders[0])
    cache.get("c1")
    backend.install_audit()
    backend.down()
    assert cache.fetch("c1").origin == "cache"
    backend.up()
    backend.write_behind("c1", {"v": "newer"})
    clock.advance(cache.breaker.reset_after)
    assert cache.get("c1") == {"v": "newer"} and v.get("c1") == {"v": "newer"}
    assert backend.audit() == [("save", "c1", {"v": "newer"})]  # only our own write
    assert [call for call in recorders[0].calls if call[0] != "load"] == []


def test_warnings_are_rate_limited(sqlite_backend: SQLiteBackend, setup: Callable[..., Any],
                                   events: list[CacheEvent], clock: FakeClock,
                                   caplog: pytest.LogCaptureFixture) -> None:
    """One warning on entering degraded mode, then at most one per interval, and recovery."""
    _, _, cache = setup(sqlite_backend, warn_interval=60,
                        breaker=CircuitBreaker(1, 1000, clock=clock))
    cache.get("c1")
    sqlite_backend.down()
    with caplog.at_level(logging.WARNING, logger="vault.cache"):
        for _ in range(10):
            cache.get("c1")
        clock.advance(30)
        for _ in range(10):
            cache.get("c1")
        assert kinds(events) == ["degraded"]
        clock.advance(31)
        cache.get("c1")
        clock.advance(5)
        cache.get("c1")
        assert kinds(events) == ["degraded", "still_degraded"]
        assert "19 similar calls" in events[1].message
        sqlite_backend.up()
        clock.advance(1000)
        assert cache.fetch("c1").origin == "source"
    assert kinds(events) == ["degraded", "still_degraded", "recovered"]
    assert len([r for r in caplog.records if r.name == "vault.cache"]) == 3


def test_breaker_stops_calling_the_source_and_probes_after_backoff(
        sqlite_backend: SQLiteBackend, setup: Callable[..., Any], clock: FakeClock) -> None:
    """After the threshold the source is not called; one probe per back-off; success closes."""
    recorders: list[Recorder] = []
    _, _, cache = setup(sqlite_backend, breaker=CircuitBreaker(2, 10, clock=clock),
                        wrap=lambda s: recorders.append(Recorder(s)) or recorders[0])
    calls = recorders[0].calls
    cache.get("c1")
    sqlite_backend.down()
    for _ in range(6):
        assert cache.fetch("c1").origin == "cache"
    assert len(calls) == 1 + 2 and cache.breaker.state == "open"
    clock.advance(10)
    for _ in range(4):
        cache.get("c1")
    assert len(calls) == 1 + 3  # one failed probe
    sqlite_backend.up()
    clock.advance(10)
    assert cache.fetch("c1").origin == "source" and cache.breaker.state == "closed"


def test_callback_errors_are_logged_not_raised(
        sqlite_backend: SQLiteBackend, make_vault: Callable[..., vault.Vault],
        opened: Callable[[Any], Any], caplog: pytest.LogCaptureFixture) -> None:
    """An on_event callback that raises does not break the service."""
    source = opened(sqlite_backend.source())
    source.save("c1", CRED)

    def broken(event: CacheEvent) -> None:
        raise RuntimeError("metrics backend down")

    cache = FallbackCache(source, make_vault(), on_event=broken)
    cache.get("c1")
    sqlite_backend.down()
    assert cache.get("c1") == CRED
    assert any("on_event callback raised" in r.getMessage() for r in caplog.records)


def test_threads_share_one_cache_through_outages(
        sqlite_backend: SQLiteBackend, make_vault: Callable[..., vault.Vault],
        opened: Callable[[Any], Any]) -> None:
    """Threads saving and reading their own names through two outages always read their last
    write, and every write reaches the source."""
    source = opened(sqlite_backend.source())
    v = make_vault()
    cache = FallbackCache(source, v, breaker=CircuitBreaker(2, 0.02))
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(40):
                cache.save(f"t{i}", {"n": n})
                assert cache.get(f"t{i}") == {"n": n}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for _ in range(2):
        time.sleep(0.05)
        sqlite_backend.down()
        time.sleep(0.05)
        sqlite_backend.up()
    for thread in threads:
        thread.join()
    assert errors == []
    cache.breaker.reset()
    cache.replay()
    for i in range(6):
        assert sqlite_backend.raw(f"t{i}") == {"n": 39} == v.get(f"t{i}")


# --------------------------------------------------------------------------- processes


def test_journal_left_by_another_process_is_replayed(
        backend: Backend, make_vault: Callable[..., vault.Vault], ring: vault.KeyRing,
        opened: Callable[[Any], Any]) -> None:
    """A service that journaled a write and exited has it replayed by the next one."""
    backend.install_audit()
    v = make_vault()
    run_service(v.directory, backend, ring.to_text(), [["save", "c1", JSON_CRED]])
    backend.down()
    out, _ = run_service(v.directory, backend, ring.to_text(),
                         [["get", "c1"], ["save", "c1", {"v": 2}]])
    assert out[0]["origin"] == "cache" and out[1]["journaled"] and out[1]["degraded"]
    backend.up()
    cache = FallbackCache(opened(backend.source()), v)
    assert cache.get("c1") == {"v": 2} and Journal(v).ids() == []
    assert backend.audit() == [("save", "c1", JSON_CRED), ("save", "c1", {"v": 2})]


def test_journal_survives_sigkill_before_replay(
        backend: Backend, make_vault: Callable[..., vault.Vault], ring: vault.KeyRing,
        opened: Callable[[Any], Any]) -> None:
    """Writes journaled by a process killed with SIGKILL are replayed, in order, after restart."""
    v = make_vault()
    FallbackCache(opened(backend.source()), v).save("c1", {"v": 0})
    backend.install_audit()
    backend.down()
    proc = start_service(v.directory, backend, ring.to_text(),
                         [["save", "c1", {"v": 1}], ["delete", "c1"], ["save", "c1", {"v": 2}],
                          ["pause"]])
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(4)]
    assert '"pause"' in lines[-1] and all('"journaled": true' in line for line in lines[:3])
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    proc.stdout.close()
    assert len(Journal(v).ids()) == 3
    backend.up()
    assert FallbackCache(opened(backend.source()), v).get("c1") == {"v": 2}
    assert backend.audit() == [("save", "c1", {"v": 1}), ("delete", "c1", None),
                               ("save", "c1", {"v": 2})]


# --------------------------------------------------------------------------- PostgreSQL outages


@pytest.fixture
def pg_cached(pg_backend: PostgresBackend, make_vault: Callable[..., vault.Vault],
              opened: Callable[[Any], Any]) -> vault.Vault:
    """A vault holding a cached copy of "c1", written through by a healthy cache."""
    source = opened(pg_backend.source())
    source.save("c1", CRED)
    v = make_vault()
    assert FallbackCache(source, v).fetch("c1").origin == "source"
    return v


@pytest.mark.parametrize("outage", ["stopped_fast", "crashed", "refused", "unresolvable_host",
                                    "auth_failure"])
def test_postgres_outage_serves_cached_credentials(
        pg: PostgresServer, pg_backend: PostgresBackend, pg_cached: vault.Vault,
        opened: Callable[[Any], Any], events: list[CacheEvent], clock: FakeClock,
        refused_port: int, unresolvable_host: str, outage: str) -> None:
    """Each way PostgreSQL can be unreachable gives the cached copy, degraded, with a warning;
    the first successful call afterwards recovers."""
    dsn = {"refused": pg.dsn_for(port=refused_port),
           "unresolvable_host": pg.dsn_for(host=unresolvable_host),
           "auth_failure": pg.bad_auth_dsn}.get(outage, pg.dsn)
    source = opened(PostgresSource(dsn, table=pg_backend.table))
    cache = FallbackCache(source, pg_cached, on_event=events.append, clock=clock)
    if outage in ("stopped_fast", "crashed"):
        assert cache.fetch("c1").origin == "source"  # an open connection the outage will cut
        with pg.connect() as conn:
            conn.execute("CHECKPOINT")  # the test server runs without fsync and sync commit
        pg.stop("fast" if outage == "stopped_fast" else "immediate")
    secret("wrong-password", "the password of bad_auth_dsn")  # never in logs or errors
    fetched = cache.fetch("c1")
    assert fetched.value == CRED and fetched.origin == "cache" and cache.degraded
    assert kinds(events) == ["degraded"]
    assert "OperationalError" in str(events[0].cause) or "Shutdown" in str(events[0].cause)
    if outage in ("stopped_fast", "crashed"):
        pg.start()
        clock.advance(cache.breaker.reset_after)
        assert cache.fetch("c1").origin == "source" and not cache.degraded
        assert kinds(events) == ["degraded", "recovered"]


def test_postgres_blackhole_is_bounded_then_the_breaker_answers_at_once(
        pg: PostgresServer, pg_backend: PostgresBackend, pg_cached: vault.Vault,
        opened: Callable[[Any], Any], blackhole_addr: tuple[str, int]) -> None:
    """A server that accepts and never answers costs one connect timeout; then the open
    breaker serves the cache without calling the source."""
    host, port = blackhole_addr
    recorder = Recorder(opened(PostgresSource(pg.dsn_for(host=host, port=port),
                                              table=pg_backend.table)))
    cache = FallbackCache(recorder, pg_cached, breaker=CircuitBreaker(1, 60))
    start = time.monotonic()
    first = cache.fetch("c1")
    waited = time.monotonic() - start
    later = [cache.fetch("c1") for _ in range(50)]
    rest = time.monotonic() - start - waited
    assert first.origin == "cache" and all(f.origin == "cache" for f in later)
    assert recorder.calls == [("load", "c1")] and cache.breaker.state == "open"
    assert waited < 10 and rest < 5


def test_postgres_cut_connection_is_not_an_outage(
        pg: PostgresServer, pg_backend: PostgresBackend, pg_cached: vault.Vault,
        opened: Callable[[Any], Any], events: list[CacheEvent]) -> None:
    """A terminated backend is replaced by a new connection: the source answers."""
    cache = FallbackCache(opened(pg_backend.source()), pg_cached, on_event=events.append)
    cache.get("c1")
    assert pg.terminate_backends() >= 1
    assert cache.fetch("c1").origin == "source" and not cache.degraded and events == []


def test_service_restarted_while_postgres_is_down_starts_on_cached_credentials(
        pg: PostgresServer, pg_backend: PostgresBackend, make_vault: Callable[..., vault.Vault],
        ring: vault.KeyRing) -> None:
    """A service process started during the outage serves the cached copy with a warning."""
    v = make_vault()
    out, _ = run_service(v.directory, pg_backend, ring.to_text(),
                         [["save", "c1", JSON_CRED], ["get", "c1"]])
    assert out[1]["origin"] == "source"
    pg.stop("fast")
    out, log = run_service(v.directory, pg_backend, ring.to_text(), [["get", "c1"]])
    assert out == [{"op": "get", "name": "c1", "value": JSON_CRED, "origin": "cache",
                    "degraded": True}]
    assert "WARNING vault.cache: credential source unavailable" in log and "'c1'" in log


def test_postgres_gets_outage_updates_in_order_across_a_restart(
        pg: PostgresServer, pg_backend: PostgresBackend, make_vault: Callable[..., vault.Vault],
        ring: vault.KeyRing) -> None:
    """Updates journaled by two successive processes during one outage reach PostgreSQL in
    order once it is back, and the restarted process reads its predecessor's writes."""
    pg_backend.install_audit()
    v, keys = make_vault(), ring.to_text()
    run_service(v.directory, pg_backend, keys, [["save", "a", {"v": 0}],
                                                ["save", "b", {"v": 0}]])
    pg.stop("fast")
    out, _ = run_service(v.directory, pg_backend, keys,
                         [["save", "a", {"v": 1}], ["save", "b", {"v": 1}], ["delete", "b"],
                          ["save", "a", {"v": 2}]])
    assert all(line["journaled"] for line in out)
    out, _ = run_service(v.directory, pg_backend, keys,
                         [["get", "a"], ["get", "b"], ["save", "a", {"v": 3}]])
    assert out[0]["value"] == {"v": 2} and out[0]["origin"] == "cache"
    assert out[1]["value"] is None and out[1]["origin"] == "cache"  # the journaled delete
    assert out[2]["journaled"]
    pg.start()
    out, _ = run_service(v.directory, pg_backend, keys, [["get", "a"], ["get", "b"]])
    assert [(o["value"], o["origin"]) for o in out] == [({"v": 3}, "source"), (None, "source")]
    assert pg_backend.audit() == [("save", "a", {"v": 0}), ("save", "b", {"v": 0}),
                                  ("save", "a", {"v": 1}),
                                  ("save", "b", {"v": 1}), ("delete", "b", None),
                                  ("save", "a", {"v": 2}), ("save", "a", {"v": 3})]
    assert Journal(v).ids() == []
