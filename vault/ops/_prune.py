"""Pruning: remove expired entries and old quarantined files, dry run first, audited.

Only entries that **authenticate** and are past their validity window are removed: a file that
fails to open is reported, never deleted (it may be evidence, or a key may be missing), and an
entry dated in the future is left alone (a clock problem, not an old credential). Each removal
re-checks the entry under its lock, so an entry rewritten meanwhile is kept.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vault import _clock
from vault import _files as files
from vault._store.audit import audit_of
from vault._store.context import Context
from vault._store.entries import QUARANTINE_DIR, EntryStore
from vault._store.store import MAX_TTL, Vault, entries_of
from vault.config import current_context
from vault.errors import ConfigurationError, EntryExpiredError, EntryNotFoundError, VaultError

__all__ = ["PrunePlan", "PruneResult", "apply_prune", "plan_prune"]

# Entries (<stem>.cve) and journal records (<record id>.cvj) moved aside by quarantine().
_QUARANTINED = re.compile(r"(\d{8}T\d{6}\.\d{6}Z)-[0-9a-f-]+\.cv[ej]")


@dataclass(frozen=True)
class PrunePlan:
    """What a prune would remove, and what it will not touch (with why)."""

    expired: tuple[str, ...]
    quarantined: tuple[Path, ...]
    kept: tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class PruneResult:
    """What a prune removed."""

    removed_entries: tuple[str, ...]
    removed_quarantined: int
    kept: tuple[tuple[str, str], ...]


def _is_expired(entries: EntryStore, name: str, now_ms: int) -> bool:
    """True if ``name`` authenticates and is past its window (raises if it cannot be opened)."""
    header, _ = entries.open(name, now_ms, check_ttl=False)
    if header.created_at > now_ms:
        return False
    try:
        entries.check_validity(header, now_ms)
    except EntryExpiredError:
        return True
    return False


def _quarantine_time(path: Path) -> datetime:
    match = _QUARANTINED.fullmatch(path.name)
    if match:
        return datetime.strptime(match.group(1), "%Y%m%dT%H%M%S.%fZ").replace(tzinfo=UTC)
    return datetime.fromtimestamp(path.lstat().st_mtime, UTC)


def plan_prune(vault: Vault, *, quarantine_older_than: timedelta | None = None,
               now_ms: int | None = None) -> PrunePlan:
    """List expired entries (authenticated) and quarantined files older than the given age.

    Needs the vault's keys to authenticate entries; changes nothing.
    """
    now_ms = _clock.now_ms() if now_ms is None else now_ms
    entries = entries_of(vault)
    expired, kept = [], []
    names = vault.names()
    if vault.ttl < MAX_TTL.total_seconds() and any(n.startswith("keyring/") for n in names):
        # The keyring backend's passwords never expire: its vault records that in its state.
        # Here the state does not say so (removed, or an old copy): deleting them would be
        # for good.
        raise ConfigurationError(
            f"{vault.directory} holds the keyring backend's passwords but its vault.state "
            "records no TTL for them: pruning with a cache's TTL would delete them",
            hint="restore vault.state from a backup of this directory (the passwords also need "
                 "its name key); prune nothing meanwhile")
    for name in names:
        try:
            if _is_expired(entries, name, now_ms):
                expired.append(name)
        except VaultError as exc:
            kept.append((name, f"{type(exc).__name__}: {exc.message}"))
    old: list[Path] = []
    if quarantine_older_than is not None:
        limit = datetime.fromtimestamp(now_ms / 1000, UTC) - quarantine_older_than
        folder = vault.directory / QUARANTINE_DIR
        if folder.is_dir():
            old = sorted(p for p in folder.iterdir() if _quarantine_time(p) < limit)
    return PrunePlan(tuple(expired), tuple(old), tuple(kept))


def apply_prune(vault: Vault, plan: PrunePlan, *, now_ms: int | None = None,
                context: Context | None = None) -> PruneResult:
    """Remove what ``plan`` lists, re-checking each entry under its lock; audited."""
    now_ms = _clock.now_ms() if now_ms is None else now_ms
    entries = entries_of(vault)
    removed: list[str] = []
    kept = list(plan.kept)
    for name in plan.expired:
        with entries.lock(name) as lock:
            try:
                still = _is_expired(entries, name, now_ms)
            except EntryNotFoundError:
                continue
            except VaultError as exc:
                kept.append((name, f"{type(exc).__name__}: {exc.message}"))
                continue
            if not still:
                kept.append((name, "rewritten since the plan: kept"))
                continue
            entries.remove_locked(name, lock)
            removed.append(name)
    gone = 0
    for path in plan.quarantined:
        if path.is_symlink() or path.is_file():
            gone += files.unlink_durably(os.fspath(path))
    audit = audit_of(vault, context or current_context())
    audit.append("prune", outcome="pruned", removed_entries=len(removed),
                 removed_quarantined=gone, kept=len(kept))
    return PruneResult(tuple(removed), gone, tuple(kept))
