"""The shared tier of a fleet: what a tier stores, the protocol it implements, and the
vault-side work on its records (sealing, authenticating, ordering by source version).

A tier (``vault.cache.redis.RedisTier``, ``vault.testing.MemoryTier``) maps an entry's file
stem (``docs/format.md`` section 9: the name's SHA-256, so keys reveal nothing) to a
**record** (``docs/format.md`` section 14)::

    b"CSR1" | version: 20 ASCII digits, zero-padded | the entry envelope (kind 1)

The envelope is the local file's format, with the same ring and associated data (name and
times); its plaintext is stamped with the source version (``vault._store.stamp``), a value or
a tombstone. The version in clear lets the tier compare-and-set without a key: a tier never
replaces a record by one of a lower clear version. It is **unauthenticated**: a reader
believes only the stamp inside the envelope, and removes (compare-and-delete: only if still the
same bytes) a record that fails to authenticate, is not a record, or whose two versions
disagree. A record under a key id the ring lacks is skipped and reported, never removed (a
rotation may be under way).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from vault import _clock
from vault._crypto import format as fmt
from vault._store.entries import EntryStore, name_stem
from vault._store.stamp import stamp, tombstone, unstamp
from vault.cache._health import (
    SHARED_RECOVERED,
    SHARED_REJECTED,
    SHARED_SKIPPED,
    SHARED_UNAVAILABLE,
    Health,
    describe,
)
from vault.errors import (
    DecryptionError,
    EntryExpiredError,
    FormatError,
    SerializationError,
    SharedTierError,
    UnknownKeyError,
    VaultError,
)

__all__ = ["RECORD_MAGIC", "RECORD_PREFIX_SIZE", "Copy", "SharedCopies", "SharedTier",
           "pack_record", "record_version"]

RECORD_MAGIC = b"CSR1"
VERSION_DIGITS = 20
RECORD_PREFIX_SIZE = len(RECORD_MAGIC) + VERSION_DIGITS


def pack_record(version: int, envelope: bytes) -> bytes:
    """The record of ``envelope``, sealed with source ``version`` stamped inside."""
    return RECORD_MAGIC + b"%020d" % version + envelope


def record_version(raw: bytes) -> int | None:
    """The clear (unverified) version of a record; None if ``raw`` is not a record."""
    digits = raw[len(RECORD_MAGIC):RECORD_PREFIX_SIZE]
    if raw[:len(RECORD_MAGIC)] != RECORD_MAGIC or len(digits) != VERSION_DIGITS \
            or not digits.isdigit():
        return None
    return int(digits)


@runtime_checkable
class SharedTier(Protocol):
    """A shared tier's storage calls (bytes in, bytes out; no key, no cryptography).

    Every call either answers or raises :class:`~vault.errors.SharedTierError` (an outage,
    within the tier's documented bound); ``vault.testing.SharedTierContract`` checks it.
    """

    def get(self, stem: str) -> bytes | None:
        """The record under ``stem``, or None."""
        ...

    def mget(self, stems: Sequence[str]) -> list[bytes | None]:
        """The records under ``stems``, in order (None where there is none): one round trip."""
        ...

    def put(self, stem: str, record: bytes, expires_at_ms: int) -> bool:
        """Store ``record`` until ``expires_at_ms`` (Unix ms) unless the record held has a
        greater clear version; atomic. Returns whether it stored."""
        ...

    def delete_if(self, stem: str, record: bytes) -> bool:
        """Remove the record under ``stem`` only if it is still exactly ``record``; atomic."""
        ...

    def stems(self) -> Iterator[str]:
        """Every stem that holds a record (a scan: records may come and go meanwhile)."""
        ...


@dataclass(frozen=True)
class Copy:
    """An authenticated, valid copy: its source ``version``, ``tombstone`` (a delete), the
    ``value`` (None for a tombstone), its header and envelope. No value in repr."""

    version: int
    tombstone: bool
    value: Any = field(repr=False)
    header: fmt.Header = field(repr=False)
    envelope: bytes = field(repr=False)


class SharedCopies:
    """A cache's use of its shared tier: reads that authenticate, writes that never raise.

    Every failure of the tier is reported (``shared_unavailable``, rate-limited, and counted
    for metrics as a failed write of tier ``"shared"``) and then treated as a miss or a
    skipped write: the shared tier never fails a call of the cache.
    """

    def __init__(self, tier: SharedTier, entries: EntryStore, health: Health, *,
                 refresh_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.tier, self.entries, self.health = tier, entries, health
        self.refresh_seconds, self.clock = refresh_seconds, clock
        self._lock = threading.Lock()
        self._failing = False
        # name -> (version, when this process last wrote it): skip rewriting what is there
        self._written: dict[str, tuple[int, float]] = {}

    # ---- reading

    def read(self, name: str, now_ms: int) -> Copy | None:
        """The authenticated, TTL-valid shared copy of ``name``; None if there is none, it is
        unusable (reported) or the tier failed (reported)."""
        stem = name_stem(name)
        try:
            raw = self.tier.get(stem)
        except SharedTierError as exc:
            self.unavailable(exc)
            return None
        self.answered()
        return None if raw is None else self.open(name, stem, raw, now_ms)

    def read_many(self, names: Sequence[str], now_ms: int) -> dict[str, Copy] | None:
        """:meth:`read` of many names in one round trip; None if the tier failed."""
        stems = [name_stem(name) for name in names]
        try:
            raws = self.tier.mget(stems)
        except SharedTierError as exc:
            self.unavailable(exc)
            return None
        self.answered()
        copies = {}
        for name, stem, raw in zip(names, stems, raws, strict=True):
            copy = None if raw is None else self.open(name, stem, raw, now_ms)
            if copy is not None:
                copies[name] = copy
        return copies

    def open(self, name: str, stem: str, raw: bytes, now_ms: int) -> Copy | None:
        """Authenticate one record of ``name``; remove it (compare-and-delete) if forged."""
        return self._open(name, stem, raw, now_ms)[0]

    def _open(self, name: str, stem: str, raw: bytes, now_ms: int) -> tuple[Copy | None, bool]:
        """:meth:`open`, and whether a rejected record was removed."""
        clear = record_version(raw)
        if clear is None:
            return None, self._reject(name, stem, raw, "it is not a credseal record")
        envelope = raw[RECORD_PREFIX_SIZE:]
        try:
            header, plaintext = self.entries.open_envelope(envelope, kind=fmt.KIND_ENTRY,
                                                           name=name)
            stamped = unstamp(plaintext)
            if stamped.version != clear:
                return None, self._reject(name, stem, raw, "its versions disagree")
            self.entries.check_validity(header, now_ms)
            value = None if stamped.tombstone else self.entries.decode(name, plaintext)[1]
        except UnknownKeyError as exc:
            if self.health.limited(f"{SHARED_SKIPPED}:{name}"):
                self.health.emit(SHARED_SKIPPED, logging.WARNING, f"the shared copy of {name!r}"
                                 f" is sealed under key {exc.key_id}, which this ring does not "
                                 "hold (a rotation under way?); left alone, treated as a miss",
                                 name, exc)
            return None, False
        except EntryExpiredError:
            return None, False  # the tier's own expiry removes it; another host's clock?
        except (DecryptionError, FormatError, SerializationError) as exc:
            return None, self._reject(name, stem, raw, f"it failed to open ({describe(exc)})")
        return Copy(clear, stamped.tombstone, value, header, envelope), False

    def _reject(self, name: str, stem: str, raw: bytes, why: str) -> bool:
        try:
            removed = self.tier.delete_if(stem, raw)
        except SharedTierError as exc:
            self.unavailable(exc)
            removed = False
        done = "removed" if removed else "left (it changed meanwhile, or the tier failed)"
        self.health.emit(SHARED_REJECTED, logging.ERROR, f"the shared copy of {name!r} was "
                         f"rejected: {why}; {done}; treated as a miss", name)
        return removed

    # ---- writing

    def due(self, name: str, version: int) -> bool:
        """Whether a write of ``name`` at ``version`` is worth a round trip: this process did
        not write that version, or wrote it more than ``refresh_seconds`` ago (a tier that
        restarted empty is filled again within that)."""
        with self._lock:
            written = self._written.get(name)
        return written is None or written[0] != version or \
            self.clock() - written[1] >= self.refresh_seconds

    def write_value(self, name: str, version: int, envelope: bytes, expires_at: int) -> None:
        """Put a value copy (``envelope``, stamped with ``version``); never raises."""
        self._put(name, version, envelope, expires_at)

    def write_tombstone(self, name: str, version: int, now_ms: int) -> None:
        """Put a sealed tombstone of ``name`` at ``version``, expiring with the TTL; never
        raises (a sealing error is reported like a tier failure)."""
        expires_at = now_ms + self.entries.ttl_ms
        try:
            envelope = self.entries.seal(name, tombstone(version), now_ms, expires_at)
        except (VaultError, OSError) as exc:
            self.unavailable(exc)
            return
        self._put(name, version, envelope, expires_at)

    def seal_value(self, name: str, version: int, body: bytes, now_ms: int) -> bytes:
        """The envelope of a value copy at ``version`` (``body``: codec JSON), valid for the TTL.

        Raises: as ``EntryStore.seal``."""
        return self.entries.seal(name, stamp(version, body), now_ms, now_ms + self.entries.ttl_ms)

    def _put(self, name: str, version: int, envelope: bytes, expires_at: int) -> None:
        stem, record = name_stem(name), pack_record(version, envelope)
        try:
            stored = self.tier.put(stem, record, expires_at)
            if not stored:
                # Something of a greater clear version holds it: a newer copy, or a forged
                # record blocking the name. Only the latter is removed, and then we retry once.
                raw = self.tier.get(stem)
                if raw is not None and self._open(name, stem, raw, _clock.now_ms())[1]:
                    stored = self.tier.put(stem, record, expires_at)
        except SharedTierError as exc:
            self.unavailable(exc)
            return
        self.answered()
        if stored:
            with self._lock:
                if len(self._written) > 100_000:
                    self._written.clear()
                self._written[name] = (version, self.clock())

    def forget(self, name: str) -> None:
        """Forget what this process wrote of ``name`` (its next write goes to the tier)."""
        with self._lock:
            self._written.pop(name, None)

    # ---- availability

    def unavailable(self, exc: Exception) -> None:
        """Report a failed call of the tier (rate-limited)."""
        self.health.failed("shared")
        with self._lock:
            self._failing = True
        if self.health.limited(SHARED_UNAVAILABLE):
            self.health.emit(SHARED_UNAVAILABLE, logging.WARNING, "the shared tier is "
                             f"unavailable ({describe(exc)}); local copies only meanwhile",
                             cause=exc)

    def answered(self) -> None:
        """The tier answered: report its recovery once after failures."""
        with self._lock:
            was, self._failing = self._failing, False
        if was:
            self.health.emit(SHARED_RECOVERED, logging.WARNING, "the shared tier answers again")
