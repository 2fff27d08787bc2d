"""Baileys (WhatsApp Web) credentials: migrate a plaintext store into a vault, and back.

``plan_*`` (a dry run) -> :func:`apply` (writes and verifies) -> :func:`remove_plaintext`
(only after a verified apply); ``export_*`` and :func:`write_cache_file` write entries back as
Baileys does, to roll a migration back. ``docs/migration.md`` is the runbook.
"""

from vault.errors import MigrationError
from vault.integrations.baileys._export import (
    export_auth_folder,
    export_cache_file,
    export_node,
    write_cache_file,
)
from vault.integrations.baileys._migrate import (
    EXISTS,
    FAILED,
    IMPORTED,
    MAX_SOURCE_SIZE,
    MISMATCH,
    PRESENT,
    MigrationPlan,
    MigrationResult,
    Outcome,
    PlannedEntry,
    Skipped,
    apply,
    plan_auth_folder,
    plan_cache_file,
    verify,
)
from vault.integrations.baileys._remove import remove_plaintext

__all__ = [
    "EXISTS",
    "FAILED",
    "IMPORTED",
    "MAX_SOURCE_SIZE",
    "MISMATCH",
    "PRESENT",
    "MigrationError",
    "MigrationPlan",
    "MigrationResult",
    "Outcome",
    "PlannedEntry",
    "Skipped",
    "apply",
    "export_auth_folder",
    "export_cache_file",
    "export_node",
    "plan_auth_folder",
    "plan_cache_file",
    "remove_plaintext",
    "verify",
    "write_cache_file",
]
