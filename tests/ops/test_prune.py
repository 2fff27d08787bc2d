"""Tests of vault.prune: expired entries and old quarantined files."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import vault
from vault._store.audit import AuditLog
from vault._store.entries import name_stem
from vault._store.store import entries_of
from vault.config import current_context
from vault.ops import apply_prune, plan_prune

CONTEXT = current_context()

T0 = 1_700_000_000_000


def test_dry_run_lists_only_authenticated_expired_entries(
        make_vault: Callable[..., vault.Vault]) -> None:
    """The plan lists expired entries, keeps valid, future-dated and unopenable ones."""
    v = make_vault(ttl=60)
    entries_of(v).put("old", 1, T0)
    entries_of(v).put("fresh", 2, T0 + 100_000)
    entries_of(v).put("future", 3, T0 + 10_000_000)
    entries_of(v).put("broken", 4, T0)
    broken = v.directory / f"{name_stem('broken')}.cve"
    data = bytearray(broken.read_bytes())
    data[-1] ^= 1
    broken.write_bytes(bytes(data))
    plan = plan_prune(v, now_ms=T0 + 120_000)
    assert plan.expired == ("old",)
    assert [name for name, _ in plan.kept] == ["broken"] and "DecryptionError" in plan.kept[0][1]
    assert sorted(v.names()) == ["broken", "fresh", "future", "old"]


def test_apply_removes_and_audits(make_vault: Callable[..., vault.Vault]) -> None:
    """apply removes the planned entries and appends an audit record."""
    v = make_vault(ttl=60)
    entries_of(v).put("old", 1, T0)
    entries_of(v).put("fresh", 2, T0 + 100_000)
    result = apply_prune(v, plan_prune(v, now_ms=T0 + 120_000), now_ms=T0 + 120_000)
    assert result.removed_entries == ("old",) and v.names() == ["fresh"]
    record = list(AuditLog(v.directory, CONTEXT).records())[-1]
    assert record["action"] == "prune" and record["removed_entries"] == 1


def test_entry_rewritten_after_the_plan_is_kept(make_vault: Callable[..., vault.Vault]) -> None:
    """An entry refreshed between plan and apply is not removed."""
    v = make_vault(ttl=60)
    entries_of(v).put("x", 1, T0)
    plan = plan_prune(v, now_ms=T0 + 120_000)
    entries_of(v).put("x", 2, T0 + 110_000)
    result = apply_prune(v, plan, now_ms=T0 + 120_000)
    assert result.removed_entries == () and entries_of(v).load("x", T0 + 120_000)[1] == 2
    assert result.kept[-1] == ("x", "rewritten since the plan: kept")


def test_old_quarantined_files_are_removed(make_vault: Callable[..., vault.Vault]) -> None:
    """Quarantined files older than the given age go; newer ones stay."""
    v = make_vault()
    v.put("a", 1)
    v.put("b", 2)
    first = v.quarantine("a")
    second = v.quarantine("b")
    old = first.with_name("20200101T000000.000000Z-" + first.name.split("-", 1)[1])
    first.rename(old)
    plan = plan_prune(v, quarantine_older_than=timedelta(days=30))
    assert plan.quarantined == (old,)
    result = apply_prune(v, plan)
    assert result.removed_quarantined == 1 and not old.exists() and second.exists()


def test_nothing_to_prune(make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    """An empty vault plans nothing and applying it changes nothing."""
    v = make_vault()
    plan = plan_prune(v, quarantine_older_than=timedelta(days=1))
    assert plan.expired == () and plan.quarantined == () and plan.kept == ()
    assert apply_prune(v, plan).removed_entries == ()
