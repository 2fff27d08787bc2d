"""``EntryStore``: the internal interface of a vault directory's entries.

:class:`~vault.Vault` is the public face; this is what its collaborators use (the journal,
the caches, rewrap, prune, migrate, the operator actions), reached with
:func:`vault._store.store.entries_of`. Each method states its contract; none of them checks
more or less than it says. Paths are plain ``str`` (pathlib costs more than the system calls
on the write path). Files are named after the SHA-256 of the entry name (``docs/format.md``
section 9), so file names reveal nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault import _clock, codec
from vault import _files as files
from vault._crypto import format as fmt
from vault._crypto.keys import RETIRED, KeyRing
from vault._store.rewrap import PendingWrite, prepare_rewrap
from vault._store.stamp import unstamp
from vault.errors import (
    DecryptionError,
    EntryExpiredError,
    EntryNotFoundError,
    FormatError,
    InsecureFileError,
    KeySourceError,
    SerializationError,
    VaultError,
)
from vault.keysources import KeySource

__all__ = ["ENTRY_SUFFIX", "EntryInfo", "EntryStore", "Scan", "invalidity", "ms", "name_stem",
           "utc", "valid_until_ms"]

ENTRY_SUFFIX = ".cve"
_FORCED_RELOAD_INTERVAL = 1.0  # seconds between reloads forced by an unknown key id
LOCKS_DIR = ".locks"
QUARANTINE_DIR = "quarantine"
_ENTRY_FILE = re.compile(r"[0-9a-f]{64}\.cve")
_TEMP_FILE = re.compile(r"\.([0-9a-f]{64})\.[0-9a-f]{16}\.tmp")
_NAME_DOMAIN = b"credvault v1 name\0"  # frozen with the v1 format
_PREFIX_SIZE = fmt.FIXED_HEADER_SIZE + fmt.MAX_NAME_LENGTH


def utc(ms: int) -> datetime:
    """The UTC datetime of ``ms`` since the epoch.

    Raises:
        FormatError: beyond what a ``datetime`` holds (after the year 9999): a legal header
            time, but not one this vault writes (its TTL is bounded).
    """
    try:
        return datetime.fromtimestamp(ms / 1000, UTC)
    except (OverflowError, ValueError, OSError):
        raise FormatError(f"a timestamp of {ms} ms is beyond the year 9999") from None


def ms(moment: datetime) -> int:
    """``moment`` (aware) in ms since the epoch: the inverse of :func:`utc`."""
    return round(moment.timestamp() * 1000)


def name_stem(name: str) -> str:
    """Return the hex stem of the file that holds entry ``name`` (``docs/format.md`` 9)."""
    return hashlib.sha256(_NAME_DOMAIN + fmt.check_name(name)).hexdigest()


def valid_until_ms(created_at: int, expires_at: int, ttl_ms: int) -> int:
    """The last moment (ms) a reader with ``ttl_ms`` accepts an entry (spec section 6, step 11)."""
    return min(expires_at, created_at + ttl_ms)


def invalidity(created_at: int, expires_at: int, now_ms: int, ttl_ms: int,
               skew_ms: int) -> str | None:
    """Spec section 6, step 11, the one rule: ``"future"`` if created beyond the clock skew,
    ``"expired"`` past ``valid_until_ms``, else ``None`` (valid). Times in ms."""
    if created_at > now_ms + skew_ms:
        return "future"
    if now_ms > valid_until_ms(created_at, expires_at, ttl_ms):
        return "expired"
    return None


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


class EntryStore:
    """The entries of one vault directory: paths, locks, sealing, opening, removal.

    Args:
        directory: the vault directory (checked, and with ``read_only=False`` created, by
            the caller, :class:`~vault.Vault`).
        keys: a ring, a key source, or ``None`` (inventory only).
        ttl_ms, skew_ms, lock_timeout, max_entry_size, refresh_interval: as ``Vault``'s.
        read_only: refuse every method that would change the directory.
    """

    name = "entries"  # as a rewrap target

    def __init__(self, directory: str, keys: KeyRing | KeySource | None, *, ttl_ms: int,
                 skew_ms: int, lock_timeout: float, max_entry_size: int,
                 refresh_interval: float, read_only: bool) -> None:
        self.dir = directory
        self.locks = f"{directory}/{LOCKS_DIR}"
        self.ttl_ms, self.skew_ms = ttl_ms, skew_ms
        self.lock_timeout, self.max_entry_size = lock_timeout, max_entry_size
        self.refresh_interval, self.read_only = refresh_interval, read_only
        self._source: KeySource | None = None
        self._ring: KeyRing | None = None
        if isinstance(keys, KeyRing):
            self._ring = keys
        elif keys is not None:
            self._source = keys
            self._ring = keys.load()
        self._refreshed_at = time.monotonic()
        self._forced: dict[str, float] = {}  # missing key id -> when it forced a reload

    # ---- keys

    @property
    def source(self) -> KeySource | None:
        """The key source the ring comes from (None for a bare ring)."""
        return self._source

    @property
    def keys(self) -> KeyRing:
        """The current ring. Raises ``KeySourceError`` if opened without keys."""
        if self._ring is None:
            raise KeySourceError("this vault was opened without keys",
                                 hint="pass keys= (a KeyRing or a key source)")
        return self._ring

    def refresh(self, *, force: bool = False) -> None:
        """Reload the ring from the key source (at most every ``refresh_interval`` s)."""
        if self._source is None:
            return
        now = time.monotonic()
        if force or now - self._refreshed_at >= self.refresh_interval:
            self._refreshed_at = now
            assert self._ring is not None  # loaded in __init__
            ring = self._source.refresh(self._ring)
            if ring is not None:
                self._ring = ring

    def known_key_ids(self) -> set[str]:
        """Every key id this vault's key source holds or records (retired ones included, for
        the keyring and keyfile sources; for a bare ring or the env source, the ring's)."""
        ids = set(self.keys.ids)
        states = getattr(self._source, "states", None)
        if states is not None:
            with contextlib.suppress(VaultError):
                ids |= {state.id for state in states()}
        return ids

    def retired_key_ids(self) -> set[str]:
        """The key ids the key source records as retired: nothing under them opens again."""
        states = getattr(self._source, "states", None)
        if states is None:
            return set()
        with contextlib.suppress(VaultError):
            return {state.id for state in states() if state.state == RETIRED}
        return set()

    def open_envelope(self, data: bytes, *, kind: int, name: str) -> tuple[fmt.Header, bytes]:
        """Authenticate and decrypt ``data`` as ``kind``/``name``; reloads the ring once if it
        names a key id the ring lacks. No time check. Raises as ``KeyRing.open``."""
        header, header_bytes, payload = fmt.parse(data)
        ring = self.keys
        if header.key_id.hex() not in ring and self._source is not None:
            # At most one forced reload per second for each missing key id: 5,000 entries
            # under a key the source lacks cost a few reloads, not 5,000 (a keyring reload
            # is a D-Bus round trip). A new key is in the source before anything is sealed
            # under it, so the first sight of its id always reloads.
            key_id, now = header.key_id.hex(), time.monotonic()
            if now - self._forced.get(key_id, -_FORCED_RELOAD_INTERVAL) >= \
                    _FORCED_RELOAD_INTERVAL:
                if len(self._forced) >= 64:
                    self._forced.clear()  # planted headers naming many ids stay bounded
                self._forced[key_id] = now
                self.refresh(force=True)
                ring = self.keys
        return header, ring.open_parsed(header, header_bytes, payload, kind=kind, name=name)

    # ---- paths and locks

    def path(self, name: str) -> str:
        """The file that holds entry ``name`` (whether or not it exists)."""
        return f"{self.dir}/{name_stem(name)}{ENTRY_SUFFIX}"

    def lock(self, name: str) -> files.FileLock:
        """The lock that orders writers, rewrap and removal of entry ``name`` (not taken)."""
        return files.FileLock(f"{self.locks}/{name_stem(name)}.lock",
                              timeout=self.lock_timeout, what=f"entry {name!r}")

    def check_writable(self) -> None:
        """Raise ``InsecureFileError`` if this store was opened read-only."""
        if self.read_only:
            raise InsecureFileError(f"vault {self.dir} was opened read-only",
                                    hint="open it without read_only to change it")

    # ---- reading

    def info_at(self, path: str) -> EntryInfo:
        """The unverified header of the entry file at ``path``.

        Raises:
            FileNotFoundError: no file. FormatError, InsecureFileError: not a readable entry.
        """
        prefix, size = files.read_private_prefix(path, _PREFIX_SIZE)
        header = fmt.parse_header(prefix, size)
        if header.kind != fmt.KIND_ENTRY:
            raise FormatError("not an entry (a journal record)")
        return EntryInfo(name=header.name, file=Path(path), key_id=header.key_id.hex(),
                         created_at=utc(header.created_at), expires_at=utc(header.expires_at),
                         size=size)

    def scan(self) -> Scan:
        """List every entry file by its unverified header; unreadable files go to ``problems``."""
        files.check_private_dir(self.dir)
        entries: list[EntryInfo] = []
        problems: list[tuple[Path, str]] = []
        with os.scandir(self.dir) as listing:
            for item in listing:
                if not _ENTRY_FILE.fullmatch(item.name):
                    continue
                path = Path(item.path)
                try:
                    info = self.info_at(item.path)
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

    def items(self) -> list[str]:
        """The sorted names of the entries (unverified headers): the rewrap items."""
        return [info.name for info in self.scan().entries]

    def key_ids(self) -> Counter[str]:
        """Entries per key id, from unverified headers (a rewrap target's report)."""
        return Counter(info.key_id for info in self.scan().entries)

    def sealed_under(self, key_id: str) -> list[str]:
        """Entries that authenticate under ``key_id``; forged claims are quarantined (see
        ``RewrapTarget.sealed_under``)."""
        held = []
        for info in self.scan().entries:
            if info.key_id != key_id:
                continue
            try:
                self.open(info.name, 0, check_ttl=False)
            except (DecryptionError, FormatError):
                with contextlib.suppress(EntryNotFoundError):
                    self.quarantine(info.name)
                continue
            except EntryNotFoundError:
                continue
            except VaultError:  # the ring lacks the key: cannot tell, so it counts
                pass
            held.append(info.name)
        return held

    def open(self, name: str, now_ms: int, *, check_ttl: bool = True) -> tuple[fmt.Header, bytes]:
        """Read and authenticate entry ``name``; with ``check_ttl``, also check its validity
        at ``now_ms`` (only after authentication). Returns the header and the plaintext.

        Raises:
            EntryNotFoundError, EntryExpiredError, DecryptionError, UnknownKeyError,
            FormatError, InsecureFileError.
        """
        files.check_private_dir(self.dir)
        try:
            data = files.read_private(self.path(name), fmt.MAX_ENVELOPE_SIZE)
        except FileNotFoundError:
            raise EntryNotFoundError(f"no entry named {name!r}") from None
        header, plaintext = self.open_envelope(data, kind=fmt.KIND_ENTRY, name=name)
        if check_ttl:
            self.check_validity(header, now_ms)
        return header, plaintext

    def load(self, name: str, now_ms: int) -> tuple[fmt.Header, Any]:
        """:meth:`open` with the TTL, then the value decoded (a versioned copy's stamp is
        stripped; ``docs/format.md`` section 13).

        Raises:
            as :meth:`open`; EntryNotFoundError also for a tombstone (never written locally);
            SerializationError: the plaintext is not a codec value.
        """
        header, plaintext = self.open(name, now_ms)
        return header, self.decode(name, plaintext)[1]

    @staticmethod
    def decode(name: str, plaintext: bytes) -> tuple[int | None, Any]:
        """The (source version or None, value) of an authenticated entry plaintext.

        Raises:
            EntryNotFoundError: a tombstone. SerializationError: not a codec value.
        """
        stamped = unstamp(plaintext)
        if stamped.tombstone:
            raise EntryNotFoundError(f"no entry named {name!r} (a tombstone)")
        return stamped.version, codec.loads(stamped.body)

    def check_validity(self, header: fmt.Header, now_ms: int) -> None:
        """Raise ``EntryExpiredError`` unless an **authenticated** header is valid at ``now_ms``.

        Valid while ``created_at <= now + skew`` and ``now <= min(expires_at, created_at + ttl)``.
        """
        problem = invalidity(header.created_at, header.expires_at, now_ms, self.ttl_ms,
                             self.skew_ms)
        if problem == "future":
            raise EntryExpiredError(
                f"entry {header.name!r} is dated {(header.created_at - now_ms) / 1000:.0f} s in "
                "the future", hint="check the clocks of the machines that write this vault")
        if problem == "expired":
            limit = valid_until_ms(header.created_at, header.expires_at, self.ttl_ms)
            raise EntryExpiredError(f"entry {header.name!r} expired "
                                    f"{(now_ms - limit) / 1000:.0f} s ago")

    # ---- writing

    def serialize(self, value: Any) -> bytes:
        """The codec's tagged JSON of ``value``, refused over ``max_entry_size``.

        Raises:
            SerializationError: not storable, or too large.
        """
        plaintext = codec.dumps(value)
        if len(plaintext) > self.max_entry_size:
            raise SerializationError(f"value is {len(plaintext)} bytes serialized, over the "
                                     f"entry limit of {self.max_entry_size}")
        return plaintext

    def write(self, name: str, plaintext: bytes, created_at: int, expires_at: int) -> None:
        """Seal ``plaintext`` under the primary with the given times and durably replace the
        entry's file, under the entry lock. The times are the caller's to choose (migration
        keeps a source's dates); they must satisfy ``0 <= created_at <= expires_at < 2^63``.

        Raises:
            FormatError: bad name or times. LockTimeoutError. OSError: the write failed.
        """
        self.check_writable()
        self.write_sealed(name, self.seal(name, plaintext, created_at, expires_at))

    def seal(self, name: str, plaintext: bytes, created_at: int, expires_at: int) -> bytes:
        """The entry envelope of ``plaintext`` under the primary, with the given times (the
        bytes :meth:`write` stores; the shared tier stores the same). Raises as :meth:`write`."""
        self.refresh()
        return self.keys.seal(kind=fmt.KIND_ENTRY, name=name, plaintext=plaintext,
                              created_at=created_at, expires_at=expires_at)

    def write_sealed(self, name: str, envelope: bytes, *, durable: bool = True) -> None:
        """Durably replace entry ``name``'s file with ``envelope``, under the entry lock: bytes
        :meth:`seal` made, or a shared copy that authenticated as ``name``'s entry.
        ``durable=False``: without the fsyncs (a shared copy the fleet's tier also holds: a
        power loss may lose it, or tear it into a file that fails to authenticate).

        Raises:
            LockTimeoutError. OSError: the write failed.
        """
        self.check_writable()
        files.check_private_dir(self.dir)
        with self.lock(name):
            files.write_atomic(self.path(name), envelope, name_stem(name), durable=durable)

    def put(self, name: str, value: Any, now_ms: int | None = None) -> None:
        """Serialize ``value`` and :meth:`write` it, created at ``now_ms`` (default: now),
        expiring after the TTL."""
        now = _clock.now_ms() if now_ms is None else now_ms
        self.write(name, self.serialize(value), now, now + self.ttl_ms)

    def remove_locked(self, name: str, lock: files.FileLock) -> bool:
        """Remove entry ``name``'s file durably while the caller holds its ``lock``; the lock
        file goes too. Returns whether a file was there."""
        self.check_writable()
        gone = files.unlink_durably(self.path(name))
        lock.remove()
        return gone

    def remove(self, name: str) -> None:
        """Remove entry ``name`` under its lock; a missing entry is not an error."""
        self.check_writable()
        with self.lock(name) as lock:
            self.remove_locked(name, lock)

    def quarantine_file(self, path: str, label: str, suffix: str = ENTRY_SUFFIX) -> Path:
        """Move ``path`` to ``quarantine/<UTC time>-<label><suffix>`` durably (the caller
        holds the file's lock); returns the new path. Nothing is ever deleted here."""
        self.check_writable()
        target_dir = f"{self.dir}/{QUARANTINE_DIR}"
        files.ensure_private_dir(target_dir)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = f"{target_dir}/{stamp}-{label}{suffix}"
        files.move_durably(path, target)
        return Path(target)

    def quarantine(self, name: str) -> Path:
        """Move entry ``name``'s file into quarantine under its lock; returns the new path.

        Raises:
            EntryNotFoundError: there is no such entry.
        """
        self.check_writable()
        with self.lock(name):
            try:
                return self.quarantine_file(self.path(name), name_stem(name))
            except FileNotFoundError:
                raise EntryNotFoundError(f"no entry named {name!r}") from None

    def prepare(self, name: str, ring: KeyRing,
                wait: bool = True) -> tuple[str, str | None] | PendingWrite | None:
        """Prepare the rewrap of entry ``name`` under ``ring.primary`` (a rewrap target's
        step; ``vault._store.rewrap.prepare_rewrap`` has the contract)."""
        self.check_writable()
        stem = name_stem(name)  # once: it is a SHA-256 per entry on rotation's hot path
        lock = files.FileLock(f"{self.locks}/{stem}.lock", timeout=self.lock_timeout,
                              what=f"entry {name!r}")
        return prepare_rewrap(f"{self.dir}/{stem}{ENTRY_SUFFIX}", stem, lock, ring,
                              kind=fmt.KIND_ENTRY, name=name, wait=wait)

    def remove_stale_temps(self) -> None:
        """Remove temp files of crashed writes: those whose entry lock is free."""
        stale: dict[str, list[str]] = {}
        with os.scandir(self.dir) as listing:
            for item in listing:
                # Only files and symlinks we may have made; anything else is left alone.
                if ((match := _TEMP_FILE.fullmatch(item.name))
                        and (item.is_symlink() or item.is_file(follow_symlinks=False))):
                    stale.setdefault(match.group(1), []).append(item.path)
        for stem, temps in stale.items():
            lock = files.FileLock(f"{self.locks}/{stem}.lock", timeout=self.lock_timeout,
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
