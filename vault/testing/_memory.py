"""In-memory sources: a dict behind the ``Source`` protocols, with simulated outages."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

from vault import codec
from vault.sources import _base
from vault.sources._base import check_storable, value_digest

__all__ = ["AsyncMemorySource", "MemorySource"]


class _MemoryStore:
    """The shared state of the memory sources: values kept as codec bytes (so callers cannot
    mutate what was stored), versions, an optional simulated failure, and a call log.

    A name's last version (of a write or a delete) is kept after the delete, so the version of
    the name re-created stays greater than its tombstone whatever the clock does.
    """

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}
        self._versions: dict[str, int] = {}
        self._failure: BaseException | None = None
        #: every call received, as ``(operation, name)``, failed ones included
        self.calls: list[tuple[str, str]] = []
        for name, value in (data or {}).items():
            check_storable(value)
            self._data[name] = codec.dumps(value)
            self._versions[name] = _base.now_us()

    def fail_with(self, exc: BaseException | None = None) -> None:
        """Make every call raise ``exc`` (default: ``ConnectionRefusedError``, an outage for
        ``vault.sources.is_outage``) until :meth:`recover`."""
        self._failure = exc if exc is not None else ConnectionRefusedError(
            "memory source: simulated outage")

    def recover(self) -> None:
        """End the simulated outage."""
        self._failure = None

    @property
    def failing(self) -> bool:
        """Whether calls currently fail."""
        return self._failure is not None

    def snapshot(self) -> dict[str, Any]:
        """A copy of the stored values (not logged as a call, never fails)."""
        with self._lock:
            return {name: codec.loads(data) for name, data in self._data.items()}

    def _check(self, op: str, name: str) -> None:
        with self._lock:
            self.calls.append((op, name))
        failure = self._failure
        if failure is not None:
            raise failure.with_traceback(None)

    def _load(self, name: str) -> Any:
        return self._load_versioned(name)[0]

    def _load_versioned(self, name: str) -> tuple[Any, int]:
        self._check("load", name)
        with self._lock:
            data = self._data.get(name)
            if data is None:  # absent as of now, and never before its tombstone
                return None, max(_base.now_us(), self._versions.get(name, 0))
            version = self._versions[name]
        return codec.loads(data), version

    def _save(self, name: str, value: Any) -> int:
        self._check("save", name)
        check_storable(value)
        data = codec.dumps(value)
        with self._lock:
            self._data[name] = data
            return self._bump(name)

    def _delete(self, name: str) -> int:
        self._check("delete", name)
        with self._lock:
            if self._data.pop(name, None) is not None:
                return self._bump(name)
            version = self._versions[name] = max(_base.now_us(), self._versions.get(name, 0))
            return version

    def _bump(self, name: str) -> int:
        """Give ``name`` its next version (under the lock) and return it."""
        version = self._versions[name] = _base.next_version(self._versions.get(name))
        return version

    def _save_if(self, name: str, value: Any, base_digest: str) -> bool:
        self._check("save_if", name)
        data = None
        if value is not None:
            check_storable(value)
            data = codec.dumps(value)
        with self._lock:
            stored = self._data.get(name)
            current = value_digest(None if stored is None else codec.loads(stored))
            if current != base_digest:
                return False
            if data is None:
                if self._data.pop(name, None) is not None:
                    self._bump(name)
            else:
                self._data[name] = data
                self._bump(name)
            return True


class MemorySource(_MemoryStore):
    """A thread-safe in-memory :class:`~vault.sources.VersionedSource` for tests.

    The versioned methods are logged as ``load``, ``save`` and ``delete``.

    Args:
        data: initial values by name.
    """

    def __repr__(self) -> str:
        return f"MemorySource({len(self._data)} names, failing={self.failing})"

    def load(self, name: str) -> Any:
        """The stored value, or None; raises the simulated failure if any."""
        return self._load(name)

    def save(self, name: str, value: Any) -> None:
        """Store ``value``; raises the simulated failure if any."""
        self._save(name, value)

    def delete(self, name: str) -> None:
        """Remove ``name``; raises the simulated failure if any."""
        self._delete(name)

    def save_if(self, name: str, value: Any, base_digest: str) -> bool:
        """Compare-and-set (``vault.sources.ConditionalSource``); atomic under the lock."""
        return self._save_if(name, value, base_digest)

    def load_versioned(self, name: str) -> tuple[Any, int]:
        """``(value, version)``, or ``(None, now)``; raises the simulated failure if any."""
        return self._load_versioned(name)

    def save_versioned(self, name: str, value: Any) -> int:
        """Store ``value``, return its version; raises the simulated failure if any."""
        return self._save(name, value)

    def delete_versioned(self, name: str) -> int:
        """Remove ``name``, return the tombstone version; raises the simulated failure if
        any."""
        return self._delete(name)


class AsyncMemorySource(_MemoryStore):
    """The :class:`~vault.sources.AsyncVersionedSource` twin of :class:`MemorySource`."""

    def __repr__(self) -> str:
        return f"AsyncMemorySource({len(self._data)} names, failing={self.failing})"

    async def load(self, name: str) -> Any:
        """The stored value, or None; raises the simulated failure if any."""
        return self._load(name)

    async def save(self, name: str, value: Any) -> None:
        """Store ``value``; raises the simulated failure if any."""
        self._save(name, value)

    async def delete(self, name: str) -> None:
        """Remove ``name``; raises the simulated failure if any."""
        self._delete(name)

    async def save_if(self, name: str, value: Any, base_digest: str) -> bool:
        """Compare-and-set, as ``MemorySource.save_if``."""
        return self._save_if(name, value, base_digest)

    async def load_versioned(self, name: str) -> tuple[Any, int]:
        """As ``MemorySource.load_versioned``."""
        return self._load_versioned(name)

    async def save_versioned(self, name: str, value: Any) -> int:
        """As ``MemorySource.save_versioned``."""
        return self._save(name, value)

    async def delete_versioned(self, name: str) -> int:
        """As ``MemorySource.delete_versioned``."""
        return self._delete(name)
