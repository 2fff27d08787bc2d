"""Tests of vault.sources.sqlite: the embedded default source, on real SQLite files."""

from __future__ import annotations

import asyncio
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.errors import ConfigurationError, SerializationError
from vault.sources import ThreadedAsyncSource, is_outage, supports_versions, value_digest
from vault.sources.sqlite import SQLiteSource
from vault.testing import AsyncVersionedSourceContract, VersionedSourceContract


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """The path of a database with the schema created."""
    path = tmp_path / "app.db"
    with SQLiteSource(path) as source:
        source.create_schema()
    return path


@pytest.fixture
def source(db: Path) -> Iterator[SQLiteSource]:
    """A source on ``db``, closed afterwards."""
    with SQLiteSource(db) as source:
        yield source


def test_create_schema_makes_a_private_wal_database(tmp_path: Path) -> None:
    """create_schema creates the file 0600 in WAL mode, and is idempotent."""
    path = tmp_path / "new.db"
    with SQLiteSource(path) as source:
        source.create_schema()
        source.create_schema()
        source.save("a", 1)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_values_are_stored_as_tagged_json_text(source: SQLiteSource, db: Path) -> None:
    """The column holds the codec's tagged JSON, readable with the sqlite3 shell."""
    source.save("company-1", {"key": b"\x01\x02", "n": 7})
    conn = sqlite3.connect(db)
    try:
        (text,) = conn.execute("SELECT value FROM credentials WHERE name = 'company-1'").fetchone()
    finally:
        conn.close()
    assert text == '{"key":{"$b":"AQI="},"n":7}'


def test_missing_file_is_an_outage_and_is_not_created(tmp_path: Path) -> None:
    """Opening a database that does not exist fails as an outage instead of creating it."""
    path = tmp_path / "absent.db"
    with SQLiteSource(path) as source, pytest.raises(sqlite3.OperationalError) as info:
        source.load("a")
    assert is_outage(info.value) and not path.exists()


def test_moved_file_is_an_outage_at_the_next_call(source: SQLiteSource, db: Path) -> None:
    """A database moved away while connected is not read through the open connection."""
    source.save("a", "x")
    db.rename(db.with_suffix(".away"))
    with pytest.raises(sqlite3.OperationalError) as info:
        source.load("a")
    assert is_outage(info.value)
    db.with_suffix(".away").rename(db)
    assert source.load("a") == "x"


def test_not_a_database_is_an_outage(tmp_path: Path) -> None:
    """A file that is not a database is an outage (not an empty store)."""
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with SQLiteSource(path) as source, pytest.raises(sqlite3.DatabaseError) as info:
        source.load("a")
    assert is_outage(info.value)


def test_missing_table_is_a_programming_error(tmp_path: Path) -> None:
    """An existing database without the table raises an error that is not an outage."""
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    with SQLiteSource(path) as source, pytest.raises(sqlite3.OperationalError) as info:
        source.load("a")
    assert not is_outage(info.value)


def test_locked_database_is_an_outage(source: SQLiteSource, db: Path) -> None:
    """A writer holding the database longer than the busy timeout is an outage."""
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with SQLiteSource(db, timeout=0.05) as impatient, \
                pytest.raises(sqlite3.OperationalError) as info:
            impatient.save("a", 1)
        assert is_outage(info.value)
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


def test_none_is_refused(source: SQLiteSource) -> None:
    """None cannot be saved: load returns None for a missing name."""
    with pytest.raises(SerializationError):
        source.save("a", None)


@pytest.mark.parametrize("table", ["", "Credentials", "1x", "a;drop", "a.b.c", 'x"y', "a" * 64])
def test_bad_table_names_are_refused(tmp_path: Path, table: str) -> None:
    """Only lowercase identifiers (optionally schema-qualified) are accepted as table names."""
    with pytest.raises(ConfigurationError):
        SQLiteSource(tmp_path / "x.db", table=table)


def test_custom_table(tmp_path: Path) -> None:
    """A custom table name is used for the schema and the queries."""
    path = tmp_path / "custom.db"
    with SQLiteSource(path, table="my_creds") as source:
        source.create_schema()
        source.save("a", [1])
        assert source.load("a") == [1]
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM my_creds").fetchone() == (1,)
    finally:
        conn.close()


def test_threads_share_one_source(source: SQLiteSource) -> None:
    """Eight threads saving and loading at once see consistent values."""
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for round_ in range(30):
                source.save(f"t{i}", {"round": round_})
                assert source.load(f"t{i}") == {"round": round_}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and all(source.load(f"t{i}") == {"round": 29} for i in range(8))


def test_close_then_use_reopens(source: SQLiteSource) -> None:
    """A closed source opens the file again on the next call."""
    source.save("a", 1)
    source.close()
    assert source.load("a") == 1


def test_threaded_async_wrapper(source: SQLiteSource) -> None:
    """ThreadedAsyncSource runs the SQLite source from asyncio."""
    async def main() -> object:
        wrapped = ThreadedAsyncSource(source)
        await wrapped.save("a", {"b": b"1"})
        value = await wrapped.load("a")
        await wrapped.delete("a")
        return value, await wrapped.load("a")

    assert asyncio.run(main()) == ({"b": b"1"}, None)


# --------------------------------------------------------------------------- versions


class TestSQLiteVersionedContract(VersionedSourceContract):
    """SQLiteSource keeps the versioned source contract."""

    @pytest.fixture
    def source(self, db: Path) -> Iterator[SQLiteSource]:
        """A source on a new database."""
        with SQLiteSource(db) as source:
            yield source


class TestThreadedSQLiteVersionedContract(AsyncVersionedSourceContract):
    """ThreadedAsyncSource around SQLiteSource keeps the async versioned source contract."""

    @pytest.fixture
    def source(self, db: Path) -> Iterator[ThreadedAsyncSource]:
        """A threaded wrapper of a source on a new database."""
        with SQLiteSource(db) as sync:
            yield ThreadedAsyncSource(sync)


def _updated_at(db: Path, name: str) -> float:
    """The raw updated_at column of ``name``."""
    conn = sqlite3.connect(db)
    try:
        (value,) = conn.execute("SELECT updated_at FROM credentials WHERE name = ?",
                                (name,)).fetchone()
    finally:
        conn.close()
    return float(value)


def test_version_is_updated_at_in_microseconds(source: SQLiteSource, db: Path) -> None:
    """The version is round(updated_at * 1e6), close to this host's clock, and supported."""
    before = time.time_ns() // 1000
    version = source.save_versioned("a", 1)
    assert before <= version <= time.time_ns() // 1000 + 1
    assert round(_updated_at(db, "a") * 1_000_000) == version
    assert supports_versions(source) and supports_versions(ThreadedAsyncSource(source))


def test_microseconds_round_trip_exactly_through_real_seconds() -> None:
    """us / 1e6 stored as a double reads back as the same us from 2001 to 2100 (it does until
    2**32 s, in 2106), sampled, with offsets at the edges and middle of the second."""
    conn = sqlite3.connect(":memory:")
    try:
        conn.execute("CREATE TABLE t (us INTEGER, updated_at REAL)")
        seconds = [1_000_000_000 + i * 73_811 for i in range(0, 42_000, 7)] + [4_102_444_800]
        values = [s * 1_000_000 + offset for s in seconds
                  for offset in (0, 1, 2, 499_999, 500_000, 500_001, 999_998, 999_999,
                                 s % 1_000_000)]
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(us, us / 1_000_000) for us in values])
        rows = conn.execute("SELECT us, updated_at FROM t").fetchall()
    finally:
        conn.close()
    assert len(rows) == len(values) > 10_000
    assert all(round(updated_at * 1_000_000) == us for us, updated_at in rows)


def test_a_row_dated_in_the_future_still_gets_a_greater_version(source: SQLiteSource,
                                                                 db: Path) -> None:
    """A row another writer dated an hour ahead gets a version past it on the next save,
    save_if and delete (the max rule), not the clock's now."""
    source.save("a", 1)
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE credentials SET updated_at = ? WHERE name = 'a'",
                         (time.time() + 3600,))
    finally:
        conn.close()
    future = source.load_versioned("a")[1]
    assert future > time.time_ns() // 1000 + 3_500_000_000
    saved = source.save_versioned("a", 2)
    assert saved == future + 1
    source.save("a", 3)
    assert source.load_versioned("a") == (3, future + 2)
    assert source.save_if("a", 4, value_digest(3)) is True
    assert source.load_versioned("a") == (4, future + 3)
    assert source.delete_versioned("a") == future + 4


def test_versions_survive_a_clock_step_back(source: SQLiteSource,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """With the clock stuck an hour back, each save still gets a version one past the last."""
    first = source.save_versioned("a", 1)
    monkeypatch.setattr("vault.sources._base.now_us", lambda: first - 3_600_000_000)
    assert [source.save_versioned("a", i) for i in range(3)] == [first + 1, first + 2,
                                                                 first + 3]
    assert source.delete_versioned("a") == first + 4
    assert source.load_versioned("a") == (None, first - 3_600_000_000)


def test_a_legacy_row_gets_a_version(source: SQLiteSource, db: Path) -> None:
    """A row written before versions (updated_at = time.time(), sub-microsecond digits) loads
    with its microsecond and is bumped past it."""
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("INSERT INTO credentials VALUES ('old', '1', 1700000000.1234567)")
    finally:
        conn.close()
    assert source.load_versioned("old") == (1, 1_700_000_000_123_457)
    assert source.save_versioned("old", 2) > 1_700_000_000_123_457


def test_refused_save_if_leaves_the_version(source: SQLiteSource, db: Path) -> None:
    """A save_if that does not write changes neither the value nor updated_at."""
    source.save("a", 1)
    before = _updated_at(db, "a")
    assert source.save_if("a", 2, value_digest(0)) is False
    assert _updated_at(db, "a") == before and source.load("a") == 1


def test_locked_database_fails_versioned_writes_as_an_outage(source: SQLiteSource,
                                                             db: Path) -> None:
    """save_versioned and delete_versioned wait for the write lock, then fail as an outage,
    leaving no transaction open."""
    blocker = sqlite3.connect(db, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        with SQLiteSource(db, timeout=0.05) as impatient:
            for call in (lambda: impatient.save_versioned("a", 1),
                         lambda: impatient.delete_versioned("a")):
                with pytest.raises(sqlite3.OperationalError) as info:
                    call()
                assert is_outage(info.value)
            blocker.execute("ROLLBACK")
            assert impatient.save_versioned("a", 1) > 0
    finally:
        blocker.close()
