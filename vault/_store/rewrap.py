"""Rewrapping: re-seal an envelope under the primary key, keeping its name and timestamps.

A **rewrap target** (:class:`RewrapTarget`: the entries, the journal records; later database
rows and a shared tier) lists its items, prepares the rewrap of one, and reports the key ids it
still holds, so that rotation rewraps every target and ``retire`` asks every target before a
key is dropped. :func:`rewrap` drives any target.

The one rule every file target shares,
taken from Tink's keyset rotation: under the lock that writers take, re-read the file (so a
newer write is never overwritten with older content), open it, seal the plaintext again, open
what was sealed and compare, and only then replace the file atomically and durably. A crash at
any point leaves the old file or the new one, each readable under a key the ring holds.

:func:`rewrap_all` works in batches: it prepares a batch in the calling thread (lock, read,
open, seal, open again: all the cryptography, back to back), then writes the batch with a pool
of threads (the fsyncs overlap), releasing each lock after its write. Keeping the two kinds of
work apart is what makes it fast: interleaved, every fsync wait leaves the CPU cold for the
cryptography that follows (``bench/README.md`` has the measurements).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Protocol, TypeAlias

from vault import _files as files
from vault._crypto import format as fmt
from vault._crypto.keys import KeyRing
from vault.errors import RewrapError, UnknownKeyError, VaultError

__all__ = ["PendingWrite", "RewrapReport", "RewrapTarget", "prepare_rewrap", "rewrap",
           "rewrap_all", "rewrap_file"]

Outcome: TypeAlias = tuple[str, "str | None"]
BATCH_BYTES = 16 * 1024 * 1024  # envelopes of one batch held in memory at most (about)


@dataclass(frozen=True)
class RewrapReport:
    """The outcome of a rewrap (:meth:`Vault.rewrap`, or of any target).

    ``rewrapped``: resealed under the primary; ``current``: already under it; ``failed``: could
    not be opened or rewritten (see ``failures``); ``skipped``: vanished during the rewrap.
    ``by_key`` counts rewrapped items per old key id.
    """

    rewrapped: int = 0
    current: int = 0
    failed: int = 0
    skipped: int = 0
    by_key: dict[str, int] = field(default_factory=dict)
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def rotated(self) -> int:
        """Deprecated: ``rewrapped`` (the 0.x name, kept with ``RotationReport``)."""
        warnings.warn("RewrapReport.rotated is deprecated: use .rewrapped", DeprecationWarning,
                      stacklevel=2)
        return self.rewrapped


class RewrapTarget(Protocol):
    """Something whose envelopes rotation rewraps; it never rewraps what it cannot open.

    ``name`` labels the target in reports ("entries", "journal", ...).
    """

    name: str

    def items(self) -> list[str]:
        """The items to rewrap, in the order their locks are taken."""
        ...

    def prepare(self, item: str, ring: KeyRing,
                wait: bool = True) -> tuple[str, str | None] | PendingWrite | None:
        """:func:`prepare_rewrap` for one item (the same contract and outcomes)."""
        ...

    def key_ids(self) -> Counter[str]:
        """How many items each key id claims to seal, from unverified headers (cheap)."""
        ...

    def sealed_under(self, key_id: str) -> list[str]:
        """The items that authenticate under ``key_id`` (a key must not be retired while any
        does). An item whose header claims the key but that fails to open under it was not
        sealed by it: it is quarantined, reported through the usual events, and not listed;
        one that cannot be checked (the ring lacks the key) is listed."""
        ...


class PendingWrite:
    """A rewrapped envelope, checked and not yet written; its file's lock is held.

    Exactly one of :meth:`commit` and :meth:`abandon` must follow; both release the lock.
    The envelope is ciphertext; nothing here is secret, and ``repr`` shows only the path.
    """

    __slots__ = ("_data", "_lock", "_path", "_stem", "old_id")

    def __init__(self, path: str, data: bytes, stem: str, lock: files.FileLock,
                 old_id: str) -> None:
        self._path, self._data, self._stem, self._lock = path, data, stem, lock
        self.old_id = old_id

    def __repr__(self) -> str:
        return f"PendingWrite({self._path!r})"

    def commit(self) -> Outcome:
        """Replace the file atomically and durably, then release the lock."""
        try:
            files.write_atomic(self._path, self._data, self._stem)
        finally:
            self._lock.release()
        return "rewrapped", self.old_id

    @property
    def size(self) -> int:
        """The envelope's size in bytes."""
        return len(self._data)

    def abandon(self) -> None:
        """Release the lock and leave the file as it is."""
        self._lock.release()


def prepare_rewrap(path: str, stem: str, lock: files.FileLock, ring: KeyRing, *, kind: int,
                   name: str, wait: bool = True) -> Outcome | PendingWrite | None:
    """Everything of a rewrap but the write: returns a :class:`PendingWrite` holding ``lock``.

    Under ``lock`` (the one writers take): re-read the file, open it, seal the plaintext again
    under ``ring.primary`` with the same name and timestamps, open what was sealed and compare.
    A file already under the primary gives ("current", None), a missing one ("skipped", None),
    and the lock is released. With ``wait=False``, a lock held by someone else gives None at
    once (nothing was done).

    Raises:
        VaultError: it does not open (UnknownKeyError, DecryptionError, FormatError, ...); the
        lock is released.
    """
    if not lock.acquire(blocking=wait):
        return None
    try:
        try:
            data = files.read_private(path, fmt.MAX_ENVELOPE_SIZE)
        except FileNotFoundError:
            lock.release()
            return "skipped", None
        header, header_bytes, payload = fmt.parse(data)
        old_id = header.key_id.hex()
        if old_id == ring.primary.id:
            lock.release()
            return "current", None
        if old_id not in ring:
            raise UnknownKeyError(old_id)
        plaintext = ring.open_parsed(header, header_bytes, payload, kind=kind, name=name)
        sealed = ring.seal(kind=kind, name=name, plaintext=plaintext,
                           created_at=header.created_at, expires_at=header.expires_at)
        # Open what was written before it replaces anything (Tink's rewrap rule).
        if ring.open(sealed, kind=kind, name=name)[1] != plaintext:
            raise RewrapError(f"rewrapped {name!r} did not open to the same plaintext; "
                              "nothing was replaced")
    except BaseException:
        lock.release()
        raise
    return PendingWrite(path, sealed, stem, lock, old_id)


def rewrap_file(path: str, stem: str, lock: files.FileLock, ring: KeyRing, *, kind: int,
                name: str) -> Outcome:
    """Rewrap one file now (:func:`prepare_rewrap`, then its write); returns the outcome.

    ("rewrapped", old key id), ("current", None) or ("skipped", None).

    Raises:
        VaultError: as :func:`prepare_rewrap`.
    """
    result = prepare_rewrap(path, stem, lock, ring, kind=kind, name=name)
    assert result is not None  # it waited for the lock
    return result.commit() if isinstance(result, PendingWrite) else result


def _failure(exc: VaultError) -> tuple[str, None, str]:
    return "failed", None, f"{type(exc).__name__}: {exc.message}"


_Result: TypeAlias = tuple[str, "str | None", "str | None"]


def _commit(result: _Result | PendingWrite) -> _Result | Exception:
    """Write a prepared item; never raises an Exception, so every lock of a batch is released."""
    if not isinstance(result, PendingWrite):
        return result
    try:
        return (*result.commit(), None)
    except VaultError as exc:
        return _failure(exc)
    except Exception as exc:  # re-raised once the whole batch is written
        return exc


def rewrap_all(items: Sequence[str],
               prepare_one: Callable[[str, bool], Outcome | PendingWrite | None],
               progress: Callable[[int, int], None] | None = None, workers: int = 1,
               batch: int = 1, batch_bytes: int = BATCH_BYTES) -> RewrapReport:
    """Rewrap every item and count the outcomes, a batch at a time.

    ``prepare_one(item, wait)`` is :func:`prepare_rewrap` for one item: an outcome, a
    :class:`PendingWrite`, or None when ``wait`` is false and the item's lock is busy.
    A batch (``batch`` items, fewer once its envelopes reach ``batch_bytes``) is prepared in
    this thread, then written by ``workers`` threads; its locks, acquired in the order of
    ``items``, are held until each is written. A batch that holds locks never waits for
    another: a busy lock ends the batch, and the next one starts with that item, waiting.
    A ``VaultError`` is recorded with its type and message (never a value) and the others go
    on; any other error stops the run once every lock of its batch is released. ``progress``
    is called with (done, total) after each item, in order, from this thread.
    """
    counts = {"rewrapped": 0, "current": 0, "failed": 0, "skipped": 0}
    by_key: dict[str, int] = {}
    failures: list[tuple[str, str]] = []
    step = max(1, batch)
    done = 0
    with ThreadPoolExecutor(max(1, workers)) as pool:
        while done < len(items):
            prepared: list[_Result | PendingWrite] = []
            size = 0
            writing = parallel = False
            try:
                while done + len(prepared) < len(items) and len(prepared) < step \
                        and size < batch_bytes:
                    holding = size > 0  # envelopes are never empty
                    try:
                        ready = prepare_one(items[done + len(prepared)], not holding)
                    except VaultError as exc:
                        prepared.append(_failure(exc))
                        continue
                    if ready is None:
                        if not holding:
                            raise RuntimeError("prepare_one gave None although told to wait")
                        break  # busy: write what is prepared, then wait for it with no lock
                    if isinstance(ready, PendingWrite):
                        size += ready.size
                        prepared.append(ready)
                    else:
                        prepared.append((*ready, None))
                parallel = workers > 1 and len(prepared) > 1
                writing = True
                results = list(pool.map(_commit, prepared) if parallel
                               else map(_commit, prepared))
            except BaseException:
                # Unwritten items give their locks back (abandon after commit does nothing).
                # Writes already handed to the pool all run, and release, before it exits.
                if not (writing and parallel):
                    for pending in prepared:
                        if isinstance(pending, PendingWrite):
                            pending.abandon()
                raise
            for written in results:
                if isinstance(written, Exception):
                    raise written
            for written in results:
                assert not isinstance(written, Exception)  # raised above
                outcome, old_id, why = written
                if why is not None:
                    failures.append((items[done], why))
                counts[outcome] += 1
                if old_id is not None:
                    by_key[old_id] = by_key.get(old_id, 0) + 1
                done += 1
                if progress is not None:
                    progress(done, len(items))
    return RewrapReport(**counts, by_key=by_key, failures=tuple(failures))


def rewrap(target: RewrapTarget, ring: KeyRing, *,
           progress: Callable[[int, int], None] | None = None, workers: int = 1,
           batch: int = 1) -> RewrapReport:
    """Rewrap every item of ``target`` not under ``ring.primary`` (:func:`rewrap_all`)."""
    return rewrap_all(target.items(), lambda item, wait: target.prepare(item, ring, wait),
                      progress, workers, batch)
