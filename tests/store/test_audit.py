"""Tests of vault.audit: the append-only JSON-lines audit log."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

import vault
from vault._store.audit import AUDIT_FILE, AuditLog
from vault.config import current_context
from vault.errors import ConfigurationError, InsecureFileError

CONTEXT = current_context()


def test_append_writes_one_private_line_per_record(tmp_path: Path) -> None:
    """Each record is one JSON line with time, user, host, pid and the fields; file is 0600."""
    log = AuditLog(tmp_path, CONTEXT)
    log.append("rotate", old_key_id="a" * 16, new_key_id="b" * 16, rewrapped=3)
    log.append("retire", key_id="a" * 16)
    lines = (tmp_path / AUDIT_FILE).read_text().splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert first["action"] == "rotate" and first["rewrapped"] == 3 and first["pid"] == os.getpid()
    assert {"time", "user", "host"} <= set(first)
    assert stat.S_IMODE((tmp_path / AUDIT_FILE).stat().st_mode) == 0o600
    assert [r["action"] for r in log.records()] == ["rotate", "retire"]


@pytest.mark.parametrize("field", ["key", "passphrase", "value", "plaintext", "secret"])
def test_fields_that_could_carry_secrets_are_refused(tmp_path: Path, field: str) -> None:
    """Field names meant for secrets are refused before anything is written."""
    with pytest.raises(ConfigurationError, match=field):
        AuditLog(tmp_path, CONTEXT).append("oops", **{field: "x"})
    assert not (tmp_path / AUDIT_FILE).exists()


def test_unsupported_types_and_long_strings_are_refused(tmp_path: Path) -> None:
    """Only numbers, booleans, short strings and containers of them are accepted."""
    with pytest.raises(ConfigurationError, match="unsupported type"):
        AuditLog(tmp_path, CONTEXT).append("x", data=b"raw bytes")
    with pytest.raises(ConfigurationError, match="longer than"):
        AuditLog(tmp_path, CONTEXT).append("x", note="y" * 201)
    with pytest.raises(ConfigurationError, match="could carry a secret"):
        AuditLog(tmp_path, CONTEXT).append("x", counts={"value": 1})


def test_symlinked_or_shared_log_is_refused(tmp_path: Path) -> None:
    """A symlink or a group-readable file in the log's place is refused."""
    target = tmp_path / "elsewhere"
    target.write_text("")
    os.symlink(target, tmp_path / AUDIT_FILE)
    with pytest.raises(InsecureFileError, match="symlink"):
        AuditLog(tmp_path, CONTEXT).append("x")
    (tmp_path / AUDIT_FILE).unlink()
    (tmp_path / AUDIT_FILE).write_text("")
    (tmp_path / AUDIT_FILE).chmod(0o644)
    with pytest.raises(InsecureFileError):
        AuditLog(tmp_path, CONTEXT).append("x")


def test_damaged_lines_are_skipped(tmp_path: Path) -> None:
    """A torn or foreign line does not stop reading the rest."""
    log = AuditLog(tmp_path, CONTEXT)
    log.append("first")
    with open(tmp_path / AUDIT_FILE, "a") as f:
        f.write('{"torn": \n[1, 2]\n')
    log.append("second")
    assert [r["action"] for r in log.records()] == ["first", "second"]


def test_keyed_audit_log_shows_edits_reordering_and_truncation(tmp_path: Path) -> None:
    """With the ring, every line is MACed and chained (its head sealed in vault.state): check
    reports an edited line, a removed or moved one, and a truncated log; lines under a key
    the ring no longer holds are unverifiable, not forged."""
    from vault._store.audit import audit_of
    from vault._store.state import StateFile
    from vault._store.store import entries_of

    old, new = vault.Key.generate(), vault.Key.generate()
    v = vault.Vault(tmp_path / "v", keys=vault.KeyRing([old]))
    audit_of(v, CONTEXT).append("first", n=1)
    audit_of(v, CONTEXT).append("second", n=2)
    rotated = vault.Vault(v.directory, keys=vault.KeyRing([new, old]))
    audit_of(rotated, CONTEXT).append("rotate", previous_key=old.id, n=3)
    audit_of(rotated, CONTEXT).append("fourth", n=4)
    log = AuditLog(v.directory, CONTEXT)
    path = v.directory / "audit.jsonl"
    good = path.read_text()
    head = StateFile(entries_of(rotated)).read()
    assert head is not None and head.audit_head is not None
    ring = vault.KeyRing([new, old])
    assert log.check(ring, head.audit_head).problem is None
    assert log.check(ring, head.audit_head).verified == 4
    lines = good.splitlines(keepends=True)
    path.write_text(good.replace('"n":2', '"n":7'))
    assert "line 2 was edited" in (log.check(ring).problem or "")
    path.write_text(lines[0] + lines[2] + lines[1] + lines[3])
    assert "chain breaks" in (log.check(ring).problem or "")
    path.write_text("".join(lines[:3]))
    assert "truncated" in (log.check(ring, head.audit_head).problem or "")
    path.write_text(good)
    retired = log.check(vault.KeyRing([new]), head.audit_head)
    assert retired.problem is None and retired.unverifiable == 2 and retired.verified == 2
    # A line under a key the ring lacks is still pinned by the next line's hash chain: its
    # content cannot be changed, even with its MAC left as it was.
    forged = good.replace('"n":1', '"n":9', 1)
    path.write_text(forged)
    assert "chain breaks at line 2" in (log.check(vault.KeyRing([new]), head.audit_head).problem
                                        or "")
    path.write_text(good)
    assert "state was removed" in (log.check(ring).problem or "")
    assert log.check(ring, head.audit_head).problem is None
