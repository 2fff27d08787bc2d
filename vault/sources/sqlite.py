"""``SQLiteSource``: the embedded default primary source, on the standard library's sqlite3.

The database file is the service's primary store, like a PostgreSQL server would be: it holds
the credentials **in clear** (protect it like your database; ``create_schema`` creates it
0600). One table::

    CREATE TABLE credentials (
        name       TEXT PRIMARY KEY,
        value      TEXT NOT NULL,      -- vault.codec tagged JSON (bytes stay bytes)
        updated_at REAL NOT NULL       -- Unix time of the last save
    )

The row's version (``vault.sources.VersionedSource``) is ``round(updated_at * 1_000_000)``:
every write stores ``max(now, old + 1 µs)`` under ``BEGIN IMMEDIATE``, as ``version / 1e6``,
which a double holds closely enough to read back the same microsecond (until 2**32 s, 2106).

Values are stored as the codec's tagged JSON text, so they round-trip exactly and stay
readable with the ``sqlite3`` shell.

An existing database is opened with the URI ``mode=rw``: a missing, moved or unreadable file
raises ``sqlite3.OperationalError`` (an outage for the cache) instead of silently creating an
empty database, which would make every credential look deleted.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from vault import codec
from vault._crypto.keys import KeyRing
from vault.errors import ConfigurationError
from vault.keysources import KeySource
from vault.sources import _base
from vault.sources._base import ABSENT, check_storable, check_table_name, value_digest
from vault.sources._sealed import MARK_NAME, RowSeal, is_sealed
from vault.sources._walk import SequentialWalk

__all__ = ["DEFAULT_TABLE", "SQLiteSource"]

DEFAULT_TABLE = "credentials"
T = TypeVar("T")


class SQLiteSource:
    """A :class:`~vault.sources.VersionedSource` in one SQLite database file (WAL mode).

    Args:
        path: the database file. It must exist (see :meth:`create_schema`).
        table: table name, a lowercase identifier.
        timeout: how long to wait for another writer's lock, in seconds (SQLite's busy
            timeout); after that the call fails with "database is locked", an outage.
        keys: a key ring or key source: the rows hold sealed envelopes (BLOBs) bound to this
            table and their name instead of JSON (``vault.sources._sealed``).
        migrating: with ``keys``, also read plaintext rows until ``credseal migrate
            --primary`` has sealed the table (and marked it so).

    Thread safety: one connection, used under a lock, so calls from several threads are
    serialized (each takes microseconds). Before each call the file is checked with ``stat``:
    if it was moved, removed or replaced, the connection is dropped and the file opened again,
    so a database that went away is an outage at the next call, not a ghost still readable
    through an open descriptor.

    Raises:
        ConfigurationError: a bad table name.
    """

    def __init__(self, path: str | os.PathLike[str], *, table: str = DEFAULT_TABLE,
                 timeout: float = 5.0, keys: KeyRing | KeySource | None = None,
                 migrating: bool = False) -> None:
        self.path = Path(path)
        self.table = ".".join(check_table_name(table))
        self.sealed = None if keys is None else RowSeal(keys, self.table, migrating=migrating)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._identity: tuple[int, int] | None = None
        # SQLite has no parameter for an identifier: the table name is checked to be a
        # lowercase identifier (check_table_name) and quoted, and no other text is spliced in.
        quoted = ".".join(f'"{part}"' for part in check_table_name(table))
        self._select = f"SELECT value FROM {quoted} WHERE name = ?"  # noqa: S608  # nosec B608
        self._select_versioned = (f"SELECT value, updated_at FROM {quoted} "  # noqa: S608  # nosec B608
                                  "WHERE name = ?")
        self._select_version = f"SELECT updated_at FROM {quoted} WHERE name = ?"  # noqa: S608  # nosec B608
        self._upsert = (f"INSERT INTO {quoted} (name, value, updated_at) VALUES (?, ?, ?) "  # noqa: S608  # nosec B608
                        "ON CONFLICT (name) DO UPDATE SET value = excluded.value, "
                        "updated_at = excluded.updated_at")
        self._delete = f"DELETE FROM {quoted} WHERE name = ?"  # noqa: S608  # nosec B608
        self._count = f"SELECT count(*) FROM {quoted}"  # noqa: S608  # nosec B608
        self._page = (f"SELECT name, value FROM {quoted} WHERE name > ? AND name <> ? "  # noqa: S608  # nosec B608
                      "ORDER BY name LIMIT ?")
        self._replace = (f"UPDATE {quoted} SET value = ? WHERE name = ? AND value = ?")  # noqa: S608  # nosec B608
        self._count_after = f"SELECT count(*) FROM {quoted} WHERE name > ? AND name <> ?"  # noqa: S608  # nosec B608
        self._create = (f"CREATE TABLE IF NOT EXISTS {quoted} (name TEXT PRIMARY KEY, "
                        "value TEXT NOT NULL, updated_at REAL NOT NULL)")

    def __repr__(self) -> str:
        sealed = "" if self.sealed is None else ", sealed"
        return f"SQLiteSource({str(self.path)!r}, table={self.table!r}{sealed})"

    def __enter__(self) -> SQLiteSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create_schema(self) -> None:
        """Create the database file (0600) if missing, switch it to WAL, create the table.

        Idempotent.

        Raises:
            sqlite3.Error, OSError: the file cannot be created or written.
        """
        with contextlib.suppress(FileExistsError):
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             0o600))

        def create(conn: sqlite3.Connection) -> None:
            # WAL: readers never block the writer, and the mode is stored in the file.
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(self._create)

        self._run(create)
        if self.sealed is not None and not self.sealed.migrating:
            self.mark_sealed(only_if_empty=True)

    def mark_sealed(self, *, only_if_empty: bool = False) -> bool:
        """Write the sealed table mark (``vault.sources._sealed``): from then on no source
        reads a plaintext row of this table. ``only_if_empty``: only for a table without
        rows (a new sealed table). Returns whether it wrote the mark."""
        sealed = self.sealed
        if sealed is None:
            raise ConfigurationError("mark_sealed needs a sealed source (keys=...)")
        mark = sealed.mark("sealed")

        def write(conn: sqlite3.Connection) -> bool:
            if only_if_empty and conn.execute(self._count).fetchone()[0]:
                return False
            self._write(conn, MARK_NAME, mark)
            return True

        wrote = self._immediate(write)
        if wrote:
            sealed.read_mark(mark)
        return wrote

    def load(self, name: str) -> Any:
        """Return the value stored under ``name``, or ``None``.

        Raises:
            sqlite3.OperationalError: the file is missing, unreadable or locked (an outage),
                or the table does not exist (a programming error).
            SerializationError: the stored text is not codec JSON.
        """
        self._check_row_name(name)
        row = self._run(lambda conn: conn.execute(self._select, (name,)).fetchone())
        return None if row is None else self._decode(name, row[0])

    def save(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name`` (durably: WAL with ``synchronous = FULL``), with a
        new version as :meth:`save_versioned`.

        Raises:
            SerializationError: ``value`` is ``None`` or not a codec value.
            sqlite3.Error: as :meth:`load`.
        """
        self.save_versioned(name, value)

    def delete(self, name: str) -> None:
        """Remove ``name`` (a missing name is not an error). Raises as :meth:`load`."""
        self._check_row_name(name)
        self._run(lambda conn: conn.execute(self._delete, (name,)))

    def load_versioned(self, name: str) -> tuple[Any, int]:
        """Return ``(value, version)``, or ``(None, now)`` for a missing name (microseconds
        since the epoch, this host's clock). Raises as :meth:`load`."""
        self._check_row_name(name)
        row = self._run(lambda conn: conn.execute(self._select_versioned, (name,)).fetchone())
        if row is None:
            return None, _base.now_us()
        return self._decode(name, row[0]), _micros(row[1])

    def save_versioned(self, name: str, value: Any) -> int:
        """Store ``value`` as :meth:`save` and return its version, ``max(now, old + 1)``, in
        one ``BEGIN IMMEDIATE`` transaction. Raises as :meth:`save`."""
        text = self._encode(name, value)
        return self._immediate(lambda conn: self._write(conn, name, text))

    def delete_versioned(self, name: str) -> int:
        """Remove ``name`` as :meth:`delete` and return the tombstone version, ``max(now, old +
        1)`` (a missing name: now), in one ``BEGIN IMMEDIATE`` transaction. Raises as
        :meth:`load`."""
        self._check_row_name(name)

        def delete(conn: sqlite3.Connection) -> int:
            version = self._next_version(conn, name)
            conn.execute(self._delete, (name,))
            return version

        return self._immediate(delete)

    def save_if(self, name: str, value: Any, base_digest: str) -> bool:
        """Store ``value`` (``None``: delete) only while ``name`` holds the value of
        ``base_digest`` (``ABSENT``: none); one ``BEGIN IMMEDIATE`` transaction. Returns
        whether it wrote; a write bumps the version as :meth:`save_versioned`. Raises as
        :meth:`save`."""
        text = None if value is None else self._encode(name, value)
        self._check_row_name(name)

        def compare_and_set(conn: sqlite3.Connection) -> bool:
            row = conn.execute(self._select, (name,)).fetchone()
            # Sealed rows compare on the authenticated content, never on the ciphertext.
            current = ABSENT if row is None else value_digest(self._decode(name, row[0]))
            if current != base_digest:
                return False
            if text is None:
                conn.execute(self._delete, (name,))
            else:
                self._write(conn, name, text)
            return True

        return self._immediate(compare_and_set)

    def close(self) -> None:
        """Close the connection; the next call opens the file again."""
        with self._lock:
            self._drop()

    # ---- internals

    def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            return fn(self._connection())

    def _immediate(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """``fn`` in one ``BEGIN IMMEDIATE`` transaction, committed if it returns."""
        def transaction(conn: sqlite3.Connection) -> T:
            conn.execute("BEGIN IMMEDIATE")  # the write lock first: nobody writes in between
            try:
                result = fn(conn)
                conn.execute("COMMIT")
                return result
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise

        return self._run(transaction)

    def _next_version(self, conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute(self._select_version, (name,)).fetchone()
        return _base.next_version(None if row is None else _micros(row[0]))

    def _check_row_name(self, name: str) -> None:
        if self.sealed is not None and name == MARK_NAME:
            raise ConfigurationError("that row name is the sealed table's mark")

    def _encode(self, name: str, value: Any) -> str | bytes:
        """What a row stores: codec JSON text, or (sealed) the envelope as a BLOB."""
        check_storable(value)
        self._check_row_name(name)
        if self.sealed is None:
            return codec.dumps(value).decode("utf-8")
        return self.sealed.seal(name, value)

    def _decode(self, name: str, stored: str | bytes) -> Any:
        if self.sealed is None:
            return codec.loads(stored)
        if not is_sealed(stored) and self.sealed.migrating and not self.sealed.marked:
            self._read_mark()  # a plaintext row while migrating: is the table sealed by now?
        return self.sealed.open(name, stored)

    # ---- a walk over the table (rewrap and migration of sealed rows)

    def rows_after(self, after: str, limit: int) -> list[tuple[str, Any]]:
        """Up to ``limit`` (name, stored value) rows with names above ``after`` in name order
        (keyset pagination), the table mark excluded."""
        return self._run(lambda conn: conn.execute(self._page, (after, MARK_NAME, limit))
                         .fetchall())

    def count_after(self, after: str) -> int:
        """How many rows have names above ``after`` (the table mark excluded)."""
        row = self._run(lambda conn: conn.execute(self._count_after, (after, MARK_NAME))
                        .fetchone())
        return int(row[0]) if row else 0

    def replace_rows(self, rows: list[tuple[str, Any, Any]], mark: bytes | None = None
                     ) -> list[str]:
        """In one transaction, replace each (name, old, new) row's value by ``new`` only where
        it still is ``old`` (compare-and-set: a row a service wrote meanwhile keeps its newer
        value; its version is kept, the value being the same), and write ``mark`` (the table
        mark, with a rewrap's cursor) if given. Returns the names replaced."""
        def replace(conn: sqlite3.Connection) -> list[str]:
            done = [name for name, old, new in rows
                    if conn.execute(self._replace, (new, name, old)).rowcount == 1]
            if mark is not None:
                self._write(conn, MARK_NAME, mark)
            return done

        return self._immediate(replace)

    def walk(self) -> SequentialWalk:
        """A walk over the table for a rewrap (``vault.sources._walk``), call by call."""
        return SequentialWalk(self)

    def mark_row(self) -> Any:
        """The stored table mark (None if there is none)."""
        row = self._run(lambda conn: conn.execute(self._select, (MARK_NAME,)).fetchone())
        return None if row is None else row[0]

    def _read_mark(self) -> None:
        assert self.sealed is not None
        row = self._run(lambda conn: conn.execute(self._select, (MARK_NAME,)).fetchone())
        self.sealed.read_mark(None if row is None else row[0])

    def _write(self, conn: sqlite3.Connection, name: str, text: str | bytes) -> int:
        """Upsert ``text`` with the next version (inside a transaction); return the version."""
        version = self._next_version(conn, name)
        conn.execute(self._upsert, (name, text, version / 1_000_000))
        return version

    def _connection(self) -> sqlite3.Connection:
        try:
            st = os.stat(self.path)
            identity: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except OSError:
            identity = None
        if self._conn is not None and identity == self._identity:
            return self._conn
        self._drop()
        uri = "file:" + urllib.parse.quote(str(self.path.absolute())) + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=self.timeout, isolation_level=None,
                               check_same_thread=False)
        try:
            conn.execute("PRAGMA synchronous = FULL")  # a saved credential survives power loss
        except BaseException:
            conn.close()
            raise
        self._conn, self._identity = conn, identity
        return conn

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = self._identity = None


def _micros(updated_at: float) -> int:
    """The version of a row: its ``updated_at`` (seconds) in whole microseconds."""
    return round(float(updated_at) * 1_000_000)
