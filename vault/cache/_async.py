"""``AsyncFallbackCache``: the fallback cache for asyncio services.

The same behaviour, events and guarantees as :class:`~vault.cache.FallbackCache` (see its
module), with an :class:`~vault.sources.AsyncSource` (``AsyncPostgresSource``, or any sync
source through ``ThreadedAsyncSource``). The vault and the journal are files: every read,
write, lock and ``stat`` runs in a worker thread (``asyncio.to_thread``), never on the event
loop. Tasks of one loop may share a cache; replays are serialized by an ``asyncio.Lock`` and
the journal's file lock. A sync source is refused at construction (wrap it in
``ThreadedAsyncSource``); ``async with`` closes the cache, never the caller's source.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable, Iterable
from types import TracebackType
from typing import Any, TypeVar, cast

from vault import _files as files
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
from vault.cache._kind import check_async_source
from vault.cache._shared import REPORT_INTERVAL, SharedTier
from vault.errors import ConfigurationError, SerializationError, VaultError
from vault.sources._base import (
    AsyncSource,
    AsyncVersionedSource,
    conditional_save_async,
    supports_versions,
    value_digest,
)
from vault.sources._outage import is_outage

__all__ = ["AsyncFallbackCache"]

T = TypeVar("T")


class AsyncFallbackCache(CacheCore):
    """The asyncio twin of ``FallbackCache``; same arguments, with an async ``source``.

    ``shared`` takes the sync cache's ``vault.cache.redis.RedisTier``, whose calls run in the
    worker threads that do the vault's file work, next to it, or an ``AsyncRedisTier``
    (``redis.asyncio``), whose calls those threads schedule on this cache's event loop. The
    event loop never waits for Redis either way.

    An async context manager (``async with``); ``close()`` / ``aclose()`` close only what the
    cache created, never ``source``.

    Raises:
        ConfigurationError: a sync source (hint: ``ThreadedAsyncSource``), a read-only vault,
            or a bad ``warn_interval``.
    """

    def __init__(self, source: AsyncSource, vault: Vault, *,
                 breaker: CircuitBreaker | None = None, warn_interval: float = 60.0,
                 on_event: Callable[[CacheEvent], None] | None = None,
                 is_outage: Callable[[BaseException], bool] = is_outage,
                 clock: Callable[[], float] = time.monotonic,
                 journal: Journal | None = None, shared: SharedTier | Any = None,
                 shared_refresh: float = DEFAULT_SHARED_REFRESH,
                 report_interval: float | None = REPORT_INTERVAL,
                 host: str | None = None) -> None:
        check_async_source(source)
        if shared is not None and not supports_versions(source):
            raise ConfigurationError(
                f"a shared tier needs a source with versions; {type(source).__name__} has no "
                "load_versioned/save_versioned/delete_versioned",
                hint="the built-in sources have them (vault.sources.AsyncVersionedSource)")
        self._bridge: Any = None
        tier: SharedTier | None = shared
        if shared is not None and inspect.iscoroutinefunction(getattr(shared, "get", None)):
            from vault.cache.redis import LoopBridge  # an AsyncRedisTier

            tier = self._bridge = LoopBridge(cast(Any, shared))
        super().__init__(vault, breaker=breaker, warn_interval=warn_interval, on_event=on_event,
                         is_outage=is_outage, clock=clock, journal=journal, shared=tier,
                         shared_refresh=shared_refresh, report_interval=report_interval,
                         host=host)
        self.shared = shared  # the caller's tier (the bridge is ours)
        self.source = source
        self._replaying: asyncio.Lock | None = None

    def __repr__(self) -> str:
        return (f"AsyncFallbackCache({self.source!r}, {self.vault!r}, "
                f"degraded={self.degraded}, breaker={self.breaker.state})")

    async def __aenter__(self) -> AsyncFallbackCache:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """``close()``, awaitable (in a worker thread: it waits for copies being written)."""
        await asyncio.to_thread(self.close)

    async def fetch(self, name: str) -> Fetched:
        """Return the value of ``name`` with its origin and age (see the module docs)."""
        fetched = await self._fetch(name)
        self.health.answered(fetched.origin)
        if self._report_due():
            await asyncio.to_thread(self._maybe_report)
        return fetched

    def _bind(self) -> None:
        if self._bridge is not None:
            self._bridge.bind(asyncio.get_running_loop())

    async def _fetch(self, name: str) -> Fetched:
        """Return the value of ``name`` with its origin and age; raises as the sync cache."""
        fmt.check_name(name)
        self._bind()
        generation = self._generation(name)
        if self._copies is not None:
            source = cast(AsyncVersionedSource, self.source)
            ok, result = await self._call(lambda: source.load_versioned(name))
            if not ok:
                return await asyncio.to_thread(self._serve_fleet, name, result)
            value, version = result
            await asyncio.to_thread(self._fleet_after_load, name, value, version, generation)
            return Fetched(value, SOURCE, 0.0)
        ok, result = await self._call(lambda: self.source.load(name))
        if not ok:
            return await asyncio.to_thread(self._serve_cached, name, result)
        await asyncio.to_thread(self._after_load, name, result, generation)
        return Fetched(result, SOURCE, 0.0)

    async def get(self, name: str) -> Any:
        """``(await fetch(name)).value``."""
        return (await self.fetch(name)).value

    async def save(self, name: str, value: Any) -> SaveResult:
        """Save to the source and the vault; during an outage, to the vault and the journal."""
        plaintext = self._prepare_save(name, value)
        self._bind()
        if self._copies is not None:
            source = cast(AsyncVersionedSource, self.source)
            ok, result = await self._call(lambda: source.save_versioned(name, value))
            if ok:
                return await asyncio.to_thread(self._fleet_saved, name, value, result)
            return await asyncio.to_thread(self._fleet_journal_write, "save", name, value,
                                           result)
        ok, result = await self._call(lambda: self.source.save(name, value))
        if ok:
            return await asyncio.to_thread(self._saved, name, plaintext, value_digest(value))
        return await asyncio.to_thread(self._journal_write, "save", name, value, plaintext,
                                       result)

    async def delete(self, name: str) -> SaveResult:
        """Delete from the source and the vault; during an outage the delete is journaled."""
        fmt.check_name(name)
        self._bind()
        if self._copies is not None:
            source = cast(AsyncVersionedSource, self.source)
            ok, result = await self._call(lambda: source.delete_versioned(name))
            if ok:
                return await asyncio.to_thread(self._fleet_deleted, name, result)
            return await asyncio.to_thread(self._fleet_journal_write, "delete", name, None,
                                           result)
        ok, result = await self._call(lambda: self.source.delete(name))
        if ok:
            return await asyncio.to_thread(self._deleted, name)
        return await asyncio.to_thread(self._journal_write, "delete", name, None, b"", result)

    async def prefetch(self, names: Iterable[str]) -> PrefetchReport:
        """As ``FallbackCache.prefetch``, in a worker thread."""
        self._check_open()
        self._bind()
        report = await asyncio.to_thread(self._prefetch, list(names))
        if self._report_due():
            await asyncio.to_thread(self._maybe_report)
        return report

    async def replay(self) -> int:
        """Replay pending journal records now, in order; returns how many were applied.

        Raises: the source's error (outage or not); UnknownKeyError, LockTimeoutError,
        OSError: the journal could not be read.
        """
        self._check_open()
        try:
            return await self._replay()
        except SourceFailure as failure:
            raise failure.error from None

    async def _replay(self) -> int:
        if self._replaying is None:
            self._replaying = asyncio.Lock()
        tally = ReplayTally()
        async with self._replaying:
            lock = await asyncio.to_thread(self.journal.replay_lock)
            await _acquire(lock)
            try:
                await self._replay_locked(tally)
            finally:
                lock.release()
                self._replay_done(tally)  # also what applied before an outage cut it short
        return tally.count

    async def _replay_locked(self, tally: ReplayTally) -> None:
        """The shared replay loop (``CacheCore._replay_steps``), stepped in worker threads;
        counts what applied into ``tally``."""
        steps = self._replay_steps()
        # Not closed explicitly: after a cancellation a worker thread may still be inside
        # the generator. One left at its yield is closed when dropped, and closing it there
        # deletes nothing (the record whose apply failed stays).
        record = await asyncio.to_thread(next, steps, None)
        while record is not None:
            took = await self._apply(record)
            if took:
                tally.add(record)
            record = await asyncio.to_thread(step, steps, took)

    async def _apply(self, record: Record) -> bool:
        """As ``FallbackCache._apply``, awaiting the source."""
        target = self._target(record)
        try:
            took = record.base is not None and await conditional_save_async(
                self.source, record.name, target, record.base)
            if not took:
                took = value_digest(await self.source.load(record.name)) == value_digest(target)
        except SerializationError:
            return False  # the row there is not a codec value: a conflict of this name only
        except Exception as exc:
            raise SourceFailure(exc) from exc
        if took:
            self._replayed(record)
        return took

    async def _call(self, op: Callable[[], Awaitable[T]]) -> tuple[bool, Any]:
        """As ``FallbackCache._call``, awaiting the source (the steps are ``CacheCore``'s)."""
        self._check_open()
        if not self.breaker.allow():
            return False, self._open_cause()
        try:
            try:
                if await asyncio.to_thread(self.journal.has_pending):
                    await self._replay()
            except SourceFailure as failure:
                raise failure.error from None
            except ConfigurationError as exc:
                self._journal_refused(exc)  # records wait; the source is read all the same
            except (VaultError, OSError) as exc:
                return False, self._journal_blocked(exc)
            result = await op()
        except Exception as exc:
            return False, self._call_failed(exc)
        except BaseException:
            self._call_aborted()  # cancelled: release a half-open probe
            raise
        self._call_succeeded()
        return True, result


async def _acquire(lock: files.FileLock) -> None:
    """Take a file lock in a worker thread; if we are cancelled meanwhile, release it once the
    thread got it, so that a cancelled task never leaves the lock held."""
    task = asyncio.ensure_future(asyncio.to_thread(lock.acquire))
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        def release(done: asyncio.Future[bool]) -> None:
            if not done.cancelled() and done.exception() is None:
                lock.release()
        task.add_done_callback(release)
        raise
