"""The shared tier of a fleet: what a tier stores, the protocol it implements, and the
vault-side work on its records (sealing, authenticating, ordering by source version).

A tier (``vault.cache.redis.RedisTier``, ``vault.testing.MemoryTier``) maps an entry's file
stem (``docs/format.md`` section 9: the name's SHA-256, so keys reveal nothing) to a
**record** (``docs/format.md`` section 14)::

    b"CSR1" | order: 41 ASCII digits | the entry envelope (kind 1)

The envelope is the local file's format, with the same ring and associated data (name and
times); its plaintext is stamped with the copy's order (``vault._store.stamp``: the source
version, or a provisional write's base and time), a value or a tombstone. The order in clear
(20 digits of base, 1 of provisional, 20 of time: equal-length digit strings compare as the
order) lets the tier compare-and-set without a key: a tier never replaces a record by one of
a lower clear order. It is **unauthenticated**: a reader believes only the stamp inside the
envelope, and removes (compare-and-delete: only if still the same bytes) a record that fails
to authenticate, is not a record, or whose two orders disagree. A record under a key id
the ring lacks is skipped and reported, never removed (a rotation may be under way).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from vault import _clock, codec
from vault._crypto import format as fmt
from vault._crypto.keys import KeyRing
from vault._store.entries import EntryStore, name_stem, utc
from vault._store.rewrap import Outcome, PendingWrite, RewrapReport
from vault._store.stamp import MAX_VERSION, Order, source_order, stamp, tombstone, unstamp
from vault._store.state import StateFile
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
    RewrapError,
    SerializationError,
    SharedTierError,
    UnknownKeyError,
    VaultError,
)

__all__ = [
    "RECENT_REPORT_SECONDS",
    "RECORD_MAGIC",
    "RECORD_PREFIX_SIZE",
    "REPORT_INTERVAL",
    "Copy",
    "SharedCopies",
    "SharedTarget",
    "SharedTier",
    "UsageReport",
    "host_id",
    "pack_record",
    "publish_report",
    "read_reports",
    "record_order",
    "record_version",
]

#: seconds between two usage reports of one host (a cache publishes from its calls)
REPORT_INTERVAL = 300.0
#: a report younger than this is recent; an older one means the host has not reported
RECENT_REPORT_SECONDS = 3 * REPORT_INTERVAL
REPORT_TTL_MS = 30 * 86_400_000  # a host silent for 30 days is forgotten by the tier
_REPORT_NAME = "credseal-usage-report/"
_HOST_ID = re.compile(r"[0-9a-f]{32}")
RECORD_MAGIC = b"CSR1"
ORDER_DIGITS = 41
RECORD_PREFIX_SIZE = len(RECORD_MAGIC) + ORDER_DIGITS


def pack_record(order: Order | int, envelope: bytes) -> bytes:
    """The record of ``envelope``, whose stamp holds ``order`` (an int: a source version)."""
    order = source_order(order) if isinstance(order, int) else order
    return RECORD_MAGIC + order.clear() + envelope


def record_order(raw: object) -> Order | None:
    """The clear (unverified) order of a record; None if ``raw`` is not one."""
    if not isinstance(raw, bytes) or raw[:len(RECORD_MAGIC)] != RECORD_MAGIC:
        return None
    digits = raw[len(RECORD_MAGIC):RECORD_PREFIX_SIZE]
    if len(digits) != ORDER_DIGITS or not digits.isdigit() or digits[20:21] not in b"01":
        return None
    order = Order(int(digits[:20]), int(digits[20:21]), int(digits[21:]))
    if order.base > MAX_VERSION or order.at > MAX_VERSION or (not order.provisional
                                                                and order.at):
        return None
    return order


def record_version(raw: object) -> int | None:
    """The clear (unverified) base version of a record; None if it is not one."""
    order = record_order(raw)
    return None if order is None else order.base


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

    def replace_if(self, stem: str, old: bytes, new: bytes, expires_at_ms: int) -> bool:
        """Replace the record under ``stem`` by ``new`` (until ``expires_at_ms``) only if it
        is still exactly ``old``; atomic (a rewrap's compare-and-set)."""
        ...

    def stems(self) -> Iterator[str]:
        """Every stem that holds a record (a scan: records may come and go meanwhile)."""
        ...

    def put_report(self, host_id: str, report: bytes, expires_at_ms: int) -> None:
        """Store a host's sealed usage report (replacing its previous one)."""
        ...

    def reports(self) -> dict[str, bytes]:
        """Every host's sealed usage report, by host id."""
        ...

    def delete_report(self, host_id: str) -> bool:
        """Remove a host's report (a host that is gone for good); True if there was one."""
        ...


@dataclass(frozen=True)
class Copy:
    """An authenticated, valid copy: its ``order`` (``vault._store.stamp.Order``),
    ``tombstone`` (a delete), the
    codec JSON ``body`` (empty for a tombstone), its header and envelope. No value in repr.
    The value is decoded only when asked for (:attr:`value`): of two copies, only the one
    served is."""

    order: Order
    tombstone: bool
    body: bytes = field(repr=False)
    header: fmt.Header = field(repr=False)
    envelope: bytes = field(repr=False)

    @property
    def value(self) -> Any:
        """The value (None for a tombstone). Raises ``SerializationError`` if malformed."""
        return None if self.tombstone else codec.loads(self.body)


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
        # name -> (order, when this process last wrote it): skip rewriting what is there
        self._written: dict[str, tuple[Order, float]] = {}

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
        clear = record_order(raw)
        if clear is None or not isinstance(raw, bytes):
            return None, self._reject(name, stem, raw, "it is not a credseal record")
        envelope = raw[RECORD_PREFIX_SIZE:]
        try:
            header, plaintext = self.entries.open_envelope(envelope, kind=fmt.KIND_ENTRY,
                                                           name=name)
            stamped = unstamp(plaintext)
            if stamped.order != clear:
                return None, self._reject(name, stem, raw, "its orders disagree")
            self.entries.check_validity(header, now_ms)
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
        except (VaultError, OSError) as exc:  # e.g. the key source failed to reload: a miss
            if self.health.limited(f"{SHARED_SKIPPED}:{name}"):
                self.health.emit(SHARED_SKIPPED, logging.WARNING, f"the shared copy of {name!r}"
                                 f" could not be checked ({describe(exc)}); left alone, treated "
                                 "as a miss", name, exc)
            return None, False
        return Copy(clear, stamped.tombstone, stamped.body, header, envelope), False

    def _reject(self, name: str, stem: str, raw: object, why: str) -> bool:
        try:
            removed = isinstance(raw, bytes) and self.tier.delete_if(stem, raw)
        except SharedTierError as exc:
            self.unavailable(exc)
            removed = False
        if self.health.limited(f"{SHARED_REJECTED}:{name}"):  # a Redis writer may repeat it
            done = "removed" if removed else "left (it changed meanwhile, or the tier failed)"
            self.health.emit(SHARED_REJECTED, logging.ERROR, f"the shared copy of {name!r} was "
                             f"rejected: {why}; {done}; treated as a miss", name)
        return removed

    # ---- writing

    def due(self, name: str, version: Order) -> bool:
        """Whether a write of ``name`` at ``version`` is worth a round trip: this process did
        not write that order, or wrote it more than ``refresh_seconds`` ago (a tier that
        restarted empty is filled again within that)."""
        with self._lock:
            written = self._written.get(name)
        return written is None or written[0] != version or \
            self.clock() - written[1] >= self.refresh_seconds

    def retire_stale(self, name: str, older_than_us: int, now_ms: int) -> None:
        """The source says ``name`` is absent (as of ``older_than_us`` plus a margin): remove
        a shared value copy dated before ``older_than_us`` (compare-and-delete), so that a
        name deleted behind the cache's back stops being served from the tier; never raises.
        A younger copy may be a create committing meanwhile: it stays."""
        stem = name_stem(name)
        try:
            raw = self.tier.get(stem)
        except SharedTierError as exc:
            self.unavailable(exc)
            return
        self.answered()
        copy = None if raw is None else self.open(name, stem, raw, now_ms)
        if copy is None or copy.tombstone:
            return
        dated = copy.order.at if copy.order.provisional else copy.order.base
        if dated < older_than_us:
            try:
                self.tier.delete_if(stem, raw)  # type: ignore[arg-type]
            except SharedTierError as exc:
                self.unavailable(exc)

    def write_value(self, name: str, version: Order, envelope: bytes, expires_at: int) -> None:
        """Put a value copy (``envelope``, stamped with ``version``); never raises."""
        self._put(name, version, envelope, expires_at)

    def write_tombstone(self, name: str, version: Order, now_ms: int) -> None:
        """Put a sealed tombstone of ``name`` at ``version``, expiring with the TTL; never
        raises (a sealing error is reported like a tier failure)."""
        expires_at = now_ms + self.entries.ttl_ms
        try:
            envelope = self.entries.seal(name, tombstone(version), now_ms, expires_at)
        except (VaultError, OSError) as exc:
            self.unavailable(exc)
            return
        self._put(name, version, envelope, expires_at)

    def seal_value(self, name: str, version: Order, body: bytes, now_ms: int) -> bytes:
        """The envelope of a value copy at ``version`` (``body``: codec JSON), valid for the TTL.

        Raises: as ``EntryStore.seal``."""
        return self.entries.seal(name, stamp(version, body), now_ms, now_ms + self.entries.ttl_ms)

    def _put(self, name: str, version: Order, envelope: bytes, expires_at: int) -> None:
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

    # ---- usage reports

    def publish_report(self, journal_key_ids: Counter[str], host: str | None) -> None:
        """Publish this host's sealed usage report (:func:`publish_report`); never raises."""
        try:
            publish_report(self.tier, self.entries, journal_key_ids, host)
        except (VaultError, OSError) as exc:
            self.unavailable(exc)

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


class _SharedPending(PendingWrite):
    """A rewrapped record, checked, to be written over the old one only if it is unchanged."""

    __slots__ = ("_expires", "_raw", "_tier")

    def __init__(self, tier: SharedTier, stem: str, raw: bytes, new: bytes, expires_at: int,
                 old_id: str) -> None:
        # No file and no lock: PendingWrite's slots hold what rewrap_all reads (size, old_id).
        self._tier, self._stem, self._raw, self._data = tier, stem, raw, new
        self._expires, self.old_id = expires_at, old_id

    def __repr__(self) -> str:
        return f"SharedPending({self._stem[:12]}...)"

    def commit(self) -> Outcome:
        """Compare-and-set the new record: ("skipped", None) if a writer changed it meanwhile
        (what it wrote is under the primary: writers seal with it)."""
        if self._tier.replace_if(self._stem, self._raw, self._data, self._expires):
            return "rewrapped", self.old_id
        return "skipped", None

    def abandon(self) -> None:
        """Nothing is held: nothing to release."""


class SharedTarget:
    """The shared tier as a rewrap target (``name`` "shared"): items are record stems.

    A rewrap (:meth:`rewrap_batched`: one ``MGET`` per batch) re-seals a record's envelope
    under the primary with the same name, times and stamp (opened again before it is
    written: Tink's rule) and replaces the record only if it is still the same bytes, so a
    copy a host wrote meanwhile is never overwritten. A record that fails to authenticate is
    removed (compare-and-delete) and counted as skipped; one under a key the ring lacks
    fails, and stays.
    """

    name = "shared"

    def __init__(self, tier: SharedTier, entries: EntryStore, batch: int = 500) -> None:
        self.tier, self.entries, self.batch = tier, entries, batch

    def __repr__(self) -> str:
        return f"SharedTarget({self.tier!r})"

    def items(self) -> list[str]:
        """Every stem with a record, sorted."""
        return sorted(set(self.tier.stems()))

    def _headers(self) -> Iterator[tuple[str, bytes, fmt.Header]]:
        """(stem, record, unverified header) of every record that parses."""
        stems = self.items()
        for start in range(0, len(stems), self.batch):
            chunk = stems[start:start + self.batch]
            for stem, raw in zip(chunk, self.tier.mget(chunk), strict=True):
                if raw is None or record_order(raw) is None:
                    continue
                try:
                    header = fmt.parse(raw[RECORD_PREFIX_SIZE:])[0]
                except FormatError:
                    continue
                yield stem, raw, header

    def prepare(self, item: str, ring: KeyRing,
                wait: bool = True) -> tuple[str, str | None] | PendingWrite | None:
        """Prepare the rewrap of the record under stem ``item`` (``wait`` is moot: no lock).

        Raises:
            UnknownKeyError: the ring lacks its key. SharedTierError. RewrapError.
        """
        raw = self.tier.get(item)
        if raw is None:
            return "skipped", None
        return self._prepare_raw(item, raw, ring)

    def _prepare_raw(self, item: str, raw: bytes,
                     ring: KeyRing) -> tuple[str, str | None] | PendingWrite:
        """:meth:`prepare` of a record already read."""
        clear = record_order(raw)
        try:
            if clear is None:
                raise FormatError("not a credseal record")
            header, header_bytes, payload = fmt.parse(raw[RECORD_PREFIX_SIZE:])
            if header.kind != fmt.KIND_ENTRY or name_stem(header.name) != item:
                raise FormatError("a record under another name's key")
            old_id = header.key_id.hex()
            if old_id == ring.primary.id:
                return "current", None
            if old_id not in ring:
                raise UnknownKeyError(old_id)
            plaintext = ring.open_parsed(header, header_bytes, payload, kind=fmt.KIND_ENTRY,
                                         name=header.name)
            if unstamp(plaintext).order != clear:
                raise FormatError("the record's orders disagree")
        except (DecryptionError, FormatError, SerializationError):
            self.tier.delete_if(item, raw)
            return "skipped", None
        sealed = ring.seal(kind=fmt.KIND_ENTRY, name=header.name, plaintext=plaintext,
                           created_at=header.created_at, expires_at=header.expires_at)
        if ring.open(sealed, kind=fmt.KIND_ENTRY, name=header.name)[1] != plaintext:
            raise RewrapError(f"the rewrapped shared copy of {header.name!r} did not open to "
                              "the same plaintext; nothing was replaced")
        return _SharedPending(self.tier, item, raw, pack_record(clear, sealed),
                              header.expires_at, old_id)

    def rewrap_batched(self, ring: KeyRing,
                       progress: Callable[[int, int], None] | None = None) -> RewrapReport:
        """Rewrap every record not under ``ring.primary``, a batch of ``batch`` records at a
        time: one ``MGET`` reads the batch, each record is resealed and opened again, and
        each is replaced only if still the same bytes (what a host wrote meanwhile stays).
        Resumable: a rerun finds the records already moved current."""
        counts = {"rewrapped": 0, "current": 0, "failed": 0, "skipped": 0}
        by_key: dict[str, int] = {}
        failures: list[tuple[str, str]] = []
        stems = self.items()
        for start in range(0, len(stems), self.batch):
            chunk = stems[start:start + self.batch]
            for stem, raw in zip(chunk, self.tier.mget(chunk), strict=True):
                try:
                    if not isinstance(raw, bytes):
                        counts["skipped"] += 1  # gone meanwhile (or not a string: no record)
                        continue
                    result = self._prepare_raw(stem, raw, ring)
                    outcome, old_id = result.commit() if isinstance(result, PendingWrite) \
                        else result
                except VaultError as exc:
                    counts["failed"] += 1
                    failures.append((stem, f"{type(exc).__name__}: {exc.message}"))
                    continue
                counts[outcome] += 1
                if old_id is not None:
                    by_key[old_id] = by_key.get(old_id, 0) + 1
            if progress is not None:
                progress(min(start + self.batch, len(stems)), len(stems))
        return RewrapReport(**counts, by_key=by_key, failures=tuple(failures))

    def reports(self) -> tuple[list[UsageReport], int]:
        """The hosts' usage reports that authenticate, and how many did not."""
        return read_reports(self.tier, self.entries)

    def hosts_using(self, key_id: str) -> list[str]:
        """One line per host whose report names ``key_id`` (recent or not: a host that
        stopped reporting may still hold it), for ``retire``'s refusal."""
        lines = []
        for report in self.reports()[0]:
            if not report.uses(key_id):
                continue
            when = report.at.isoformat(timespec="seconds")
            what = (f"{report.entries.get(key_id, 0)} entries, "
                    f"{report.journal.get(key_id, 0)} journal records")
            state = f"reported {what} at {when}" if report.recent else \
                f"has not reported since {when} (then: {what})"
            lines.append(f"host {report.host_id} ({report.host}:{report.directory}) {state}")
        return lines

    def refresh_report(self, journal_key_ids: Counter[str], host: str | None = None) -> None:
        """Publish this directory's usage report now (after a rotation rewrapped it)."""
        publish_report(self.tier, self.entries, journal_key_ids, host)

    def forget_host(self, host: str) -> bool:
        """Remove the report of host id ``host`` (gone for good). Raises ``SharedTierError``."""
        return self.tier.delete_report(host)

    def key_ids(self) -> Counter[str]:
        """Records per key id, from unverified headers."""
        return Counter(header.key_id.hex() for _, _, header in self._headers())

    def sealed_under(self, key_id: str) -> list[str]:
        """The names of the records that authenticate under ``key_id`` (or cannot be checked:
        the ring lacks it); forged claims are removed (compare-and-delete) and not listed."""
        held = []
        ring = self.entries.keys
        for stem, raw, header in self._headers():
            if header.key_id.hex() != key_id:
                continue
            if key_id in ring:
                try:
                    self.entries.open_envelope(raw[RECORD_PREFIX_SIZE:], kind=fmt.KIND_ENTRY,
                                               name=header.name)
                except (DecryptionError, FormatError):
                    self.tier.delete_if(stem, raw)
                    continue
            held.append(header.name)
        return sorted(held)


def publish_report(tier: SharedTier, entries: EntryStore, journal_key_ids: Counter[str],
                   host: str | None = None) -> None:
    """Publish the usage report of the host serving ``entries``' directory: the key ids its
    local entries and journal records use (unverified headers), sealed with the ring.
    ``host`` labels it (advisory: ``vault.config.current_context().host``); the directory's
    real path and its vault id (from ``vault.state``, random per directory with the env
    source) identify it, so a service and an operator's command on it report as one host.

    Raises:
        SharedTierError, VaultError, OSError.
    """
    host, directory = host or "", os.path.realpath(entries.dir)
    try:
        state = StateFile(entries).read()
    except VaultError:
        state = None
    ident = host_id(directory, "" if state is None else state.vault_id)
    now = _clock.now_ms()
    doc = {"v": 1, "host": host, "dir": directory, "at": now,
           "entries": dict(entries.key_ids()), "journal": dict(journal_key_ids)}
    sealed = entries.keys.seal(kind=fmt.KIND_STATE, name=_REPORT_NAME + ident,
                               plaintext=codec.dumps(doc), created_at=now,
                               expires_at=now + REPORT_TTL_MS)
    tier.put_report(ident, sealed, now + REPORT_TTL_MS)


def host_id(directory: str, vault_id: str) -> str:
    """The id of a fleet host: its vault directory's real path and vault id (32 hex)."""
    return hashlib.sha256(b"credseal host\0" + vault_id.encode("utf-8", "replace") + b"\0"
                          + directory.encode("utf-8", "surrogateescape")).hexdigest()[:32]


@dataclass(frozen=True)
class UsageReport:
    """One host's authenticated usage report: which key ids its local ``entries`` and
    ``journal`` records use (counts), reported ``at``; ``recent`` when younger than
    :data:`RECENT_REPORT_SECONDS`."""

    host_id: str
    host: str
    directory: str
    at: datetime
    entries: dict[str, int]
    journal: dict[str, int]
    recent: bool

    def uses(self, key_id: str) -> bool:
        """Whether the report names ``key_id``."""
        return bool(self.entries.get(key_id) or self.journal.get(key_id))


def read_reports(tier: SharedTier, entries: EntryStore) -> tuple[list[UsageReport], int]:
    """Every report that authenticates (sorted by host), and how many did not (a report
    sealed under a key the ring lacks counts there too).

    Raises:
        SharedTierError: the tier failed.
    """
    good, bad = [], 0
    now = _clock.now_ms()
    for ident, sealed in sorted(tier.reports().items()):
        try:
            if not _HOST_ID.fullmatch(ident):
                raise FormatError("not a host id")
            _, plaintext = entries.open_envelope(sealed, kind=fmt.KIND_STATE,
                                                 name=_REPORT_NAME + ident)
            doc: Any = codec.loads(plaintext)
            at = int(doc["at"])
            report = UsageReport(ident, str(doc["host"]), str(doc["dir"]), utc(at),
                                 {str(k): int(v) for k, v in doc["entries"].items()},
                                 {str(k): int(v) for k, v in doc["journal"].items()},
                                 now - at <= RECENT_REPORT_SECONDS * 1000)
        except (VaultError, KeyError, TypeError, ValueError, AttributeError):
            bad += 1
            continue
        good.append(report)
    return good, bad
