"""Entry commands as library calls: list, delete and quarantine one entry (``credseal ls``,
``delete``, ``quarantine``); ``verify`` of named entries is ``vault.ops.verify(names=...)``.

Listing needs no key (names and times come from the unverified headers); deleting and
quarantining are audited. Deleting removes this directory's copy only: the primary database
still holds the credential, and the next healthy read writes it back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vault._store.audit import audit_of
from vault._store.context import Context
from vault._store.store import DEFAULT_TTL, Vault
from vault.config import VaultSettings, current_context
from vault.errors import EntryNotFoundError
from vault.ops._everyday import existing_dir, unverified_expired
from vault.ops._reports import Report

__all__ = ["EntryListing", "ListReport", "delete_entry", "list_entries", "quarantine_entry"]


@dataclass(frozen=True)
class EntryListing(Report):
    """One entry as its header says, **unverified**: never the value."""

    name: str
    key_id: str
    created_at: datetime
    expires_at: datetime
    size: int
    expired_unverified: bool


@dataclass(frozen=True)
class ListReport(Report):
    """``credseal ls``: the entries by name, and the files that could not be read."""

    directory: Path
    entries: tuple[EntryListing, ...]
    problems: tuple[str, ...]


def list_entries(settings: VaultSettings, *, now: datetime | None = None) -> ListReport:
    """List the entries of the vault without a key (read-only).

    Raises:
        ConfigurationError: ``CREDSEAL_DIR`` unset. InsecureFileError: missing or not private.
    """
    directory = existing_dir(settings)
    now = now or datetime.now(UTC)
    ttl = timedelta(seconds=settings.ttl) if settings.ttl else DEFAULT_TTL
    scan = Vault(directory, read_only=True).scan()
    listing = sorted((EntryListing(info.name, info.key_id, info.created_at, info.expires_at,
                                   info.size, unverified_expired(info, now, ttl))
                      for info in scan.entries), key=lambda e: e.name)
    return ListReport(directory, tuple(listing),
                      tuple(f"{path.name}: {why}" for path, why in scan.problems))


def delete_entry(vault: Vault, name: str, *, context: Context | None = None) -> None:
    """Delete entry ``name`` from this directory; audited.

    Raises:
        EntryNotFoundError: there is no such entry (a typo is an error, not a no-op).
    """
    if name not in vault:
        raise EntryNotFoundError(f"no entry named {name!r}",
                                 hint="`credseal ls` lists the entries")
    vault.delete(name)
    audit_of(vault, context or current_context()).append("delete", outcome="deleted",
                                                         entries=1)


def quarantine_entry(vault: Vault, name: str, *, context: Context | None = None) -> Path:
    """Move entry ``name`` into ``quarantine/`` (kept, never read again); audited.

    Raises:
        EntryNotFoundError: there is no such entry.
    """
    if name not in vault:
        raise EntryNotFoundError(f"no entry named {name!r}",
                                 hint="`credseal ls` lists the entries")
    path = vault.quarantine(name)
    audit_of(vault, context or current_context()).append("quarantine", outcome="moved",
                                                         entries=1)
    return path
