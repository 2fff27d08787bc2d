"""Key rotation (``docs/operations.md``): add, promote, rewrap, retire; resumable and audited.

One rotation per vault at a time: the rotation lock (``vault._store.state``) is held for the
whole run and records the holder and the phase. The kernel releases a ``flock`` when its
process dies, so a lock left by a killed rotation is simply taken over; the recorded phase then
tells the next run which new key to finish with, so a rerun after a crash continues instead of
creating another key.

Rewrapping goes target by target (the vault's entries, then its journal records, then any
``extra_targets``), item by item under each item's lock, so a crash at any moment leaves
everything readable under a key the ring still holds. ``retire`` asks every target.
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from vault._crypto.keys import RETIRED, Key, KeyRing
from vault._store.audit import audit_of
from vault._store.context import Context
from vault._store.journal import Journal
from vault._store.rewrap import RewrapReport, RewrapTarget, rewrap
from vault._store.state import RotationLock, StateFile, VaultState
from vault._store.store import REWRAP_BATCH, REWRAP_WORKERS, Vault, entries_of
from vault.config import current_context
from vault.errors import ConfigurationError, KeyInUseError, KeySourceError, VaultError
from vault.keysources import BoundKeySource, KeySource, ManagedKeySource
from vault.ops._binding import bind_directory, source_name
from vault.ops._reports import Report
from vault.sources import TableTarget

__all__ = [
    "PrimaryMigration",
    "RetireResult",
    "RotationResult",
    "check_unused",
    "migrate_primary",
    "retire",
    "rewrap_targets",
    "rotate",
]

Progress = Callable[[str, int, int], None]
_TARGET_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_RESERVED = frozenset({"key", "keys", "material", "passphrase", "password", "value", "values",
                       "secret", "plaintext"})  # field names the audit log refuses


@dataclass(frozen=True)
class RotationResult:
    """What a rotation did.

    ``outcome``: ``"rotated"`` (something rewrapped, nothing failed), ``"current"`` (nothing
    needed rewrapping), ``"not-due"`` (the primary key is younger than ``if_older_than``),
    ``"published"`` (env source: a new ring for the operator to deploy; nothing rewrapped yet),
    ``"failed"`` (some entry or record could not be rewrapped; see the reports).
    ``reports`` holds one :class:`RewrapReport` per target name ("entries", "journal", ...).
    """

    outcome: str
    old_key_id: str
    new_key_id: str
    reports: dict[str, RewrapReport] = field(default_factory=dict)
    resumed: dict[str, Any] | None = None
    new_ring: KeyRing | None = None  # only for "published": the ring to deploy
    seconds: float = 0.0

    @property
    def entries(self) -> RewrapReport:
        """The report of the vault's entries."""
        return self.reports.get("entries", RewrapReport())

    @property
    def journal(self) -> RewrapReport:
        """The report of the vault's journal records."""
        return self.reports.get("journal", RewrapReport())


@dataclass(frozen=True)
class RetireResult:
    """What ``retire`` did: ``outcome`` "retired" (the source dropped the key's material) or
    "published" (env source: ``new_ring``, without the key, for the operator to deploy)."""

    key_id: str
    outcome: str
    new_ring: KeyRing | None = field(default=None, repr=False)
    #: the directories checked (this one first, then the others the key source lists)
    directories: tuple[str, ...] = ()
    #: listed directories that no longer exist or are another vault's now: forgotten
    forgotten: tuple[str, ...] = ()


def rewrap_targets(vault: Vault, extra: Sequence[RewrapTarget] = ()) -> list[RewrapTarget]:
    """Every rewrap target of ``vault``: its entries, its journal, then ``extra``.

    Raises:
        ConfigurationError: two targets share a name, or a name is not a short identifier
            (it labels the target in reports and audit records).
    """
    entries = entries_of(vault)
    targets: list[RewrapTarget] = [entries, Journal(vault), StateFile(entries), *extra]
    names = [target.name for target in targets]
    for name in names:
        if not (isinstance(name, str) and _TARGET_NAME.fullmatch(name)) or name in _RESERVED:
            raise ConfigurationError(f"rewrap target name {name!r:.40} must be a lowercase "
                                     "identifier and not a reserved word")
    if len(set(names)) != len(names):
        raise ConfigurationError("two rewrap targets share a name: "
                                 + ", ".join(sorted({n for n in names if names.count(n) > 1})))
    return targets


def key_age(source: KeySource, vault_state: VaultState | None, key_id: str,
            now: datetime) -> timedelta | None:
    """How old key ``key_id`` is, from authenticated data only: the source's records, else
    (env source) when this vault first named it in its sealed state; None if unknown."""
    if isinstance(source, ManagedKeySource):
        for state in source.states():
            if state.id == key_id and state.created_at is not None:
                return now - state.created_at
    named = None if vault_state is None else vault_state.keys.get(key_id)
    if named is None:
        return None
    return now - datetime.fromtimestamp(named / 1000, UTC)


def _published_key_deployed(lock: RotationLock, ring: KeyRing) -> None:
    """Forget a published key once it is the deployed primary (env source)."""
    sealed = lock.state.read() if lock.state is not None else None
    if lock.state is not None and sealed is not None and sealed.published == ring.primary.id:
        lock.state.update(lambda s: replace(s, published=None))


def _pending_publication(vault_state: VaultState | None, ring: KeyRing) -> str | None:
    """The id of a key published for the env source but not yet deployed as primary."""
    pending = None if vault_state is None else vault_state.published
    return pending if pending != ring.primary.id else None


def rotate(vault: Vault, source: KeySource, *, rewrap_only: bool = False,
           if_older_than: timedelta | None = None, to_key_id: str | None = None,
           progress: Progress | None = None, extra_targets: Sequence[RewrapTarget] = (),
           context: Context | None = None) -> RotationResult:
    """Rotate ``vault`` to a new primary key held by ``source`` and rewrap everything.

    With a keyring or keyfile source: add a new key (decrypt-only), promote it, rewrap every
    target (entries, journal records, ``extra_targets``). With the env source the new ring is
    returned for deployment (outcome ``"published"``) and nothing is rewrapped; after
    deploying, run again with ``rewrap_only=True``. ``rewrap_only`` rewraps to the source's
    current primary. ``to_key_id`` promotes a key the source already holds (decrypt-only)
    instead of creating one: the way back to the previous key after a rotation, until that key
    is retired. Every run appends an audit record.

    Raises:
        RotationInProgressError: another rotation holds the lock.
        KeySourceError: the source cannot be read or changed.
    """
    started = time.monotonic()
    context = context or current_context()
    bind_directory(vault, source)  # never rotate a ring that serves another vault
    audit = audit_of(vault, context)
    lock = RotationLock(vault.directory, context, StateFile(entries_of(vault)))
    resumed = lock.acquire("credseal rotate" + (" --rewrap-only" if rewrap_only else ""))
    finished = False
    finishing: dict[str, Any] | None = None
    try:
        ring = source.load()
        if (not rewrap_only and to_key_id is None and resumed is not None
                and resumed.get("phase") == "rewrapping"
                and resumed.get("new_key_id") == ring.primary.id
                and (not isinstance(source, ManagedKeySource) or source.kind == "env")):
            # env: a rewrap to the deployed primary was cut short; a plain rotate finishes it
            # instead of publishing yet another key (reported as resumed).
            rewrap_only = True
            finishing = resumed
        old_id = ring.primary.id
        new_id = old_id
        _published_key_deployed(lock, ring)
        resume_id = _resumable(source, resumed, ring) if not rewrap_only else None
        if resume_id is not None and resume_id != ring.primary.id and if_older_than is not None:
            # --if-older-than applies to resumes too: an unfinished rotation that had not yet
            # promoted its key goes on only when the primary is due.
            age = key_age(source, lock.state.read() if lock.state else None, old_id,
                          datetime.now(UTC))
            if age is not None and age < if_older_than:
                resume_id = None
        if to_key_id is not None:
            new_id = _promote_existing(source, ring, to_key_id, lock)
        elif resume_id is not None:
            assert isinstance(source, ManagedKeySource)  # _resumable checked it
            new_id = resume_id  # a killed run stored this key: finish with it, make no other
            if ring.primary.id != new_id:
                lock.record(phase="promoting", new_key_id=new_id, from_key_id=old_id)
                source.promote(new_id)
        elif not rewrap_only:
            if if_older_than is not None:
                sealed = lock.state.read() if lock.state is not None else None
                age = key_age(source, sealed, old_id, datetime.now(UTC))
                waiting = _pending_publication(sealed, ring)
                if (age is not None and age < if_older_than) or waiting is not None:
                    audit.append("rotate", outcome="not-due", old_key_id=old_id,
                                 new_key_id=waiting or old_id)
                    finished = True
                    return RotationResult("not-due", old_id, waiting or old_id,
                                          seconds=time.monotonic() - started)
            new_key = Key.generate()
            new_id = new_key.id
            if not isinstance(source, ManagedKeySource) or source.kind == "env":
                StateFile(entries_of(vault)).named(new_id, published=True)
                audit.append("rotate", outcome="published", old_key_id=old_id, new_key_id=new_id)
                finished = True
                return RotationResult("published", old_id, new_id,
                                      new_ring=ring.with_primary(new_key),
                                      seconds=time.monotonic() - started)
            lock.record(phase="adding", new_key_id=new_id, from_key_id=old_id)
            source.add(new_key)
            lock.record(phase="promoting", new_key_id=new_id, from_key_id=old_id)
            source.promote(new_id)
        ring = source.load()
        if ring.primary.id != new_id:
            raise KeySourceError(f"key {new_id} is not the primary key after promotion",
                                 hint="check the key source with `credseal status`")
        lock.record(phase="rewrapping", new_key_id=new_id, from_key_id=old_id)
        reports = {target.name: _rewrap_target(target, ring, progress)
                   for target in rewrap_targets(vault, extra_targets)}
        for target in rewrap_targets(vault, extra_targets):
            refresh = getattr(target, "refresh_report", None)  # the shared tier's
            if refresh is not None:
                with contextlib.suppress(VaultError, OSError):
                    refresh(Journal(vault).key_ids(), context.host)
        failed = sum(r.failed for r in reports.values())
        moved = sum(r.rewrapped for r in reports.values())
        outcome = "failed" if failed else "rotated" if moved or new_id != old_id else "current"
        entries, records = reports["entries"], reports["journal"]
        # A resumed run started with the new key promoted already: the key it replaces is
        # the one the sealed resume state names.
        origin = (resumed or {}).get("from_key_id") if resume_id is not None else None
        if isinstance(origin, str) and origin != new_id:
            old_id = origin
        entries_of(vault).refresh(force=True)
        audit = audit_of(vault, context)  # the ring now holds the new primary: it MACs the line
        audit.append("rotate", previous_key=old_id if old_id != new_id else None,
                     outcome=outcome, old_key_id=old_id if old_id != new_id else None,
                     new_key_id=new_id,
                     rewrapped=entries.rewrapped, current=entries.current, failed=entries.failed,
                     skipped=entries.skipped, by_key=entries.by_key,
                     journal_rewrapped=records.rewrapped, journal_failed=records.failed,
                     targets={name: {"rewrapped": r.rewrapped, "failed": r.failed,
                                     "skipped": r.skipped, "by_key": r.by_key}
                              for name, r in reports.items()},
                     resumed=resume_id is not None)
        # The key change is complete (promoted; every target visited): nothing to resume. A
        # failed item is retried with rewrap_only; keeping the state would make every later
        # rotate reuse this key instead of making a new one.
        finished = True
        return RotationResult(outcome, old_id, new_id, reports,
                              resumed if resume_id is not None else finishing,
                              seconds=time.monotonic() - started)
    finally:
        lock.release(finished=finished)


def _rewrap_target(target: RewrapTarget, ring: KeyRing,
                   progress: Progress | None) -> RewrapReport:
    def report(done: int, total: int) -> None:
        if progress is not None:
            progress(target.name, done, total)
    if target.name == "entries":  # many items: batched, with overlapping writes
        return rewrap(target, ring, progress=report, workers=REWRAP_WORKERS, batch=REWRAP_BATCH)
    batched = getattr(target, "rewrap_batched", None)  # a sealed primary table: its own walk
    if batched is not None:  # (no progress: nothing is counted up front)
        result: RewrapReport = batched(ring, report if progress is not None else None)
        return result
    return rewrap(target, ring, progress=report)


def _promote_existing(source: KeySource, ring: KeyRing, key_id: str, lock: RotationLock) -> str:
    """Promote ``key_id``, a key the source holds, for a rotation back to it."""
    if not isinstance(source, ManagedKeySource) or source.kind == "env":
        raise KeySourceError("the environment key source cannot promote a key itself",
                             hint="deploy CREDSEAL_KEYS with that key first, then run "
                                  "`credseal rotate --rewrap-only`")
    if key_id not in ring:
        raise KeySourceError(f"key {key_id} is not held by the {source.kind} key source "
                             "(unknown or retired)", hint="`credseal status` lists the keys")
    if ring.primary.id != key_id:
        lock.record(phase="promoting", new_key_id=key_id, back=True,
                    from_key_id=ring.primary.id)
        source.promote(key_id)
    return key_id


def _resumable(source: KeySource, resumed: dict[str, Any] | None, ring: KeyRing) -> str | None:
    """The new key id an unfinished rotation recorded in the sealed vault state, if a resume
    may go there: the source still holds it, and it is the primary already (finish the
    rewrap), or newer than the primary (move forward), or the state records an explicit
    ``--to`` rollback. Never back to an older key on a resume's own say-so."""
    pending = resumed.get("new_key_id") if resumed else None
    if (not isinstance(pending, str) or not isinstance(source, ManagedKeySource)
            or source.kind == "env"):
        return None
    # The sources keep their records in the order the keys were added: later is newer (the
    # dates have whole seconds only).
    order = [s.id for s in source.states()]
    states = {s.id: s for s in source.states()}
    target = states.get(pending)
    if target is None or target.state == RETIRED:
        return None
    origin = (resumed or {}).get("from_key_id")
    if origin is not None and ring.primary.id not in (origin, pending):
        return None  # the primary moved on since (a --to, another rotation): stale state
    if pending == ring.primary.id or (resumed or {}).get("back") is True:
        return pending
    newer = ring.primary.id in order and order.index(pending) > order.index(ring.primary.id)
    return pending if newer else None


def check_unused(vault: Vault, key_id: str, *,
                 extra_targets: Sequence[RewrapTarget] = ()) -> int:
    """Raise unless no target of ``vault`` (entries, journal, ``extra_targets``) still holds
    anything sealed under ``key_id``.

    Every item whose header claims the key is opened with it: one that fails was not sealed
    by it (a keyless file with a forged header) and is quarantined instead of blocking the
    retirement forever. Returns the number of entries checked.

    Raises:
        KeyInUseError: says how many items of which targets (naming a few entries), and where.
    """
    targets = rewrap_targets(vault, extra_targets)
    checked = len(vault.scan().entries)
    using = targets[0].sealed_under(key_id) if targets[0].key_ids().get(key_id) else []
    held = {target.name: len(target.sealed_under(key_id)) if target.key_ids().get(key_id)
            else 0 for target in targets[1:]}
    hosts = [line for target in targets
             for line in (getattr(target, "hosts_using", None) or (lambda _: []))(key_id)]
    if hosts and not using and not any(held.values()):
        shown = "; ".join(hosts[:5]) + (f"; and {len(hosts) - 5} more" if len(hosts) > 5 else "")
        raise KeyInUseError(
            f"key {key_id} may still be used by other hosts of the fleet: {shown}",
            hint="a host's copies move to the new key as it refreshes them (within half the "
            "TTL) and its journal as it replays; wait for reports without the key, or "
            "`credseal retire --forget-host ID` for a host that is gone for good")
    if using or any(held.values()):
        where = ", ".join(repr(n) for n in using[:5]) + (" ..." if len(using) > 5 else "")
        others = "".join(f" and {n} {name} items" if name != "journal" else
                         f" and {n} journal records" for name, n in held.items())
        raise KeyInUseError(
            f"key {key_id} still seals {len(using)} entries"
            + (f" ({where})" if using else "") + others + f" in {vault.directory}",
            hint="run `credseal rotate --rewrap-only` first, then retire the key")
    return checked


def _other_directories(vault: Vault, source: KeySource, forget: Sequence[str],
                       all_checked: bool) -> tuple[list[Vault], list[str]]:
    """The other directories of this vault that the key source lists: those opened here
    (to be checked), and those the operator said are gone (``forget``: to be forgotten).

    Raises:
        KeyInUseError: a listed directory is not visible here and not in ``forget``, exists
            but cannot be checked (another user's, or its state does not open), or the
            binding forgot directories (too many) and ``all_checked`` was not given.
    """
    binding = source.binding() if isinstance(source, BoundKeySource) else None
    if binding is None:
        return [], []
    if binding.overflowed and not all_checked:
        raise KeyInUseError(
            f"{source_name(source)} had to forget some directories of this vault (more than "
            "it can list), so retire cannot check them all",
            hint="run `credseal rotate --rewrap-only` in every directory of this vault, then "
                 "retire with --all-directories-checked")
    here = os.path.realpath(vault.directory)
    gone_ok = {os.path.realpath(path) for path in forget}
    others: list[Vault] = []
    gone: list[str] = []
    for path, _ in binding.dirs:
        if path == here:
            continue
        if path in gone_ok:  # the operator's word: gone for good, or no longer this vault's
            gone.append(path)
            continue
        if not os.path.lexists(path):
            raise KeyInUseError(
                f"{path}, a directory of this vault, is not visible here: anything in it still "
                "sealed under the key would become unreadable",
                hint=f"retire where it is visible; if it is gone for good, pass --forget {path}")
        try:
            other = Vault(path, keys=source)
            bind_directory(other, source, write=False)
        except VaultError as exc:
            raise KeyInUseError(
                f"{path}, a directory of this vault, cannot be checked: {exc.message}",
                hint="run retire as the user who owns that directory (sudo -u <owner> "
                     "credseal retire ...), or restore its vault.state; if it is not this "
                     f"vault's any more, pass --forget {path} (its entries and journal records "
                     "under the key would become unreadable)"
            ) from None
        others.append(other)
    return others, gone


def retire(vault: Vault, source: KeySource, key_id: str, *,
           extra_targets: Sequence[RewrapTarget] = (), forget: Sequence[str] = (),
           all_checked: bool = False, context: Context | None = None) -> RetireResult:
    """Retire ``key_id`` once nothing sealed under it is left; audited.

    Checked are every target of ``vault`` (entries, journal, state, ``extra_targets``) and,
    for a keyring source, every other directory of the vault that the source lists. A
    listed directory that is not visible here stops the retirement unless it is in ``forget``
    (gone for good: it is forgotten, and reported); ``all_checked`` says that the operator
    rewrapped every directory when the binding had to forget some.

    A managed source (keyring, keyfile) drops the key's material and keeps its record. The
    env source cannot change itself: the result holds the ring without the key, to deploy.

    Raises:
        KeyInUseError: some target or directory still uses the key (says how many, where),
            or a listed directory cannot be checked.
        KeySourceError: the key is unknown, active, or the source cannot be changed.
        ConfigurationError: the key source serves another vault than this directory's.
    """
    key_id = key_id.strip().lower()
    bind_directory(vault, source)
    ring = source.load()
    known = {s.id: s for s in source.states()} if isinstance(source, ManagedKeySource) else {}
    if key_id not in ring and key_id not in known:
        raise KeySourceError(f"key {key_id} is not in {source_name(source)}",
                             hint="`credseal status` lists the key ids and their states")
    if key_id == ring.primary.id:
        raise KeySourceError(f"key {key_id} is the active key: the active key is never retired",
                             hint="rotate first (`credseal rotate`), then retire the old key")
    audit = audit_of(vault, context or current_context())
    checked = check_unused(vault, key_id, extra_targets=extra_targets)
    others, gone = _other_directories(vault, source, forget, all_checked)
    for other in others:
        checked += check_unused(other, key_id)
    directories = (vault.directory, *(other.directory for other in others))
    shown = tuple(str(d) for d in directories)
    if gone and isinstance(source, BoundKeySource):
        binding = source.binding()
        if binding is not None:
            for path in gone:
                binding = binding.without_dir(path)
            source.bind(binding)
    if isinstance(source, ManagedKeySource) and source.kind != "env":
        source.retire(key_id)
        audit.append("retire", key_id=key_id, outcome="retired", entries_checked=checked,
                     directories=len(shown), forgotten=len(gone))
        return RetireResult(key_id, "retired", directories=shown, forgotten=tuple(gone))
    audit.append("retire", key_id=key_id, outcome="published", entries_checked=checked)
    return RetireResult(key_id, "published", ring.without(key_id), directories=shown)


@dataclass(frozen=True)
class PrimaryMigration(Report):
    """What ``migrate_primary`` did: ``applied`` (False: a dry run, only counted),
    ``plaintext_rows`` and ``sealed_rows`` (per key id) before, the ``report`` of the walk
    and whether the table is now ``marked`` sealed."""

    applied: bool
    plaintext_rows: int
    sealed_rows: dict[str, int]
    report: RewrapReport | None = None
    marked: bool = False


def migrate_primary(vault: Vault, primary: Any, *, apply: bool,
                    progress: Progress | None = None,
                    context: Context | None = None) -> PrimaryMigration:
    """Seal a plaintext primary table in place (``credseal migrate --primary``): count it
    (dry run), or seal every plaintext row under the primary key, batch by batch with
    compare-and-set (a row a service wrote meanwhile is kept), then write the sealed table
    mark. Resumable; audited.

    Args:
        primary: a sealed ``SQLiteSource``/``PostgresSource`` built with ``migrating=True``.
    """
    target = TableTarget(primary)
    before = dict(target.key_ids())
    plaintext = before.pop("plaintext", 0)
    if not apply:
        return PrimaryMigration(False, plaintext, before)

    def report_progress(done: int, total: int) -> None:
        if progress is not None:
            progress("primary", done, total)

    report = target.rewrap_batched(vault.keys,
                                   report_progress if progress is not None else None)
    marked = report.failed == 0 and bool(primary.mark_sealed())
    audit_of(vault, context or current_context()).append(
        "migrate-primary", outcome="sealed" if marked else "failed", rows=report.rewrapped,
        failed=report.failed)
    return PrimaryMigration(True, plaintext, before, report, marked)
