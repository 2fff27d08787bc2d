"""The default outage classifier: which errors of a source mean "unavailable right now"."""

from __future__ import annotations

import sqlite3
import sys

__all__ = ["is_outage"]


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
