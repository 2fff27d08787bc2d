"""The encrypted, durable, append-only journal of writes the primary source has not seen yet.

The fallback cache appends a record when a ``save`` or ``delete`` cannot reach the source, and
replays the records, in order, once the source answers again. A record is deleted only after
the source confirmed it, so a crash at any point loses nothing: at worst a record is applied
twice (saves and deletes are idempotent). Records are never expired by the TTL.

Layout, in ``<vault directory>/journal/`` (0700, files 0600)::

    <id>.cvj              one record: a KIND_JOURNAL envelope (docs/format.md) named <id>
    .<id>.<random>.tmp    an append in progress (removed by a later replay if stale)
    .locks/append.lock    serializes appends (and so the sequence) across processes
    .locks/replay.lock    one replayer at a time, across processes and threads
    .locks/<id>.lock      a record being discarded or rewrapped

**Record id** ``<seq>-<pid>-<random>``: ``seq`` is 20 decimal digits, ``max(time_ns(), highest
pending seq + 1)`` taken under the append lock, so ids sort in append order across every
process that shares the directory, even if the wall clock steps back; ``pid`` and 8 random hex
digits keep ids unique. The id is the envelope's authenticated name, so a renamed (reordered)
or swapped record fails to open.

**Plaintext**: the codec's tagged JSON of ``{"v": 1, "op": "save"|"delete", "name": <entry
name>, "seq": <id>, "at": <ms since epoch>[, "base": <digest>]}``, a newline (compact JSON never
contains one), then for a save the value's codec tagged JSON, exactly as the vault stores it.
``base`` is the ``vault.sources.value_digest`` of the value the write was based on ("absent":
none); without it (records of 0.1, or an unknown base) the record applies only if the source
already holds its value. The header's ``CREATED_AT`` is ``at``; ``EXPIRES_AT`` is
``MAX_TIMESTAMP`` (never).

**Order semantics**: records replay in id order, which is the order in which appends took the
append lock; the next sequence comes from the newest record that opens, never from names
alone. Replay is compare-and-set (the caches' ``_apply``): a record is written only over its
base, so of two processes writing the same name during one outage the first replay wins and
the other record is set aside in ``conflicts/`` (see docs/operations.md, "What nothing lost
means").
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vault import _clock, codec
from vault import _files as files
from vault._crypto import format as fmt
from vault._crypto.keys import KeyRing
from vault._store.rewrap import PendingWrite, RewrapReport, prepare_rewrap, rewrap
from vault._store.state import StateFile
from vault._store.store import Vault, entries_of
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    FormatError,
    InsecureFileError,
    UnknownKeyError,
    VaultError,
)

__all__ = ["CONFLICTS_DIR", "JOURNAL_DIR", "RECORD_SUFFIX", "Journal", "Record", "step"]

JOURNAL_DIR = "journal"
#: How long a record under a known key the ring lacks waits for that key before it is
#: quarantined (from its unverified sealing time): a week.
MAX_RECORD_WAIT_MS = 7 * 86_400_000
CONFLICTS_DIR = "conflicts"
RECORD_SUFFIX = ".cvj"
_MAX_SEQ = 10**20 - 1  # record ids hold 20 digits
_RECORD_FILE = re.compile(r"((\d{20})-\d{1,10}-[0-9a-f]{8})\.cvj")
_TEMP_FILE = re.compile(r"\.(\d{20}-\d{1,10}-[0-9a-f]{8})\.[0-9a-f]{16}\.tmp")
_OPS = ("save", "delete")


@dataclass(frozen=True)
class Record:
    """One authenticated journal record. The value is not in ``repr``."""

    id: str
    op: str
    name: str
    value: Any = field(repr=False)
    at: datetime
    #: SHA-256 of the value the write was based on (``vault.sources.value_digest``; "absent":
    #: none), or None: unknown (the record applies only if the source already holds its value)
    base: str | None = None


class Journal:
    """The journal of the vault ``vault``, sealed with the vault's key ring.

    Thread- and process-safe: appends serialize on a file lock, replays on another, and a
    record is only deleted or rewrapped under its own lock. The directory is created on the
    first append. A rewrap target (``vault._store.rewrap.RewrapTarget``) of rotation.
    """

    name = "journal"  # as a rewrap target

    def __init__(self, vault: Vault) -> None:
        self._vault = vault
        self._entries = entries_of(vault)
        self._state = StateFile(self._entries)
        self.directory = vault.directory / JOURNAL_DIR
        self._dir = str(self.directory)
        self._locks = os.path.join(self._dir, ".locks")
        self._last_seq = 0

    def __repr__(self) -> str:
        return f"Journal({self._dir!r})"

    # ---- appending

    def append_save(self, name: str, value: Any, base: str | None = None) -> str:
        """Durably record that ``name`` must be set to ``value``, over the value whose digest
        is ``base`` (None: unknown); returns the record id.

        Raises:
            SerializationError: ``value`` cannot be stored (codec, or over the entry limit).
            FormatError: a bad entry name. OSError, LockTimeoutError: the write failed.
            VaultError: the next record id would not fit its 20 digits.
        """
        return self._append("save", name, self._entries.serialize(value), base)

    def append_delete(self, name: str, base: str | None = None) -> str:
        """Durably record that ``name`` must be deleted (over ``base``); returns the id."""
        return self._append("delete", name, b"", base)

    def _last_authenticated_seq(self) -> int:
        """The sequence of the newest record that opens: names alone are a writer's without
        the key, so a planted ``99999999999999999999-...`` name does not move the sequence."""
        for rid in reversed(self.ids()):
            try:
                self.read(rid)
            except (FileNotFoundError, VaultError):
                continue
            return _seq(rid)
        return 0

    def _append(self, op: str, name: str, value_bytes: bytes, base: str | None) -> str:
        fmt.check_name(name)
        self._entries.check_writable()
        files.ensure_private_dir(self._dir)
        files.ensure_private_dir(self._locks)
        self._entries.refresh()
        ring = self._entries.keys
        with self._lock("append", "the journal (append)"):
            last = self._last_authenticated_seq()
            try:
                state = self._state.read()
            except ConfigurationError:  # not followed; the record is numbered without it
                state = None
            applied = 0 if state is None else state.applied
            # Above every record that exists, and above everything ever applied: a new record
            # is never mistaken for one replayed already, even if the clock stepped back.
            seq = max(time.time_ns(), last + 1, self._last_seq + 1, applied + 1)
            if seq > _MAX_SEQ:
                raise FormatError(f"the next journal record id would have {len(str(seq))} "
                                  "digits, more than a record id holds; nothing was written",
                                  hint="check the system clock")
            self._last_seq = seq
            rid = f"{seq:020d}-{os.getpid()}-{secrets.token_hex(4)}"
            at = _clock.now_ms()
            fields: dict[str, Any] = {"v": 1, "op": op, "name": name, "seq": rid, "at": at}
            if base is not None:
                fields["base"] = base
            meta = codec.dumps(fields)
            envelope = ring.seal(kind=fmt.KIND_JOURNAL, name=rid, plaintext=meta + b"\n"
                                 + value_bytes, created_at=at, expires_at=fmt.MAX_TIMESTAMP)
            files.write_atomic(self._path(rid), envelope, rid)
        return rid

    # ---- reading

    def ids(self) -> list[str]:
        """The ids of the pending records, oldest first (an empty list if no journal)."""
        try:
            files.check_private_dir(self._dir)
        except VaultError:
            if not os.path.lexists(self._dir):
                return []
            raise
        with os.scandir(self._dir) as listing:
            found = [m.group(1) for item in listing if (m := _RECORD_FILE.fullmatch(item.name))]
        return sorted(found)

    def has_pending(self) -> bool:
        """Whether any record waits for replay (one directory listing)."""
        try:
            with os.scandir(self._dir) as listing:
                return any(_RECORD_FILE.fullmatch(item.name) for item in listing)
        except FileNotFoundError:
            return False

    def __len__(self) -> int:
        return len(self.ids())

    def read(self, record_id: str, *, folder: str | None = None) -> Record:
        """Open and authenticate record ``record_id`` (of ``folder``, default the journal).

        Raises:
            FileNotFoundError: it is gone (replayed). DecryptionError, FormatError: corrupt,
            tampered or renamed (quarantine it). UnknownKeyError: sealed under a key the ring
            lacks (do not skip it: later records could overtake it).
        """
        path = self._path(record_id) if folder is None else f"{folder}/{record_id}{RECORD_SUFFIX}"
        data = files.read_private(path, fmt.MAX_ENVELOPE_SIZE)
        header, plaintext = self._entries.open_envelope(data, kind=fmt.KIND_JOURNAL,
                                                        name=record_id)
        meta_bytes, _, value_bytes = plaintext.partition(b"\n")
        meta = codec.loads(meta_bytes)
        if (not isinstance(meta, dict) or meta.get("v") != 1 or meta.get("op") not in _OPS
                or meta.get("seq") != record_id or not isinstance(meta.get("name"), str)
                or not isinstance(meta.get("base", ""), str)):
            raise FormatError(f"journal record {record_id} has an unknown layout")
        value = codec.loads(value_bytes) if meta["op"] == "save" else None
        return Record(id=record_id, op=str(meta["op"]), name=str(meta["name"]), value=value,
                      at=datetime.fromtimestamp(header.created_at / 1000, UTC),
                      base=None if meta.get("base") is None else str(meta["base"]))

    def records(self) -> Iterator[Record]:
        """Open every pending record, oldest first (for inspection; raises as :meth:`read`)."""
        for rid in self.ids():
            with contextlib.suppress(FileNotFoundError):
                yield self.read(rid)

    def latest(self, name: str) -> Record | None:
        """The newest pending record for entry ``name``, or None. Opens records newest first;
        unreadable ones are skipped. (For reads during an outage: a write journaled by this
        or a previous process.) Records at or below the sealed high-water mark were applied
        already (a replanted copy): they are not pending and are skipped."""
        try:
            state = self._state.read()
        except ConfigurationError:
            state = None
        applied = 0 if state is None else state.applied
        for rid in reversed(self.ids()):
            if _seq(rid) <= applied:
                continue
            try:
                record = self.read(rid)
            except (FileNotFoundError, VaultError):
                continue
            if record.name == name:
                return record
        return None

    def items(self) -> list[str]:
        """The rewrap items: pending record ids, oldest first, then the conflicts'
        (``conflicts/<id>``): a conflict must stay readable until an operator settles it."""
        return self.ids() + [f"{CONFLICTS_DIR}/{rid}" for rid in self.conflict_ids()]

    def _item_path(self, item: str) -> tuple[str, str]:
        """(file, record id) of a rewrap item."""
        folder, _, rid = item.rpartition("/")
        if folder == CONFLICTS_DIR:
            return f"{self._dir}/{CONFLICTS_DIR}/{rid}{RECORD_SUFFIX}", rid
        return self._path(item), item

    def key_ids(self) -> Counter[str]:
        """Count records (pending and conflicts) per key id, from **unverified** headers.

        A key must not be retired while it still seals records; unparseable files are not
        counted (no key could open them anyway).
        """
        counts: Counter[str] = Counter()
        for item in self.items():
            with contextlib.suppress(FileNotFoundError, VaultError):
                prefix, size = files.read_private_prefix(self._item_path(item)[0],
                                                         fmt.FIXED_HEADER_SIZE
                                                         + fmt.MAX_NAME_LENGTH)
                counts[fmt.parse_header(prefix, size).key_id.hex()] += 1
        return counts

    def sealed_under(self, key_id: str) -> list[str]:
        """Records that authenticate under ``key_id``; a record whose header claims the key but
        does not open is quarantined and not listed (``RewrapTarget.sealed_under``)."""
        held = []
        for item in self.items():
            path, rid = self._item_path(item)
            try:
                prefix, size = files.read_private_prefix(path, fmt.FIXED_HEADER_SIZE
                                                         + fmt.MAX_NAME_LENGTH)
                if fmt.parse_header(prefix, size).key_id.hex() != key_id:
                    continue
                self.read(rid, folder=os.path.dirname(path))
            except FileNotFoundError:
                continue
            except (DecryptionError, FormatError):
                if path == self._path(rid):
                    self.quarantine(rid)
                else:
                    self.settle_conflict(rid)  # a forged "conflict": out of the way
                continue
            except VaultError:  # the ring lacks the key: cannot tell, so it counts
                pass
            held.append(rid)
        return held

    def unverified_summary(self) -> tuple[int, int | None, int]:
        """(pending records, the oldest CREATED_AT in ms from **unverified** headers, conflicts),
        with no key: for inventory (``status``), never for a decision."""
        oldest = None
        for rid in self.ids():
            with contextlib.suppress(FileNotFoundError, VaultError):
                prefix, size = files.read_private_prefix(self._path(rid), fmt.FIXED_HEADER_SIZE
                                                         + fmt.MAX_NAME_LENGTH)
                oldest = fmt.parse_header(prefix, size).created_at
                break
        return len(self.ids()), oldest, len(self.conflict_ids())

    def settle_conflict(self, record_id: str) -> Path | None:
        """Move conflict record ``record_id`` to the vault's ``quarantine/`` (the operator chose
        the source's value: ``credseal journal resolve --keep-primary``); None if gone."""
        self._entries.check_writable()
        with self._lock(record_id, f"journal record {record_id}") as lock:
            try:
                moved = self._entries.quarantine_file(
                    f"{self._dir}/{CONFLICTS_DIR}/{record_id}{RECORD_SUFFIX}", record_id,
                    RECORD_SUFFIX)
            except FileNotFoundError:
                return None
            finally:
                lock.remove()
        with contextlib.suppress(ConfigurationError):
            self._state.update(lambda s: s if record_id not in s.conflicts else replace(
                s, conflicts=tuple(c for c in s.conflicts if c != record_id)))
        return moved

    # ---- replaying

    def replay_lock(self) -> files.FileLock:
        """The journal-wide replay lock (a context manager; waits up to the lock timeout)."""
        self._entries.check_writable()
        files.ensure_private_dir(self._dir)
        files.ensure_private_dir(self._locks)
        return self._lock("replay", "the journal (replay)")

    def discard(self, record_id: str) -> None:
        """Delete a record the source has confirmed (under the record's lock)."""
        self._entries.check_writable()
        with self._lock(record_id, f"journal record {record_id}") as lock:
            files.unlink_durably(self._path(record_id))
            lock.remove()

    def quarantine(self, record_id: str) -> Path | None:
        """Move an unreadable record to the vault's ``quarantine/``; returns the new path, or
        None if it is gone already (another replayer moved it first)."""
        self._entries.check_writable()
        with self._lock(record_id, f"journal record {record_id}") as lock:
            try:
                target = self._entries.quarantine_file(self._path(record_id), record_id,
                                                       RECORD_SUFFIX)
            except FileNotFoundError:
                return None
            finally:
                lock.remove()
        return target

    def replay(self, apply: Callable[[Record], bool], *,
               on_quarantine: Callable[[str, VaultError, Path], None] | None = None,
               on_conflict: Callable[[Record, Path], None] | None = None,
               on_waiting: Callable[[str, UnknownKeyError], None] | None = None) -> int:
        """Apply every pending record in order; ``apply`` returns True when the source took it
        (the record is deleted) and False for a conflict (it moves to ``conflicts/``).

        Holds the replay lock throughout; records appended meanwhile are replayed too.
        Corrupt records are quarantined (``on_quarantine(id, error, path)``) and skipped.

        Returns:
            the number of records applied.

        Raises:
            whatever ``apply`` raises (the record stays, and so do the later ones);
            LockTimeoutError: another replayer held the lock too long.
        """
        applied = 0
        steps = self.replay_steps(on_quarantine, on_conflict, on_waiting)
        with self.replay_lock(), contextlib.closing(steps):
            record = next(steps, None)
            while record is not None:
                took = apply(record)
                applied += took
                record = step(steps, took)
        return applied

    def replay_steps(self, on_quarantine: Callable[[str, VaultError, Path], None] | None = None,
                     on_conflict: Callable[[Record, Path], None] | None = None,
                     on_waiting: Callable[[str, UnknownKeyError], None] | None = None
                     ) -> Generator[Record, bool, None]:
        """The replay loop, for a caller that holds :meth:`replay_lock` (sync or async).

        Yields the pending records in order; the caller sends back whether the source took
        the record (True: it is deleted) or refused it as a conflict (False: it moves to
        ``conflicts/``, ``on_conflict(record, path)``). Stop (or close the generator) when an
        apply fails: that record and the later ones stay. Corrupt records are quarantined and
        skipped; stale temp files are removed at the end. See :func:`step`.

        A record sealed under a key id this vault's key source never held (a keyless file
        with a made-up header) is quarantined like a corrupt one. One under a key the source
        knows but the ring lacks (retired, or not deployed here yet) waits, reported through
        ``on_waiting(id, error)``; the others go on, and a later write of the same name, based
        on the waiting one, is a conflict rather than a write out of order.
        """
        done: set[str] = set()
        state = self._state.ensure()  # adopts a vault id on the first replay
        applied = state.applied
        named = set(state.keys)  # keys this vault dated (env source): known though not held
        waiting: int | None = None  # the oldest record left waiting: the mark never passes it
        while ids := [rid for rid in self.ids() if rid not in done]:
            for rid in ids:
                done.add(rid)
                try:
                    record = self.read(rid)
                except FileNotFoundError:
                    continue
                except UnknownKeyError as exc:
                    known = exc.key_id in named or exc.key_id in self._entries.known_key_ids()
                    why = self._never_opens(rid, exc) if known else exc
                    if why is None:
                        if on_waiting is not None:
                            on_waiting(rid, exc)
                        waiting = _seq(rid) if waiting is None else min(waiting, _seq(rid))
                        continue
                    path = self.quarantine(rid)
                    if path is not None and on_quarantine is not None:
                        on_quarantine(rid, why, path)
                    continue
                except (DecryptionError, FormatError, InsecureFileError) as exc:
                    # Not a record this vault wrote (or not a file at all): set it aside, so
                    # that it blocks neither the replay nor reads of the source.
                    path = self.quarantine(rid)
                    if path is not None and on_quarantine is not None:
                        on_quarantine(rid, exc, path)
                    continue
                if _seq(rid) <= applied:
                    # A record the source took already (restored, or replanted by someone
                    # who copied it): it must not apply twice, even where its base is back.
                    path = self.quarantine(rid)
                    if path is not None and on_quarantine is not None:
                        on_quarantine(rid, FormatError(
                            f"journal record {rid} was applied already (at or below the "
                            "vault's high-water mark)"), path)
                    continue
                if (yield record):
                    if waiting is None or _seq(rid) < waiting:
                        self._state.applied(_seq(rid))  # before the record goes: never twice
                        applied = max(applied, _seq(rid))
                    self.discard(rid)
                else:
                    moved = self.set_aside(rid)
                    if moved is not None and on_conflict is not None:
                        on_conflict(record, moved)
        self.remove_stale_temps()

    # ---- conflicts

    def set_aside(self, record_id: str) -> Path | None:
        """Move a record the source refused into ``conflicts/`` (still sealed, never applied,
        never deleted); returns the new path, or None if it is gone."""
        self._entries.check_writable()
        target_dir = f"{self._dir}/{CONFLICTS_DIR}"
        files.ensure_private_dir(target_dir)
        with self._lock(record_id, f"journal record {record_id}") as lock:
            try:
                files.move_durably(self._path(record_id), f"{target_dir}/{record_id}"
                                   f"{RECORD_SUFFIX}")
            except FileNotFoundError:
                return None
            finally:
                lock.remove()
        with contextlib.suppress(ConfigurationError):  # a refused state: still set aside
            self._state.update(lambda s: s if record_id in s.conflicts else replace(
                s, conflicts=(*s.conflicts, record_id)))
        return Path(f"{target_dir}/{record_id}{RECORD_SUFFIX}")

    def sealed_conflicts(self) -> set[str]:
        """The ids replay set aside, from the sealed state (empty if it does not open)."""
        try:
            state = self._state.read()
        except ConfigurationError:
            return set()
        return set() if state is None else set(state.conflicts)

    def conflict_ids(self) -> list[str]:
        """The ids of the records set aside as conflicts, oldest first."""
        folder = f"{self._dir}/{CONFLICTS_DIR}"
        try:
            files.check_private_dir(folder)
        except VaultError:
            return []
        with os.scandir(folder) as listing:
            return sorted(m.group(1) for item in listing
                          if (m := _RECORD_FILE.fullmatch(item.name)))

    def read_conflict(self, record_id: str) -> Record:
        """Open a conflict record (raises as :meth:`read`)."""
        return self.read(record_id, folder=f"{self._dir}/{CONFLICTS_DIR}")

    def summary(self, now_ms: int | None = None) -> tuple[int, float | None, int]:
        """(pending records, age in seconds of the oldest that opens, conflicts)."""
        ids = self.ids()
        oldest = None
        for rid in ids:
            try:
                oldest = self.read(rid).at
            except (FileNotFoundError, VaultError):
                continue
            break
        now = (_clock.now_ms() if now_ms is None else now_ms) / 1000
        age = None if oldest is None else max(0.0, now - oldest.timestamp())
        return len(ids), age, len(self.conflict_ids())

    def remove_stale_temps(self) -> None:
        """Remove temp files of crashed appends and rewraps (only when no writer is active)."""
        if self._entries.read_only:
            return
        append = self._lock("append", "the journal (append)")
        with contextlib.suppress(FileNotFoundError, VaultError):
            if not append.acquire(blocking=False):
                return
            try:
                with os.scandir(self._dir) as listing:
                    temps = [(m.group(1), item.path) for item in listing
                             if (m := _TEMP_FILE.fullmatch(item.name))]
                for rid, path in temps:
                    record_lock = self._lock(rid, "temp file")
                    if record_lock.acquire(blocking=False):
                        try:
                            files.unlink_durably(path)
                            if not os.path.exists(self._path(rid)):
                                record_lock.remove()
                        finally:
                            record_lock.release()
            finally:
                append.release()

    # ---- key rotation

    def prepare(self, record_id: str, ring: KeyRing,
                wait: bool = True) -> tuple[str, str | None] | PendingWrite | None:
        """Prepare the rewrap of one record (a rewrap target's step; see ``prepare_rewrap``)."""
        self._entries.check_writable()
        path, rid = self._item_path(record_id)
        return prepare_rewrap(path, rid, self._lock(rid, f"journal record {rid}"), ring,
                              kind=fmt.KIND_JOURNAL, name=rid, wait=wait)

    def rewrap(self, ring: KeyRing | None = None) -> RewrapReport:
        """Reseal every record not under ``ring.primary`` (default: the vault's ring).

        Like ``Vault.rewrap``: each record is re-read under its lock (a replayed one is
        skipped), opened, sealed with the same timestamps, opened again and compared, then
        swapped in atomically.
        """
        if ring is None:
            self._entries.refresh(force=True)
            ring = self._entries.keys
        return rewrap(self, ring)

    # ---- internals

    def _never_opens(self, rid: str, exc: UnknownKeyError) -> UnknownKeyError | None:
        """Why a record under a known key the ring lacks stops waiting (None: it waits).

        It waits for the key (not deployed here yet, a keyring item being restored) at most
        ``MAX_RECORD_WAIT`` after its (unverified) sealing time; one under a key the source
        records as retired never opens. Either is quarantined (kept, sealed), never deleted;
        it does not replay any more, since later records may have applied meanwhile."""
        if exc.key_id in self._entries.retired_key_ids():
            return UnknownKeyError(exc.key_id, hint=f"journal record {rid} is sealed under a key "
                                   "the key source retired: it can never be replayed; it is in "
                                   "quarantine/")
        try:
            prefix, size = files.read_private_prefix(self._path(rid), fmt.FIXED_HEADER_SIZE + 64)
            sealed_at = fmt.parse_header(prefix, size).created_at
        except (OSError, VaultError):
            return None
        if _clock.now_ms() - sealed_at <= MAX_RECORD_WAIT_MS:
            return None
        return UnknownKeyError(exc.key_id, hint=f"journal record {rid} waited more than "
                               f"{MAX_RECORD_WAIT_MS // 86_400_000} days for its key; it is kept "
                               "in quarantine/, sealed, and no longer replays (later writes may "
                               "have applied since): if that write matters, deploy the key and "
                               "apply its value again by hand")

    def _path(self, rid: str) -> str:
        return f"{self._dir}/{rid}{RECORD_SUFFIX}"

    def _lock(self, lock_name: str, what: str) -> files.FileLock:
        if not self._entries.read_only:  # a journal/ made by someone else may lack .locks/
            files.ensure_private_dir(self._locks)
        return files.FileLock(f"{self._locks}/{lock_name}.lock",
                              timeout=self._entries.lock_timeout, what=what)


def step(steps: Generator[Record, bool, None], took: bool) -> Record | None:
    """Send ``took`` to a :meth:`Journal.replay_steps` generator; its next record, or None."""
    try:
        return steps.send(took)
    except StopIteration:
        return None


def _seq(record_id: str) -> int:
    return int(record_id.partition("-")[0])
