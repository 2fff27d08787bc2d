"""``CircuitBreaker``: stop waiting for a source that is down, and probe it now and then.

States:

- **closed**: every call goes to the source. ``failure_threshold`` consecutive outage
  failures open the breaker; a success resets the count.
- **open**: no call goes to the source; the cache answers from the vault at once. After
  ``reset_after`` seconds the next call becomes the probe.
- **half-open**: exactly one call (the probe) goes to the source while the others keep being
  served from the vault. Success closes the breaker; failure opens it for another
  ``reset_after`` seconds. A probe that never reports back (its thread died) is replaced after
  ``reset_after`` seconds.

Only outages count as failures (the cache's classifier decides); an answer from the source,
even an error such as a missing table, counts as a success: the source is reachable.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from vault.errors import ConfigurationError

__all__ = ["CLOSED", "HALF_OPEN", "OPEN", "CircuitBreaker"]

CLOSED = "closed"
OPEN = "open"
HALF_OPEN = "half-open"


class CircuitBreaker:
    """A thread-safe circuit breaker (see the module docstring).

    Args:
        failure_threshold: consecutive failures that open the breaker (>= 1). Default 2: one
            error may be a blip, two in a row are an outage.
        reset_after: seconds the breaker stays open before one probe is let through. It is
            also the longest a recovered source goes unnoticed. Default 10.
        clock: monotonic seconds; inject a fake clock in tests.

    Raises:
        ConfigurationError: a threshold below 1 or a non-positive ``reset_after``.
    """

    def __init__(self, failure_threshold: int = 2, reset_after: float = 10.0, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if isinstance(failure_threshold, bool) or not isinstance(failure_threshold, int) \
                or failure_threshold < 1:
            raise ConfigurationError("failure_threshold must be an int >= 1")
        if isinstance(reset_after, bool) or not isinstance(reset_after, int | float) \
                or not reset_after > 0:
            raise ConfigurationError("reset_after must be a positive number of seconds")
        self.failure_threshold = failure_threshold
        self.reset_after = float(reset_after)
        self.clock = clock
        self._lock = threading.Lock()
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_at = 0.0

    def __repr__(self) -> str:
        return (f"CircuitBreaker({self._state}, failures={self._failures}/"
                f"{self.failure_threshold}, reset_after={self.reset_after:g})")

    @property
    def state(self) -> str:
        """``"closed"``, ``"open"`` or ``"half-open"``."""
        return self._state

    @property
    def failures(self) -> int:
        """Consecutive failures counted since the last success."""
        return self._failures

    def seconds_until_probe(self) -> float:
        """How long until an open breaker lets a probe through (0 when not open)."""
        with self._lock:
            if self._state != OPEN:
                return 0.0
            return max(0.0, self._opened_at + self.reset_after - self.clock())

    def allow(self) -> bool:
        """Whether this call may go to the source. In half-open state, True for one caller
        only (the probe), who must then call :meth:`record_success` or
        :meth:`record_failure`."""
        with self._lock:
            if self._state == CLOSED:
                return True
            now = self.clock()
            if self._state == OPEN:
                if now - self._opened_at < self.reset_after:
                    return False
                self._state = HALF_OPEN
            elif now - self._probe_at < self.reset_after:
                return False  # a probe is in flight
            self._probe_at = now
            return True

    def record_success(self) -> None:
        """The source answered: close the breaker."""
        with self._lock:
            self._state = CLOSED
            self._failures = 0

    def record_failure(self) -> None:
        """The source was unavailable: count it; open the breaker at the threshold, or at
        once after a failed probe."""
        with self._lock:
            self._failures += 1
            if self._state == HALF_OPEN or self._failures >= self.failure_threshold:
                self._state = OPEN
                self._opened_at = self.clock()

    def reset(self) -> None:
        """Close the breaker and forget the failures (e.g. after fixing the configuration)."""
        self.record_success()
