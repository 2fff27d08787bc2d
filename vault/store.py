"""``Vault``: one encrypted file per entry, written atomically and durably, checked on read.

See ``docs/format.md`` for the envelope and section 9 for the directory layout. Every ``get``
reads the file; nothing is cached in memory. Validity in time is checked only after the entry
has been authenticated.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vault import codec, files
from vault import format as fmt
from vault.errors import (
    ConfigurationError,
    EntryExpiredError,
    EntryNotFoundError,
    FormatError,
    InsecureFileError,
    KeySourceError,
    SerializationError,
    VaultError,
)
from vault.keys import KeyRing
from vault.keysources import KeySource
from vault.rewrap import PendingWrite, RotationReport, prepare_rewrap, rewrap_all

if TYPE_CHECKING:
    from vault.settings import VaultSettings

__all__ = ["DEFAULT_TTL", "Entry", "EntryInfo", "Scan", "Vault"]

DEFAULT_TTL = timedelta(days=1)
DEFAULT_MAX_ENTRY_SIZE = 1024 * 1024
ROTATE_WORKERS = 8  # measured in bench/bench_rotation.py
ROTATE_BATCH = 128
ENTRY_SUFFIX = ".cve"
_ENTRY_FILE = re.compile(r"[0-9a-f]{64}\.cve")
_TEMP_FILE = re.compile(r"\.([0-9a-f]{64})\.[0-9a-f]{16}\.tmp")
_NAME_DOMAIN = b"credvault v1 name\0"
_PREFIX_SIZE = fmt.FIXED_HEADER_SIZE + fmt.MAX_NAME_LENGTH


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _seconds(value: float | timedelta, what: str) -> float:
    seconds = value.total_seconds() if isinstance(value, timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise ConfigurationError(f"{what} must be a positive number of seconds or a timedelta")
    return float(seconds)


def name_stem(name: str) -> str:
    """Return the hex stem of the file that holds entry ``name`` (``docs/format.md`` 9)."""
    return hashlib.sha256(_NAME_DOMAIN + fmt.check_name(name)).hexdigest()


@dataclass(frozen=True)
class Entry:
    """An authenticated entry: its value and its header's times. The value is not in ``repr``."""

    name: str
    value: Any = field(repr=False)
    key_id: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class EntryInfo:
    """What an entry's header says, read **without** a key: unverified until opened."""

    name: str
    file: Path
    key_id: str
    created_at: datetime
    expires_at: datetime
    size: int


@dataclass(frozen=True)
class Scan:
    """A listing: readable entries, and files that could not be read as entries (with why)."""

    entries: tuple[EntryInfo, ...]
    problems: tuple[tuple[Path, str], ...]


class Vault:
    """Encrypted credential files in one private directory.

    Args:
        directory: created 0700 if missing; an existing one must be private to this user.
        keys: a :class:`KeyRing`, a :class:`~vault.keysources.KeySource` (reloaded when an
            entry names a key id the ring lacks, and at most every ``refresh_interval`` seconds
            before a write), or ``None`` for key-less inventory (``names``, ``scan``).
        ttl: lifetime of the entries this vault writes, and the longest age it accepts on read
            (seconds or a timedelta).
        max_entry_size: largest serialized value accepted by ``put``, in bytes.
        clock_skew: how far in the future an entry's creation time may lie, in seconds.
        lock_timeout: how long ``put``/``delete``/rewrap wait for an entry's lock, in seconds.

    Raises:
        InsecureFileError: the directory is a symlink, not private, or not this user's.
        ConfigurationError: a non-positive ttl, size or timeout.
    """

    def __init__(self, directory: str | os.PathLike[str], keys: KeyRing | KeySource | None = None,
                 ttl: float | timedelta = DEFAULT_TTL, *,
                 max_entry_size: int = DEFAULT_MAX_ENTRY_SIZE, clock_skew: float = 60.0,
                 lock_timeout: float = 10.0, refresh_interval: float = 5.0) -> None:
        self.directory = Path(directory)
        self._dir = str(self.directory)
        self._locks = os.path.join(self._dir, ".locks")
        self.ttl = _seconds(ttl, "ttl")
        self._ttl_ms = round(self.ttl * 1000)
        self._skew_ms = round(clock_skew * 1000) if clock_skew >= 0 else -1
        self.lock_timeout = _seconds(lock_timeout, "lock_timeout")
        self.refresh_interval = refresh_interval
        if self._skew_ms < 0:
            raise ConfigurationError("clock_skew must be zero or positive")
        if not 0 < max_entry_size <= fmt.MAX_PLAINTEXT_LENGTH:
            raise ConfigurationError(f"max_entry_size must be 1..{fmt.MAX_PLAINTEXT_LENGTH} bytes")
        self.max_entry_size = max_entry_size
        self._source: KeySource | None = None
        self._ring: KeyRing | None = None
        if isinstance(keys, KeyRing):
            self._ring = keys
        elif keys is not None:
            self._source = keys
            self._ring = keys.load()
        self._refreshed_at = time.monotonic()
        files.ensure_private_dir(self._dir)
        files.ensure_private_dir(self._locks)
        self._remove_stale_temps()

    @classmethod
    def from_settings(cls, settings: VaultSettings | None = None, *,
                      passphrase: bytes | str | None = None) -> Vault:
        """Build the vault that ``VAULT_*`` settings describe (``vault.settings.open_vault``)."""
        from vault.settings import open_vault  # lazy: settings imports this module

        return open_vault(settings, passphrase=passphrase)

    def __repr__(self) -> str:
        return f"Vault({str(self.directory)!r}, ttl={self.ttl:g})"

    # ---- public API ------------------------------------------------------------------------

    @property
    def keys(self) -> KeyRing:
        """The current key ring. Raises ``KeySourceError`` if the vault was opened without keys."""
        if self._ring is None:
            raise KeySourceError("this vault was opened without keys",
                                 hint="pass keys= (a KeyRing or a key source)")
        return self._ring

    def put(self, name: str, value: Any) -> None:
        """Seal ``value`` under the primary key and durably replace entry ``name``.

        Raises:
            SerializationError: the codec cannot hold ``value``, or it exceeds max_entry_size.
            FormatError: ``name`` is empty, over 1024 bytes of UTF-8, or has control characters.
            LockTimeoutError: another writer held the entry too long.
        """
        self._put_at_time(name, value, _now_ms())

    def get(self, name: str) -> Any:
        """Return the value of entry ``name``, read from disk and authenticated now.

        Raises:
            EntryNotFoundError, EntryExpiredError, DecryptionError, UnknownKeyError,
            FormatError, InsecureFileError: see the error table in the README.
        """
        return self._read_at_time(name, _now_ms()).value

    def read(self, name: str) -> Entry:
        """Like :meth:`get`, returning the value with its authenticated times and key id."""
        return self._read_at_time(name, _now_ms())

    def delete(self, name: str) -> None:
        """Remove entry ``name``; removing a missing entry is not an error."""
        stem = name_stem(name)
        with self._lock(stem, name) as lock:
            files.unlink_durably(self._entry_path(stem))
            lock.remove()

    def names(self) -> list[str]:
        """Return the sorted names of the entries (expired ones too); needs no key."""
        return sorted(info.name for info in self.scan().entries)

    def info(self, name: str) -> EntryInfo:
        """Return the unverified header of entry ``name`` (no key needed)."""
        stem = name_stem(name)
        path = self._entry_path(stem)
        try:
            return self._info(path)
        except FileNotFoundError:
            raise EntryNotFoundError(f"no entry named {name!r}") from None

    def scan(self) -> Scan:
        """List every entry file by its unverified header; unreadable files go to ``problems``."""
        files.check_private_dir(self._dir)
        entries: list[EntryInfo] = []
        problems: list[tuple[Path, str]] = []
        with os.scandir(self._dir) as listing:
            for item in listing:
                if not _ENTRY_FILE.fullmatch(item.name):
                    continue
                path = Path(item.path)
                try:
                    info = self._info(item.path)
                except FileNotFoundError:
                    continue
                except VaultError as exc:
                    problems.append((path, exc.message))
                    continue
                if name_stem(info.name) + ENTRY_SUFFIX != item.name:
                    problems.append((path, f"holds entry {info.name!r} under another entry's "
                                           "file name (moved or renamed)"))
                    continue
                entries.append(info)
        entries.sort(key=lambda e: e.name)
        return Scan(tuple(entries), tuple(sorted(problems)))

    def quarantine(self, name: str) -> Path:
        """Move entry ``name``'s file into ``quarantine/`` with a timestamp; returns the new path.

        Nothing is deleted; ``credvault prune`` removes old quarantined files.

        Raises:
            EntryNotFoundError: there is no such entry.
        """
        stem = name_stem(name)
        with self._lock(stem, name):
            try:
                return self._quarantine_path(self._entry_path(stem), stem)
            except FileNotFoundError:
                raise EntryNotFoundError(f"no entry named {name!r}") from None

    def rotate(self, *, ring: KeyRing | None = None,
               progress: Callable[[int, int], None] | None = None,
               workers: int = ROTATE_WORKERS, batch: int = ROTATE_BATCH) -> RotationReport:
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
        if ring is None:
            self._maybe_refresh(force=True)
            ring = self.keys
        names = self.names()
        return rewrap_all(names, lambda name, wait: self._prepare_rewrap(name, ring, wait),
                          progress, workers, batch)

    # ---- internals shared with the cache, the journal and the CLI --------------------------

    def _entry_path(self, stem: str) -> str:
        return f"{self._dir}/{stem}{ENTRY_SUFFIX}"

    def _lock(self, stem: str, what: str) -> files.FileLock:
        return files.FileLock(f"{self._locks}/{stem}.lock", timeout=self.lock_timeout,
                              what=f"entry {what!r}")

    def _info(self, path: str) -> EntryInfo:
        prefix, size = files.read_private_prefix(path, _PREFIX_SIZE)
        header = fmt.parse_header(prefix, size)
        if header.kind != fmt.KIND_ENTRY:
            raise FormatError("not an entry (a journal record)")
        return EntryInfo(name=header.name, file=Path(path), key_id=header.key_id.hex(),
                         created_at=_utc(header.created_at), expires_at=_utc(header.expires_at),
                         size=size)

    def _maybe_refresh(self, *, force: bool = False) -> None:
        if self._source is None:
            return
        now = time.monotonic()
        if force or now - self._refreshed_at >= self.refresh_interval:
            self._refreshed_at = now
            assert self._ring is not None  # loaded in __init__
            ring = self._source.refresh(self._ring)
            if ring is not None:
                self._ring = ring

    def _open(self, data: bytes, *, kind: int, name: str) -> tuple[fmt.Header, bytes]:
        """Open an envelope, reloading the ring once if it names a key id the ring lacks."""
        header, header_bytes, payload = fmt.parse(data)
        ring = self.keys
        if header.key_id.hex() not in ring and self._source is not None:
            self._maybe_refresh(force=True)
            ring = self.keys
        return header, ring.open_parsed(header, header_bytes, payload, kind=kind, name=name)

    def _read_file(self, stem: str, name: str) -> bytes:
        try:
            return files.read_private(self._entry_path(stem), fmt.MAX_ENVELOPE_SIZE)
        except FileNotFoundError:
            raise EntryNotFoundError(f"no entry named {name!r}") from None

    def _read_at_time(self, name: str, now_ms: int, *, check_ttl: bool = True) -> Entry:
        header, plaintext = self._read_plaintext(name, now_ms, check_ttl=check_ttl)
        return Entry(name=name, value=codec.loads(plaintext), key_id=header.key_id.hex(),
                     created_at=_utc(header.created_at), expires_at=_utc(header.expires_at))

    def _read_plaintext(self, name: str, now_ms: int, *,
                        check_ttl: bool = True) -> tuple[fmt.Header, bytes]:
        files.check_private_dir(self._dir)
        data = self._read_file(name_stem(name), name)
        header, plaintext = self._open(data, kind=fmt.KIND_ENTRY, name=name)
        if check_ttl:
            self._check_validity(header, now_ms)
        return header, plaintext

    def _check_validity(self, header: fmt.Header, now_ms: int) -> None:
        """Spec section 6, step 11; only ever called on an authenticated header."""
        if header.created_at > now_ms + self._skew_ms:
            raise EntryExpiredError(
                f"entry {header.name!r} is dated {(header.created_at - now_ms) / 1000:.0f} s in "
                "the future", hint="check the clocks of the machines that write this vault")
        limit = min(header.expires_at, header.created_at + self._ttl_ms)
        if now_ms > limit:
            raise EntryExpiredError(f"entry {header.name!r} expired "
                                    f"{(now_ms - limit) / 1000:.0f} s ago")

    def _serialize(self, value: Any) -> bytes:
        plaintext = codec.dumps(value)
        if len(plaintext) > self.max_entry_size:
            raise SerializationError(f"value is {len(plaintext)} bytes serialized, over the "
                                     f"entry limit of {self.max_entry_size}")
        return plaintext

    def _put_at_time(self, name: str, value: Any, now_ms: int) -> None:
        self._put_plaintext(name, self._serialize(value), now_ms, now_ms + self._ttl_ms)

    def _put_plaintext(self, name: str, plaintext: bytes, created_at: int,
                       expires_at: int) -> None:
        stem = name_stem(name)
        self._maybe_refresh()
        envelope = self.keys.seal(kind=fmt.KIND_ENTRY, name=name, plaintext=plaintext,
                                  created_at=created_at, expires_at=expires_at)
        files.check_private_dir(self._dir)
        with self._lock(stem, name):
            files.write_atomic(self._entry_path(stem), envelope, stem)

    def _prepare_rewrap(self, name: str, ring: KeyRing,
                        wait: bool = True) -> tuple[str, str | None] | PendingWrite | None:
        """Prepare the rewrap of one entry under ``ring.primary`` (``rewrap.prepare_rewrap``)."""
        stem = name_stem(name)
        return prepare_rewrap(self._entry_path(stem), stem, self._lock(stem, name), ring,
                              kind=fmt.KIND_ENTRY, name=name, wait=wait)

    def _quarantine_path(self, path: str, label: str, suffix: str = ENTRY_SUFFIX) -> Path:
        """Move ``path`` to ``quarantine/<UTC time>-<label><suffix>`` durably (caller locks)."""
        target_dir = os.path.join(self._dir, "quarantine")
        files.ensure_private_dir(target_dir)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = os.path.join(target_dir, f"{stamp}-{label}{suffix}")
        os.rename(path, target)
        files.fsync_dir(os.path.dirname(path))
        files.fsync_dir(target_dir)
        return Path(target)

    def _remove_stale_temps(self) -> None:
        """Remove temp files of crashed writes: those whose entry lock is free."""
        stale: dict[str, list[str]] = {}
        with os.scandir(self._dir) as listing:
            for item in listing:
                # Only files and symlinks we may have made; anything else is left alone.
                if ((match := _TEMP_FILE.fullmatch(item.name))
                        and (item.is_symlink() or item.is_file(follow_symlinks=False))):
                    stale.setdefault(match.group(1), []).append(item.path)
        for stem, temps in stale.items():
            lock = files.FileLock(f"{self._locks}/{stem}.lock", timeout=self.lock_timeout,
                                  what="temp file")
            try:
                if not lock.acquire(blocking=False):
                    continue  # a writer is active on this entry: its temp file is live
            except InsecureFileError:
                continue
            try:
                for temp in temps:
                    with contextlib.suppress(OSError):  # cleanup must never block opening
                        files.unlink_durably(temp)
            finally:
                lock.release()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000
