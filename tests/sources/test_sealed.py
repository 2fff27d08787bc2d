"""Sealed primary sources (issue 14): rows hold envelopes bound to their table and name.

On real SQLite files and a real PostgreSQL server (with ``log_statement = all``, whose log
is scanned for plaintext).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

import vault
from tests.hygiene import CANARY_VALUE
from tests.realparts import PostgresServer
from vault import _clock
from vault._crypto import format as fmt
from vault._store.store import entries_of
from vault.cache import FallbackCache
from vault.errors import ConfigurationError, DecryptionError, FormatError
from vault.sources.postgres import AsyncPostgresSource, PostgresSource
from vault.sources.sqlite import SQLiteSource
from vault.testing import AsyncVersionedSourceContract, VersionedSourceContract

CRED = {"token": CANARY_VALUE, "noiseKey": bytes(range(32))}


@pytest.fixture
def ring() -> vault.KeyRing:
    return vault.KeyRing([vault.Key.generate()])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def table(pg: PostgresServer) -> str:
    return pg.fresh_table_name("sealed")


class TestSealedSQLiteContract(VersionedSourceContract):
    """A sealed SQLiteSource keeps the versioned source contract."""

    @pytest.fixture
    def source(self, db: Path, ring: vault.KeyRing) -> Iterator[SQLiteSource]:
        with SQLiteSource(db, keys=ring) as source:
            source.create_schema()
            yield source


class TestSealedPostgresContract(VersionedSourceContract):
    """A sealed PostgresSource keeps the versioned source contract."""

    @pytest.fixture
    def source(self, pg: PostgresServer, table: str,
               ring: vault.KeyRing) -> Iterator[PostgresSource]:
        with PostgresSource(pg.dsn, table=table, keys=ring) as source:
            source.create_schema()
            yield source


class TestSealedAsyncPostgresContract(AsyncVersionedSourceContract):
    """A sealed AsyncPostgresSource keeps the async versioned source contract."""

    @pytest.fixture
    def source(self, pg: PostgresServer, table: str,
               ring: vault.KeyRing) -> AsyncPostgresSource:
        with PostgresSource(pg.dsn, table=table, keys=ring) as sync:
            sync.create_schema()
        return AsyncPostgresSource(pg.dsn, table=table, keys=ring)


def sqlite_rows(db: Path, table: str = "credentials") -> dict[str, Any]:
    conn = sqlite3.connect(db)
    try:
        return dict(conn.execute(f'SELECT name, value FROM "{table}"').fetchall())  # noqa: S608
    finally:
        conn.close()


def sqlite_exec(db: Path, statement: str, *args: Any) -> None:
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute(statement, args)
    finally:
        conn.close()


def test_rows_are_envelopes_bound_to_table_and_name(db: Path, ring: vault.KeyRing,
                                                    tmp_path: Path) -> None:
    with SQLiteSource(db, keys=ring) as source:
        source.create_schema()
        source.save("c1", CRED)
        rows = sqlite_rows(db)
        assert isinstance(rows["c1"], bytes) and rows["c1"].startswith(b"CVLT")
        assert CANARY_VALUE.encode() not in b"".join(
            v if isinstance(v, bytes) else v.encode() for v in rows.values())
        header = fmt.parse(rows["c1"])[0]
        assert (header.kind, header.name, header.expires_at) == \
            (fmt.KIND_ROW, "c1", fmt.MAX_TIMESTAMP)
        # Copied to another name: it does not open as that name.
        sqlite_exec(db, "INSERT INTO credentials SELECT 'c2', value, updated_at FROM "
                        "credentials WHERE name = 'c1'")
        with pytest.raises(DecryptionError):
            source.load("c2")
        # Rows never expire: a century later it still opens.
        real = _clock.now_ms
        try:
            _clock.now_ms = lambda: real() + 100 * 365 * 86_400_000  # type: ignore[assignment]
            assert source.load("c1") == CRED
        finally:
            _clock.now_ms = real  # type: ignore[assignment]
        with pytest.raises(ConfigurationError, match="mark"):
            source.load("\x01credseal-table")
    # Another table of the same database, same ring: the row does not open there.
    with SQLiteSource(db, table="other", keys=ring) as other:
        other.create_schema()
        sqlite_exec(db, "INSERT INTO other SELECT name, value, updated_at FROM credentials "
                        "WHERE name = 'c1'")
        with pytest.raises(DecryptionError):
            other.load("c1")
    # A row planted as a local cache file, and a cache file planted as a row, do not open.
    v = vault.Vault(tmp_path / "v", keys=ring)
    v.put("c1", CRED)
    entry_file = Path(entries_of(v).path("c1"))
    entry_bytes = entry_file.read_bytes()
    entry_file.write_bytes(rows["c1"])
    with pytest.raises(vault.VaultError):
        v.get("c1")
    sqlite_exec(db, "UPDATE credentials SET value = ? WHERE name = 'c1'", entry_bytes)
    with SQLiteSource(db, keys=ring) as source, pytest.raises(DecryptionError):
        source.load("c1")


def test_plaintext_rows_are_refused_unless_migrating(db: Path, ring: vault.KeyRing,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    with SQLiteSource(db) as plain:
        plain.create_schema()
        plain.save("old", {"n": 1})
    # An existing plaintext table opened sealed but not migrating: refused, and logged.
    with SQLiteSource(db, keys=ring) as sealed:
        with caplog.at_level(logging.ERROR, logger="vault.sources"), \
                pytest.raises(FormatError, match="plaintext"):
            sealed.load("old")
        assert any("plaintext" in r.getMessage() and CANARY_VALUE not in r.getMessage()
                   for r in caplog.records)
    # Migrating: read, and new writes are sealed.
    with SQLiteSource(db, keys=ring, migrating=True) as migrating:
        assert migrating.load("old") == {"n": 1}
        migrating.save("new", {"n": 2})
        assert isinstance(sqlite_rows(db)["new"], bytes)
        assert migrating.mark_sealed() is True
        with pytest.raises(FormatError, match="plaintext"):
            migrating.load("old")  # marked: no source reads plaintext any more
    with SQLiteSource(db, keys=ring, migrating=True) as later:  # a fresh process
        with pytest.raises(FormatError, match="plaintext"):
            later.load("old")
        assert later.load("new") == {"n": 2}
    # A forged mark does not open: refused, not believed.
    sqlite_exec(db, "UPDATE credentials SET value = ? WHERE name = ?", b"CVLT" + b"0" * 200,
                "\x01credseal-table")
    with SQLiteSource(db, keys=ring, migrating=True) as forged, pytest.raises(vault.VaultError):
        forged.load("old")


def test_a_fallback_cache_over_a_sealed_source(db: Path, ring: vault.KeyRing,
                                               make_vault: Callable[..., vault.Vault]) -> None:
    """The cache works unchanged: its local copy is the value sealed again with the entry's
    own binding; journal replay compares authenticated content (the ciphertext differs)."""
    source = SQLiteSource(db, keys=ring)
    source.create_schema()
    source.save("c1", CRED)
    v = make_vault()
    cache = FallbackCache(source, v)
    assert cache.get("c1") == CRED
    local = fmt.parse(Path(entries_of(v).path("c1")).read_bytes())[0]
    assert (local.kind, local.name) == (fmt.KIND_ENTRY, "c1")
    db_moved = db.with_name("gone.db")
    db.rename(db_moved)  # an outage
    assert cache.save("c1", {"n": 2}).journaled
    db_moved.rename(db)
    assert cache.replay() == 1
    assert source.load("c1") == {"n": 2}
    source.close()


@contextlib.contextmanager
def statements_logged(pg: PostgresServer) -> Iterator[None]:
    """``log_statement = all`` on the test cluster for the block, reset after it."""
    with pg.connect() as conn:
        conn.execute("ALTER SYSTEM SET log_statement = 'all'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        yield
    finally:
        with pg.connect() as conn:
            conn.execute("ALTER SYSTEM RESET log_statement")
            conn.execute("SELECT pg_reload_conf()")


def test_postgres_sees_ciphertext_only(pg: PostgresServer, table: str,
                                       ring: vault.KeyRing) -> None:
    """With log_statement = all, neither the server log nor the table holds the value."""
    with statements_logged(pg):
        start = pg.log_path.stat().st_size
        with PostgresSource(pg.dsn, table=table, keys=ring) as source:
            source.create_schema()
            source.save("c1", CRED)
            assert source.save_if("c1", {"token": CANARY_VALUE + "-2"},
                                  vault.sources.value_digest(CRED))
            assert source.load_versioned("c1")[0] == {"token": CANARY_VALUE + "-2"}
            source.delete_versioned("c1")
            source.save("c3", CRED)
        with pg.connect() as conn:
            rows = conn.execute(sql.SQL("SELECT value FROM {}").format(
                sql.Identifier(table))).fetchall()
        assert rows and all(bytes(r[0]).startswith(b"CVLT") for r in rows)
        assert not any(CANARY_VALUE.encode() in bytes(r[0]) for r in rows)
        def logged_since(offset: int) -> bytes:
            with pg.log_path.open("rb") as log:
                log.seek(offset)
                return log.read()

        def leaks(text: bytes) -> list[str]:
            forms = {"raw": CANARY_VALUE.encode(), "hex": CANARY_VALUE.encode().hex().encode()}
            return [form for form, needle in forms.items() if needle in text.lower()]

        text = logged_since(start)
        assert b"parameters:" in text  # the statements were logged with their parameters
        assert leaks(text) == []
        # The scan can fail: the same statements on a plaintext table leak (as hex bytea).
        start = pg.log_path.stat().st_size
        with PostgresSource(pg.dsn, table=pg.fresh_table_name("plain")) as plain:
            plain.create_schema()
            plain.save("c1", CRED)
        assert "hex" in leaks(logged_since(start))


def test_migration_and_rotation_log_ciphertext_only(pg: PostgresServer, table: str,
                                                    ring: vault.KeyRing) -> None:
    """With log_statement = all, sealing a plaintext table in place and rotating it put no
    value in the log: a migration's compare-and-set compares digests, not the plaintext."""
    from vault.sources._sealed import TableTarget

    with PostgresSource(pg.dsn, table=table) as plain:  # a plaintext table, written before
        plain.create_schema()
        for i in range(30):
            plain.save(f"c{i}", {"token": f"{CANARY_VALUE}-{i}", "n": i})
    with statements_logged(pg):
        start = pg.log_path.stat().st_size
        with PostgresSource(pg.dsn, table=table, keys=ring, migrating=True) as migrating:
            report = TableTarget(migrating, batch=8).rewrap_batched(ring)
            assert (report.rewrapped, report.failed) == (30, 0)
            assert migrating.mark_sealed()
        new = ring.with_primary(vault.Key.generate())
        with PostgresSource(pg.dsn, table=table, keys=new) as sealed:
            assert TableTarget(sealed, batch=8).rewrap_batched(new).rewrapped == 30
            assert sealed.load("c7") == {"token": f"{CANARY_VALUE}-7", "n": 7}
        with pg.log_path.open("rb") as log:
            log.seek(start)
            text = log.read().lower()
        assert text.count(b"parameters:") >= 8  # the batches were logged with parameters
        assert CANARY_VALUE.encode().lower() not in text
        assert CANARY_VALUE.encode().hex().encode() not in text


def test_postgres_refuses_plaintext_and_moved_rows(pg: PostgresServer, table: str,
                                                   ring: vault.KeyRing) -> None:
    with PostgresSource(pg.dsn, table=table) as plain:
        plain.create_schema()
        plain.save("old", {"n": 1})
    with PostgresSource(pg.dsn, table=table, keys=ring, migrating=True) as migrating:
        assert migrating.load("old") == {"n": 1}
        migrating.save("c1", CRED)
        assert migrating.mark_sealed()
        with pytest.raises(FormatError, match="plaintext"):
            migrating.load("old")
    with pg.connect() as conn:
        conn.execute(sql.SQL("INSERT INTO {} SELECT 'c2', value, updated_at FROM {} WHERE "
                             "name = 'c1'").format(sql.Identifier(table),
                                                   sql.Identifier(table)))
    with PostgresSource(pg.dsn, table=table, keys=ring) as sealed:
        with pytest.raises(DecryptionError):
            sealed.load("c2")
        assert sealed.load("c1") == CRED
