"""``MemoryTier``: a shared tier in a dict, with the Redis tier's semantics and outages."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence

from vault import _clock
from vault.cache._shared import RECORD_MAGIC, RECORD_PREFIX_SIZE
from vault.errors import SharedTierError

__all__ = ["MemoryTier"]


class MemoryTier:
    """A :class:`~vault.cache.SharedTier` in memory: one instance stands for one Redis that
    several caches (hosts) share. Records expire at their ``expires_at_ms`` (by the vault's
    clock); ``put`` compares clear versions exactly as ``RedisTier``'s Lua script does.

    ``fail_with``/``recover`` simulate an outage (every call raises ``SharedTierError``);
    ``calls`` logs every call as ``(operation, stem)``.
    """

    def __init__(self, clock: Callable[[], int] | None = None) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, tuple[bytes, int]] = {}
        self._reports: dict[str, tuple[bytes, int]] = {}
        self._failure: str | None = None
        self._clock = clock or (lambda: _clock.now_ms())  # follows a patched vault clock
        #: every call received, as ``(operation, stem)``
        self.calls: list[tuple[str, str]] = []

    def __repr__(self) -> str:
        return f"MemoryTier({len(self._data)} records)"

    def fail_with(self, message: str = "memory tier: simulated outage") -> None:
        """Make every call raise ``SharedTierError(message)`` until :meth:`recover`."""
        self._failure = message

    def recover(self) -> None:
        """End the simulated outage."""
        self._failure = None

    def clear(self) -> None:
        """Forget every record and report (a Redis that restarted empty)."""
        with self._lock:
            self._data.clear()
            self._reports.clear()

    def raw(self) -> dict[str, bytes]:
        """A copy of the live records by stem (not logged, never fails)."""
        with self._lock:
            now = self._clock()
            return {stem: rec for stem, (rec, exp) in self._data.items() if exp > now}

    def plant(self, stem: str, record: bytes, expires_at_ms: int) -> None:
        """Store ``record`` without any check (an attacker with write access to Redis)."""
        with self._lock:
            self._data[stem] = (record, expires_at_ms)

    def _enter(self, op: str, stem: str) -> None:
        with self._lock:
            self.calls.append((op, stem))
        if self._failure is not None:
            raise SharedTierError(self._failure)

    def _live(self, stem: str) -> bytes | None:
        held = self._data.get(stem)
        if held is None:
            return None
        if held[1] <= self._clock():
            del self._data[stem]
            return None
        return held[0]

    def get(self, stem: str) -> bytes | None:
        """The record under ``stem``, or None."""
        self._enter("get", stem)
        with self._lock:
            return self._live(stem)

    def mget(self, stems: Sequence[str]) -> list[bytes | None]:
        """The records under ``stems``, in order."""
        self._enter("mget", ",".join(stems))
        with self._lock:
            return [self._live(stem) for stem in stems]

    def put(self, stem: str, record: bytes, expires_at_ms: int) -> bool:
        """Compare-and-set on the clear version (as the Redis tier's script)."""
        self._enter("put", stem)
        version = record[len(RECORD_MAGIC):RECORD_PREFIX_SIZE]
        with self._lock:
            current = self._live(stem)
            if current is not None and current[:len(RECORD_MAGIC)] == RECORD_MAGIC \
                    and len(current) >= RECORD_PREFIX_SIZE \
                    and current[len(RECORD_MAGIC):RECORD_PREFIX_SIZE] > version:
                return False
            if expires_at_ms > self._clock():
                self._data[stem] = (record, expires_at_ms)
            else:
                self._data.pop(stem, None)  # PXAT in the past deletes, as Redis does
            return True

    def delete_if(self, stem: str, record: bytes) -> bool:
        """Remove the record under ``stem`` if it is still exactly ``record``."""
        self._enter("delete_if", stem)
        with self._lock:
            if self._live(stem) == record:
                del self._data[stem]
                return True
            return False

    def replace_if(self, stem: str, old: bytes, new: bytes, expires_at_ms: int) -> bool:
        """Replace the record under ``stem`` by ``new`` if it is still exactly ``old``."""
        self._enter("replace_if", stem)
        with self._lock:
            if self._live(stem) != old:
                return False
            if expires_at_ms > self._clock():
                self._data[stem] = (new, expires_at_ms)
            else:
                self._data.pop(stem, None)
            return True

    def put_report(self, host_id: str, report: bytes, expires_at_ms: int) -> None:
        """Store a host's sealed usage report."""
        self._enter("put_report", host_id)
        with self._lock:
            self._reports[host_id] = (report, expires_at_ms)

    def reports(self) -> dict[str, bytes]:
        """Every live report by host id."""
        self._enter("reports", "")
        with self._lock:
            now = self._clock()
            return {host: rep for host, (rep, exp) in self._reports.items() if exp > now}

    def delete_report(self, host_id: str) -> bool:
        """Remove a host's report."""
        self._enter("delete_report", host_id)
        with self._lock:
            return self._reports.pop(host_id, None) is not None

    def plant_report(self, host_id: str, report: bytes) -> None:
        """Store a report without any check (an attacker with write access to Redis)."""
        with self._lock:
            self._reports[host_id] = (report, 2**62)

    def stems(self) -> Iterator[str]:
        """Every stem with a live record."""
        self._enter("stems", "")
        with self._lock:
            stems = [stem for stem in list(self._data) if self._live(stem) is not None]
        yield from stems
