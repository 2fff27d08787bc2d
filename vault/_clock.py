"""The wall clock in milliseconds since the epoch, in one place so that tests can move it.

Callers use ``_clock.now_ms()`` through the module (never ``from vault._clock import
now_ms``), so patching ``vault._clock.now_ms`` moves time for the whole library.
"""

from __future__ import annotations

import time


def now_ms() -> int:
    """Milliseconds since the Unix epoch (UTC)."""
    return time.time_ns() // 1_000_000
