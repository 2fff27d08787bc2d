"""The operator actions as library calls; the ``credseal`` CLI is a thin layer over them.

Each action takes settings or a vault, returns a plain report (``to_dict()`` gives its JSON
form) and writes its own audit record where it changes something, so a library user gets the
same audit trail as the CLI. ``status``, ``inspect_entry``, ``verify`` and ``diagnose`` are
read-only: they change nothing in the vault directory. No report holds a key, a passphrase or
a value, except :attr:`InitResult.key_text` (env source: printed once, on purpose).
"""

from vault.ops._binding import bind_directory
from vault.ops._diagnose import Check, DiagnoseReport, diagnose
from vault.ops._entries import (
    EntryListing,
    ListReport,
    delete_entry,
    list_entries,
    quarantine_entry,
)
from vault.ops._everyday import (
    EntryCheck,
    HostUsage,
    InitResult,
    InspectReport,
    KeyUsage,
    StatusReport,
    VerifyReport,
    change_passphrase,
    init_vault,
    inspect_entry,
    status,
    verify,
    write_metrics,
)
from vault.ops._journal import JournalItem, JournalReport, journal_report, resolve_conflicts
from vault.ops._prune import PrunePlan, PruneResult, apply_prune, plan_prune
from vault.ops._reports import Report
from vault.ops._rotation import (
    PrimaryMigration,
    RetireResult,
    RotationResult,
    check_unused,
    migrate_primary,
    retire,
    rewrap_targets,
    rotate,
)

__all__ = [
    "Check",
    "DiagnoseReport",
    "EntryCheck",
    "EntryListing",
    "HostUsage",
    "InitResult",
    "InspectReport",
    "JournalItem",
    "JournalReport",
    "KeyUsage",
    "ListReport",
    "PrimaryMigration",
    "PrunePlan",
    "PruneResult",
    "Report",
    "RetireResult",
    "RotationResult",
    "StatusReport",
    "VerifyReport",
    "apply_prune",
    "bind_directory",
    "change_passphrase",
    "check_unused",
    "delete_entry",
    "diagnose",
    "init_vault",
    "inspect_entry",
    "journal_report",
    "list_entries",
    "migrate_primary",
    "plan_prune",
    "quarantine_entry",
    "resolve_conflicts",
    "retire",
    "rewrap_targets",
    "rotate",
    "status",
    "verify",
    "write_metrics",
]
