"""The vault's state files beside its entries: for now the rotation lock and its resume state.

``rotation.lock`` is ``flock``-ed for the whole of a rotation and records the holder (pid,
host, since) and the phase, so that a rerun after a crash resumes instead of starting over.
Its content is advisory JSON: ``docs/security.md`` says what a writer without the key can do
with it.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from vault import _files as files
from vault._store.context import Context
from vault.errors import RotationInProgressError, VaultError

__all__ = ["LOCK_FILE", "RotationLock"]

LOCK_FILE = "rotation.lock"


class RotationLock:
    """The vault's rotation lock, holding who rotates and how far they got."""

    def __init__(self, directory: str | os.PathLike[str], context: Context) -> None:
        self.path = os.path.join(os.fspath(directory), LOCK_FILE)
        self.context = context
        self._lock = files.FileLock(self.path, timeout=0.0, what="the rotation lock")

    def acquire(self) -> dict[str, Any] | None:
        """Take the lock; return the state a dead previous holder left behind, if any.

        Raises:
            RotationInProgressError: a live process holds it; the message names it.
        """
        if not self._lock.acquire(blocking=False):
            holder = self._read()
            raise RotationInProgressError(
                f"another rotation is running: pid {holder.get('pid', '?')} on host "
                f"{holder.get('host', '?')} since {holder.get('since', '?')}",
                hint="wait for it to finish; a rotation that was killed releases the lock "
                     "and the next run resumes it")
        left = self._read()
        return left if left.get("pid") is not None else None

    def _read(self) -> dict[str, Any]:
        try:
            data = files.read_private(self.path, 64 * 1024)
            state = json.loads(data) if data else {}
        except (FileNotFoundError, ValueError, VaultError):
            return {}
        return state if isinstance(state, dict) else {}

    def record(self, **state: Any) -> None:
        """Durably record the holder and ``state`` (phase, new key id) in the lock file."""
        holder = {"pid": os.getpid(), "host": self.context.host,
                  "since": datetime.now(UTC).isoformat(timespec="seconds"), **state}
        self._lock.write_state(json.dumps(holder).encode())

    def release(self, *, finished: bool) -> None:
        """Release; with ``finished`` the recorded state is cleared (nothing to resume)."""
        if finished:
            self._lock.write_state(b"")
        self._lock.release()
