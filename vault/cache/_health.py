"""The fallback cache's health: the degraded flag and the events that report it.

Events go to the stdlib logger ``vault.cache`` (the :class:`CacheEvent` is attached to the
log record as ``record.credseal_event``) and to an optional callback, so Sentry, metrics or
paging can hook in. They carry the entry name, the age of the cached copy and the cause (error
class and first line of its message); never a value.

Rate limits: entering degraded mode is reported at once; while it lasts, a "still degraded"
warning at most once per ``warn_interval`` (with the number of calls not reported); its end
once. Journaled writes likewise warn at most once per ``warn_interval`` (with the number
journaled since the last warning; each one is also an INFO event with its record id), and so
do repeated errors of one kind (e.g. cache writes failing on a full disk).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

from vault.errors import ConfigurationError

__all__ = ["CacheEvent", "Health", "describe", "logger"]

logger = logging.getLogger("vault.cache")

# Event kinds (CacheEvent.kind).
DEGRADED, STILL_DEGRADED, RECOVERED = "degraded", "still_degraded", "recovered"
JOURNALED, REPLAYED, JOURNAL_BLOCKED = "journaled", "replayed", "journal_blocked"
QUARANTINED, CACHE_UNUSABLE = "quarantined", "cache_unusable"
JOURNAL_CONFLICT = "journal_conflict"
CACHE_WRITE_FAILED = "cache_write_failed"
SHARED_UNAVAILABLE, SHARED_RECOVERED = "shared_unavailable", "shared_recovered"
SHARED_REJECTED, SHARED_SKIPPED = "shared_rejected", "shared_skipped"


@dataclass(frozen=True)
class CacheEvent:
    """What the cache reports; never a value.

    Attributes:
        kind: ``degraded`` and ``still_degraded`` (WARNING), ``recovered`` (WARNING, so a log
            filtered at WARNING shows both ends of an outage), ``journaled`` (WARNING at most
            once per ``warn_interval``, INFO otherwise), ``replayed`` (WARNING: how many, and
            the oldest one's time), ``quarantined``, ``cache_unusable``,
            ``cache_write_failed``, ``journal_blocked`` (ERROR). The shared tier's:
            ``shared_unavailable`` (WARNING, at most once per ``warn_interval``) and
            ``shared_recovered`` (WARNING), ``shared_rejected`` (ERROR: a shared copy failed
            to authenticate and was removed) and ``shared_skipped`` (WARNING: a shared copy
            under a key id the ring lacks, left alone).
        level: the ``logging`` level it is logged at.
        message: one line for humans.
        name: the entry concerned, if any.
        cause: ``"<error class>: <message>"`` of the error behind it, if any.
        age_seconds: age of the cached copy served, or of the oldest record replayed, if any.
    """

    kind: str
    level: int
    message: str
    name: str | None = None
    cause: str | None = None
    age_seconds: float | None = None


def describe(exc: BaseException) -> str:
    """``"<class>: <first line of the message>"``, at most 300 characters."""
    text = " ".join(str(exc).split("\n", 1)[0].split())
    return f"{type(exc).__name__}: {text}"[:300] if text else type(exc).__name__


class Health:
    """The degraded flag and the rate-limited reporting of one cache (thread-safe).

    Args:
        warn_interval: seconds between two "still degraded" warnings (and between two
            journaling warnings, and two reports of the same repeated error); settable.
        on_event: called with each :class:`CacheEvent`; what it raises is logged, not raised.
        clock: monotonic seconds (inject a fake clock in tests).

    Raises:
        ConfigurationError: ``warn_interval`` is not a finite number of seconds >= 0.
    """

    def __init__(self, *, warn_interval: float, on_event: Callable[[CacheEvent], None] | None,
                 clock: Callable[[], float]) -> None:
        self.warn_interval = warn_interval  # validated by the property
        self.on_event = on_event
        #: more callbacks of events, and of each answer's origin (metrics: add_listener)
        self.event_listeners: list[Callable[[CacheEvent], None]] = []
        self.answer_listeners: list[Callable[[str], None]] = []
        self.failure_listeners: list[Callable[[str], None]] = []
        self.clock = clock
        self._lock = threading.Lock()
        self._degraded = False
        self._since = self._last_warn = 0.0
        self._suppressed = 0
        self._limits: dict[str, float] = {}
        self._counts: dict[str, int] = {}  # reports held back per key since the last one
        self._replayed = 0  # journaled writes replayed during this outage

    @property
    def warn_interval(self) -> float:
        """Seconds between two warnings of one kind; setting it takes effect at once."""
        return self._warn_interval

    @warn_interval.setter
    def warn_interval(self, seconds: float) -> None:
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
                or not math.isfinite(seconds) or seconds < 0:
            raise ConfigurationError("warn_interval must be a finite number of seconds >= 0",
                                     hint="for example 60 (the default); 0 reports every call")
        self._warn_interval = float(seconds)

    @property
    def degraded(self) -> bool:
        """True from a source failure until the source answers again."""
        return self._degraded

    def emit(self, kind: str, level: int, message: str, name: str | None = None,
             cause: BaseException | None = None, age: float | None = None) -> None:
        """Log an event on ``vault.cache`` and pass it to the callback."""
        event = CacheEvent(kind, level, message, name,
                           None if cause is None else describe(cause), age)
        logger.log(level, message, extra={"credseal_event": event})
        if self.on_event is not None:
            try:
                self.on_event(event)
            except Exception:
                logger.exception("the on_event callback raised (ignored)")
        for listener in self.event_listeners:
            try:
                listener(event)
            except Exception:
                logger.exception("an event listener raised (ignored)")

    def answered(self, origin: str) -> None:
        """Tell the answer listeners where an answer came from ("source", "cache", ...)."""
        self._tell(self.answer_listeners, origin)

    def failed(self, tier: str) -> None:
        """Tell the failure listeners that an update of ``tier`` ("local", "shared") failed."""
        self._tell(self.failure_listeners, tier)

    @staticmethod
    def _tell(listeners: list[Callable[[str], None]], what: str) -> None:
        for callback in listeners:
            try:
                callback(what)
            except Exception:
                logger.exception("a cache listener raised (ignored)")

    def limited(self, key: str) -> bool:
        """True at most once per ``warn_interval`` for each ``key``."""
        return self.due(key) is not None

    def due(self, key: str) -> int | None:
        """Whether a report of ``key`` is due (at most once per ``warn_interval``): None if
        not (it is counted), else how many were held back since the last report."""
        with self._lock:
            now = self.clock()
            last = self._limits.get(key)
            if last is not None and now - last < self._warn_interval:
                self._counts[key] = self._counts.get(key, 0) + 1
                return None
            self._limits[key] = now
            return self._counts.pop(key, 0)

    def degraded_call(self, cause: BaseException, what: str, name: str,
                      age: float | None = None) -> None:
        """Record a call answered without the source (``what`` says how); warn if due."""
        with self._lock:
            now = self.clock()
            kind, since, suppressed = None, now - self._since, self._suppressed
            if not self._degraded:
                self._degraded, self._since, self._last_warn = True, now, now
                self._suppressed, kind = 0, DEGRADED
            elif now - self._last_warn >= self._warn_interval:
                self._last_warn, self._suppressed, kind = now, 0, STILL_DEGRADED
            else:
                self._suppressed += 1
        if kind == DEGRADED:
            self.emit(kind, logging.WARNING, f"credential source unavailable ({describe(cause)})"
                      f"; {what}; degraded until it answers again", name, cause, age)
        elif kind == STILL_DEGRADED:
            self.emit(kind, logging.WARNING, f"credential source still unavailable after "
                      f"{since:.0f} s ({describe(cause)}); {what}; {suppressed} similar calls "
                      "since the last warning", name, cause, age)

    def recovered(self) -> None:
        """The source answered: leave degraded mode (reported once, with the number of
        journaled writes replayed meanwhile)."""
        with self._lock:
            if not self._degraded:
                return
            self._degraded, since, replayed = False, self.clock() - self._since, self._replayed
            self._replayed = 0
            # The next outage's first journaled write warns at once.
            self._limits.pop(JOURNALED, None)
            self._counts.pop(JOURNALED, None)
        done = f"; {replayed} journaled write(s) replayed" if replayed else ""
        self.emit(RECOVERED, logging.WARNING,
                  f"credential source available again after {since:.0f} s{done}; degraded mode "
                  "ends")

    def replayed(self, count: int, oldest: str) -> None:
        """``count`` journaled writes reached the source. During an outage this process saw,
        the recovery event that follows counts them; otherwise (records of an earlier process,
        e.g. before a restart) the recovery is reported now, as this process saw no outage."""
        with self._lock:
            if self._degraded:
                self._replayed += count
                return
        self.emit(RECOVERED, logging.WARNING, f"credential source reachable again: {count} "
                  f"journaled write(s) replayed, left by an earlier process (the oldest "
                  f"written at {oldest})")
