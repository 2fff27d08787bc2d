"""Tests of vault.testing: the memory sources, and the contract suites run on every source."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg_pool
import pytest

from tests.realparts import PostgresServer
from vault.cache import AsyncFallbackCache, FallbackCache
from vault.errors import ConfigurationError, SerializationError
from vault.sources import (
    AsyncVersionedSource,
    ThreadedAsyncSource,
    VersionedSource,
    is_outage,
    supports_versions,
    value_digest,
)
from vault.sources.postgres import AsyncPostgresSource, PostgresSource
from vault.sources.sqlite import SQLiteSource
from vault.testing import (
    AsyncMemorySource,
    AsyncSourceContract,
    AsyncVersionedSourceContract,
    MemorySource,
    SourceContract,
    VersionedSourceContract,
)
from vault.testing._contracts import same

# --------------------------------------------------------------------------- the contract, run


class TestMemorySourceContract(VersionedSourceContract):
    """MemorySource keeps the versioned source contract (the source contract included)."""

    @pytest.fixture
    def source(self) -> MemorySource:
        """A fresh memory source."""
        return MemorySource()


class TestSQLiteSourceContract(SourceContract):
    """SQLiteSource keeps the source contract."""

    @pytest.fixture
    def source(self, tmp_path: Path) -> Iterator[SQLiteSource]:
        """A source on a new database."""
        with SQLiteSource(tmp_path / "contract.db") as source:
            source.create_schema()
            yield source


class TestPostgresSourceContract(SourceContract):
    """PostgresSource (with a DSN) keeps the source contract."""

    @pytest.fixture
    def source(self, pg: PostgresServer) -> Iterator[PostgresSource]:
        """A source on a fresh table."""
        with PostgresSource(pg.dsn, table=pg.fresh_table_name("contract")) as source:
            source.create_schema()
            yield source


class TestPooledPostgresSourceContract(SourceContract):
    """PostgresSource on a ConnectionPool keeps the source contract."""

    @pytest.fixture
    def source(self, pg: PostgresServer) -> Iterator[PostgresSource]:
        """A pooled source on a fresh table."""
        with psycopg_pool.ConnectionPool(pg.dsn, min_size=1, max_size=2, open=True) as pool:
            source = PostgresSource(pool, table=pg.fresh_table_name("contract"))
            source.create_schema()
            yield source


class TestAsyncMemorySourceContract(AsyncVersionedSourceContract):
    """AsyncMemorySource keeps the async versioned source contract."""

    @pytest.fixture
    def source(self) -> AsyncMemorySource:
        """A fresh async memory source."""
        return AsyncMemorySource()


class TestAsyncPostgresSourceContract(AsyncSourceContract):
    """AsyncPostgresSource keeps the async source contract (closed by the suite)."""

    @pytest.fixture
    def source(self, pg: PostgresServer) -> AsyncPostgresSource:
        """An async source on a fresh table (the schema is made with a sync source)."""
        table = pg.fresh_table_name("contract")
        with PostgresSource(pg.dsn, table=table) as sync:
            sync.create_schema()
        return AsyncPostgresSource(pg.dsn, table=table)


class TestThreadedSQLiteSourceContract(AsyncSourceContract):
    """ThreadedAsyncSource around SQLiteSource keeps the async source contract."""

    @pytest.fixture
    def source(self, tmp_path: Path) -> Iterator[ThreadedAsyncSource]:
        """A threaded wrapper of a source on a new database."""
        with SQLiteSource(tmp_path / "contract.db") as sync:
            sync.create_schema()
            yield ThreadedAsyncSource(sync)


# --------------------------------------------------------------------------- memory sources


def test_fail_with_and_recover() -> None:
    """fail_with makes every call raise an outage (by default) until recover."""
    source = MemorySource({"a": 1})
    source.fail_with()
    assert source.failing
    for call in (lambda: source.load("a"), lambda: source.save("a", 2),
                 lambda: source.delete("a")):
        with pytest.raises(ConnectionRefusedError) as info:
            call()
        assert is_outage(info.value)
    source.recover()
    assert source.load("a") == 1 and not source.failing
    assert source.calls == [("load", "a"), ("save", "a"), ("delete", "a"), ("load", "a")]


def test_fail_with_a_given_error() -> None:
    """fail_with raises the given exception, with a fresh traceback each time."""
    source = MemorySource()
    source.fail_with(ValueError("not an outage"))
    for _ in range(3):
        with pytest.raises(ValueError) as info:
            source.load("a")
        assert len(list(_frames(info.value.__traceback__))) < 10


def _frames(tb: Any) -> Any:
    while tb is not None:
        yield tb
        tb = tb.tb_next


def test_memory_source_stores_copies_and_refuses_none() -> None:
    """Stored values are isolated from the caller's objects; None is refused."""
    value = {"k": [b"\x01"]}
    source = MemorySource({"x": value})
    value["k"].append(b"\x02")
    assert source.snapshot() == {"x": {"k": [b"\x01"]}}
    with pytest.raises(SerializationError):
        source.save("y", None)
    with pytest.raises(SerializationError):
        MemorySource({"y": None})


def test_memory_source_drives_a_fallback_cache(make_vault: Any) -> None:
    """A user's test can simulate an outage for a FallbackCache with a MemorySource."""
    source = MemorySource({"c1": {"token": "t"}})
    cache = FallbackCache(source, make_vault())
    assert cache.fetch("c1").origin == "source"
    source.fail_with()
    assert cache.fetch("c1").origin == "cache" and cache.degraded
    assert cache.save("c1", {"token": "u"}).journaled
    source.recover()
    cache.breaker.reset()
    assert cache.get("c1") == {"token": "u"} and source.snapshot() == {"c1": {"token": "u"}}


def test_async_memory_source_drives_an_async_cache(make_vault: Any) -> None:
    """The async memory source simulates outages for an AsyncFallbackCache."""
    source = AsyncMemorySource({"c1": 1})

    async def main() -> None:
        cache = AsyncFallbackCache(source, make_vault())
        assert await cache.get("c1") == 1
        source.fail_with()
        assert (await cache.fetch("c1")).origin == "cache"
        assert (await cache.delete("c1")).journaled
        assert await cache.get("c1") is None  # the journaled delete is read back
        source.recover()
        cache.breaker.reset()
        assert await cache.get("c1") is None and source.snapshot() == {}

    asyncio.run(main())


def test_same_compares_types() -> None:
    """same() tells bytes from str and ints from floats and bools, at any depth."""
    assert same({"a": [1, b"x"]}, {"a": [1, b"x"]})
    assert not same({"a": [1]}, {"a": [1.0]}) and not same([True], [1]) and not same(b"x", "x")


def test_reprs_show_no_values() -> None:
    """The memory sources' reprs give counts, not values."""
    assert "secret" not in repr(MemorySource({"n": "secret"}))
    assert "secret" not in repr(AsyncMemorySource({"n": "secret"}))


# --------------------------------------------------------------------------- versions


class _PlainSource:
    """A source with load, save and delete only: no versions."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}

    def load(self, name: str) -> Any:
        return self.data.get(name)

    def save(self, name: str, value: Any) -> None:
        self.data[name] = value

    def delete(self, name: str) -> None:
        self.data.pop(name, None)


def test_supports_versions() -> None:
    """supports_versions is True for the memory sources and a threaded versioned source, False
    for a plain source and a threaded one."""
    assert supports_versions(MemorySource()) and supports_versions(AsyncMemorySource())
    assert isinstance(MemorySource(), VersionedSource)
    assert isinstance(AsyncMemorySource(), AsyncVersionedSource)
    assert supports_versions(ThreadedAsyncSource(MemorySource()))
    assert not supports_versions(_PlainSource()) and not isinstance(_PlainSource(),
                                                                    VersionedSource)
    assert not supports_versions(ThreadedAsyncSource(_PlainSource()))


def test_threaded_source_without_versions_is_a_configuration_error() -> None:
    """A threaded plain source refuses the versioned methods, naming the wrapped type."""
    threaded = ThreadedAsyncSource(_PlainSource())
    threaded.source.save("secret-name", "hunter2-secret")
    calls = [threaded.load_versioned("secret-name"),
             threaded.save_versioned("secret-name", "hunter2-secret"),
             threaded.delete_versioned("secret-name")]
    for call in calls:
        with pytest.raises(ConfigurationError) as info:
            asyncio.run(call)
        assert "_PlainSource" in str(info.value) and "hunter2" not in str(info.value)
        assert "secret-name" not in str(info.value)


def test_threaded_source_passes_versions_through() -> None:
    """ThreadedAsyncSource runs the versioned methods of the source it wraps."""
    inner = MemorySource()

    async def main() -> None:
        threaded = ThreadedAsyncSource(inner)
        saved = await threaded.save_versioned("a", 1)
        assert await threaded.load_versioned("a") == (1, saved)
        assert await threaded.delete_versioned("a") > saved

    asyncio.run(main())
    assert inner.calls == [("save", "a"), ("load", "a"), ("delete", "a")]


def test_memory_versions_survive_a_clock_step_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the clock stepped back an hour, saves, deletes and re-creations still get
    greater versions; an absent name's version is never below its tombstone."""
    source = MemorySource()
    first = source.save_versioned("a", 1)
    monkeypatch.setattr("vault.sources._base.now_us", lambda: first - 3_600_000_000)
    second = source.save_versioned("a", 2)
    tombstone = source.delete_versioned("a")
    assert first < second < tombstone and source.load_versioned("a") == (None, tombstone)
    assert source.save_versioned("a", 3) == tombstone + 1
    assert source.save_if("a", 4, value_digest(3))
    assert source.load_versioned("a") == (4, tombstone + 2)


def test_memory_versioned_calls_fail_and_are_logged() -> None:
    """The versioned methods honour fail_with and are logged as load, save and delete."""
    source = MemorySource({"a": 1})
    source.fail_with()
    for call in (lambda: source.load_versioned("a"), lambda: source.save_versioned("a", 2),
                 lambda: source.delete_versioned("a")):
        with pytest.raises(ConnectionRefusedError):
            call()
    source.recover()
    assert source.load_versioned("a")[0] == 1
    assert source.calls == [("load", "a"), ("save", "a"), ("delete", "a"), ("load", "a")]

    async_source = AsyncMemorySource()
    async_source.fail_with(ValueError("down"))
    with pytest.raises(ValueError):
        asyncio.run(async_source.save_versioned("b", 1))
    assert async_source.calls == [("save", "b")]


class _FrozenVersions(MemorySource):
    """A broken versioned source: every write gets the same version."""

    def save_versioned(self, name: str, value: Any) -> int:
        super().save_versioned(name, value)
        return 1_700_000_000_000_000

    def load_versioned(self, name: str) -> tuple[Any, int]:
        return super().load_versioned(name)[0], 1_700_000_000_000_000


class _SecondsVersions(MemorySource):
    """A broken versioned source: versions in seconds, not microseconds."""

    def save_versioned(self, name: str, value: Any) -> int:
        return super().save_versioned(name, value) // 1_000_000


@pytest.mark.parametrize("broken", [_FrozenVersions, _SecondsVersions])
def test_the_versioned_contract_can_fail(broken: type[MemorySource]) -> None:
    """The versioned contract catches versions that do not increase or are not microseconds."""
    with pytest.raises(AssertionError):
        VersionedSourceContract().test_versions_increase_over_saves(broken())
