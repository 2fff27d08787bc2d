"""``PostgresSource`` and ``AsyncPostgresSource``: a PostgreSQL table as the primary source.

On psycopg 3. Give a DSN (the source keeps one connection, reconnecting when it breaks) or a
``psycopg_pool.ConnectionPool`` / ``AsyncConnectionPool`` (``psycopg-pool`` is optional and
imported by nobody here: pass the pool you built). The table (:meth:`create_schema`)::

    CREATE TABLE credvault_credentials (
        name       text PRIMARY KEY,
        value      bytea NOT NULL,       -- vault.codec tagged JSON, UTF-8
        updated_at timestamptz NOT NULL DEFAULT now()
    )

**Why bytea of codec JSON, not jsonb:** jsonb re-orders keys, drops ``-0.0`` to ``0``,
refuses ``\\u0000`` in strings, and a ``text``/``json`` column depends on the server encoding
(``SQL_ASCII`` or ``LATIN1`` databases mangle or refuse non-ASCII). Bytes of the codec's
tagged JSON round-trip every value exactly, ``bytes`` included, whatever the server. To look
at a value in SQL: ``convert_from(value, 'UTF8')::jsonb``.

**Versions** (``vault.sources.VersionedSource``) are ``updated_at`` in microseconds since the
epoch, exact in ``timestamptz``, on the server's clock: every write sets it to
``greatest(clock_timestamp(), old + 1 µs)`` in the same statement, and a delete returns its
tombstone version by the same rule (``DELETE ... RETURNING``).

**Timeouts, always** (without them an outage blocks a caller for about 130 s):

- ``connect_timeout`` (default :data:`DEFAULT_CONNECT_TIMEOUT` = 5 s, or the DSN's own value;
  whole seconds, libpq never waits less than 2 s); with a pool, the wait for a connection.
- ``statement_timeout`` (default :data:`DEFAULT_STATEMENT_TIMEOUT` = 5 s), enforced by the
  server: sent as a startup option (``options=-c statement_timeout=...``) on our own
  connections, and with ``SET LOCAL`` in each transaction on a pool's.
- On our own connections, unless the DSN sets them: ``tcp_user_timeout`` (statement timeout +
  5 s) and TCP keepalives (5 s idle, 2 s interval, 3 probes), the client-side bounds for a
  server that vanishes mid-query, where the server-side timeout cannot help.

A query that fails on a connection that turns out to be broken (a restarted server, a
terminated backend) is retried on a fresh connection (once; with a pool, up to ``max_size``
times, since every idle connection may be broken); saves and deletes are idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import math
import select
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

try:
    import psycopg
    import psycopg.errors
    from psycopg import sql
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
except ModuleNotFoundError as exc:  # the optional extra is not installed
    if exc.name != "psycopg":
        raise
    raise ModuleNotFoundError('vault.sources.postgres needs psycopg 3, which is not installed: '
                              'pip install "credseal[postgres]"', name="psycopg") from None

from vault import codec
from vault._crypto.keys import KeyRing
from vault.errors import ConfigurationError
from vault.keysources import KeySource
from vault.sources._base import ABSENT, check_storable, check_table_name, value_digest
from vault.sources._sealed import MARK_NAME, RowSeal, is_sealed
from vault.sources._walk import SequentialWalk

if TYPE_CHECKING:
    from psycopg_pool import AsyncConnectionPool, ConnectionPool

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_STATEMENT_TIMEOUT", "DEFAULT_TABLE",
           "AsyncPostgresSource", "PostgresSource"]

DEFAULT_TABLE = "credvault_credentials"
DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_STATEMENT_TIMEOUT = 5.0
#: the stored bytes a page of a walk holds at most (one row at least): a batch's statement
#: carries its old and new values, about twice as much
PAGE_BYTES = 8 * 1024 * 1024
T = TypeVar("T")
Conn = psycopg.Connection[Any]
AConn = psycopg.AsyncConnection[Any]


class _Common:
    """Settings, SQL and conninfo shared by the sync and async sources."""

    def __init__(self, dsn_or_pool: object, table: str, connect_timeout: float | None,
                 statement_timeout: float, keys: KeyRing | KeySource | None = None,
                 migrating: bool = False) -> None:
        parts = check_table_name(table)
        self.table = ".".join(parts)
        self.sealed = None if keys is None else RowSeal(keys, self.table, migrating=migrating)
        if not (isinstance(statement_timeout, int | float) and statement_timeout > 0):
            raise ConfigurationError("statement_timeout must be a positive number of seconds")
        self.statement_timeout = float(statement_timeout)
        ident = sql.Identifier(*parts)
        self._create = sql.SQL("CREATE TABLE IF NOT EXISTS {} (name text PRIMARY KEY, "
                               "value bytea NOT NULL, updated_at timestamptz NOT NULL "
                               "DEFAULT now())").format(ident)
        self._select = sql.SQL("SELECT value FROM {} WHERE name = %s").format(ident)
        # A write's version: the server's clock, but always past the row's previous one.
        self._upsert = sql.SQL(
            "INSERT INTO {} AS cur (name, value, updated_at) VALUES (%s, %s, clock_timestamp()) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = "
            "greatest(clock_timestamp(), cur.updated_at + interval '1 microsecond') "
            "RETURNING {}").format(ident, _micros(sql.SQL("cur.updated_at")))
        self._delete = sql.SQL("DELETE FROM {} WHERE name = %s").format(ident)
        self._any_row = sql.SQL("SELECT 1 FROM {} LIMIT 1").format(ident)
        # A page: up to LIMIT rows above the cursor, cut once their stored bytes pass the
        # budget (always one row at least): octet_length reads a TOAST pointer, not the value.
        self._page = sql.SQL(
            "SELECT name, value FROM (SELECT name, value, sum(octet_length(value)) OVER "
            "(ORDER BY name) AS upto FROM {} WHERE name > %s AND name <> %s ORDER BY name "
            "LIMIT %s) AS page WHERE upto - octet_length(value) < %s ORDER BY name"
        ).format(ident)
        self._count_after = sql.SQL("SELECT count(*) FROM {} WHERE name > %s AND name <> %s"
                                    ).format(ident)
        self._estimate = sql.SQL("SELECT reltuples::bigint FROM pg_class "
                                 "WHERE oid = to_regclass(%s)")
        self._parts = parts
        # One statement each, always one row; greatest() ignores NULL (no deleted row).
        self._delete_versioned = sql.SQL(
            "WITH gone AS (DELETE FROM {} WHERE name = %s RETURNING updated_at) SELECT {}"
        ).format(ident, _micros(sql.SQL("greatest(clock_timestamp(), (SELECT max(updated_at) "
                                        "FROM gone) + interval '1 microsecond')")))
        self._select_versioned = sql.SQL(
            "SELECT cur.value, {} FROM (VALUES (%s::text)) AS wanted (name) "
            "LEFT JOIN {} AS cur USING (name)"
        ).format(_micros(sql.SQL("coalesce(cur.updated_at, clock_timestamp())")), ident)
        self._lock_row = sql.SQL("SELECT value FROM {} WHERE name = %s FOR UPDATE").format(ident)
        self._insert_new = sql.SQL("INSERT INTO {} (name, value, updated_at) "
                                   "VALUES (%s, %s, clock_timestamp()) "
                                   "ON CONFLICT (name) DO NOTHING").format(ident)
        self._set_timeout = sql.SQL("SET LOCAL statement_timeout = {}").format(
            sql.Literal(self._statement_ms))
        self._conninfo: str | None = None
        if isinstance(dsn_or_pool, str):
            self._conninfo = self._build_conninfo(dsn_or_pool, connect_timeout)
        else:
            self.connect_timeout = _positive(connect_timeout, DEFAULT_CONNECT_TIMEOUT)

    @property
    def _statement_ms(self) -> int:
        return max(1, round(self.statement_timeout * 1000))

    def _build_conninfo(self, dsn: str, connect_timeout: float | None) -> str:
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            raise ConfigurationError("the PostgreSQL DSN is malformed") from None  # no echo
        if connect_timeout is None and params.get("connect_timeout") is not None:
            try:
                connect_timeout = float(str(params["connect_timeout"]))
            except ValueError:
                raise ConfigurationError("the DSN's connect_timeout is not a number") from None
        self.connect_timeout = _positive(connect_timeout, DEFAULT_CONNECT_TIMEOUT)
        options = str(params.get("options") or "")
        extra: dict[str, Any] = {
            "connect_timeout": max(1, math.ceil(self.connect_timeout)),
            "options": f"{options} -c statement_timeout={self._statement_ms}".strip(),
        }
        defaults = {"tcp_user_timeout": self._statement_ms + 5000, "keepalives": 1,
                    "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3}
        for key, value in defaults.items():
            if params.get(key) is None:
                extra[key] = value
        return make_conninfo(dsn, **extra)

    def _describe(self, pooled: bool) -> str:
        where = "pool" if pooled else "dsn"
        sealed = "" if self.sealed is None else ", sealed"
        return (f"{type(self).__name__}({where}, table={self.table!r}, "
                f"connect_timeout={self.connect_timeout:g}, "
                f"statement_timeout={self.statement_timeout:g}{sealed})")

    # ---- what a row stores: codec JSON, or (sealed) an envelope bound to table and name

    def _check_row_name(self, name: str) -> None:
        if self.sealed is not None and name == MARK_NAME:
            raise ConfigurationError("that row name is the sealed table's mark")

    def _encode(self, name: str, value: Any) -> bytes:
        check_storable(value)
        self._check_row_name(name)
        return codec.dumps(value) if self.sealed is None else self.sealed.seal(name, value)

    def _plaintext(self, name: str, stored: Any) -> bytes:
        """The codec JSON of a stored value (opened, if sealed; no mark lookup)."""
        if self.sealed is None:
            return bytes(stored)
        return self.sealed.open_plaintext(name, bytes(stored))

    def _needs_mark(self, stored: Any) -> bool:
        """A plaintext row of a sealed source while migrating: the mark decides."""
        sealed = self.sealed
        return sealed is not None and sealed.migrating and not sealed.marked \
            and not is_sealed(bytes(stored))

    def _decode_row(self, name: str, row: tuple[Any, ...] | None) -> Any:
        return None if row is None else codec.loads(self._plaintext(name, row[0]))

    def _versioned_row(self, name: str, row: tuple[Any, ...] | None) -> tuple[Any, int]:
        assert row is not None  # the query always returns one row
        value = None if row[0] is None else codec.loads(self._plaintext(name, row[0]))
        return value, int(row[1])


def _micros(timestamp: sql.Composable) -> sql.Composed:
    """SQL for ``timestamp`` (a ``timestamptz``) as whole microseconds since the epoch."""
    return sql.SQL("(extract(epoch from {}) * 1000000)::bigint").format(timestamp)


def _positive(value: float | None, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise ConfigurationError("connect_timeout must be a positive number of seconds "
                                 "(0 would mean waiting forever)")
    return float(value)


def _version(row: tuple[Any, ...] | None) -> int:
    assert row is not None  # RETURNING of an upsert, or the SELECT of a delete: one row
    return int(row[0])


@functools.lru_cache(maxsize=64)
def replace_statement(table: tuple[str, ...], count: int, with_mark: bool,
                      by_digest: bool = False) -> str:
    """The statement of one rewrap batch on ``table`` (its identifier parts), with
    PostgreSQL's own ``$n`` placeholders (for a ``psycopg.RawCursor``: nothing parses the long
    text client-side).

    Parameters: ``count`` (name, old, new) triples, then the batch's first and last names
    (the key range: an index range scan, never the whole table), then, ``with_mark``, the
    mark's name and value. Each row is replaced only where its value still is ``old``
    (compare-and-set: a row a service wrote meanwhile keeps its newer value; its version is
    kept, the value being the same); the mark is upserted with the next version, in the same
    statement, so in the same transaction. Returns the names replaced.

    ``by_digest``: each ``old`` is the SHA-256 of the old value, compared with
    ``sha256(t.value)``: for plaintext rows (a migration), whose values would otherwise
    appear in statement logs as parameters.
    """
    ident = sql.Identifier(*table)
    current = sql.SQL("sha256(t.value)" if by_digest else "t.value")

    def arg(n: int) -> sql.SQL:
        return sql.SQL("$" + str(n))

    parts: list[sql.Composable] = []
    if count:
        rows = sql.SQL(",").join(
            sql.SQL("({}::text,{}::bytea,{}::bytea)").format(arg(3 * i + 1), arg(3 * i + 2),
                                                             arg(3 * i + 3))
            for i in range(count))
        parts.append(sql.SQL(
            "done AS (UPDATE {table} AS t SET value = v.new FROM (VALUES {rows}) AS "
            "v (name, old, new) WHERE t.name BETWEEN {low}::text AND {high}::text AND "
            "t.name = v.name AND {current} = v.old RETURNING t.name)").format(
                table=ident, rows=rows, low=arg(3 * count + 1), high=arg(3 * count + 2),
                current=current))
    if with_mark:
        first = 3 * count + 3 if count else 1
        parts.append(sql.SQL(
            "mark AS (INSERT INTO {table} AS cur (name, value, updated_at) VALUES "
            "({name}::text, {value}::bytea, clock_timestamp()) ON CONFLICT (name) DO UPDATE "
            "SET value = EXCLUDED.value, updated_at = greatest(clock_timestamp(), "
            "cur.updated_at + interval '1 microsecond') RETURNING 1)").format(
                table=ident, name=arg(first), value=arg(first + 1)))
    # a data-modifying WITH runs to completion whether the query reads it or not
    query = sql.SQL("SELECT name FROM done" if count else "SELECT NULL::text WHERE false")
    return sql.SQL("WITH {} {}").format(sql.SQL(", ").join(parts), query).as_string(None)


def by_digest(rows: list[tuple[str, Any, Any]]) -> bool:
    """Whether a batch compares digests: it replaces a plaintext row (a migration)."""
    return not all(is_sealed(old) for _, old, _ in rows)


def replace_parameters(rows: list[tuple[str, Any, Any]], mark: bytes | None,
                       digest: bool = False) -> list[Any]:
    """The parameters of :func:`replace_statement` for ``rows`` and ``mark`` (``digest``:
    the SHA-256 of each old value instead of the value)."""
    if digest:
        rows = [(name, hashlib.sha256(bytes(old)).digest(), new) for name, old, new in rows]
    params: list[Any] = [item for name, old, new in rows for item in (name, old, new)]
    if rows:
        params += [rows[0][0], rows[-1][0]]
    if mark is not None:
        params += [MARK_NAME, mark]
    return params


class _PipelinedWalk:
    """A walk (``vault.sources._walk``) on a connection of its own in pipeline mode: a batch
    is sent whole (``BEGIN``, the batch's statement, ``COMMIT``, then the read of a page
    further on) and ``submit`` returns at once, so the next batch's cryptography runs while
    the server writes this one and reads ahead.

    ``plan_cache_mode = force_custom_plan``: each batch's statement is planned with its own
    key range (a generic plan could scan the whole table for every batch).
    """

    def __init__(self, source: PostgresSource) -> None:
        self._source = source
        self._stack = contextlib.ExitStack()
        self._conn: Conn | None = None
        self._pending: psycopg.RawCursor[Any] | None = None
        self._reading: psycopg.Cursor[Any] | None = None

    def __enter__(self) -> _PipelinedWalk:
        assert self._source._conninfo is not None
        conn = psycopg.Connection.connect(self._source._conninfo, autocommit=True)
        self._stack.callback(conn.close)
        try:
            conn.execute("SET plan_cache_mode = force_custom_plan")
            self._stack.enter_context(conn.pipeline())
        except BaseException:
            self._stack.close()
            raise
        self._conn = conn
        return self

    def __exit__(self, *exc_info: Any) -> None:
        # Leaving the pipeline syncs: a batch in flight commits (or fails) before the close.
        self._pending, self._reading, self._conn = None, None, None
        self._stack.__exit__(*exc_info)

    def _connection(self) -> Conn:
        if self._conn is None:
            raise RuntimeError("the walk is not open (use it as a context manager)")
        return self._conn

    def count_after(self, after: str) -> int:
        # the source's own connection: a cancelled count stays out of the pipeline
        return self._source.count_after(after)

    def page(self, after: str, limit: int) -> list[tuple[str, bytes]]:
        cursor = self._connection().cursor(binary=True)  # bytea as bytes, no hex on the wire
        cursor.execute(self._source._page, (after, MARK_NAME, limit, PAGE_BYTES))
        return [(str(name), bytes(value)) for name, value in cursor.fetchall()]

    def submit(self, rows: list[tuple[str, Any, bytes]], mark: bytes | None,
               read_after: str | None = None, limit: int = 0) -> None:
        conn = self._connection()
        if self._pending is not None or self._reading is not None:
            raise RuntimeError("a batch is still in flight: collect() it first")
        if rows or mark is not None:
            digest = by_digest(rows)
            statement = replace_statement(self._source._parts, len(rows), mark is not None,
                                          digest)
            conn.execute("BEGIN")
            cursor = psycopg.RawCursor(conn)
            cursor.execute(statement, replace_parameters(rows, mark, digest), binary=True)
            conn.execute("COMMIT")
            self._pending = cursor
        if read_after is not None:
            # a transaction of its own: the connection is outside any while the client seals
            conn.execute("BEGIN READ ONLY")
            reading = conn.cursor(binary=True)
            reading.execute(self._source._page, (read_after, MARK_NAME, limit, PAGE_BYTES))
            conn.execute("COMMIT")
            self._reading = reading
        self._flush(conn)

    def _flush(self, conn: Conn) -> None:
        """Send what libpq still holds of the batch (pipeline mode returns once the
        commands are queued; a batch larger than the socket's buffer would wait for the
        next call, and the server with it), reading results meanwhile."""
        pgconn = conn.pgconn
        patience = self._source.statement_timeout
        deadline = time.monotonic() + patience
        poller = select.poll()
        poller.register(pgconn.socket, select.POLLIN | select.POLLOUT)
        while pgconn.flush():  # 1: more to send
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise psycopg.OperationalError(
                    f"the server took no data for {patience:g} s (the statement timeout): "
                    "a rewrap batch was not sent")
            for _fd, events in poller.poll(remaining * 1000):
                if events & select.POLLIN:
                    pgconn.consume_input()
                if events & select.POLLOUT:  # the socket took data: patience starts again
                    deadline = time.monotonic() + patience

    def collect(self) -> tuple[list[str], list[tuple[str, bytes]]]:
        (cursor, reading), self._pending, self._reading = (self._pending, self._reading), \
            None, None
        done = [] if cursor is None else [str(row[0]) for row in cursor.fetchall()]
        ahead = [] if reading is None else [(str(name), bytes(value))
                                            for name, value in reading.fetchall()]
        return done, ahead


class PostgresSource(_Common):
    """A :class:`~vault.sources.VersionedSource` in a PostgreSQL table.

    Args:
        dsn_or_pool: a libpq connection string or URI, or a ``psycopg_pool.ConnectionPool``.
        table: table name, a lowercase identifier, optionally ``schema.table``.
        connect_timeout: seconds; default: the DSN's ``connect_timeout``, else 5.
        statement_timeout: seconds, enforced by the server on every query; default 5.
        keys: a key ring or key source: rows hold sealed envelopes bound to this table and
            their name instead of codec JSON; the server sees ciphertext only (statement
            parameters included). ``migrating``: also read plaintext rows until the table
            is marked sealed (``credseal migrate --primary``).

    Thread safety: with a DSN, one connection used under a lock (calls are serialized); give
    a pool for parallel calls. The source never logs or shows the DSN (it may hold a password).

    Raises:
        ConfigurationError: a bad table name, timeout or DSN.
    """

    def __init__(self, dsn_or_pool: str | ConnectionPool[Any], *, table: str = DEFAULT_TABLE,
                 connect_timeout: float | None = None,
                 statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT,
                 keys: KeyRing | KeySource | None = None, migrating: bool = False) -> None:
        super().__init__(dsn_or_pool, table, connect_timeout, statement_timeout, keys,
                         migrating)
        self._pool = None if isinstance(dsn_or_pool, str) else dsn_or_pool
        self._lock = threading.Lock()
        self._conn: Conn | None = None

    def __repr__(self) -> str:
        return self._describe(self._pool is not None)

    def __enter__(self) -> PostgresSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def create_schema(self) -> None:
        """Create the table if it does not exist (idempotent)."""
        def create(conn: Conn) -> None:
            # A concurrent CREATE TABLE IF NOT EXISTS may win the race: that is fine.
            with contextlib.suppress(psycopg.errors.UniqueViolation):
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

        def write(conn: Conn) -> bool:
            with conn.transaction():
                if only_if_empty and conn.execute(self._any_row).fetchone() is not None:
                    return False
                conn.execute(self._upsert, (MARK_NAME, mark))
                return True

        wrote = self._run(write)
        if wrote:
            sealed.read_mark(mark)
        return wrote

    def _read_mark(self) -> None:
        assert self.sealed is not None
        self.sealed.read_mark(self.mark_row())

    # ---- a walk over the table (rewrap and migration of sealed rows)

    def rows_after(self, after: str, limit: int) -> list[tuple[str, Any]]:
        """Up to ``limit`` (name, stored value) rows with names above ``after`` in name order
        (keyset pagination on the primary key), the table mark excluded."""
        rows = self._run(lambda conn: conn.execute(self._page,
                                                   (after, MARK_NAME, limit, PAGE_BYTES),
                                                   binary=True).fetchall())
        return [(str(name), bytes(value)) for name, value in rows]

    def count_after(self, after: str) -> int:
        """How many rows have names above ``after`` (the table mark excluded), for a
        progress bar: counted if that fits in the statement timeout, else the planner's
        estimate of the whole table (0: unknown)."""
        try:
            row = self._run(lambda conn: conn.execute(self._count_after, (after, MARK_NAME))
                            .fetchone())
        except psycopg.errors.QueryCanceled:  # a table too large to count in time
            row = self._run(lambda conn: conn.execute(self._estimate, (self.table,))
                            .fetchone())
        return max(0, int(row[0])) if row and row[0] is not None else 0

    def replace_rows(self, rows: list[tuple[str, Any, Any]], mark: bytes | None = None
                     ) -> list[str]:
        """In one transaction, replace each (name, old, new) row's value by ``new`` only where
        it still is ``old`` (a row a service wrote meanwhile keeps its newer value; the
        version is kept, the value being the same), and write ``mark`` (the table mark, with
        a rewrap's cursor) if given: one statement (:func:`replace_statement`). Returns the
        names replaced. A batch with a plaintext row (a migration) compares SHA-256 digests
        of the values, so that no plaintext is a statement parameter (server logs)."""
        if not rows and mark is None:
            return []
        digest = by_digest(rows)
        statement = replace_statement(self._parts, len(rows), mark is not None, digest)
        params = replace_parameters(rows, mark, digest)

        def replace(conn: Conn) -> list[str]:
            cursor = psycopg.RawCursor(conn)
            return [str(row[0]) for row in cursor.execute(statement, params).fetchall()]

        return self._run(replace)

    def walk(self) -> _PipelinedWalk | SequentialWalk:
        """A walk over the table for a rewrap (``vault.sources._walk``): pipelined on a
        connection of its own with a DSN, call by call through the pool with a pool."""
        return SequentialWalk(self) if self._pool is not None else _PipelinedWalk(self)

    def mark_row(self) -> bytes | None:
        """The stored table mark (None if there is none)."""
        row = self._run(lambda conn: conn.execute(self._select, (MARK_NAME,)).fetchone())
        return None if row is None else bytes(row[0])

    def load(self, name: str) -> Any:
        """Return the value stored under ``name``, or ``None``.

        Raises:
            psycopg.OperationalError: an outage (refused, DNS, timeout, shutdown, auth).
            psycopg.ProgrammingError: e.g. the table does not exist.
            SerializationError: the stored bytes are not codec JSON.
        """
        self._check_row_name(name)
        row = self._run(lambda conn: conn.execute(self._select, (name,)).fetchone())
        if row is not None and self._needs_mark(row[0]):
            self._read_mark()
        return self._decode_row(name, row)

    def save(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name`` (an upsert). Raises as :meth:`load`, and
        ``SerializationError`` for ``None`` or a value the codec cannot hold."""
        data = self._encode(name, value)
        self._run(lambda conn: conn.execute(self._upsert, (name, data)))

    def delete(self, name: str) -> None:
        """Remove ``name`` (a missing name is not an error). Raises as :meth:`load`."""
        self._check_row_name(name)
        self._run(lambda conn: conn.execute(self._delete, (name,)))

    def load_versioned(self, name: str) -> tuple[Any, int]:
        """Return ``(value, version)``, or ``(None, now)`` for a missing name (microseconds
        since the epoch, the server's clock), in one query. Raises as :meth:`load`."""
        self._check_row_name(name)
        row = self._run(lambda conn: conn.execute(self._select_versioned, (name,)).fetchone())
        if row is not None and row[0] is not None and self._needs_mark(row[0]):
            self._read_mark()
        return self._versioned_row(name, row)

    def save_versioned(self, name: str, value: Any) -> int:
        """Store ``value`` as :meth:`save` and return its version, ``greatest(now, old + 1
        µs)``. Raises as :meth:`save`."""
        data = self._encode(name, value)
        return self._run(lambda conn: _version(conn.execute(self._upsert, (name, data))
                                               .fetchone()))

    def delete_versioned(self, name: str) -> int:
        """Remove ``name`` as :meth:`delete` and return the tombstone version, ``greatest(now,
        old + 1 µs)`` (a missing name: now), in one statement. Raises as :meth:`load`."""
        self._check_row_name(name)
        return self._run(
            lambda conn: _version(conn.execute(self._delete_versioned, (name,)).fetchone()))

    def save_if(self, name: str, value: Any, base_digest: str) -> bool:
        """Store ``value`` (``None``: delete) only while ``name`` holds the value of
        ``base_digest`` (``ABSENT``: none), in one transaction: the row is locked with
        ``SELECT ... FOR UPDATE`` and compared; a missing row is created with ``INSERT ... ON
        CONFLICT DO NOTHING``, so a concurrent insert wins. Returns whether it wrote."""
        data = None if value is None else self._encode(name, value)
        self._check_row_name(name)

        def compare_and_set(conn: Conn) -> bool:
            with conn.transaction():
                if base_digest == ABSENT:
                    if data is None:
                        return conn.execute(self._select, (name,)).fetchone() is None
                    return conn.execute(self._insert_new, (name, data)).rowcount == 1
                row = conn.execute(self._lock_row, (name,)).fetchone()
                # Sealed rows compare on the authenticated content, never the ciphertext.
                if row is None or value_digest(self._decode_row(name, row)) != base_digest:
                    return False
                conn.execute(self._delete if data is None else self._upsert,
                             (name,) if data is None else (name, data))
                return True

        return self._run(compare_and_set)

    def close(self) -> None:
        """Close the source's own connection (a pool is the caller's to close)."""
        with self._lock:
            self._drop()

    def _drop(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _run(self, fn: Callable[[Conn], T]) -> T:
        if self._pool is not None:
            return self._run_pooled(self._pool, fn)
        with self._lock:
            reused = self._conn is not None and not self._conn.closed
            while True:
                if self._conn is None or self._conn.closed:
                    self._drop()
                    assert self._conninfo is not None
                    self._conn = psycopg.Connection.connect(self._conninfo, autocommit=True)
                conn = self._conn
                try:
                    return fn(conn)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    if not conn.closed:
                        raise  # e.g. a statement timeout: the connection is still fine
                    self._drop()
                    if not reused:
                        raise
                    reused = False  # broken while idle: one more try on a new connection

    def _run_pooled(self, pool: ConnectionPool[Any], fn: Callable[[Conn], T]) -> T:
        # Every idle connection of the pool may be broken (a restarted server): try each.
        for attempt in range(pool.max_size + 1, 0, -1):
            with pool.connection(timeout=self.connect_timeout) as conn:
                try:
                    with conn.transaction():
                        conn.execute(self._set_timeout)
                        return fn(conn)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    if not conn.closed or attempt == 1:
                        raise
        raise AssertionError("unreachable")


class AsyncPostgresSource(_Common):
    """The asyncio twin of :class:`PostgresSource` (``psycopg.AsyncConnection`` or an
    ``AsyncConnectionPool``); same arguments, tables, timeouts and errors.

    Use it from one event loop: its connection and lock belong to the loop that first used
    them. Close it with ``await source.aclose()`` (or ``async with``).
    """

    def __init__(self, dsn_or_pool: str | AsyncConnectionPool[Any], *,
                 table: str = DEFAULT_TABLE, connect_timeout: float | None = None,
                 statement_timeout: float = DEFAULT_STATEMENT_TIMEOUT,
                 keys: KeyRing | KeySource | None = None, migrating: bool = False) -> None:
        super().__init__(dsn_or_pool, table, connect_timeout, statement_timeout, keys,
                         migrating)
        self._pool = None if isinstance(dsn_or_pool, str) else dsn_or_pool
        self._lock = asyncio.Lock()
        self._conn: AConn | None = None

    def __repr__(self) -> str:
        return self._describe(self._pool is not None)

    async def __aenter__(self) -> AsyncPostgresSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def create_schema(self) -> None:
        """Create the table if it does not exist (idempotent)."""
        async def create(conn: AConn) -> None:
            with contextlib.suppress(psycopg.errors.UniqueViolation):
                await conn.execute(self._create)

        await self._run(create)
        if self.sealed is not None and not self.sealed.migrating:
            sealed = self.sealed
            mark = sealed.mark("sealed")

            async def write(conn: AConn) -> bool:
                async with conn.transaction():
                    if await (await conn.execute(self._any_row)).fetchone() is not None:
                        return False
                    await conn.execute(self._upsert, (MARK_NAME, mark))
                    return True

            if await self._run(write):
                sealed.read_mark(mark)

    async def _read_mark(self) -> None:
        assert self.sealed is not None

        async def select(conn: AConn) -> Any:
            return await (await conn.execute(self._select, (MARK_NAME,))).fetchone()

        row = await self._run(select)
        self.sealed.read_mark(None if row is None else bytes(row[0]))

    async def load(self, name: str) -> Any:
        """Return the value stored under ``name``, or ``None``; raises as the sync source."""
        self._check_row_name(name)

        async def select(conn: AConn) -> Any:
            return await (await conn.execute(self._select, (name,))).fetchone()

        row = await self._run(select)
        if row is not None and self._needs_mark(row[0]):
            await self._read_mark()
        return self._decode_row(name, row)

    async def save(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name`` (an upsert); raises as the sync source."""
        data = self._encode(name, value)

        async def upsert(conn: AConn) -> None:
            await conn.execute(self._upsert, (name, data))

        await self._run(upsert)

    async def delete(self, name: str) -> None:
        """Remove ``name`` (a missing name is not an error)."""
        self._check_row_name(name)

        async def delete(conn: AConn) -> None:
            await conn.execute(self._delete, (name,))

        await self._run(delete)

    async def load_versioned(self, name: str) -> tuple[Any, int]:
        """As the sync source's ``load_versioned``."""
        self._check_row_name(name)

        async def select(conn: AConn) -> Any:
            return await (await conn.execute(self._select_versioned, (name,))).fetchone()

        row = await self._run(select)
        if row is not None and row[0] is not None and self._needs_mark(row[0]):
            await self._read_mark()
        return self._versioned_row(name, row)

    async def save_versioned(self, name: str, value: Any) -> int:
        """As the sync source's ``save_versioned``."""
        data = self._encode(name, value)

        async def upsert(conn: AConn) -> int:
            return _version(await (await conn.execute(self._upsert, (name, data))).fetchone())

        return await self._run(upsert)

    async def delete_versioned(self, name: str) -> int:
        """As the sync source's ``delete_versioned``."""
        self._check_row_name(name)

        async def delete(conn: AConn) -> int:
            cursor = await conn.execute(self._delete_versioned, (name,))
            return _version(await cursor.fetchone())

        return await self._run(delete)

    async def save_if(self, name: str, value: Any, base_digest: str) -> bool:
        """As the sync source's ``save_if``."""
        data = None if value is None else self._encode(name, value)
        self._check_row_name(name)

        async def compare_and_set(conn: AConn) -> bool:
            async with conn.transaction():
                if base_digest == ABSENT:
                    if data is None:
                        cursor = await conn.execute(self._select, (name,))
                        return await cursor.fetchone() is None
                    return (await conn.execute(self._insert_new, (name, data))).rowcount == 1
                row = await (await conn.execute(self._lock_row, (name,))).fetchone()
                if row is None or value_digest(self._decode_row(name, row)) != base_digest:
                    return False
                await conn.execute(self._delete if data is None else self._upsert,
                                   (name,) if data is None else (name, data))
                return True

        return await self._run(compare_and_set)

    async def aclose(self) -> None:
        """Close the source's own connection (a pool is the caller's to close)."""
        async with self._lock:
            await self._drop()

    async def _drop(self) -> None:
        if self._conn is not None:
            await self._conn.close()
            self._conn = None

    async def _run(self, fn: Callable[[AConn], Awaitable[T]]) -> T:
        if self._pool is not None:
            return await self._run_pooled(self._pool, fn)
        async with self._lock:
            reused = self._conn is not None and not self._conn.closed
            while True:
                if self._conn is None or self._conn.closed:
                    await self._drop()
                    assert self._conninfo is not None
                    self._conn = await psycopg.AsyncConnection.connect(self._conninfo,
                                                                       autocommit=True)
                conn = self._conn
                try:
                    return await fn(conn)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    if not conn.closed:
                        raise
                    await self._drop()
                    if not reused:
                        raise
                    reused = False

    async def _run_pooled(self, pool: AsyncConnectionPool[Any],
                          fn: Callable[[AConn], Awaitable[T]]) -> T:
        for attempt in range(pool.max_size + 1, 0, -1):
            async with pool.connection(timeout=self.connect_timeout) as conn:
                try:
                    async with conn.transaction():
                        await conn.execute(self._set_timeout)
                        return await fn(conn)
                except (psycopg.OperationalError, psycopg.InterfaceError):
                    if not conn.closed or attempt == 1:
                        raise
        raise AssertionError("unreachable")
