"""Real primary sources for the cache tests, with a way to take each one down and back up.

Fixtures (import the ``*_fixture`` functions into a test module): ``backend`` (parametrized:
SQLite file and PostgreSQL server), ``sqlite_backend``, ``pg_backend``. A :class:`Backend`
reads, writes and audits its store directly with the driver, behind the cache's back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg import sql

from tests.hygiene import record
from tests.realparts import PostgresServer
from vault import codec
from vault.sources.postgres import AsyncPostgresSource, PostgresSource
from vault.sources.sqlite import SQLiteSource

ROOT = Path(__file__).resolve().parents[2]


class FakeClock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move the clock forward."""
        self.now += seconds


class Recorder:
    """A source wrapper that logs every call it passes on (a real source underneath)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls: list[tuple[str, str]] = []

    def load(self, name: str) -> Any:
        """Log, then load from the real source."""
        self.calls.append(("load", name))
        return self.inner.load(name)

    def save(self, name: str, value: Any) -> None:
        """Log, then save to the real source."""
        self.calls.append(("save", name))
        self.inner.save(name, value)

    def delete(self, name: str) -> None:
        """Log, then delete from the real source."""
        self.calls.append(("delete", name))
        self.inner.delete(name)


class Backend:
    """A primary store: ``source()`` builds a source on it; ``down()``/``up()`` an outage."""

    kind = ""

    def source(self) -> Any:
        """A new (sync) source on this store."""
        raise NotImplementedError

    def async_source(self) -> Any:
        """A new async source on this store."""
        raise NotImplementedError

    def spec(self) -> str:
        """The SOURCE argument of tests.helpers.service."""
        raise NotImplementedError

    def down(self) -> None:
        """Make the store unavailable."""
        raise NotImplementedError

    def up(self) -> None:
        """Make it available again."""
        raise NotImplementedError

    def raw(self, name: str) -> Any:
        """The stored value, read with the driver (None if absent)."""
        raise NotImplementedError

    def write_behind(self, name: str, value: Any) -> None:
        """Change a stored value with the driver, behind the cache's back."""
        raise NotImplementedError

    def audit(self) -> list[tuple[str, str, Any]]:
        """Every write since ``install_audit``, in order: (save|delete, name, value)."""
        raise NotImplementedError

    def install_audit(self) -> None:
        """Start recording writes with triggers."""
        raise NotImplementedError


class SQLiteBackend(Backend):
    """A SQLite database file; the outage moves the file away."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        with SQLiteSource(path) as source:
            source.create_schema()

    def source(self) -> SQLiteSource:
        return SQLiteSource(self.path)

    def async_source(self) -> Any:
        from vault.sources import ThreadedAsyncSource

        return ThreadedAsyncSource(SQLiteSource(self.path))

    def spec(self) -> str:
        return f"sqlite:{self.path}"

    def down(self) -> None:
        self.path.rename(self.path.with_name("away.db"))

    def up(self) -> None:
        self.path.with_name("away.db").rename(self.path)

    def _execute(self, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            return conn.execute(query, params).fetchall()
        finally:
            conn.close()

    def raw(self, name: str) -> Any:
        rows = self._execute("SELECT value FROM credentials WHERE name = ?", (name,))
        return codec.loads(rows[0][0]) if rows else None

    def write_behind(self, name: str, value: Any) -> None:
        self._execute("UPDATE credentials SET value = ? WHERE name = ?",
                      (codec.dumps(value).decode(), name))

    def install_audit(self) -> None:
        conn = sqlite3.connect(self.path, isolation_level=None)
        try:
            conn.executescript("""
                CREATE TABLE audit (id INTEGER PRIMARY KEY, op TEXT, name TEXT, value TEXT);
                CREATE TRIGGER a_ins AFTER INSERT ON credentials BEGIN
                    INSERT INTO audit (op, name, value) VALUES ('save', NEW.name, NEW.value); END;
                CREATE TRIGGER a_upd AFTER UPDATE ON credentials BEGIN
                    INSERT INTO audit (op, name, value) VALUES ('save', NEW.name, NEW.value); END;
                CREATE TRIGGER a_del AFTER DELETE ON credentials BEGIN
                    INSERT INTO audit (op, name, value) VALUES ('delete', OLD.name, NULL); END;
            """)
        finally:
            conn.close()

    def audit(self) -> list[tuple[str, str, Any]]:
        return [(op, name, None if value is None else codec.loads(value))
                for op, name, value in self._execute("SELECT op, name, value FROM audit "
                                                     "ORDER BY id")]


class PostgresBackend(Backend):
    """A table on the throwaway PostgreSQL server; the outage stops the server (fast)."""

    kind = "postgres"

    def __init__(self, pg: PostgresServer) -> None:
        self.pg = pg
        self.table = pg.fresh_table_name("cred")
        self.audit_table = pg.fresh_table_name("audit")
        self.function = f"{self.audit_table}_fn"
        with PostgresSource(pg.dsn, table=self.table) as source:
            source.create_schema()

    def source(self) -> PostgresSource:
        return PostgresSource(self.pg.dsn, table=self.table)

    def async_source(self) -> AsyncPostgresSource:
        return AsyncPostgresSource(self.pg.dsn, table=self.table)

    def spec(self) -> str:
        return f"postgres:{self.table}"

    def down(self) -> None:
        self.pg.stop("fast")

    def up(self) -> None:
        self.pg.start()

    def _execute(self, query: sql.Composed | sql.SQL, params: tuple[Any, ...] = ()) -> list[Any]:
        with self.pg.connect() as conn:
            cursor = conn.execute(query, params)
            return cursor.fetchall() if cursor.description else []

    def raw(self, name: str) -> Any:
        rows = self._execute(sql.SQL("SELECT value FROM {} WHERE name = %s")
                             .format(sql.Identifier(self.table)), (name,))
        return codec.loads(rows[0][0]) if rows else None

    def row_version(self, name: str) -> str | None:
        """The row's xmin: it changes with every write of the row."""
        rows = self._execute(sql.SQL("SELECT xmin::text FROM {} WHERE name = %s")
                             .format(sql.Identifier(self.table)), (name,))
        return rows[0][0] if rows else None

    def write_behind(self, name: str, value: Any) -> None:
        self._execute(sql.SQL("UPDATE {} SET value = %s WHERE name = %s")
                      .format(sql.Identifier(self.table)), (codec.dumps(value), name))

    def install_audit(self) -> None:
        audit, fn = sql.Identifier(self.audit_table), sql.Identifier(self.function)
        self._execute(sql.SQL("CREATE TABLE {} (id bigserial PRIMARY KEY, op text, name text, "
                              "value bytea)").format(audit))
        self._execute(sql.SQL("""
            CREATE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN
              IF TG_OP = 'DELETE' THEN
                INSERT INTO {audit} (op, name) VALUES ('delete', OLD.name); RETURN OLD;
              END IF;
              INSERT INTO {audit} (op, name, value) VALUES ('save', NEW.name, NEW.value);
              RETURN NEW;
            END $$""").format(fn=fn, audit=audit))
        self._execute(sql.SQL("CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON {} "
                              "FOR EACH ROW EXECUTE FUNCTION {}()")
                      .format(sql.Identifier(self.table), fn))

    def drop_audit(self) -> None:
        """Drop the trigger function (the tables go with the pg fixture)."""
        self.pg.start()
        self._execute(sql.SQL("DROP FUNCTION IF EXISTS {} CASCADE")
                      .format(sql.Identifier(self.function)))

    def audit(self) -> list[tuple[str, str, Any]]:
        rows = self._execute(sql.SQL("SELECT op, name, value FROM {} ORDER BY id")
                             .format(sql.Identifier(self.audit_table)))
        return [(op, name, None if value is None else codec.loads(value))
                for op, name, value in rows]


@pytest.fixture(name="sqlite_backend")
def sqlite_backend_fixture(tmp_path: Path) -> SQLiteBackend:
    """A SQLite backend in this test's temp directory."""
    return SQLiteBackend(tmp_path / "app.db")


@pytest.fixture(name="pg_backend")
def pg_backend_fixture(pg: PostgresServer) -> Iterator[PostgresBackend]:
    """A PostgreSQL backend on a fresh table."""
    backend = PostgresBackend(pg)
    yield backend
    backend.drop_audit()


@pytest.fixture(name="backend", params=["sqlite", "postgres"])
def backend_fixture(request: pytest.FixtureRequest) -> Backend:
    """Each real backend in turn."""
    fixture = "sqlite_backend" if request.param == "sqlite" else "pg_backend"
    result: Backend = request.getfixturevalue(fixture)
    return result


def _service(directory: Path, backend: Backend, keys: str) -> tuple[list[str], dict[str, str]]:
    env = {**os.environ, "CREDSEAL_KEYS": keys}
    if isinstance(backend, PostgresBackend):
        env["TEST_PG_DSN"] = backend.pg.dsn
    return [sys.executable, "-m", "tests.helpers.service", str(directory), backend.spec()], env


def run_service(directory: Path, backend: Backend, keys: str,
                actions: list[list[Any]]) -> tuple[list[dict[str, Any]], str]:
    """Run tests.helpers.service to completion (checked: exit 0); return its JSON lines and
    its stderr (the log)."""
    argv, env = _service(directory, backend, keys)
    proc = subprocess.run(argv, cwd=ROOT, env=env, text=True, input=json.dumps(actions),
                          capture_output=True, timeout=60)
    record(proc.stderr, "service helper stderr")
    assert proc.returncode == 0, proc.stderr
    return [json.loads(line) for line in proc.stdout.splitlines()], proc.stderr


def start_service(directory: Path, backend: Backend, keys: str,
                  actions: list[list[Any]]) -> subprocess.Popen[str]:
    """Start tests.helpers.service with ``actions`` on stdin (closed); the caller reads and
    reaps it."""
    argv, env = _service(directory, backend, keys)
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdin is not None
    proc.stdin.write(json.dumps(actions))
    proc.stdin.close()
    return proc
