"""Tests of vault.audit: the append-only JSON-lines audit log."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

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
