"""``Vault``: one encrypted file per entry, written atomically and durably, checked on read.

See ``docs/format.md`` for the envelope and section 9 for the directory layout. Every ``get``
reads the file; nothing is cached in memory. Validity in time is checked only after the entry
has been authenticated. The work is done by the vault's :class:`EntryStore` (its internal
interface, for the package's other modules: :func:`entries_of`).
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from vault import _clock
from vault import _files as files
from vault._crypto import format as fmt
from vault._crypto.keys import KeyRing
from vault._store.entries import EntryInfo, EntryStore, Scan, utc
from vault._store.rewrap import RewrapReport, rewrap
from vault.errors import ConfigurationError, EntryNotFoundError, VaultError
from vault.keysources import KeySource

logger = logging.getLogger("vault.store")

__all__ = ["DEFAULT_TTL", "MAX_TTL", "REWRAP_BATCH", "REWRAP_WORKERS", "Entry", "EntryInfo",
           "Scan", "Vault", "entries_of"]

DEFAULT_TTL = timedelta(days=1)
#: The longest TTL a vault accepts: about 100 years (entry times are ms in 63 bits, and a
#: reader's ``datetime`` ends at the year 9999).
MAX_TTL = timedelta(days=36525)
DEFAULT_MAX_ENTRY_SIZE = 1024 * 1024
REWRAP_WORKERS = 8  # measured in bench/bench_rotation.py
REWRAP_BATCH = 128


class _NoDefault:
    """The default of ``Vault.get``'s ``default``: none given (so a missing entry raises)."""

    def __repr__(self) -> str:
        return "<no default>"


_NO_DEFAULT: Any = _NoDefault()


def _seconds(value: float | timedelta, what: str, limit: float | None = None) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigurationError(f"{what} must be a positive number of seconds or a timedelta")
    if limit is not None and not seconds <= limit:
        raise ConfigurationError(f"{what} must be at most {limit:.0f} seconds")
    return float(seconds)


@dataclass(frozen=True)
class Entry:
    """An authenticated entry: its value and its header's times. The value is not in ``repr``."""

    name: str
    value: Any = field(repr=False)
    key_id: str
    created_at: datetime
    expires_at: datetime


class Vault:
    """Encrypted credential files in one private directory.

    Args:
        directory: created 0700 if missing; an existing one must be private to this user.
        keys: a :class:`KeyRing`, a :class:`~vault.keysources.KeySource` (reloaded when an
            entry names a key id the ring lacks, and at most every ``refresh_interval`` seconds
            before a write), or ``None`` for key-less inventory (``names``, ``scan``).
        ttl: lifetime of the entries this vault writes, and the longest age it accepts on read
            (seconds or a timedelta; at most ``MAX_TTL``).
        max_entry_size: largest serialized value accepted by ``put``, in bytes.
        clock_skew: how far in the future an entry's creation time may lie, in seconds.
        lock_timeout: how long ``put``/``delete``/rewrap wait for an entry's lock, in seconds.
        read_only: change nothing in the directory: it must exist, nothing is created or
            cleaned up, and ``put``, ``delete``, ``quarantine`` and ``rewrap`` are refused.

    Raises:
        InsecureFileError: the directory is a symlink, not private, or not this user's (or,
            with ``read_only``, missing).
        ConfigurationError: a non-positive ttl, size or timeout.
    """

    def __init__(self, directory: str | os.PathLike[str], keys: KeyRing | KeySource | None = None,
                 ttl: float | timedelta = DEFAULT_TTL, *,
                 max_entry_size: int = DEFAULT_MAX_ENTRY_SIZE, clock_skew: float = 60.0,
                 lock_timeout: float = 10.0, refresh_interval: float = 5.0,
                 read_only: bool = False) -> None:
        self.directory = Path(directory)
        self.ttl = _seconds(ttl, "ttl", MAX_TTL.total_seconds())
        self.lock_timeout = _seconds(lock_timeout, "lock_timeout")
        self.refresh_interval = refresh_interval
        self.read_only = read_only
        if clock_skew < 0:
            raise ConfigurationError("clock_skew must be zero or positive")
        if not 0 < max_entry_size <= fmt.MAX_PLAINTEXT_LENGTH:
            raise ConfigurationError(f"max_entry_size must be 1..{fmt.MAX_PLAINTEXT_LENGTH} bytes")
        self.max_entry_size = max_entry_size
        path = str(self.directory)
        # The keys load first: a source that fails leaves no new directory behind.
        self._entries = EntryStore(
            path, keys, ttl_ms=round(self.ttl * 1000), skew_ms=round(clock_skew * 1000),
            lock_timeout=self.lock_timeout, max_entry_size=max_entry_size,
            refresh_interval=refresh_interval, read_only=read_only)
        if read_only:
            files.check_private_dir(path)
        else:
            fresh = not os.path.lexists(path)
            files.ensure_private_dir(path)
            files.ensure_private_dir(self._entries.locks)
            self._entries.remove_stale_temps()
            if fresh and keys is not None:  # a new vault gets its id at once: never "adopted"
                from vault._store.state import StateFile
                try:
                    StateFile(self._entries).ensure()
                except VaultError as exc:  # e.g. an unreadable keyring binding: adopted later
                    logger.warning("vault %s: its state could not be written yet (%s)", path,
                                   exc.message)

    def __repr__(self) -> str:
        return f"Vault({str(self.directory)!r}, ttl={self.ttl:g})"

    @property
    def keys(self) -> KeyRing:
        """The current key ring. Raises ``KeySourceError`` if the vault was opened without keys."""
        return self._entries.keys

    def put(self, name: str, value: Any) -> None:
        """Seal ``value`` under the primary key and durably replace entry ``name``.

        Raises:
            SerializationError: the codec cannot hold ``value``, or it exceeds max_entry_size.
            FormatError: ``name`` is empty, over 1024 bytes of UTF-8, or has control characters.
            LockTimeoutError: another writer held the entry too long.
        """
        self._entries.put(name, value)

    def get(self, name: str, default: Any = _NO_DEFAULT) -> Any:
        """Return the value of entry ``name``, read from disk and authenticated now.

        Args:
            name: the entry.
            default: returned when there is no entry ``name`` (only then: an entry that
                exists but fails to open or has expired still raises).

        Raises:
            EntryNotFoundError: no such entry and no ``default``.
            EntryExpiredError, DecryptionError, UnknownKeyError, FormatError,
            InsecureFileError: see the error table in the README (with a default too).
        """
        try:
            return self._entries.load(name, _clock.now_ms())[1]
        except EntryNotFoundError:
            if default is _NO_DEFAULT:
                raise
            return default

    def read(self, name: str) -> Entry:
        """Like :meth:`get`, returning the value with its authenticated times and key id."""
        header, value = self._entries.load(name, _clock.now_ms())
        return Entry(name=name, value=value, key_id=header.key_id.hex(),
                     created_at=utc(header.created_at), expires_at=utc(header.expires_at))

    def delete(self, name: str) -> None:
        """Remove entry ``name``; removing a missing entry is not an error."""
        self._entries.remove(name)

    def names(self) -> list[str]:
        """Return the sorted names of the entries (expired ones too); needs no key."""
        return self._entries.items()

    def __contains__(self, name: object) -> bool:
        """Whether an entry file of that name exists (its header is not authenticated)."""
        if not isinstance(name, str):
            return False
        try:
            self.info(name)
        except EntryNotFoundError:
            return False
        return True

    def info(self, name: str) -> EntryInfo:
        """Return the unverified header of entry ``name`` (no key needed)."""
        try:
            return self._entries.info_at(self._entries.path(name))
        except FileNotFoundError:
            raise EntryNotFoundError(f"no entry named {name!r}") from None

    def scan(self) -> Scan:
        """List every entry file by its unverified header; unreadable files go to ``problems``."""
        return self._entries.scan()

    def quarantine(self, name: str) -> Path:
        """Move entry ``name``'s file into ``quarantine/`` with a timestamp; returns the new path.

        Nothing is deleted; ``credseal prune`` removes old quarantined files.

        Raises:
            EntryNotFoundError: there is no such entry.
        """
        return self._entries.quarantine(name)

    def rewrap(self, *, ring: KeyRing | None = None,
               progress: Callable[[int, int], None] | None = None,
               workers: int = REWRAP_WORKERS, batch: int = REWRAP_BATCH) -> RewrapReport:
        """Rewrap every entry not sealed under the primary key; keeps names and timestamps.

        Each entry is re-read under its lock (so a concurrent ``put`` is never overwritten by
        older content), opened, sealed under the primary, the new envelope opened again and
        compared, then atomically swapped in. Expired entries are rewrapped too. A crash at any
        point leaves every entry readable under a key the ring holds; running it again resumes.

        Args:
            ring: rewrap under this ring's primary (default: the vault's ring, refreshed).
            progress: called with (done, total) after each entry, from this thread.
            workers: threads that write a batch (the fsyncs overlap).
            batch: entries prepared (locked, opened, resealed, checked) before their writes;
                their locks are held until each is written. ``workers=1, batch=1`` rewraps
                strictly one entry at a time.
        """
        self._entries.check_writable()
        if ring is None:
            self._entries.refresh(force=True)
            ring = self.keys
        return rewrap(self._entries, ring, progress=progress, workers=workers, batch=batch)

    def rotate(self, *, ring: KeyRing | None = None,
               progress: Callable[[int, int], None] | None = None,
               workers: int = REWRAP_WORKERS, batch: int = REWRAP_BATCH) -> RewrapReport:
        """Deprecated alias of :meth:`rewrap` (kept for the 0.x series)."""
        warnings.warn("Vault.rotate() is deprecated: use Vault.rewrap()", DeprecationWarning,
                      stacklevel=2)
        return self.rewrap(ring=ring, progress=progress, workers=workers, batch=batch)


def entries_of(vault: Vault) -> EntryStore:
    """The internal interface of ``vault`` (for the package's own modules only)."""
    return vault._entries
