"""``FallbackCache``: the primary source first, the encrypted vault when it is down.

- ``get``/``fetch`` ask the source. The answer is written through to the vault only when it
  changed or the cached copy has used half its TTL (an in-memory digest per name; the first
  get after start compares with the vault's copy). ``None`` from the source deletes the
  cached copy. A cache write that fails is logged, never raised.
- When the source is unavailable (the classifier says so; see ``vault.sources.is_outage``)
  the vault's copy is served if it is valid (TTL checked), the cache is ``degraded``, and a
  warning event goes to the ``vault.cache`` logger and ``on_event``: on entering degraded
  mode, then at most once per ``warn_interval``, and a recovery event at the end. With no
  valid copy: ``SourceUnavailableError`` chaining the driver's error.
- A cached copy that fails to authenticate or parse is quarantined (error event) and treated
  as a miss. One sealed under a key id the ring lacks is left alone (a rotation may be in
  progress; the vault already reloaded its key source once) and treated as a miss.
- ``save``/``delete`` during an outage write the vault, append to the encrypted journal
  (``vault._store.journal``) and return ``SaveResult(journaled=True)``. Before any later call
  reaches the source, the journal is replayed in order (also one left by another or a crashed
  process). A cached value is never written back to the source.
- A :class:`~vault.cache.CircuitBreaker` stops calls to a source that keeps failing.
- An async source (``async def load``) is refused at construction; so is a ``with`` block's
  cache after it closed (``close()`` never closes the caller's source).

**Threads**: one cache may serve many threads. Its state changes under a lock that is never
held while the source is called; the breaker lets one probe through; replays serialize on the
journal's lock; a write-through is skipped if a save or delete of the same name in this
process overtook it. How many source calls run at once is the source's business.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar, cast

from vault._crypto import format as fmt
from vault._store.journal import Journal, Record, step
from vault._store.store import Vault
from vault.cache._breaker import CircuitBreaker
from vault.cache._core import (
    DEFAULT_SHARED_REFRESH,
    SOURCE,
    CacheCore,
    Fetched,
    PrefetchReport,
    ReplayTally,
    SaveResult,
    SourceFailure,
)
from vault.cache._health import CacheEvent
from vault.cache._kind import check_sync_source
from vault.cache._shared import REPORT_INTERVAL, SharedTier
from vault.errors import ConfigurationError, SerializationError, VaultError
from vault.sources._base import (
    Source,
    VersionedSource,
    conditional_save,
    supports_versions,
    value_digest,
)
from vault.sources._outage import is_outage

__all__ = ["CacheEvent", "FallbackCache", "Fetched", "SaveResult"]

T = TypeVar("T")


class FallbackCache(CacheCore):
    """The primary ``source`` first, the encrypted ``vault`` during outages (module docs).

    A context manager: ``with FallbackCache(source, v) as cache:`` closes the cache (only
    what it created, never ``source``) at the end.

    Args:
        source: a :class:`~vault.sources.Source` (sync methods).
        vault: the :class:`~vault.Vault` holding the cached copies and the journal.
        breaker: a :class:`~vault.cache.CircuitBreaker` (default: 2 failures, 10 s).
        warn_interval: seconds between two warnings of one kind: "still degraded",
            "journaled", a repeated error (default 60; the attribute can be set later).
        on_event: called with every :class:`CacheEvent` (exceptions it raises are logged).
        is_outage: the classifier of source errors (default ``vault.sources.is_outage``).
        clock: monotonic seconds, for the breaker and the warning interval (tests).
        journal: the :class:`~vault._store.journal.Journal` (default: the vault's).
        shared: the fleet's shared tier (``vault.cache.redis.RedisTier``): copies are written
            through to it and, during an outage, the newest valid copy by source version,
            local or shared, is served (``origin`` ``"shared"`` or ``"cache"``). Needs a
            source with versions (``vault.sources.VersionedSource``).
        shared_refresh: seconds after which this process writes a shared copy again although
            it already wrote that version (a Redis that restarted empty fills up again).
        report_interval: seconds between two usage reports this host publishes to the shared
            tier (the key ids its local copies and journal use, for ``retire``); the report
            is written from a call (a scan of the vault directory's headers). None: no
            reports (``retire`` then cannot see what this host still uses).
        host: this host's name in its usage reports (advisory; ``vault.open_cache`` passes
            the machine's host name); the vault directory's real path identifies the host.

    Raises:
        ConfigurationError: an async source (hint: ``AsyncFallbackCache``), a read-only
            vault, or a bad ``warn_interval``.
    """

    def __init__(self, source: Source, vault: Vault, *, breaker: CircuitBreaker | None = None,
                 warn_interval: float = 60.0, on_event: Callable[[CacheEvent], None] | None = None,
                 is_outage: Callable[[BaseException], bool] = is_outage,
                 clock: Callable[[], float] = time.monotonic,
                 journal: Journal | None = None, shared: SharedTier | None = None,
                 shared_refresh: float = DEFAULT_SHARED_REFRESH,
                 report_interval: float | None = REPORT_INTERVAL, host: str | None = None) -> None:
        check_sync_source(source)
        if shared is not None and not supports_versions(source):
            raise ConfigurationError(
                f"a shared tier needs a source with versions; {type(source).__name__} has no "
                "load_versioned/save_versioned/delete_versioned",
                hint="the built-in sources have them (vault.sources.VersionedSource)")
        super().__init__(vault, breaker=breaker, warn_interval=warn_interval, on_event=on_event,
                         is_outage=is_outage, clock=clock, journal=journal, shared=shared,
                         shared_refresh=shared_refresh, report_interval=report_interval,
                         host=host)
        self.source = source

    def __repr__(self) -> str:
        return (f"FallbackCache({self.source!r}, {self.vault!r}, degraded={self.degraded}, "
                f"breaker={self.breaker.state})")

    def __enter__(self) -> FallbackCache:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def fetch(self, name: str) -> Fetched:
        """Return the value of ``name`` with its origin and age (see the module docs).

        Raises:
            SourceUnavailableError: the source failed and there is no valid cached copy.
            FormatError: a bad name. Errors of the source that are not outages.
        """
        fetched = self._fetch(name)
        self.health.answered(fetched.origin)
        self._maybe_report()
        return fetched

    def _fetch(self, name: str) -> Fetched:
        """Return the value of ``name`` with its origin and age (see the module docs).

        Raises:
            SourceUnavailableError: the source failed and there is no valid cached copy.
            FormatError: a bad name. Errors of the source that are not outages.
        """
        fmt.check_name(name)
        generation = self._generation(name)
        if self._copies is not None:
            source = cast(VersionedSource, self.source)
            ok, result = self._call(lambda: source.load_versioned(name))
            if not ok:
                return self._serve_fleet(name, result)
            value, version = result
            self._fleet_after_load(name, value, version, generation)
            return Fetched(value, SOURCE, 0.0)
        ok, result = self._call(lambda: self.source.load(name))
        if not ok:
            return self._serve_cached(name, result)
        self._after_load(name, result, generation)
        return Fetched(result, SOURCE, 0.0)

    def get(self, name: str) -> Any:
        """``fetch(name).value``: the value, or None if the source has no such name."""
        return self.fetch(name).value

    def save(self, name: str, value: Any) -> SaveResult:
        """Save to the source and the vault; during an outage, to the vault and the journal.

        Raises:
            SerializationError: ``value`` is None or cannot be stored.
            SourceUnavailableError: the source failed and the journal could not be written.
        """
        plaintext = self._prepare_save(name, value)
        if self._copies is not None:
            source = cast(VersionedSource, self.source)
            ok, result = self._call(lambda: source.save_versioned(name, value))
            if ok:
                return self._fleet_saved(name, value, result)
            return self._fleet_journal_write("save", name, value, result)
        ok, result = self._call(lambda: self.source.save(name, value))
        if ok:
            return self._saved(name, plaintext, value_digest(value))
        return self._journal_write("save", name, value, plaintext, result)

    def delete(self, name: str) -> SaveResult:
        """Delete from the source and the vault; during an outage the delete is journaled.
        With a shared tier, a sealed tombstone goes there too."""
        fmt.check_name(name)
        if self._copies is not None:
            source = cast(VersionedSource, self.source)
            ok, result = self._call(lambda: source.delete_versioned(name))
            if ok:
                return self._fleet_deleted(name, result)
            return self._fleet_journal_write("delete", name, None, result)
        ok, result = self._call(lambda: self.source.delete(name))
        if ok:
            return self._deleted(name)
        return self._journal_write("delete", name, None, b"", result)

    def prefetch(self, names: Iterable[str]) -> PrefetchReport:
        """Warm this host's vault from the shared tier: one round trip (``MGET``) for every
        name, and a local write of each shared copy newer than the local one (a new host
        starting during an outage). Asks nothing of the source.

        Raises:
            ConfigurationError: no shared tier. FormatError: a bad name.
        """
        self._check_open()
        report = self._prefetch(list(names))
        self._maybe_report()
        return report

    def replay(self) -> int:
        """Replay pending journal records now, in order; returns how many were applied.

        Raises: the source's error (outage or not); UnknownKeyError, LockTimeoutError,
        OSError: the journal could not be read.
        """
        self._check_open()
        try:
            return self._replay()
        except SourceFailure as failure:
            raise failure.error from None

    def _replay(self) -> int:
        tally = ReplayTally()
        try:
            with self.journal.replay_lock(), contextlib.closing(self._replay_steps()) as steps:
                record = next(steps, None)
                while record is not None:
                    took = self._apply(record)
                    if took:
                        tally.add(record)
                    record = step(steps, took)
        finally:
            self._replay_done(tally)  # also what applied before an outage cut it short
        return tally.count

    def _apply(self, record: Record) -> bool:
        """Compare-and-set the record into the source: True if the source now holds its value
        (written over its base, or already there), False for a conflict."""
        target = self._target(record)
        try:
            took = record.base is not None and conditional_save(self.source, record.name,
                                                                target, record.base)
            if not took:
                took = value_digest(self.source.load(record.name)) == value_digest(target)
        except SerializationError:
            return False  # the row there is not a codec value: a conflict of this name only
        except Exception as exc:
            raise SourceFailure(exc) from exc
        if took:
            self._replayed(record)
        return took

    def _call(self, op: Callable[[], T]) -> tuple[bool, Any]:
        """Run ``op`` on the source after replaying the journal: (True, result), or
        (False, cause) when the cache must fall back; other errors propagate (the steps are
        ``CacheCore``'s, shared with the async cache)."""
        self._check_open()
        if not self.breaker.allow():
            return False, self._open_cause()
        try:
            try:
                if self.journal.has_pending():
                    self._replay()
            except SourceFailure as failure:
                raise failure.error from None  # classified below, like op's own errors
            except ConfigurationError as exc:
                self._journal_refused(exc)  # records wait; the source is read all the same
            except (VaultError, OSError) as exc:
                return False, self._journal_blocked(exc)
            result = op()
        except Exception as exc:
            return False, self._call_failed(exc)
        except BaseException:
            self._call_aborted()
            raise
        self._call_succeeded()
        return True, result
