"""Tests of vault.sources.postgres against a real, throwaway PostgreSQL server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import psycopg.errors
import psycopg_pool
import pytest
from psycopg import sql

from tests.realparts import PostgresServer
from vault.errors import ConfigurationError, SerializationError
from vault.sources import is_outage, supports_versions, value_digest
from vault.sources.postgres import AsyncPostgresSource, PostgresSource
from vault.testing import AsyncVersionedSourceContract, VersionedSourceContract


@pytest.fixture
def table(pg: PostgresServer) -> str:
    """A fresh table name, dropped after the test."""
    return pg.fresh_table_name("cred")


@pytest.fixture
def source(pg: PostgresServer, table: str) -> Iterator[PostgresSource]:
    """A source on a fresh table with the schema created, closed afterwards."""
    with PostgresSource(pg.dsn, table=table) as source:
        source.create_schema()
        yield source


def _setting(source: PostgresSource, name: str) -> Any:
    """Read a server setting through the source's own connection."""
    return source._run(lambda conn: conn.execute("SELECT current_setting(%s)",
                                                 (name,)).fetchone())[0]


def test_schema_uses_bytea_and_is_idempotent(pg: PostgresServer, source: PostgresSource,
                                             table: str) -> None:
    """create_schema makes (name text, value bytea, updated_at) and may run twice."""
    source.create_schema()
    with pg.connect() as conn:
        rows = conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                            "WHERE table_name = %s ORDER BY ordinal_position", (table,)).fetchall()
    assert rows == [("name", "text"), ("value", "bytea"),
                    ("updated_at", "timestamp with time zone")]


def test_values_are_codec_json_bytes(pg: PostgresServer, source: PostgresSource,
                                     table: str) -> None:
    """The value column holds the codec's tagged JSON, exact (-0.0, NUL, key order)."""
    value = {"z": -0.0, "a": "nul\x00byte", "k": b"\x01"}
    source.save("x", value)
    with pg.connect() as conn:
        raw = conn.execute(sql.SQL("SELECT value FROM {} WHERE name = 'x'")
                           .format(sql.Identifier(table))).fetchone()
    assert raw == (b'{"z":-0.0,"a":"nul\\u0000byte","k":{"$b":"AQ=="}}',)
    loaded = source.load("x")
    assert loaded == value and list(loaded) == ["z", "a", "k"] and str(loaded["z"]) == "-0.0"


def test_timeouts_are_always_set(pg: PostgresServer, table: str) -> None:
    """Default connect and statement timeouts apply; explicit values win over the DSN's."""
    with PostgresSource(pg.dsn_for(connect_timeout=0).replace("connect_timeout=0", ""),
                        table=table) as default:
        assert default.connect_timeout == 5.0 and _setting(default, "statement_timeout") == "5s"
    with PostgresSource(pg.dsn, table=table) as from_dsn:
        assert from_dsn.connect_timeout == 2.0
    with PostgresSource(pg.dsn, table=table, connect_timeout=3,
                        statement_timeout=0.25) as explicit:
        assert explicit.connect_timeout == 3.0
        assert _setting(explicit, "statement_timeout") == "250ms"
        assert _setting(explicit, "application_name") == ""


@pytest.mark.parametrize("kwargs", [{"connect_timeout": 0}, {"statement_timeout": 0},
                                    {"connect_timeout": -1}, {"table": "Bad"}])
def test_bad_settings_are_refused(pg: PostgresServer, kwargs: dict[str, Any]) -> None:
    """A zero timeout (forever) or a bad table name is a configuration error."""
    with pytest.raises(ConfigurationError):
        PostgresSource(pg.dsn, **kwargs)


def test_dsn_with_zero_connect_timeout_is_refused(pg: PostgresServer) -> None:
    """A DSN asking to wait forever is refused."""
    with pytest.raises(ConfigurationError):
        PostgresSource(pg.dsn_for(connect_timeout=0))


def test_repr_never_shows_the_dsn(pg: PostgresServer, table: str) -> None:
    """The DSN (which may hold a password) is not in repr."""
    dsn = pg.dsn_for(password="hunter2-secret")
    with PostgresSource(dsn, table=table) as source:
        assert "hunter2" not in repr(source) and table in repr(source)


def test_statement_timeout_cancels_a_blocked_query(pg: PostgresServer, table: str) -> None:
    """A query blocked longer than the statement timeout is cancelled: an outage."""
    with PostgresSource(pg.dsn, table=table, statement_timeout=0.2) as source:
        source.create_schema()
        with pg.connect() as blocker, blocker.transaction():
            blocker.execute(sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE")
                            .format(sql.Identifier(table)))
            with pytest.raises(psycopg.errors.QueryCanceled) as info:
                source.load("a")
        assert is_outage(info.value)
        assert source.load("a") is None  # the connection survived the cancel


def test_cut_connection_is_replaced_transparently(pg: PostgresServer,
                                                  source: PostgresSource) -> None:
    """After terminate_backends the next call reconnects and succeeds."""
    source.save("a", 1)
    first = source._conn
    assert pg.terminate_backends() >= 1
    assert source.load("a") == 1
    assert source._conn is not first


def test_stopped_server_is_an_outage_then_recovers(pg: PostgresServer,
                                                   source: PostgresSource) -> None:
    """A stopped server raises an outage error; once it is back the source reconnects."""
    source.save("a", 1)
    pg.stop("fast")
    with pytest.raises(psycopg.OperationalError) as info:
        source.load("a")
    assert is_outage(info.value)
    pg.start()
    assert source.load("a") == 1


@pytest.mark.parametrize("outage", ["refused", "unresolvable", "bad_auth"])
def test_connection_failures_are_outages(pg: PostgresServer, table: str, refused_port: int,
                                         unresolvable_host: str, outage: str) -> None:
    """Refused, unresolvable host and failed authentication are classified as outages."""
    dsn = {"refused": pg.dsn_for(port=refused_port),
           "unresolvable": pg.dsn_for(host=unresolvable_host),
           "bad_auth": pg.bad_auth_dsn}[outage]
    with PostgresSource(dsn, table=table) as source, \
            pytest.raises(psycopg.OperationalError) as info:
        source.load("a")
    assert is_outage(info.value)


def test_missing_table_is_not_an_outage(pg: PostgresServer) -> None:
    """A table that does not exist is a programming error, not an outage."""
    with PostgresSource(pg.dsn, table=pg.fresh_table_name()) as source, \
            pytest.raises(psycopg.errors.UndefinedTable) as info:
        source.load("a")
    assert not is_outage(info.value)


def test_none_and_schema_qualified_table(pg: PostgresServer, table: str) -> None:
    """None is refused; a schema-qualified table name works."""
    with PostgresSource(pg.dsn, table=f"public.{table}") as source:
        source.create_schema()
        with pytest.raises(SerializationError):
            source.save("a", None)
        source.save("a", {"b": b"\x00"})
        assert source.load("a") == {"b": b"\x00"}


def test_threads_share_one_dsn_source(source: PostgresSource) -> None:
    """Calls from several threads are serialized on the one connection."""
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for n in range(20):
                source.save(f"t{i}", n)
                assert source.load(f"t{i}") == n
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors


def test_pool_source_round_trip_and_statement_timeout(pg: PostgresServer, table: str) -> None:
    """With a ConnectionPool: values round-trip and SET LOCAL applies the statement timeout."""
    with psycopg_pool.ConnectionPool(pg.dsn, min_size=1, max_size=2, open=True) as pool:
        source = PostgresSource(pool, table=table, statement_timeout=0.75)
        source.create_schema()
        source.save("a", {"v": b"1"})
        assert source.load("a") == {"v": b"1"}
        assert _setting(source, "statement_timeout") == "750ms"
        pg.terminate_backends()
        assert source.load("a") == {"v": b"1"}  # broken pooled connection: retried once


def test_pool_source_waits_at_most_connect_timeout(pg: PostgresServer, table: str) -> None:
    """With the server down, a pooled call fails with PoolTimeout (an outage) after the
    connect timeout instead of the pool's 30 s default."""
    with psycopg_pool.ConnectionPool(pg.dsn, min_size=1, max_size=1, open=True) as pool:
        source = PostgresSource(pool, table=table, connect_timeout=0.5)
        source.create_schema()
        pg.stop("fast")
        with pytest.raises(psycopg.OperationalError) as info:
            source.load("a")
        assert is_outage(info.value)
        pg.start()


def test_async_source_round_trip_reconnect_and_outage(pg: PostgresServer, table: str) -> None:
    """The async source round-trips, survives a cut connection and reports a stopped server."""
    async def main() -> None:
        async with AsyncPostgresSource(pg.dsn, table=table) as source:
            await source.create_schema()
            await source.save("a", {"k": b"\x02"})
            pg.terminate_backends()
            assert await source.load("a") == {"k": b"\x02"}
            pg.stop("fast")
            with pytest.raises(psycopg.OperationalError) as info:
                await source.load("a")
            assert is_outage(info.value)
            pg.start()
            await source.delete("a")
            assert await source.load("a") is None

    asyncio.run(main())


def test_async_pool_source(pg: PostgresServer, table: str) -> None:
    """The async source works on an AsyncConnectionPool."""
    async def main() -> None:
        async with psycopg_pool.AsyncConnectionPool(pg.dsn, min_size=1, max_size=2,
                                                    open=False) as pool:
            source = AsyncPostgresSource(pool, table=table)
            await source.create_schema()
            await source.save("a", [1, b"2"])
            assert await source.load("a") == [1, b"2"]

    asyncio.run(main())


# --------------------------------------------------------------------------- versions


class TestPostgresVersionedContract(VersionedSourceContract):
    """PostgresSource (with a DSN) keeps the versioned source contract."""

    @pytest.fixture
    def source(self, pg: PostgresServer, table: str) -> Iterator[PostgresSource]:
        """A source on a fresh table."""
        with PostgresSource(pg.dsn, table=table) as source:
            source.create_schema()
            yield source


class TestPooledPostgresVersionedContract(VersionedSourceContract):
    """PostgresSource on a ConnectionPool keeps the versioned source contract."""

    @pytest.fixture
    def source(self, pg: PostgresServer, table: str) -> Iterator[PostgresSource]:
        """A pooled source on a fresh table."""
        with psycopg_pool.ConnectionPool(pg.dsn, min_size=1, max_size=2, open=True) as pool:
            source = PostgresSource(pool, table=table)
            source.create_schema()
            yield source


class TestAsyncPostgresVersionedContract(AsyncVersionedSourceContract):
    """AsyncPostgresSource keeps the async versioned source contract (closed by the suite)."""

    @pytest.fixture
    def source(self, pg: PostgresServer, table: str) -> AsyncPostgresSource:
        """An async source on a fresh table (the schema is made with a sync source)."""
        with PostgresSource(pg.dsn, table=table) as sync:
            sync.create_schema()
        return AsyncPostgresSource(pg.dsn, table=table)


def _server_micros(pg: PostgresServer, table: str, name: str) -> int:
    """updated_at of ``name`` in microseconds, read by the server."""
    with pg.connect() as conn:
        row = conn.execute(sql.SQL("SELECT (extract(epoch from updated_at) * 1000000)::bigint "
                                   "FROM {} WHERE name = %s").format(sql.Identifier(table)),
                           (name,)).fetchone()
    assert row is not None
    return int(row[0])


def _date_ahead(pg: PostgresServer, table: str, name: str) -> None:
    """Another writer dates the row of ``name`` an hour in the future."""
    with pg.connect() as conn:
        conn.execute(sql.SQL("UPDATE {} SET updated_at = clock_timestamp() + interval '1 hour' "
                             "WHERE name = %s").format(sql.Identifier(table)), (name,))


def test_version_is_updated_at_in_microseconds(pg: PostgresServer, source: PostgresSource,
                                               table: str) -> None:
    """The version is the row's updated_at in exact microseconds, on the server's clock."""
    before = time.time_ns() // 1000
    version = source.save_versioned("a", 1)
    assert abs(version - before) < 60_000_000  # the server runs on this host
    assert _server_micros(pg, table, "a") == version
    assert source.load_versioned("a") == (1, version) and supports_versions(source)


def test_a_row_dated_in_the_future_still_gets_a_greater_version(pg: PostgresServer,
                                                                 source: PostgresSource,
                                                                 table: str) -> None:
    """A row another writer dated an hour ahead gets a version past it on the next save,
    save_if and delete (greatest), not the server's now."""
    source.save("a", 1)
    _date_ahead(pg, table, "a")
    future = source.load_versioned("a")[1]
    assert future > time.time_ns() // 1000 + 3_500_000_000
    assert source.save_versioned("a", 2) == future + 1
    source.save("a", 3)
    assert source.load_versioned("a") == (3, future + 2)
    assert source.save_if("a", 4, value_digest(3)) is True
    assert source.load_versioned("a") == (4, future + 3)
    assert source.delete_versioned("a") == future + 4
    assert source.load_versioned("a")[1] < future  # absent as of the server's now


def test_async_row_dated_in_the_future_still_gets_a_greater_version(pg: PostgresServer,
                                                                     source: PostgresSource,
                                                                     table: str) -> None:
    """The async source follows the same max rule as the sync one."""
    async def main() -> None:
        async with AsyncPostgresSource(pg.dsn, table=table) as versioned:
            await versioned.save("a", 1)
            _date_ahead(pg, table, "a")
            future = (await versioned.load_versioned("a"))[1]
            assert future > time.time_ns() // 1000 + 3_500_000_000
            assert await versioned.save_versioned("a", 2) == future + 1
            assert await versioned.save_if("a", 3, value_digest(2)) is True
            assert await versioned.load_versioned("a") == (3, future + 2)
            assert await versioned.delete_versioned("a") == future + 3

    asyncio.run(main())


def test_versions_with_a_schema_qualified_table(pg: PostgresServer, table: str) -> None:
    """The versioned statements work on a schema.table name."""
    with PostgresSource(pg.dsn, table=f"public.{table}") as source:
        source.create_schema()
        first = source.save_versioned("a", b"\x00")
        assert source.load_versioned("a") == (b"\x00", first)
        assert source.save_versioned("a", b"\x01") > first
        assert source.delete_versioned("a") > first


def test_versioned_calls_survive_a_cut_connection(pg: PostgresServer,
                                                  source: PostgresSource) -> None:
    """After terminate_backends the versioned methods reconnect and succeed."""
    first = source.save_versioned("a", 1)
    pg.terminate_backends()
    assert source.load_versioned("a") == (1, first)
    pg.terminate_backends()
    second = source.save_versioned("a", 2)
    pg.terminate_backends()
    assert source.delete_versioned("a") > second > first


def test_versioned_calls_honour_the_statement_timeout(pg: PostgresServer, table: str) -> None:
    """A versioned write blocked by a lock is cancelled after the statement timeout."""
    with PostgresSource(pg.dsn, table=table, statement_timeout=0.2) as source:
        source.create_schema()
        source.save("a", 1)
        with pg.connect() as blocker, blocker.transaction():
            blocker.execute(sql.SQL("SELECT 1 FROM {} WHERE name = 'a' FOR UPDATE")
                            .format(sql.Identifier(table)))
            for call in (lambda: source.save_versioned("a", 2),
                         lambda: source.delete_versioned("a")):
                with pytest.raises(psycopg.errors.QueryCanceled) as info:
                    call()
                assert is_outage(info.value)
        assert source.load_versioned("a")[0] == 1
