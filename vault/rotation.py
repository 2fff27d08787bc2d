"""Key rotation (DESIGN section 5): add, promote, rewrap, retire; resumable and audited.

One rotation per vault at a time: ``rotation.lock`` in the vault directory is ``flock``-ed for
the whole run and records the holder (pid, host, since) and the phase. The kernel releases a
``flock`` when its process dies, so a lock left by a killed rotation is simply taken over; the
recorded phase then tells the next run which new key to finish with, so a rerun after a crash
continues instead of creating another key.

Rewrapping goes entry by entry under each entry's lock (``Vault.rotate``), then journal records,
so a crash at any moment leaves everything readable under a key the ring still holds.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from vault import files
from vault.audit import AuditLog
from vault.errors import KeySourceError, RotationInProgressError, VaultError
from vault.keys import RETIRED, Key, KeyRing
from vault.keysources import KeySource, ManagedKeySource
from vault.rewrap import RotationReport
from vault.store import Vault

__all__ = ["KeyInUseError", "RotationLock", "RotationResult", "check_unused", "retire", "rotate"]

LOCK_FILE = "rotation.lock"
Progress = Callable[[str, int, int], None]


class KeyInUseError(VaultError):
    """``retire`` refused: entries or journal records are still sealed under the key."""


class JournalLike(Protocol):
    """What rotation needs of the fallback cache's journal (``vault.journal.Journal``)."""

    def rewrap(self, ring: KeyRing) -> RotationReport: ...

    def key_ids(self) -> dict[str, int]: ...


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did.

    ``outcome``: ``"rotated"`` (something rewrapped, nothing failed), ``"current"`` (nothing
    needed rewrapping), ``"not-due"`` (the primary key is younger than ``if_older_than``),
    ``"published"`` (env source: a new ring for the operator to deploy; nothing rewrapped yet),
    ``"failed"`` (some entry or record could not be rewrapped; see the reports).
    """

    outcome: str
    old_key_id: str
    new_key_id: str
    entries: RotationReport = field(default_factory=RotationReport)
    journal: RotationReport = field(default_factory=RotationReport)
    resumed: dict[str, Any] | None = None
    new_ring: KeyRing | None = None  # only for "published": the ring to deploy
    seconds: float = 0.0


class RotationLock:
    """The vault's rotation lock, holding who rotates and how far they got."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = os.path.join(os.fspath(directory), LOCK_FILE)
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
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "since": datetime.now(UTC).isoformat(timespec="seconds"), **state}
        fd = self._lock.fileno()
        data = json.dumps(holder).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)
        os.fsync(fd)

    def release(self, *, finished: bool) -> None:
        """Release; with ``finished`` the recorded state is cleared (nothing to resume)."""
        if finished:
            os.ftruncate(self._lock.fileno(), 0)
            os.fsync(self._lock.fileno())
        self._lock.release()


def key_age(source: KeySource, audit: AuditLog, key_id: str,
            now: datetime) -> timedelta | None:
    """How old key ``key_id`` is: from the source's records, else from the audit log."""
    if isinstance(source, ManagedKeySource):
        for state in source.states():
            if state.id == key_id and state.created_at is not None:
                return now - state.created_at
    for record in audit.records():  # env source: when init or rotate first named the key
        if record.get("new_key_id") == key_id and "time" in record:
            return now - datetime.fromisoformat(record["time"])
    return None


def _pending_publication(audit: AuditLog, ring: KeyRing) -> str | None:
    """The id of a key published for the env source but not yet deployed as primary."""
    pending = None
    for record in audit.records():
        if record.get("action") == "rotate" and record.get("outcome") == "published":
            pending = record.get("new_key_id")
        elif record.get("new_key_id") == ring.primary.id:
            pending = None
    return pending if pending != ring.primary.id else None


def rotate(vault: Vault, source: KeySource, *, journal: JournalLike | None = None,
           rewrap_only: bool = False, if_older_than: timedelta | None = None,
           to_key_id: str | None = None, progress: Progress | None = None) -> RotationResult:
    """Rotate ``vault`` to a new primary key held by ``source`` and rewrap everything.

    With a keyring or keyfile source: add a new key (decrypt-only), promote it, rewrap entries
    and journal records. With the env source the new ring is returned for deployment
    (outcome ``"published"``) and nothing is rewrapped; after deploying, run again with
    ``rewrap_only=True``. ``rewrap_only`` rewraps to the source's current primary.
    ``to_key_id`` promotes a key the source already holds (decrypt-only) instead of creating
    one: the way back to the previous key after a rotation, until that key is retired.

    Raises:
        RotationInProgressError: another rotation holds the lock.
        KeySourceError: the source cannot be read or changed.
    """
    started = time.monotonic()
    audit = AuditLog(vault.directory)
    lock = RotationLock(vault.directory)
    resumed = lock.acquire()
    finished = False
    try:
        ring = source.load()
        old_id = ring.primary.id
        new_id = old_id
        resume_id = _resumable(source, resumed) if not rewrap_only else None
        if to_key_id is not None:
            new_id = _promote_existing(source, ring, to_key_id, lock)
        elif resume_id is not None:
            assert isinstance(source, ManagedKeySource)  # _resumable checked it
            new_id = resume_id  # a killed run stored this key: finish with it, make no other
            if ring.primary.id != new_id:
                lock.record(phase="promoting", new_key_id=new_id)
                source.promote(new_id)
        elif not rewrap_only:
            if if_older_than is not None:
                age = key_age(source, audit, old_id, datetime.now(UTC))
                waiting = _pending_publication(audit, ring)
                if (age is not None and age < if_older_than) or waiting is not None:
                    audit.append("rotate", outcome="not-due", old_key_id=old_id,
                                 new_key_id=waiting or old_id)
                    finished = True
                    return RotationResult("not-due", old_id, waiting or old_id,
                                          seconds=time.monotonic() - started)
            new_key = Key.generate()
            new_id = new_key.id
            if not isinstance(source, ManagedKeySource) or source.kind == "env":
                audit.append("rotate", outcome="published", old_key_id=old_id, new_key_id=new_id)
                finished = True
                return RotationResult("published", old_id, new_id,
                                      new_ring=ring.with_primary(new_key),
                                      seconds=time.monotonic() - started)
            lock.record(phase="adding", new_key_id=new_id)
            source.add(new_key)
            lock.record(phase="promoting", new_key_id=new_id)
            source.promote(new_id)
        ring = source.load()
        if ring.primary.id != new_id:
            raise KeySourceError(f"key {new_id} is not the primary key after promotion",
                                 hint="check the key source with `credvault status`")
        lock.record(phase="rewrapping", new_key_id=new_id)
        entries = _rewrap_entries(vault, ring, progress)
        records = journal.rewrap(ring) if journal is not None else RotationReport()
        failed = entries.failed + records.failed
        moved = entries.rotated + records.rotated
        outcome = "failed" if failed else "rotated" if moved or new_id != old_id else "current"
        audit.append("rotate", outcome=outcome, old_key_id=old_id, new_key_id=new_id,
                     rewrapped=entries.rotated, current=entries.current, failed=entries.failed,
                     skipped=entries.skipped, by_key=entries.by_key,
                     journal_rewrapped=records.rotated, journal_failed=records.failed,
                     resumed_from_pid=resumed.get("pid") if resumed else None)
        finished = not failed
        return RotationResult(outcome, old_id, new_id, entries, records, resumed,
                              seconds=time.monotonic() - started)
    finally:
        lock.release(finished=finished)


def _promote_existing(source: KeySource, ring: KeyRing, key_id: str, lock: RotationLock) -> str:
    """Promote ``key_id``, a key the source holds, for a rotation back to it."""
    if not isinstance(source, ManagedKeySource) or source.kind == "env":
        raise KeySourceError("the environment key source cannot promote a key itself",
                             hint="deploy VAULT_KEYS with that key first, then run "
                                  "`credvault rotate --rewrap-only`")
    if key_id not in ring:
        raise KeySourceError(f"key {key_id} is not held by the {source.kind} key source "
                             "(unknown or retired)", hint="`credvault status` lists the keys")
    if ring.primary.id != key_id:
        lock.record(phase="promoting", new_key_id=key_id)
        source.promote(key_id)
    return key_id


def _resumable(source: KeySource, resumed: dict[str, Any] | None) -> str | None:
    """The new key id a killed rotation left, if the source still holds that key."""
    pending = resumed.get("new_key_id") if resumed else None
    if not pending or not isinstance(source, ManagedKeySource) or source.kind == "env":
        return None
    states = {s.id: s.state for s in source.states()}
    return str(pending) if states.get(pending) not in (None, RETIRED) else None


def _rewrap_entries(vault: Vault, ring: KeyRing, progress: Progress | None) -> RotationReport:
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress("entries", done, total)
    return vault.rotate(ring=ring, progress=report)


def check_unused(vault: Vault, key_id: str, *, journal: JournalLike | None = None) -> int:
    """Raise unless no entry and no journal record is sealed under ``key_id``.

    Returns the number of entries checked (from unverified headers: a header that lies about
    its key id fails to open anyway).

    Raises:
        KeyInUseError: says how many entries (naming a few) and journal records, and where.
    """
    scan = vault.scan()
    using = [info.name for info in scan.entries if info.key_id == key_id]
    records = (journal.key_ids() if journal is not None else {}).get(key_id, 0)
    if using or records:
        where = ", ".join(repr(n) for n in using[:5]) + (" ..." if len(using) > 5 else "")
        raise KeyInUseError(
            f"key {key_id} still seals {len(using)} entries"
            + (f" ({where})" if using else "") + f" and {records} journal records in "
            f"{vault.directory}",
            hint="run `credvault rotate --rewrap-only` first, then retire the key")
    return len(scan.entries)


def retire(vault: Vault, source: ManagedKeySource, key_id: str, *,
           journal: JournalLike | None = None) -> None:
    """Retire ``key_id`` in ``source`` once nothing is sealed under it; audited.

    Raises:
        KeyInUseError: entries or journal records still use the key (says how many, where).
        KeySourceError: the key is unknown, active, or the source cannot be changed.
    """
    checked = check_unused(vault, key_id, journal=journal)
    source.retire(key_id)
    AuditLog(vault.directory).append("retire", key_id=key_id, outcome="retired",
                                     entries_checked=checked)
