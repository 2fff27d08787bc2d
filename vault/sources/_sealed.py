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

import inspect
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from vault import _clock, codec
from vault._crypto import format as fmt
from vault._crypto.keys import KeyRing
from vault._store.rewrap import RewrapReport
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    FormatError,
    UnknownKeyError,
    VaultError,
)
from vault.keysources import KeySource
from vault.sources._walk import SequentialWalk, TableWalk

__all__ = ["MARK_NAME", "ROW_PREFIX", "RowSeal", "TableTarget", "is_sealed"]

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
        self.prefix = ROW_PREFIX + bytes([len(raw)]) + raw
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
                               plaintext=self.prefix + plaintext, created_at=_clock.now_ms(),
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
        if plaintext[:len(self.prefix)] != self.prefix:
            raise DecryptionError(f"row {name!r} is sealed for another table, not "
                                  f"{self.table} (copied between tables)")
        return plaintext[len(self.prefix):]

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


class TableTarget:
    """A sealed table as a rewrap target (``name`` "primary"): ``credseal rotate`` rewraps its
    rows, ``retire`` asks it, ``credseal migrate --primary`` seals a plaintext table with it.

    The walk is keyset-paginated in primary-key (name) order; each batch is one transaction
    of compare-and-set updates (``WHERE name = .. AND value = <old>``: a row a service wrote
    meanwhile keeps its newer value), every new envelope is opened again before its batch is
    written (Tink's rule), and the batch's transaction also writes the table mark with the
    walk's cursor, so a killed rewrap resumes after the last batch it committed.

    Args:
        source: a sealed ``SQLiteSource`` or ``PostgresSource`` (``keys=``).
        batch: rows per batch (one transaction each).
    """

    name = "primary"

    def __init__(self, source: Any, batch: int = 500) -> None:
        sealed = getattr(source, "sealed", None)
        if not isinstance(sealed, RowSeal):
            raise ConfigurationError("the primary is not sealed: give its source keys=",
                                     hint="PostgresSource(dsn, keys=...) or SQLiteSource(path, "
                                          "keys=...)")
        if inspect.iscoroutinefunction(getattr(source, "load", None)):
            raise ConfigurationError("a table is rewrapped through a sync source, not "
                                     f"{type(source).__name__}",
                                     hint="PostgresSource(dsn, table=..., keys=...) for the "
                                          "rewrap; the services keep their async source")
        if not isinstance(batch, int) or isinstance(batch, bool) or not 1 <= batch <= 10_000:
            raise ConfigurationError("batch must be a whole number of rows from 1 to 10,000")
        self.source, self.seal, self.batch = source, sealed, batch

    def __repr__(self) -> str:
        return f"TableTarget({self.source!r})"

    # the RewrapTarget protocol's item calls do not apply: the walk is batched
    def items(self) -> list[str]:
        """Nothing one by one: :meth:`rewrap_batched` walks the table."""
        return []

    def prepare(self, item: str, ring: KeyRing, wait: bool = True) -> Any:
        """Not used (see :meth:`rewrap_batched`)."""
        raise NotImplementedError("a table is rewrapped in batches")

    def _pages(self, after: str = "") -> Iterator[list[tuple[str, Any]]]:
        """The table's rows, a page at a time, in name order (read-only walks)."""
        while True:
            rows = self.source.rows_after(after, self.batch)
            if not rows:
                return
            yield rows
            after = rows[-1][0]

    def _mark_doc(self) -> dict[str, Any] | None:
        try:
            return self.seal.read_mark(self.source.mark_row())
        except VaultError:
            return None

    def rewrap_batched(self, ring: KeyRing,
                       progress: Callable[[int, int], None] | None = None) -> RewrapReport:
        """Rewrap every row not under ``ring.primary`` (resuming after the cursor a killed
        run left for this primary), and seal plaintext rows (a migration). Returns the
        counts; a row that does not open is a failure, named, and stays as it is.

        ``progress(done, total)`` after each batch commits (``total``: the rows left when
        the walk started, counted then; rows written meanwhile may add to ``done``).

        The source's walk (``vault.sources._walk``) may send a batch and return before it
        commits: the next page is read and sealed while the server writes the previous
        one. One batch at most is in flight, and batches commit in order."""
        doc = self._mark_doc() or {}
        cursor = doc.get("rewrap") if isinstance(doc.get("rewrap"), dict) else None
        after = str(cursor.get("after", "")) if cursor and \
            cursor.get("to") == ring.primary.id else ""
        counts = {"rewrapped": 0, "current": 0, "failed": 0, "skipped": 0}
        by_key: dict[str, int] = {}
        failures: list[tuple[str, str]] = []
        done = 0
        walker = getattr(self.source, "walk", None)
        walk: TableWalk = walker() if walker is not None else SequentialWalk(self.source)

        def account(replaced: list[str], olds: dict[str, str] | None) -> None:
            if olds is None:  # nothing was in flight
                return
            # the database's answer is not trusted: only names of the batch count, once each
            replaced_names = set(replaced) & olds.keys()
            counts["rewrapped"] += len(replaced_names)
            counts["skipped"] += len(olds) - len(replaced_names)
            for name in replaced_names:
                old_id = olds[name]
                by_key[old_id] = by_key.get(old_id, 0) + 1
            if progress is not None:
                progress(done, max(total, done))

        with walk:
            total = walk.count_after(after) if progress is not None else 0
            size = self.batch
            # A page may hold fewer rows than asked (PostgreSQL cuts pages of large rows):
            # the walk ends at the first empty page.
            rows = walk.page(after, size)
            ahead = walk.page(rows[-1][0], size) if rows else []
            flying: dict[str, str] | None = None  # the batch in flight: name -> old key id
            while rows:
                pairs: list[tuple[str, Any, bytes]] = []
                olds: dict[str, str] = {}
                for name, stored in rows:
                    try:
                        new, old_id = self._reseal(name, stored, ring)
                    except VaultError as exc:
                        counts["failed"] += 1
                        failures.append((name, f"{type(exc).__name__}: {exc.message}"))
                        continue
                    if new is None:
                        counts["current"] += 1
                        continue
                    pairs.append((name, stored, new))
                    olds[name] = old_id
                replaced, read = walk.collect()  # the previous batch committed
                if flying is not None:
                    account(replaced, flying)
                    ahead = read  # the page after the one in hand, read with that batch
                done += len(rows)
                mark = self.seal.mark("sealed" if self.seal.marked else "migrating",
                                      rewrap={"to": ring.primary.id, "after": rows[-1][0]})
                # This batch, and the read of the page after the next one.
                walk.submit(pairs, mark, ahead[-1][0] if ahead else None, size)
                flying, rows = olds, ahead
            replaced, _ = walk.collect()
            account(replaced, flying)
            # the walk ended: clear the cursor (a later rotation starts at the beginning)
            final = self.seal.mark("sealed" if self.seal.marked else "migrating")
            walk.submit([], final)
            walk.collect()
        if self.seal.marked:
            self.seal.read_mark(final)
        return RewrapReport(**counts, by_key=by_key, failures=tuple(failures))

    def _reseal(self, name: str, stored: Any, ring: KeyRing) -> tuple[bytes | None, str]:
        """The new envelope of a row (None: already under the primary) and its old key id.

        The new envelope is opened again before it is returned (``KeyRing.reseal``, Tink's
        rule); a failure raises ``RewrapError`` and the row stays as it is."""
        prefix = self.seal.prefix
        if not is_sealed(stored):  # plaintext: sealed as it is, in a migration only
            if not self.seal.migrating or self.seal.marked:
                raise FormatError(f"row {name!r} is plaintext, but the table is sealed: left "
                                  "as it is (a writer of the table put it there)")
            plaintext = stored.encode("utf-8") if isinstance(stored, str) else bytes(stored)
            codec.loads(plaintext)  # raises SerializationError: not a value, left alone
            return ring.seal_verified(kind=fmt.KIND_ROW, name=name, plaintext=prefix + plaintext,
                                      created_at=_clock.now_ms(),
                                      expires_at=fmt.MAX_TIMESTAMP), "plaintext"
        new, old_id = ring.reseal(stored, kind=fmt.KIND_ROW, name=name, prefix=prefix,
                                  wrong_prefix=f"row {name!r} is sealed for another table")
        return new, old_id.hex()

    def key_ids(self) -> Counter[str]:
        """Rows per key id from unverified headers (``plaintext`` for plaintext rows)."""
        counts: Counter[str] = Counter()
        for rows in self._pages():
            for _, stored in rows:
                if not is_sealed(stored):
                    counts["plaintext"] += 1
                    continue
                try:
                    counts[fmt.parse(bytes(stored))[0].key_id.hex()] += 1
                except FormatError:
                    counts["unreadable"] += 1
        return counts

    def sealed_under(self, key_id: str) -> list[str]:
        """The names of the rows that authenticate under ``key_id`` (or cannot be checked:
        the ring lacks it); a row whose header claims it but fails to open is not listed."""
        held = []
        ring = self.seal.ring
        for rows in self._pages():
            for name, stored in rows:
                if not is_sealed(stored):
                    continue
                try:
                    header = fmt.parse(bytes(stored))[0]
                except FormatError:
                    continue
                if header.key_id.hex() != key_id:
                    continue
                if key_id in ring:
                    try:
                        ring.open(bytes(stored), kind=fmt.KIND_ROW, name=name)
                    except (DecryptionError, FormatError):
                        continue
                held.append(name)
        return held

    def verify(self) -> list[tuple[str, str | None]]:
        """Authenticate every row with the ring: (name, None) for a row that opens as this
        table's row of that name, (name, why) for one that does not (plaintext included)."""
        results: list[tuple[str, str | None]] = []
        for rows in self._pages():
            for name, stored in rows:
                try:
                    if not is_sealed(stored):
                        raise FormatError("a plaintext row")
                    self.seal.open(name, stored)
                except VaultError as exc:
                    results.append((name, f"{type(exc).__name__}: {exc.message}"))
                else:
                    results.append((name, None))
        return results
