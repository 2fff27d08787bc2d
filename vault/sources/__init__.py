"""Primary sources of credentials: the ``Source`` protocol and the outage classifier.

A source is the service's own database, the authority for every credential. The fallback
cache (``vault.cache``) asks it first and keeps an encrypted copy of what it answered.

Implementations: :class:`~vault.sources.sqlite.SQLiteSource` (stdlib ``sqlite3``, the
embedded default) and :class:`~vault.sources.postgres.PostgresSource` /
:class:`~vault.sources.postgres.AsyncPostgresSource` (psycopg 3), plus
``vault.testing.MemorySource``. Write your own by implementing three methods; run
``vault.testing.SourceContract`` against it.

**Contract.** ``load(name)`` returns the stored value, or ``None`` when the name is not
stored (so ``None`` itself cannot be stored: the built-in sources refuse it). Values are the
codec's (``vault.codec``): JSON types plus ``bytes``, returned as new objects equal to what
was saved. ``save`` overwrites, ``delete`` of a missing name is not an error. On an outage a
source raises its driver's own exception; it does not translate it. The cache decides what is
an outage with :func:`is_outage` (or the classifier you give it); anything else, such as a
missing table, is a programming error and reaches the caller unchanged.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import sys
from typing import Any, Protocol, runtime_checkable

from vault.errors import ConfigurationError, SerializationError

__all__ = ["AsyncSource", "Source", "ThreadedAsyncSource", "check_storable", "is_outage"]


@runtime_checkable
class Source(Protocol):
    """A synchronous primary source (see the module docstring for the contract)."""

    def load(self, name: str) -> Any:
        """Return the value stored under ``name``, or ``None`` if there is none."""
        ...

    def save(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``, replacing any previous value."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``; removing a missing name is not an error."""
        ...


@runtime_checkable
class AsyncSource(Protocol):
    """The asyncio twin of :class:`Source`: the same contract with coroutine methods."""

    async def load(self, name: str) -> Any:
        """Return the value stored under ``name``, or ``None`` if there is none."""
        ...

    async def save(self, name: str, value: Any) -> None:
        """Store ``value`` under ``name``, replacing any previous value."""
        ...

    async def delete(self, name: str) -> None:
        """Remove ``name``; removing a missing name is not an error."""
        ...


class ThreadedAsyncSource:
    """An :class:`AsyncSource` that runs a thread-safe sync :class:`Source` in worker threads.

    ``ThreadedAsyncSource(SQLiteSource(path))`` gives an asyncio service the embedded
    default without blocking its event loop.
    """

    def __init__(self, source: Source) -> None:
        self.source = source

    def __repr__(self) -> str:
        return f"ThreadedAsyncSource({self.source!r})"

    async def load(self, name: str) -> Any:
        """``source.load`` in a worker thread."""
        return await asyncio.to_thread(self.source.load, name)

    async def save(self, name: str, value: Any) -> None:
        """``source.save`` in a worker thread."""
        await asyncio.to_thread(self.source.save, name, value)

    async def delete(self, name: str) -> None:
        """``source.delete`` in a worker thread."""
        await asyncio.to_thread(self.source.delete, name)


def check_storable(value: object) -> None:
    """Refuse ``None``, which ``load`` could not tell from a missing name.

    Raises:
        SerializationError: ``value`` is ``None``.
    """
    if value is None:
        raise SerializationError("None cannot be stored in a source: load() returns None for a "
                                 "missing name; use delete() to remove a credential")


# SQLite primary result codes (the low byte of the extended code) that mean the database file
# cannot be used right now; SQLITE_ERROR (1: no such table, syntax) and constraint violations
# are programming errors.
_SQLITE_OUTAGE_CODES = frozenset({
    sqlite3.SQLITE_PERM, sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM,
    sqlite3.SQLITE_READONLY, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB,
    sqlite3.SQLITE_NOLFS, sqlite3.SQLITE_AUTH,
})


def is_outage(exc: BaseException) -> bool:
    """The default outage classifier: is ``exc`` a source being unavailable?

    True for:

    - ``OSError``, which includes ``TimeoutError`` and ``ConnectionError``;
    - ``psycopg.OperationalError`` and ``psycopg.InterfaceError`` (connection refused, DNS
      failure, ``ConnectionTimeout``, ``AdminShutdown``, a cut connection, authentication
      failure, statement timeout, ``psycopg_pool.PoolTimeout``), when psycopg is loaded;
    - ``sqlite3.Error`` whose result code says the file cannot be used: cannot open, not a
      database, corrupt, locked or busy, I/O error, read-only, disk full.

    False for everything else, notably ``psycopg.ProgrammingError`` (a missing table, missing
    privileges) and ``sqlite3`` "no such table": those propagate to the caller.

    Pass your own to ``FallbackCache(is_outage=...)`` for other drivers, for example
    ``lambda e: isinstance(e, redis.ConnectionError) or vault.sources.is_outage(e)``.
    """
    if isinstance(exc, OSError):
        return True
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        return isinstance(code, int) and code & 0xFF in _SQLITE_OUTAGE_CODES
    psycopg = sys.modules.get("psycopg")  # loaded by anyone using a psycopg source
    return psycopg is not None and isinstance(exc, psycopg.OperationalError
                                              | psycopg.InterfaceError)


_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def check_table_name(table: str) -> tuple[str, ...]:
    """Split ``table`` (``name`` or ``schema.name``) into checked identifier parts.

    Each part must be a lowercase SQL identifier: ``[a-z_][a-z0-9_]*``, at most 63 bytes.
    Lowercase only, because PostgreSQL folds unquoted names to lowercase and a quoted
    ``"MyTable"`` would silently be another table.

    Raises:
        ConfigurationError: anything else.
    """
    parts = tuple(table.split(".")) if isinstance(table, str) else ()
    if not 1 <= len(parts) <= 2 or not all(_IDENTIFIER.fullmatch(p) for p in parts):
        raise ConfigurationError("table must be a lowercase identifier ([a-z_][a-z0-9_]*, at "
                                 "most 63 characters), optionally schema-qualified")
    return parts
