"""``credseal journal``: the pending writes and the conflicts of a vault, and settling them.

The listing opens every record (it needs the keys: a record's entry name is sealed) and shows
names, operations and times, never values; it changes nothing. ``resolve`` settles the
conflicts of one name, audited.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from vault._store.audit import audit_of
from vault._store.context import Context
from vault._store.journal import Journal, Record
from vault._store.store import Vault
from vault.config import current_context
from vault.errors import EntryNotFoundError, VaultError
from vault.ops._reports import Report
from vault.sources import Source

__all__ = ["JournalItem", "JournalReport", "journal_report", "resolve_conflicts"]


@dataclass(frozen=True)
class JournalItem(Report):
    """One record: ``state`` "pending" (waits for replay), "conflict" (set aside), or
    "unreadable" (does not open: ``detail`` says why; replay quarantines it)."""

    id: str
    state: Literal["pending", "conflict", "unreadable"]
    name: str | None
    op: str | None
    at: str | None
    detail: str | None = None


@dataclass(frozen=True)
class JournalReport(Report):
    """Every record of the journal and of its conflicts, oldest first."""

    directory: Path
    items: tuple[JournalItem, ...]

    def count(self, state: str) -> int:
        """How many items have ``state``."""
        return sum(item.state == state for item in self.items)


def journal_report(vault: Vault) -> JournalReport:
    """List pending and conflict records (opened with the vault's keys; nothing changes)."""
    journal = Journal(vault)
    genuine = journal.sealed_conflicts()
    items: list[JournalItem] = []
    for state, ids, read in (("pending", journal.ids(), journal.read),
                             ("conflict", journal.conflict_ids(), journal.read_conflict)):
        for rid in ids:
            try:
                record = read(rid)
            except FileNotFoundError:
                continue
            except VaultError as exc:
                items.append(JournalItem(rid, "unreadable", None, None, None,
                                         f"{type(exc).__name__}: {exc.message}"))
                continue
            shown = state if state == "pending" or rid in genuine else "unreadable"
            items.append(JournalItem(rid, shown,  # type: ignore[arg-type]
                                     record.name, record.op,
                                     record.at.isoformat(timespec="milliseconds"),
                                     None if shown == state else "not set aside by this "
                                     "vault's replay (a copy): resolve quarantines it"))
    return JournalReport(vault.directory, tuple(items))


def resolve_conflicts(vault: Vault, name: str, *, apply_to: Source | None = None,
                      context: Context | None = None) -> int:
    """Settle the conflicts of entry ``name``; audited. Returns how many were settled.

    Without ``apply_to`` the source's value is kept (``--keep-primary``). With it, the newest
    conflicting write (a save or a delete) is written to that source, over whatever it holds
    now: the operator's decision (``--apply``); the cached copy follows on the next ``get``.
    Either way the records move to ``quarantine/`` (nothing is deleted; ``prune`` removes old
    quarantined files).

    Raises:
        EntryNotFoundError: no conflict names ``name``.
        the source's own errors (nothing is settled then).
    """
    journal = Journal(vault)
    genuine = journal.sealed_conflicts()
    mine: list[Record] = []
    planted: list[Record] = []
    for rid in journal.conflict_ids():
        try:
            record = journal.read_conflict(rid)
        except (FileNotFoundError, VaultError):
            continue
        if record.name == name:
            (mine if rid in genuine else planted).append(record)
    for record in planted:  # authentic but never set aside here (a copy): never applied
        journal.settle_conflict(record.id)
    if not mine:
        raise EntryNotFoundError(f"no journal conflict names {name!r}",
                                 hint="`credseal journal` lists the conflicts")
    if apply_to is not None:
        newest = mine[-1]  # ids sort in append order
        if newest.op == "save":
            apply_to.save(name, newest.value)
        else:
            apply_to.delete(name)
    settled = sum(journal.settle_conflict(record.id) is not None for record in mine)
    audit_of(vault, context or current_context()).append(
        "journal-resolve", outcome="kept-primary" if apply_to is None else "applied",
        records=settled)
    return settled
