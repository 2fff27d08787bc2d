"""Sealed rows: the primary's values as envelopes, bound to their table and name.

With ``keys=`` the built-in sources store each value as a v1 envelope of kind ``KIND_ROW``
(``docs/format.md`` section 15) instead of codec JSON: the database, its replicas, dumps,
backups and statement logs see ciphertext only. The envelope's name is the row's name and
its plaintext starts with the table's name (``0x1E "CST1"``, its length, the name), both
authenticated, so a row copied to another name or table, planted as a cache file or a
journal record (or the reverse) does not open. Rows never expire (``expires_at`` is the
maximum; no TTL): the primary is the source of truth, and whoever can write the table can
put back an older sealed row of the same name.

**Plaintext rows** are refused (``FormatError``, logged as an ERROR on ``vault.sources``),
except while the source is in an explicit ``migrating`` mode and the table has not been
marked sealed: ``credseal migrate --primary`` seals the rows, then writes the **table mark**,
a sealed ``KIND_STATE`` row that says so; from then on no source reads plaintext from it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from vault import _clock, codec
from vault._crypto import format as fmt
from vault._crypto.keys import KeyRing
from vault.errors import DecryptionError, FormatError, UnknownKeyError
from vault.keysources import KeySource

__all__ = ["MARK_NAME", "ROW_PREFIX", "RowSeal", "is_sealed"]

logger = logging.getLogger("vault.sources")

#: what every sealed row's plaintext starts with, before its table's name
ROW_PREFIX = b"\x1eCST1"
#: the row that holds the table mark: a name no entry can have (a control character)
MARK_NAME = "\x01credseal-table"
_MARK_ENVELOPE_NAME = "credseal-table-mark"
_RELOAD_INTERVAL = 1.0


def is_sealed(stored: bytes | str | memoryview) -> bool:
    """Whether a stored value is an envelope (it starts with the magic; JSON cannot)."""
    head = stored[:4]
    return bytes(head) == fmt.MAGIC if not isinstance(head, str) else False


class RowSeal:
    """Seals and opens the rows of one table (see the module docstring).

    Args:
        keys: the ring, or a key source (reloaded, at most once a second, when a row names a
            key id the ring lacks: a rotation on another host).
        table: the table's name as the source knows it (schema-qualified or not): it is
            bound into every row.
        migrating: read plaintext rows too, until the table is marked sealed.
    """

    def __init__(self, keys: KeyRing | KeySource, table: str, *, migrating: bool) -> None:
        self.table, self.migrating = table, migrating
        raw = table.encode("ascii")  # check_table_name: a lowercase identifier
        self._prefix = ROW_PREFIX + bytes([len(raw)]) + raw
        self._source: KeySource | None = None
        if isinstance(keys, KeyRing):
            self._ring = keys
        else:
            self._source = keys
            self._ring = keys.load()
        self._lock = threading.Lock()
        self._reloaded = -_RELOAD_INTERVAL
        self._marked = False  # once this process saw the mark, it never reads plaintext

    def __repr__(self) -> str:
        return f"RowSeal(table={self.table!r}, migrating={self.migrating})"

    @property
    def ring(self) -> KeyRing:
        """The current ring."""
        return self._ring

    def row_name(self, name: str) -> str:
        """The envelope name of row ``name``: the name itself (the table is in the plaintext,
        so that every name an entry may have fits)."""
        return name

    def seal(self, name: str, value: Any) -> bytes:
        """The envelope of ``value`` for row ``name``, under the primary key."""
        return self.seal_plaintext(name, codec.dumps(value))

    def seal_plaintext(self, name: str, plaintext: bytes) -> bytes:
        """The envelope of codec JSON ``plaintext`` for row ``name``."""
        return self._ring.seal(kind=fmt.KIND_ROW, name=self.row_name(name),
                               plaintext=self._prefix + plaintext, created_at=_clock.now_ms(),
                               expires_at=fmt.MAX_TIMESTAMP)

    def open(self, name: str, stored: bytes | str | memoryview) -> Any:
        """The value of row ``name`` as stored (an envelope; plaintext only while migrating).

        Raises:
            FormatError: a plaintext row of a sealed table, or not an envelope.
            DecryptionError: it fails to authenticate as row ``name`` of this table.
            UnknownKeyError: sealed under a key id the ring (reloaded) lacks.
        """
        return codec.loads(self.open_plaintext(name, stored))

    def open_plaintext(self, name: str, stored: bytes | str | memoryview) -> bytes:
        """:meth:`open` without decoding: the codec JSON."""
        if not is_sealed(stored):
            if self.migrating and not self._marked:
                return stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)
            logger.error("row %r of table %s is plaintext, but the table is sealed: refused",
                         name, self.table)
            raise FormatError(f"row {name!r} of table {self.table} is plaintext, but the table "
                              "is sealed: refused (a writer of the table put it there)",
                              hint="`credseal migrate --primary` seals a table's rows")
        assert not isinstance(stored, str)  # is_sealed: bytes only
        plaintext = self._open(bytes(stored), kind=fmt.KIND_ROW, name=self.row_name(name))
        if plaintext[:len(self._prefix)] != self._prefix:
            raise DecryptionError(f"row {name!r} is sealed for another table, not "
                                  f"{self.table} (copied between tables)")
        return plaintext[len(self._prefix):]

    def _open(self, data: bytes, *, kind: int, name: str) -> bytes:
        try:
            return self._ring.open(data, kind=kind, name=name)[1]
        except UnknownKeyError:
            if not self._reload():
                raise
            return self._ring.open(data, kind=kind, name=name)[1]

    def _reload(self) -> bool:
        """Reload the ring from the key source (at most once a second); whether it did."""
        if self._source is None:
            return False
        with self._lock:
            now = time.monotonic()
            if now - self._reloaded < _RELOAD_INTERVAL:
                return False
            self._reloaded = now
            ring = self._source.refresh(self._ring)
            if ring is not None:
                self._ring = ring
        return True

    # ---- the table mark

    def mark(self, mode: str, **extra: Any) -> bytes:
        """The sealed table mark saying ``mode`` ("sealed"), with ``extra`` members."""
        now = _clock.now_ms()
        doc = {"v": 1, "table": self.table, "mode": mode, "at": now, **extra}
        return self._ring.seal(kind=fmt.KIND_STATE, name=f"{self.table}:{_MARK_ENVELOPE_NAME}",
                               plaintext=codec.dumps(doc), created_at=now,
                               expires_at=fmt.MAX_TIMESTAMP)

    def read_mark(self, stored: bytes | str | memoryview | None) -> dict[str, Any] | None:
        """The authenticated table mark (None if there is none); remembers a "sealed" one.

        Raises:
            DecryptionError, FormatError, UnknownKeyError: a mark that does not open (forged).
        """
        if stored is None:
            return None
        if not is_sealed(stored):
            raise FormatError(f"the table mark of {self.table} is not sealed (forged)")
        assert not isinstance(stored, str)
        plaintext = self._open(bytes(stored), kind=fmt.KIND_STATE,
                               name=f"{self.table}:{_MARK_ENVELOPE_NAME}")
        doc = codec.loads(plaintext)
        if not isinstance(doc, dict) or doc.get("table") != self.table:
            raise FormatError(f"the table mark of {self.table} is malformed")
        if doc.get("mode") == "sealed":
            self._marked = True
        return doc

    @property
    def marked(self) -> bool:
        """Whether this process has seen the table's "sealed" mark."""
        return self._marked
