"""Destroying the plaintext source of a verified migration, and recording every refusal.

Removal is the one step that cannot be undone, so it checks everything again first and
refuses, removing nothing, at the first doubt. Every refusal appends a ``migrate`` audit
record with ``outcome`` "refused" and ``reason``, its kind (never a value):

- ``other-plan``: the result is not this plan's;
- ``not-verified``: an entry is not imported and verified, or no longer verifies;
- ``skipped``: records or files skipped as expired or malformed exist only in the plaintext;
- ``unreadable``: the source's folder or a source file cannot be opened or read;
- ``changed``: a source file changed since the plan;
- ``hard-links``: a source file has more than one hard link.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from vault import _files as files
from vault._store.audit import audit_of
from vault._store.context import Context
from vault._store.store import Vault
from vault.config import current_context
from vault.errors import MigrationError, VaultError
from vault.integrations.baileys._migrate import (
    IMPORTED,
    MAX_SOURCE_SIZE,
    PRESENT,
    MigrationPlan,
    MigrationResult,
    _why,
    audit_fields,
    verify,
)

__all__ = ["remove_plaintext"]


def _refused(vault: Vault, context: Context, plan: MigrationPlan, reason: str, message: str,
             hint: str | None = None) -> MigrationError:
    """Audit a refusal of kind ``reason``; return the error to raise."""
    audit_of(vault, context).append("migrate", outcome="refused", reason=reason,
                                    **audit_fields(plan))
    return MigrationError(message, hint=hint)


def _skipped_hint(expired: int) -> str:
    discard = ("destroy them with the plaintext: add --discard-skipped to `credseal migrate "
               "--apply --remove-plaintext` (in Python: discard_skipped=True)")
    if not expired:
        return discard
    return "import the expired ones with --include-expired (include_expired=True), or " + discard


def remove_plaintext(plan: MigrationPlan, result: MigrationResult, vault: Vault, *,
                     discard_skipped: bool = False, context: Context | None = None) -> list[Path]:
    """Overwrite the plaintext source with random bytes, fsync and delete it, after checks.

    Refuses (removing nothing) unless ``result`` is this plan's and verified, every entry still
    verifies in ``vault``, no record or file was skipped as expired or malformed (their only
    copy is in the source; ``discard_skipped=True``, the CLI's ``--discard-skipped``, destroys
    them too), and every source file is unchanged since the plan and has one link. An auth
    folder left empty is removed.
    **Limits:** SSDs, copy-on-write and journaling file systems, snapshots and backups may keep
    old copies; see docs/migration.md.
    Returns: the paths removed (audited). Raises: MigrationError saying why it refused (also
    audited, as outcome "refused" with the kind of reason) or what failed.
    """
    context = context or current_context()
    if result.plan_id != plan.plan_id:
        raise _refused(vault, context, plan, "other-plan", "this result is not the outcome of "
                       "this plan; nothing was removed")
    bad = [o for o in result.outcomes if o.status not in (IMPORTED, PRESENT)]
    bad = bad or [o for o in verify(plan, vault) if o.status != PRESENT]
    if bad:
        raise _refused(vault, context, plan, "not-verified",
                       f"{len(bad)} of {len(plan.entries)} entries are not imported and "
                       f"verified (first: {bad[0].name!r}, {bad[0].status}); nothing was "
                       "removed", hint="fix them and apply again, or keep the plaintext")
    lost = [s for s in plan.skipped if s.kind != "ignored"]
    if lost and not discard_skipped:
        expired = sum(s.kind == "expired" for s in lost)
        raise _refused(vault, context, plan, "skipped",
                       f"{len(lost)} records or files were skipped as expired or malformed "
                       "and exist only in the plaintext; nothing was removed",
                       hint=_skipped_hint(expired))
    # The folder is opened once and every check, overwrite and unlink is relative to it, so a
    # folder swapped for a symlink meanwhile cannot send them elsewhere.
    folder = os.fspath(plan.path) if plan.kind == "auth-folder" else os.path.dirname(
        os.path.abspath(plan.path))
    try:
        dir_fd = files.open_dir(folder)
    except (VaultError, OSError) as exc:
        raise _refused(vault, context, plan, "unreadable", f"cannot open {folder}: "
                       f"{_why(exc)}; nothing was removed") from None
    try:
        checked: dict[str, tuple[int, int]] = {}
        for path, digest in plan.digests.items():
            name = os.path.basename(path)
            try:
                data, st = files.read_foreign_at(dir_fd, name, MAX_SOURCE_SIZE)
            except (VaultError, OSError) as exc:
                raise _refused(vault, context, plan, "unreadable", f"cannot read {path}: "
                               f"{_why(exc)}; nothing was removed") from None
            if hashlib.sha256(data).hexdigest() != digest:
                raise _refused(vault, context, plan, "changed", f"{path} changed since the "
                               "plan; nothing was removed", hint="stop the service that "
                               "writes it, then plan and apply again")
            if st.st_nlink != 1:
                raise _refused(vault, context, plan, "hard-links", f"{path} has {st.st_nlink} "
                               "hard links; nothing was removed",
                               hint="remove the other links first")
            checked[name] = (st.st_dev, st.st_ino)
        for name, identity in checked.items():
            try:
                files.overwrite_and_unlink_at(dir_fd, name, identity)
            except (VaultError, OSError) as exc:
                raise MigrationError(f"cannot overwrite and remove {name} in {folder}: "
                                     f"{_why(exc)}") from None
    finally:
        os.close(dir_fd)
    if plan.kind == "auth-folder":
        files.remove_empty_dir(os.fspath(plan.path))  # not empty: ignored files stay with it
    audit_of(vault, context).append(
        "migrate", outcome="plaintext-removed", **audit_fields(plan),
        plaintext_removed=len(plan.digests))
    return [Path(p) for p in plan.digests]
