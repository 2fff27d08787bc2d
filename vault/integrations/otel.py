"""Metrics through the OpenTelemetry API (the optional extra ``credseal[otel]``).

``instrument(cache)`` publishes a cache's metrics; ``rewrap_progress()`` gives a progress
callback for ``vault.ops.rotate`` that counts rewrapped items. Without ``opentelemetry-api``
both are no-ops (said once at DEBUG on ``vault.integrations``), so a service can call them
unconditionally. No semantic convention exists for this domain; the names are these (unit in
brackets, attributes in braces):

=================================  ======  ===================================================
``credseal.cache.answers``         [1]     counter {origin=source|cache}: answers of ``get``
``credseal.cache.degraded``        [1]     gauge 0/1: serving without the source
``credseal.breaker.state``         [1]     gauge {tier=source} 0 closed, 1 open, 2 half-open
``credseal.journal.pending``       [1]     gauge: journaled writes waiting for the source
``credseal.journal.oldest_age``    [s]     gauge: age of the oldest of them (0 if none)
``credseal.journal.conflicts``     [1]     gauge: journaled writes set aside as conflicts
``credseal.quarantined``           [1]     counter: cached copies and records moved aside
``credseal.write_through.failures`` [1]    counter {tier=local}: vault updates that failed
``credseal.rewrap.progress``       [1]     counter {target}: items a rotation has visited
=================================  ======  ===================================================

Every point carries ``dir``, the cache's vault directory, so several caches of a process are
told apart. The gauges are observed at collection time (the journal's are read from its files,
at most once per collection). Never an entry name, a key or a value.
"""

from __future__ import annotations

import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from vault.cache import QUARANTINED, CacheEvent, Pending

__all__ = ["Instrumentation", "instrument", "rewrap_progress"]

logger = logging.getLogger("vault.integrations")
_BREAKER = {"closed": 0, "open": 1, "half-open": 2}
_METER = "credseal"
_REGISTRY = threading.Lock()
_METERS: dict[int, tuple[Any, Any]] = {}


def _meter(meter_provider: Any) -> Any:
    try:
        from opentelemetry import metrics
    except ImportError:
        logger.debug("opentelemetry-api is not installed (pip install 'credseal[otel]'): "
                     "credseal publishes no metrics")
        return None
    from importlib.metadata import PackageNotFoundError, version

    try:
        ours = version("credseal")
    except PackageNotFoundError:  # run from a checkout without installing it
        ours = None
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _REGISTRY:  # one meter per provider: the API's proxy provider makes a new one per call
        known = _METERS.get(id(provider))
        if known is None or known[0] is not provider:
            known = (provider, provider.get_meter(_METER, ours))
            _METERS[id(provider)] = known
        return known[1]


class _Instruments:
    """The instruments of one meter, shared by every cache instrumented on it: a second
    instrument of the same name would be dropped, so the gauges observe every live cache,
    each with its ``dir`` attribute."""

    def __init__(self, meter: Any) -> None:
        from opentelemetry.metrics import Observation

        self.caches: weakref.WeakSet[Instrumentation] = weakref.WeakSet()
        self.answers = meter.create_counter("credseal.cache.answers", unit="1",
                                            description="answers of get, by origin")
        self.quarantined = meter.create_counter("credseal.quarantined", unit="1",
                                                description="cached copies and records moved "
                                                            "aside")
        self.failures = meter.create_counter("credseal.write_through.failures", unit="1",
                                             description="vault updates that failed, by tier")

        def gauge(name: str, unit: str, description: str,
                  read: Callable[[Instrumentation], float], extra: dict[str, str]) -> None:
            def callback(options: Any) -> Iterable[Any]:
                live = [i for i in list(self.caches) if not i.cache.closed]
                return [Observation(read(i), {"dir": i.dir, **extra}) for i in live]
            meter.create_observable_gauge(name, callbacks=[callback], unit=unit,
                                          description=description)

        gauge("credseal.cache.degraded", "1", "1 while serving without the source",
              lambda i: int(i.cache.degraded), {})
        gauge("credseal.breaker.state", "1", "0 closed, 1 open, 2 half-open",
              lambda i: _BREAKER.get(i.cache.breaker.state, 1), {"tier": "source"})
        gauge("credseal.journal.pending", "1", "journaled writes waiting for the source",
              lambda i: i.journal().count, {})
        gauge("credseal.journal.oldest_age", "s", "age of the oldest journaled write",
              lambda i: i.journal().oldest_age_seconds or 0.0, {})
        gauge("credseal.journal.conflicts", "1", "journaled writes set aside as conflicts",
              lambda i: i.journal().conflicts, {})


_BY_METER: dict[int, tuple[Any, _Instruments]] = {}


def _instruments(meter: Any) -> _Instruments:
    with _REGISTRY:
        known = _BY_METER.get(id(meter))
        if known is None or known[0] is not meter:
            known = (meter, _Instruments(meter))
            _BY_METER[id(meter)] = known
        return known[1]


class Instrumentation:
    """What ``instrument`` did for one cache (or nothing, without opentelemetry-api)."""

    def __init__(self, cache: Any, meter: Any) -> None:
        self.cache = cache
        self.enabled = meter is not None
        self.dir = str(cache.vault.directory)
        self._lock = threading.Lock()
        self._pending: tuple[float, Pending] | None = None
        if meter is None:
            return
        shared = _instruments(meter)
        where = {"dir": self.dir}

        def on_event(event: CacheEvent) -> None:
            self._pending = None  # a journaled, replayed or set-aside write: read it again
            if event.kind == QUARANTINED:
                shared.quarantined.add(1, where)

        cache.add_listener(
            on_event=on_event,
            on_answer=lambda origin: shared.answers.add(1, {**where, "origin": origin}),
            on_write_failure=lambda tier: shared.failures.add(1, {**where, "tier": tier}))
        shared.caches.add(self)
        self._shared = shared

    def journal(self) -> Pending:
        """``cache.pending``, read once per collection (the three gauges share it; any cache
        event reads it again)."""
        with self._lock:
            now = time.monotonic()
            if self._pending is None or now - self._pending[0] > 1.0:
                self._pending = (now, self.cache.pending)
            return self._pending[1]


def instrument(cache: Any, *, meter_provider: Any = None) -> Instrumentation:
    """Publish ``cache``'s metrics (a ``FallbackCache`` or ``AsyncFallbackCache``) through
    ``meter_provider`` (default: OpenTelemetry's global one), with the attribute ``dir``
    (its vault directory); several caches share the instruments. Call it once per cache; a
    closed cache is no longer observed."""
    return Instrumentation(cache, _meter(meter_provider))


def rewrap_progress(*, meter_provider: Any = None) -> Callable[[str, int, int], None]:
    """A ``progress`` callback for ``vault.ops.rotate`` that adds each target's newly visited
    items to ``credseal.rewrap.progress`` {target}."""
    meter = _meter(meter_provider)
    if meter is None:
        return lambda target, done, total: None
    counter = meter.create_counter("credseal.rewrap.progress", unit="1",
                                   description="items a rotation has visited, by target")
    seen: dict[str, int] = {}

    def progress(target: str, done: int, total: int) -> None:
        delta = done - seen.get(target, 0)
        if delta > 0:
            counter.add(delta, {"target": target})
            seen[target] = done
    return progress
