"""The DB-fallback cache: the primary source first, the encrypted vault during its outages.

:class:`FallbackCache` (threads) and :class:`AsyncFallbackCache` (asyncio) share one core:
the outage classification that feeds the :class:`CircuitBreaker`, serving valid cached copies
(``degraded``, with :class:`CacheEvent` events), the write-through policy, and the encrypted
journal of writes the source could not take, replayed in order before anything else reads
from it. With ``shared=`` (``vault.cache.redis.RedisTier``, extra ``credseal[redis]``) the
cache is one host of a fleet: copies go to a shared tier too, ordered by source version, so
a new host can start during an outage. ``docs/operations.md`` explains the behaviour and how
to size TTL, breaker and the shared tier.
"""

from vault._store.store import Vault, entries_of
from vault.cache._async import AsyncFallbackCache
from vault.cache._breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker
from vault.cache._core import Fetched, Pending, PrefetchReport, SaveResult
from vault.cache._health import (
    CACHE_UNUSABLE,
    CACHE_WRITE_FAILED,
    DEGRADED,
    JOURNAL_BLOCKED,
    JOURNAL_CONFLICT,
    JOURNALED,
    QUARANTINED,
    RECOVERED,
    REPLAYED,
    SHARED_RECOVERED,
    SHARED_REJECTED,
    SHARED_SKIPPED,
    SHARED_UNAVAILABLE,
    STILL_DEGRADED,
    CacheEvent,
)
from vault.cache._shared import SharedTarget, SharedTier
from vault.cache._sync import FallbackCache


def shared_target(tier: SharedTier, vault: Vault) -> SharedTarget:
    """The shared tier as a rewrap target of ``vault`` (named "shared"): pass it in
    ``vault.ops.rotate(..., extra_targets=[...])`` and ``vault.ops.retire(...)`` so that
    rotation rewraps its records and retirement asks it (the CLI does when
    ``CREDSEAL_REDIS_*`` is set)."""
    return SharedTarget(tier, entries_of(vault))


__all__ = [
    "CACHE_UNUSABLE",
    "CACHE_WRITE_FAILED",
    "CLOSED",
    "DEGRADED",
    "HALF_OPEN",
    "JOURNALED",
    "JOURNAL_BLOCKED",
    "JOURNAL_CONFLICT",
    "OPEN",
    "QUARANTINED",
    "RECOVERED",
    "REPLAYED",
    "SHARED_RECOVERED",
    "SHARED_REJECTED",
    "SHARED_SKIPPED",
    "SHARED_UNAVAILABLE",
    "STILL_DEGRADED",
    "AsyncFallbackCache",
    "CacheEvent",
    "CircuitBreaker",
    "FallbackCache",
    "Fetched",
    "Pending",
    "PrefetchReport",
    "SaveResult",
    "SharedTarget",
    "SharedTier",
    "shared_target",
]
