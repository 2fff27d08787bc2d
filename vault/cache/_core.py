"""The vault side of the fallback cache, shared by ``FallbackCache`` and ``AsyncFallbackCache``.

:class:`CacheCore` holds everything but the calls to the source: the error classification
that feeds the breaker, serving a cached copy during an outage, the write-through policy,
and journaling the writes the source could not take. Its file work is synchronous; the async
cache runs it in worker threads.

**Write-through policy**: a healthy answer is sealed into the vault only when it differs from
the cached copy or that copy has used half its validity, so a healthy ``get`` costs a digest
and a ``stat``, not a durable write. The cache remembers per name the SHA-256 of the plaintext,
when to refresh, and the copy file's (inode, mtime, size); a file changed by anyone else (or
an unknown name, after a start) is compared by opening it once.

**Races in one process**: each name has a generation, bumped by every save and delete. A
``get`` whose generation changed while it waited for the source does not write its (older)
answer, and the check and the write happen under one lock.

**Lifetime**: a cache is a context manager; ``close()`` refuses later calls and forgets the
in-memory digests. It closes only what the cache created, which is nothing that holds an OS
resource: never the caller's source or vault.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vault import _clock
from vault import _files as files
from vault._crypto import format as fmt
from vault._store.entries import utc
from vault._store.journal import Journal, Record
from vault._store.stamp import NO_ORDER, Order, source_order, stamp, unstamp
from vault._store.store import Vault, entries_of
from vault.cache._breaker import CircuitBreaker
from vault.cache._health import (
    CACHE_UNUSABLE,
    CACHE_WRITE_FAILED,
    JOURNAL_BLOCKED,
    JOURNAL_CONFLICT,
    JOURNALED,
    QUARANTINED,
    REPLAYED,
    CacheEvent,
    Health,
    describe,
)
from vault.cache._shared import REPORT_INTERVAL, Copy, SharedCopies, SharedTier
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    EntryExpiredError,
    EntryNotFoundError,
    FormatError,
    SerializationError,
    SourceUnavailableError,
    UnknownKeyError,
    VaultError,
)
from vault.sources._base import check_storable, now_us, value_digest

__all__ = ["CACHE", "DEFAULT_SHARED_REFRESH", "SHARED", "SOURCE", "CacheCore", "Fetched",
           "Pending", "PrefetchReport", "ReplayTally", "SaveResult", "SourceFailure"]

SOURCE, CACHE, SHARED = "source", "cache", "shared"
#: seconds after which a process writes a shared copy again although it wrote that version
DEFAULT_SHARED_REFRESH = 60.0
#: a healthy read that finds a name absent removes shared value copies older than it by this
#: much (µs): a create committing meanwhile is younger, whatever its commit latency
ABSENT_MARGIN_US = 60_000_000


class SourceFailure(Exception):
    """Internal: what the source raised while a journal record was replayed, wrapped so that
    the cache can tell it from an error of the journal itself."""

    def __init__(self, error: Exception) -> None:
        super().__init__(describe(error))
        self.error = error


@dataclass(frozen=True)
class Fetched:
    """A value and where it came from: ``origin`` is ``"source"``, ``"cache"`` (the local
    vault) or ``"shared"`` (the fleet's shared tier); ``age_seconds`` is 0 for the source,
    else the age of the copy served. No value in repr."""

    value: Any = field(repr=False)
    origin: str
    age_seconds: float


@dataclass(frozen=True)
class SaveResult:
    """The outcome of ``save``/``delete``: ``journaled`` is True when the source was
    unavailable and the write waits in the journal (``record_id``) for replay."""

    journaled: bool
    record_id: str | None = None


@dataclass(frozen=True)
class Pending:
    """The journal's backlog: ``count`` records waiting for the source, the age of the
    oldest (None if none opens), and ``conflicts`` set aside (``credseal journal``)."""

    count: int
    oldest_age_seconds: float | None
    conflicts: int


@dataclass(frozen=True)
class PrefetchReport:
    """What ``prefetch`` did: names asked, found in the shared tier (authenticated and
    valid), copied into the local vault (newer than its copy), and whether the tier answered."""

    asked: int
    found: int
    copied: int
    shared_answered: bool


@dataclass
class ReplayTally:
    """What one replay applied: how many records, and the oldest one's sealed time."""

    count: int = 0
    oldest: datetime | None = None

    def add(self, record: Record) -> None:
        """Count an applied record."""
        self.count += 1
        if self.oldest is None or record.at < self.oldest:
            self.oldest = record.at


@dataclass(frozen=True)
class _Memo:
    digest: bytes
    refresh_at_ms: int
    signature: tuple[int, int, int]


def _signature(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


class CacheCore:
    """State, events and vault-side work shared by the sync and async caches (no source I/O).

    The methods that touch files are synchronous; the async cache runs them in threads.
    """

    def __init__(self, vault: Vault, *, breaker: CircuitBreaker | None, warn_interval: float,
                 on_event: Callable[[CacheEvent], None] | None,
                 is_outage: Callable[[BaseException], bool], clock: Callable[[], float],
                 journal: Journal | None, shared: SharedTier | None = None,
                 shared_refresh: float = DEFAULT_SHARED_REFRESH,
                 report_interval: float | None = REPORT_INTERVAL, host: str | None = None) -> None:
        if vault.read_only:
            raise ConfigurationError("a fallback cache needs a writable vault (its copies and "
                                     "journal live there); this one was opened read_only")
        self.vault = vault
        self._entries = entries_of(vault)
        self.health = Health(warn_interval=warn_interval, on_event=on_event, clock=clock)
        self.journal = journal or Journal(vault)
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self.is_outage = is_outage
        self._lock = threading.Lock()  # the maps below; never held during source calls
        self._vault_lock = threading.Lock()  # generation check + vault write, atomically
        self._last_error: BaseException | None = None
        self._memo: dict[str, _Memo] = {}
        self._gen: dict[str, int] = {}
        # The digest of what the source held for each name when this process last heard from
        # it (a healthy load, save or delete): the best base for a write journaled later.
        self._seen: dict[str, str] = {}
        self._closed = False
        # The shared tier, and per name the greatest source version this process has seen or
        # written: a copy older than that is never served.
        self.shared = shared
        self._copies: SharedCopies | None = None
        if shared is not None:
            if not isinstance(shared_refresh, int | float) or isinstance(shared_refresh, bool) \
                    or not 0 <= shared_refresh < float("inf"):
                raise ConfigurationError("shared_refresh must be a finite number of seconds >= 0")
            self._copies = SharedCopies(shared, self._entries, self.health,
                                        refresh_seconds=shared_refresh, clock=clock)
        self._high: dict[str, Order] = {}
        if report_interval is not None and (
                not isinstance(report_interval, int | float) or isinstance(report_interval, bool)
                or not 0 <= report_interval < float("inf")):
            raise ConfigurationError("report_interval must be a finite number of seconds >= 0, "
                                     "or None (no reports)")
        self.report_interval = None if report_interval is None else float(report_interval)
        self.host = host
        # Shared copies on their way into the vault, by name (the newest, with the generation
        # it was taken at), written by a short-lived thread so that a read answers first.
        self._adopting = threading.Condition(threading.Lock())
        self._pending_copies: dict[str, tuple[Copy, int]] = {}
        self._adopter: threading.Thread | None = None
        self._in_flight = 0
        self._report_at: float | None = None  # when the next usage report is due (monotonic)
        self._report_lock = threading.Lock()

    @property
    def degraded(self) -> bool:
        """True from a source failure until the source answers again."""
        return self.health.degraded

    @property
    def warn_interval(self) -> float:
        """Seconds between two warnings of one kind (still degraded, journaled, a repeated
        error); setting it takes effect at once.

        Raises:
            ConfigurationError: (on set) not a finite number of seconds >= 0.
        """
        return self.health.warn_interval

    @warn_interval.setter
    def warn_interval(self, seconds: float) -> None:
        self.health.warn_interval = seconds

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """End this cache: later calls raise ``ConfigurationError``; idempotent.

        Closes only what the cache created (it holds no connection or file of its own; with a
        shared tier, a short-lived thread writes copies taken from it, and ``close`` waits up
        to 5 s for them), never the source or the vault it was given: those are the caller's
        to close.
        """
        self._closed = True
        self.wait_for_copies(timeout=5.0)
        with self._lock:
            self._memo.clear()
            self._seen.clear()

    def wait_for_copies(self, timeout: float = 5.0) -> bool:
        """Wait until every copy taken from the shared tier is in the local vault (they are
        written just after the read that took them answered); True if none is pending."""
        with self._adopting:
            return self._adopting.wait_for(
                lambda: not self._pending_copies and not self._in_flight, timeout)

    def add_listener(self, *, on_event: Callable[[CacheEvent], None] | None = None,
                     on_answer: Callable[[str], None] | None = None,
                     on_write_failure: Callable[[str], None] | None = None) -> None:
        """Also call ``on_event`` with every event (rate-limited ones included, as they are
        emitted), ``on_answer`` with the origin of every answer (``"source"`` or
        ``"cache"``) and ``on_write_failure`` with the tier (``"local"``) of every failed
        vault update, counted before any rate limit: for metrics (``vault.integrations.otel``).
        What they raise is logged, not raised."""
        if on_event is not None:
            self.health.event_listeners.append(on_event)
        if on_answer is not None:
            self.health.answer_listeners.append(on_answer)
        if on_write_failure is not None:
            self.health.failure_listeners.append(on_write_failure)

    def _check_open(self) -> None:
        if self._closed:
            raise ConfigurationError(f"this {type(self).__name__} is closed",
                                     hint="create a new cache (the source and the vault it "
                                     "was given are still open)")

    def _source_failed(self, exc: Exception) -> BaseException | None:
        """Classify what the source raised: the cause to fall back to the vault with (an
        outage), or None when ``exc`` must propagate (the source answered with an error)."""
        if self.is_outage(exc):
            self.breaker.record_failure()
            self._last_error = exc
            return exc
        self.breaker.record_success()
        return None

    def _journal_blocked(self, exc: Exception) -> BaseException:
        """The journal cannot be replayed now (a record needs a key the ring lacks, the replay
        lock is held too long, a file error): do not read the source, which could return a
        value older than a pending write; fall back to the vault. Says nothing about the
        source, but releases a half-open probe."""
        self.breaker.record_success()
        if self.health.limited(JOURNAL_BLOCKED):
            self.health.emit(JOURNAL_BLOCKED, logging.ERROR, "pending journal records cannot "
                             f"be replayed ({describe(exc)}); serving cached copies meanwhile",
                             cause=exc)
        return exc

    def _journal_refused(self, exc: ConfigurationError) -> None:
        """The vault's state does not open with this ring (another vault's, or forged): the
        journal is not replayed (nothing unauthenticated is followed), but a healthy source
        is still read: a planted file must not take the service down."""
        if self.health.limited(JOURNAL_BLOCKED):
            self.health.emit(JOURNAL_BLOCKED, logging.ERROR, "pending journal records are not "
                             f"replayed: {exc.message}; reading the source meanwhile",
                             cause=exc)

    def _open_cause(self) -> BaseException:
        cause = self._last_error
        return cause if cause is not None else SourceUnavailableError("circuit breaker open")

    # ---- the call path, shared by the sync and async caches
    #
    # _call (sync or async) is: if not breaker.allow(): fall back with _open_cause(); replay the
    # journal if records wait (a journal that cannot be read: _journal_blocked, fall back);
    # call the source; then _call_failed(exc) on an Exception (an outage: fall back with the
    # cause; otherwise it re-raises), _call_aborted() on anything else, _call_succeeded().

    def _call_failed(self, exc: Exception) -> BaseException:
        """The source (or the replay before it) raised ``exc``: the cause to fall back with,
        or re-raise ``exc`` when it is not an outage."""
        cause = self._source_failed(exc)
        if cause is None:
            raise exc
        return cause

    def _call_aborted(self) -> None:
        """A call was interrupted (KeyboardInterrupt, cancelled): release a half-open probe."""
        self.breaker.record_failure()

    def _call_succeeded(self) -> None:
        self.breaker.record_success()
        self.health.recovered()

    def _replay_steps(self) -> Generator[Record, bool, None]:
        """The journal's replay loop with this cache's quarantine and conflict events (the
        caller holds the replay lock)."""
        return self.journal.replay_steps(self._quarantined_record, self._conflicted_record,
                                         self._waiting_record)

    @property
    def pending(self) -> Pending:
        """Journaled writes waiting for the source, and conflicts set aside (reads files)."""
        count, age, conflicts = self.journal.summary()
        return Pending(count, age, conflicts)

    def _base_for(self, name: str, now: int) -> str | None:
        """The digest of what the write is based on: the newest pending write of ``name``,
        else what this process last heard from the source, else a valid cached copy; None
        when that is unknown."""
        try:
            record = self.journal.latest(name)
        except (VaultError, OSError):
            return None
        if record is not None:
            return value_digest(record.value if record.op == "save" else None)
        with self._lock:
            seen = self._seen.get(name)
        if seen is not None:
            return seen
        try:
            _, value = self._entries.load(name, now)
        except (VaultError, OSError):
            return None
        return value_digest(value)

    @staticmethod
    def _target(record: Record) -> Any:
        """What a record sets its name to (None: deleted)."""
        return record.value if record.op == "save" else None

    # ---- vault side (synchronous file I/O)

    def _generation(self, name: str) -> int:
        with self._lock:
            return self._gen.get(name, 0)

    def _serve_cached(self, name: str, cause: BaseException) -> Fetched:
        """Answer from the vault during an outage, or raise SourceUnavailableError."""
        now = _clock.now_ms()
        try:
            header, value = self._entries.load(name, now)
        except EntryNotFoundError:
            pending = self._pending_write(name, now, cause)
            if pending is not None:
                return pending
            self.health.degraded_call(cause, f"{name!r} has no cached copy", name)
            problem = "there is no cached copy"
        except EntryExpiredError as exc:
            self.health.degraded_call(cause, f"the cached copy of {name!r} expired", name)
            problem = f"the cached copy is not valid: {exc.message}"
        except VaultError as exc:
            self.health.degraded_call(cause, f"the cached copy of {name!r} is unusable", name)
            self._cache_unusable(name, exc)
            problem = f"the cached copy cannot be used ({type(exc).__name__})"
        else:
            age = max(0.0, now / 1000 - utc(header.created_at).timestamp())
            self.health.degraded_call(cause, f"serving {name!r} from the encrypted cache "
                                      f"(age {age:.0f} s)", name, age)
            return Fetched(value, CACHE, age)
        raise SourceUnavailableError(
            f"credential {name!r} is unavailable: the source failed ({describe(cause)}) and "
            f"{problem}", hint="bring the source back; the vault's TTL bounds how long an "
            "outage can be bridged") from cause

    def _pending_write(self, name: str, now: int, cause: BaseException) -> Fetched | None:
        """A write of ``name`` still in the journal (this or an earlier process made it during
        the outage, and the vault has no copy): a delete reads as None, a save as its value
        while younger than the TTL."""
        try:
            record = self.journal.latest(name)
        except (VaultError, OSError):
            return None
        if record is None:
            return None
        age = max(0.0, now / 1000 - record.at.timestamp())
        if record.op == "delete":
            self.health.degraded_call(cause, f"{name!r} was deleted (journaled)", name, age)
            return Fetched(None, CACHE, age)
        if age > self.vault.ttl:
            return None
        self.health.degraded_call(cause, f"serving the journaled value of {name!r} "
                                  f"(age {age:.0f} s)", name, age)
        return Fetched(record.value, CACHE, age)

    def _cache_unusable(self, name: str, exc: VaultError) -> None:
        if isinstance(exc, DecryptionError | FormatError):
            try:
                path: Path | None = self.vault.quarantine(name)
            except (VaultError, OSError):
                path = None
            self.health.emit(QUARANTINED, logging.ERROR, f"cached copy of {name!r} failed to "
                             f"open ({describe(exc)}); moved to {path}; treated as a miss",
                             name, exc)
        elif self.health.limited(f"{CACHE_UNUSABLE}:{name}"):
            self.health.emit(CACHE_UNUSABLE, logging.ERROR, f"cached copy of {name!r} cannot "
                             f"be used ({describe(exc)}); treated as a miss", name, exc)

    def _after_load(self, name: str, value: Any, generation: int) -> None:
        """Write a healthy answer through to the vault when needed; never raises."""
        with self._lock:
            if self._gen.get(name, 0) == generation:  # no save or delete overtook it
                self._seen[name] = value_digest(value)
        try:
            if value is None:
                self._drop_local(name, generation=generation)
            else:
                self._write_through(name, value, generation)
        except (VaultError, OSError) as exc:
            self.health.failed("local")  # counted every time; the log line is rate-limited
            if self.health.limited(CACHE_WRITE_FAILED):
                self.health.emit(CACHE_WRITE_FAILED, logging.ERROR, "could not update the "
                                 f"cached copy of {name!r} ({describe(exc)}); serving the "
                                 "source's value", name, exc)

    def _write_through(self, name: str, value: Any, generation: int,
                       version: Order | None = None) -> tuple[bytes, int] | None:
        """Update the vault's copy if it differs or has used half its TTL; returns the
        (envelope, expires_at) written, or None if none was."""
        plaintext = stamp(version, self._entries.serialize(value))
        digest = hashlib.sha256(plaintext).digest()
        path = self._entries.path(name)
        signature, now = _signature(path), _clock.now_ms()
        with self._lock:
            memo = self._memo.get(name)
        if memo is not None and memo.signature == signature:
            if memo.digest == digest and now < memo.refresh_at_ms:
                return None
        elif signature is not None and self._matches_vault(name, digest, now, signature):
            return None
        return self._store_local(name, plaintext, generation=generation)

    def _matches_vault(self, name: str, digest: bytes, now: int,
                       signature: tuple[int, int, int]) -> bool:
        """Whether the vault's copy holds ``digest`` and is not yet half-way through its TTL
        (remembered if so). Quarantines a copy that fails to open."""
        try:
            header, plaintext = self._entries.open(name, now)
        except (DecryptionError, FormatError) as exc:
            self._cache_unusable(name, exc)
            return False
        except (EntryNotFoundError, EntryExpiredError, UnknownKeyError):
            return False
        ttl_ms = self._entries.ttl_ms
        refresh_at = min(header.expires_at, header.created_at + ttl_ms) - ttl_ms // 2
        if hashlib.sha256(plaintext).digest() != digest or now >= refresh_at:
            return False
        with self._lock:
            self._memo[name] = _Memo(digest, refresh_at, signature)
        return True

    def _claim(self, name: str, generation: int | None) -> bool:
        """Start a local write of ``name``: False if a save/delete overtook ``generation``
        (the write must be skipped), else bump the generation and forget the memo."""
        with self._lock:
            if generation is not None and self._gen.get(name, 0) != generation:
                return False
            self._gen[name] = self._gen.get(name, 0) + 1
            self._memo.pop(name, None)
            return True

    def _store_local(self, name: str, plaintext: bytes, *, generation: int | None = None,
                     envelope: tuple[bytes, int] | None = None) -> tuple[bytes, int] | None:
        """Write the vault copy (``generation``: skip if a save/delete overtook this get;
        ``envelope``: already sealed, with its expiry). Returns (envelope, expires_at)
        written, or None if skipped."""
        with self._vault_lock:
            if not self._claim(name, generation):
                return None
            now, ttl_ms = _clock.now_ms(), self._entries.ttl_ms
            if envelope is None:
                envelope = (self._entries.seal(name, plaintext, now, now + ttl_ms), now + ttl_ms)
            self._entries.write_sealed(name, envelope[0])
            signature = _signature(self._entries.path(name))
            if signature is not None:
                memo = _Memo(hashlib.sha256(plaintext).digest(), now + ttl_ms // 2, signature)
                with self._lock:
                    self._memo[name] = memo
            return envelope

    def _drop_local(self, name: str, *, generation: int | None = None) -> None:
        with self._vault_lock:
            if not self._claim(name, generation):
                return
            self._entries.remove(name)

    def _local_write_logged(self, fn: Callable[[], object], name: str) -> None:
        try:
            fn()
        except (VaultError, OSError) as exc:
            self.health.failed("local")
            self.health.emit(CACHE_WRITE_FAILED, logging.ERROR, "could not update the cached "
                             f"copy of {name!r} ({describe(exc)})", name, exc)

    def _saved(self, name: str, plaintext: bytes, digest: str) -> SaveResult:
        with self._lock:
            self._seen[name] = digest
        self._local_write_logged(lambda: self._store_local(name, plaintext), name)
        return SaveResult(journaled=False)

    def _deleted(self, name: str) -> SaveResult:
        with self._lock:
            self._seen[name] = value_digest(None)
        self._local_write_logged(lambda: self._drop_local(name), name)
        return SaveResult(journaled=False)

    def _journal_write(self, op: str, name: str, value: Any, plaintext: bytes,
                       cause: BaseException) -> SaveResult:
        """Journal a save or delete the source could not take, based on what a ``get`` would
        have returned (replayed only over that: compare-and-set), then update the vault."""
        try:
            base = self._base_for(name, _clock.now_ms())
            if op == "save":
                rid = self.journal.append_save(name, value, base)
            else:
                rid = self.journal.append_delete(name, base)
        except (VaultError, OSError) as exc:
            raise SourceUnavailableError(
                f"could not {op} {name!r}: the source failed ({describe(cause)}) and the "
                f"journal could not be written ({describe(exc)})") from cause
        if op == "save":
            self._local_write_logged(lambda: self._store_local(name, plaintext), name)
        else:
            self._local_write_logged(lambda: self._drop_local(name), name)
        self.health.degraded_call(cause, f"journaled a {op} of {name!r}", name)
        held_back = self.health.due(JOURNALED)
        if held_back is None:  # warned less than warn_interval ago: INFO, counted
            self.health.emit(JOURNALED, logging.INFO, f"{op} of {name!r} journaled as {rid}",
                             name, cause)
        else:
            more = f"; {held_back} more write(s) journaled since the last warning" \
                if held_back else ""
            self.health.emit(JOURNALED, logging.WARNING, f"{op} of {name!r} journaled as {rid}"
                             f"{more}; journaled writes are replayed when the source answers",
                             name, cause)
        return SaveResult(journaled=True, record_id=rid)

    def _replayed(self, record: Record) -> None:
        with self._lock:
            self._memo.pop(record.name, None)
            self._seen[record.name] = value_digest(self._target(record))

    def _waiting_record(self, record_id: str, exc: UnknownKeyError) -> None:
        if self.health.limited(f"{JOURNAL_BLOCKED}:{record_id}"):
            self.health.emit(JOURNAL_BLOCKED, logging.ERROR, f"journal record {record_id} is "
                             f"sealed under key {exc.key_id}, which this key ring does not hold "
                             "(retired, or not deployed here yet): it waits; other records and "
                             "reads of the source go on", cause=exc)

    def _conflicted_record(self, record: Record, path: Path) -> None:
        self.health.emit(JOURNAL_CONFLICT, logging.ERROR, f"journaled {record.op} of "
                         f"{record.name!r} ({record.id}) was not applied: the source no longer "
                         "holds the value it was based on; set aside in "
                         f"{path.parent} (`credseal journal` lists it)", record.name)

    def _quarantined_record(self, record_id: str, exc: VaultError, path: Path) -> None:
        self.health.emit(QUARANTINED, logging.ERROR, f"journal record {record_id} failed to "
                         f"open ({describe(exc)}); moved to {path}; skipped", cause=exc)

    def _replay_done(self, tally: ReplayTally) -> None:
        """Report a replay (also one an outage cut short): a WARNING summary, and the
        recovery when this process saw no outage (records of an earlier process)."""
        if not tally.count or tally.oldest is None:
            return
        oldest = tally.oldest.isoformat(timespec="seconds")
        age = max(0.0, _clock.now_ms() / 1000 - tally.oldest.timestamp())
        self.health.emit(REPLAYED, logging.WARNING, f"replayed {tally.count} journaled write(s) "
                         f"into the source, written from {oldest} on ({age:.0f} s ago)",
                         age=age)
        self.health.replayed(tally.count, oldest)

    def _prepare_save(self, name: str, value: Any) -> bytes:
        fmt.check_name(name)
        check_storable(value)
        return self._entries.serialize(value)

    # ---- the shared tier (a fleet)

    def _note_version(self, name: str, version: Order) -> None:
        with self._lock:
            if version > self._high.get(name, NO_ORDER):
                if len(self._high) > 1_000_000:
                    self._high.clear()
                self._high[name] = version

    def _report_due(self) -> bool:
        """Whether a usage report is due (cheap: no I/O), so that the async cache hops to a
        worker thread only then."""
        if self._copies is None or self.report_interval is None:
            return False
        return self._report_at is None or self.health.clock() >= self._report_at

    def _maybe_report(self) -> None:
        """Publish this host's usage report to the shared tier when one is due (the first
        call, then every ``report_interval`` seconds); never raises, never waits for another
        thread's report."""
        copies, interval = self._copies, self.report_interval
        if copies is None or interval is None or not self._report_lock.acquire(blocking=False):
            return
        try:
            now = self.health.clock()
            if self._report_at is not None and now < self._report_at:
                return
            self._report_at = now + interval
            try:
                journal = self.journal.key_ids()
            except (VaultError, OSError):
                journal = Counter()
            copies.publish_report(journal, self.host)
        finally:
            self._report_lock.release()

    def _provisional_version(self, name: str) -> Order:
        """The order of a write the source could not take: based on the greatest source
        version this process saw of ``name`` (so other hosts prefer it to that value, and any
        later source version, the journal's included, wins over it), at the clock in µs
        (above a provisional write on the same base this process saw)."""
        with self._lock:
            high = self._high.get(name, NO_ORDER)
        at = max(now_us(), high.at + 1 if high.provisional else 0)
        return Order(high.base, 1, at)

    def _fleet_after_load(self, name: str, value: Any, source_version: int,
                          generation: int) -> None:
        """A healthy versioned answer: write it through to the vault and the shared tier
        (each only when needed); never raises. An absent name publishes no tombstone (its
        "absent as of now" version could outrank a create committing meanwhile): an older
        shared value copy is removed instead (compare-and-delete)."""
        copies = self._copies
        assert copies is not None
        version = source_order(source_version)
        with self._lock:
            if self._gen.get(name, 0) == generation:
                self._seen[name] = value_digest(value)
        written: tuple[bytes, int] | None = None
        try:
            if value is None:
                self._drop_local(name, generation=generation)
            else:
                written = self._write_through(name, value, generation, version)
        except (VaultError, OSError) as exc:
            self._local_failed(name, exc)
        if value is None:
            copies.retire_stale(name, source_version - ABSENT_MARGIN_US, _clock.now_ms())
            return
        self._note_version(name, version)
        if written is None and copies.due(name, version):
            written = self._seal_shared(name, version, value)
        if written is not None:
            copies.write_value(name, version, *written)

    def _seal_shared(self, name: str, version: Order, value: Any) -> tuple[bytes, int] | None:
        copies = self._copies
        assert copies is not None
        now = _clock.now_ms()
        try:
            body = self._entries.serialize(value)
            return copies.seal_value(name, version, body, now), now + self._entries.ttl_ms
        except (VaultError, OSError) as exc:
            copies.unavailable(exc)
            return None

    def _local_failed(self, name: str, exc: BaseException) -> None:
        self.health.failed("local")  # counted every time; the log line is rate-limited
        if self.health.limited(CACHE_WRITE_FAILED):
            self.health.emit(CACHE_WRITE_FAILED, logging.ERROR, "could not update the "
                             f"cached copy of {name!r} ({describe(exc)}); serving the "
                             "source's value", name, exc)

    def _fleet_saved(self, name: str, value: Any, source_version: int) -> SaveResult:
        """A save the source took at ``source_version``: the vault and the shared tier follow."""
        version = source_order(source_version)
        with self._lock:
            self._seen[name] = value_digest(value)
        self._note_version(name, version)
        self._fleet_store(name, value, version)
        self._maybe_report()
        return SaveResult(journaled=False)

    def _fleet_store(self, name: str, value: Any, version: Order) -> None:
        copies = self._copies
        assert copies is not None
        written = self._seal_shared(name, version, value)
        if written is None:
            return
        plaintext = stamp(version, self._entries.serialize(value))
        self._local_write_logged(
            lambda: self._store_local(name, plaintext, envelope=written), name)
        copies.write_value(name, version, *written)

    def _fleet_deleted(self, name: str, source_version: int) -> SaveResult:
        """A delete the source took: its tombstone goes to the shared tier only when this
        process knew the name to exist (a delete of a missing row dates its tombstone "now",
        which could outrank a create committing meanwhile)."""
        copies = self._copies
        assert copies is not None
        version = source_order(source_version)
        with self._lock:
            self._seen[name] = value_digest(None)
            known = name in self._high
        self._local_write_logged(lambda: self._drop_local(name), name)
        if known:
            self._note_version(name, version)
            copies.write_tombstone(name, version, _clock.now_ms())
        self._maybe_report()
        return SaveResult(journaled=False)

    def _fleet_journal_write(self, op: str, name: str, value: Any,
                             cause: BaseException) -> SaveResult:
        """An outage write: journaled (replayed later with compare-and-set), and written to
        the vault and the shared tier at a provisional version, so other hosts serve it."""
        copies = self._copies
        assert copies is not None
        version = self._provisional_version(name)
        plaintext = b"" if value is None else stamp(version, self._entries.serialize(value))
        result = self._journal_write(op, name, value, plaintext, cause)
        self._note_version(name, version)
        if op == "save":
            written = self._seal_shared(name, version, value)
            if written is not None:
                copies.write_value(name, version, *written)
        else:
            copies.write_tombstone(name, version, _clock.now_ms())
        self._maybe_report()
        return result

    def _serve_fleet(self, name: str, cause: BaseException) -> Fetched:
        """Answer during an outage from the newest valid copy by source version, local or
        shared (never one older than this process has seen); a newer shared copy is copied
        into the vault. Raises SourceUnavailableError when there is none."""
        copies = self._copies
        assert copies is not None
        now = _clock.now_ms()
        local: Copy | None = None
        problem = "there is no copy, local or shared"
        try:
            header, plaintext = self._entries.open(name, now)
            stamped = unstamp(plaintext)
            if stamped.tombstone:
                raise EntryNotFoundError(f"no entry named {name!r} (a tombstone)")
            local = Copy(stamped.order or NO_ORDER, False, stamped.body, header, b"")
        except EntryNotFoundError:
            pass
        except EntryExpiredError:
            problem = "the local copy expired and there is no shared copy"
        except VaultError as exc:
            self._cache_unusable(name, exc)
            problem = f"the local copy cannot be used ({type(exc).__name__})"
        shared = copies.read(name, now)
        best, origin = local, CACHE
        with self._adopting:
            held = self._pending_copies.get(name)
        if held is not None and (shared is None or held[0].order > shared.order):
            shared = held[0]  # taken from the tier a moment ago, not yet in the vault
        if shared is not None and (local is None or shared.order > local.order):
            best, origin = shared, SHARED
        if best is None:
            pending = self._pending_write(name, now, cause)
            if pending is not None:
                return pending
            self.health.degraded_call(cause, f"{name!r} has no valid copy", name)
            raise SourceUnavailableError(
                f"credential {name!r} is unavailable: the source failed ({describe(cause)}) "
                f"and {problem}", hint="bring the source back; the vault's TTL bounds how long "
                "an outage can be bridged") from cause
        with self._lock:
            high = self._high.get(name, NO_ORDER)
        if best.order < high:
            self.health.degraded_call(cause, f"the copies of {name!r} are older than one this "
                                      "process has seen", name)
            raise SourceUnavailableError(
                f"credential {name!r} is unavailable: the source failed ({describe(cause)}) "
                f"and every copy is older ({_shown(best.order)}) than one this process has "
                f"seen or written ({_shown(high)})",
                hint="bring the source back; check the local vault's disk") from cause
        try:
            value = best.value  # only the copy served is decoded
        except SerializationError as exc:
            self.health.degraded_call(cause, f"the copy of {name!r} is unusable", name)
            raise SourceUnavailableError(
                f"credential {name!r} is unavailable: the source failed ({describe(cause)}) "
                f"and the newest copy does not decode ({type(exc).__name__})") from cause
        self._note_version(name, best.order)
        if origin == SHARED:
            self._adopt_soon(name, best)
        age = max(0.0, now / 1000 - utc(best.header.created_at).timestamp())
        where = "the shared tier" if origin == SHARED else "the encrypted cache"
        self.health.degraded_call(cause, f"serving {name!r} from {where} (age {age:.0f} s)",
                                  name, age)
        return Fetched(value, origin, age)

    def _local_is_older(self, name: str, order: Order) -> bool:
        """Whether the vault's copy of ``name`` is missing, unusable or older than ``order``
        (one under a key the ring lacks may be newer: it is kept)."""
        try:
            _, plaintext = self._entries.open(name, 0, check_ttl=False)
            held = unstamp(plaintext).order or NO_ORDER
        except UnknownKeyError:
            return False
        except (VaultError, OSError):
            return True
        return held < order

    def _adopt_soon(self, name: str, copy: Copy) -> None:
        """Queue a shared copy for the local vault (:meth:`_adopt`, in the adopter thread, so
        the read that took it answers first); a newer copy of the name replaces a queued one."""
        with self._adopting:
            queued = self._pending_copies.get(name)
            if queued is not None and queued[0].order > copy.order:
                return
            self._pending_copies[name] = (copy, self._generation(name))
            self._adopting.notify_all()
            if self._adopter is None or not self._adopter.is_alive():
                self._adopter = threading.Thread(target=self._adopt_loop, daemon=True,
                                                 name="credseal-copies")
                self._adopter.start()

    def _adopt_loop(self) -> None:
        """Write queued copies; ends after a second with nothing to do."""
        while True:
            with self._adopting:
                if not self._pending_copies:
                    self._adopting.wait(timeout=1.0)
                if not self._pending_copies:
                    self._adopter = None
                    self._adopting.notify_all()
                    return
                name, (copy, generation) = self._pending_copies.popitem()
                self._in_flight += 1
            try:
                self._adopt(name, copy, generation)
            finally:
                with self._adopting:
                    self._in_flight -= 1
                    self._adopting.notify_all()

    def _adopt(self, name: str, copy: Copy, generation: int | None = None) -> None:
        """Make a newer shared copy the local one (the same envelope, its own times), unless
        a save or delete of the name overtook ``generation``. Not fsynced: Redis holds it
        too; a power loss may lose it (or tear it into a file that fails to authenticate: a
        miss)."""
        def adopt() -> None:
            with self._vault_lock:
                if not self._local_is_older(name, copy.order):
                    return
            if copy.tombstone:
                self._drop_local(name, generation=generation)
                return
            with self._vault_lock:
                if not self._claim(name, generation):
                    return
                self._entries.write_sealed(name, copy.envelope, durable=False)

        self._local_write_logged(adopt, name)

    def _prefetch(self, names: list[str]) -> PrefetchReport:
        """Copy every shared copy of ``names`` newer than the local one into the vault."""
        copies = self._copies
        if copies is None:
            raise ConfigurationError("prefetch needs a shared tier (shared=...)")
        for name in names:
            fmt.check_name(name)
        self.wait_for_copies()  # copies already on their way count as local ones
        now = _clock.now_ms()
        found = copies.read_many(names, now)
        if found is None:
            return PrefetchReport(len(names), 0, 0, False)
        copied: list[str] = []
        for name, copy in found.items():
            try:
                _, plaintext = self._entries.open(name, now)
                local_order: Order | None = unstamp(plaintext).order or NO_ORDER
            except (VaultError, OSError):
                local_order = None
            with self._lock:
                high = self._high.get(name, NO_ORDER)
            if (local_order is None or copy.order > local_order) and copy.order >= high:
                self._note_version(name, copy.order)
                self._adopt(name, copy)
                copied.append(name)
        # The copies were written without fsyncs; made durable together (batched).
        self._local_write_logged(
            lambda: files.sync_files([self._entries.path(name) for name in copied]),
            "(prefetched copies)")
        return PrefetchReport(len(names), len(found), len(copied), True)


def _shown(order: Order) -> str:
    """An order for a message: the source version, or the provisional write's base."""
    return (f"a write not yet taken, based on version {order.base}" if order.provisional
            else f"version {order.base}")
