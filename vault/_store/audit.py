"""The audit log: one JSON line per administrative action, next to the entries.

``<vault dir>/audit.jsonl``, created 0600, appended with ``O_APPEND`` and fsynced per record.
Each record holds the time (UTC), the user, the host, the process id, the action and its
fields: key ids, counts, an outcome. **Never a key, a passphrase or a value**: fields are
restricted to numbers, booleans, short strings, and lists/dicts of those, and names of the
fields that may carry secrets are refused outright.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from vault import _files as files
from vault._crypto.keys import KeyRing
from vault._store.context import Context
from vault._store.state import StateFile
from vault._store.store import Vault, entries_of
from vault.errors import ConfigurationError

__all__ = ["AUDIT_FILE", "AuditCheck", "AuditLog", "audit_of"]

AUDIT_FILE = "audit.jsonl"
_MAX_STRING = 200
_FORBIDDEN = frozenset({"key", "keys", "material", "passphrase", "password", "value", "values",
                        "secret", "plaintext"})


def _check(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | float):
        return
    if isinstance(value, str):
        if len(value) > _MAX_STRING:
            raise ConfigurationError(f"audit field {where} is longer than {_MAX_STRING} chars")
        return
    if isinstance(value, list | tuple):
        for item in value:
            _check(item, where)
        return
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_name(str(k))
            _check(v, f"{where}.{k}")
        return
    raise ConfigurationError(f"audit field {where} has unsupported type {type(value).__name__}")


def _check_name(name: str) -> None:
    if name.lower() in _FORBIDDEN:
        raise ConfigurationError(f"audit field name {name!r} could carry a secret")


@dataclass(frozen=True)
class AuditCheck:
    """What ``AuditLog.check`` found: ``problem`` is None when every line it could check
    verified and the chain is whole; ``unverifiable`` counts lines under keys the ring no
    longer holds (retired) or written before the log was chained: reported, not forged."""

    lines: int
    verified: int
    unverifiable: int
    problem: str | None


def _body(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


class AuditLog:
    """Append-only JSON-lines audit log in a vault directory, tamper-evident when keyed.

    With ``ring``, each line carries ``prev`` (the MAC of the line before it), ``mac_key`` and
    ``mac``: HMAC-SHA256 of the line without its MAC, under a subkey of that ring key; a line
    that records a key change also carries ``mac_prev_key`` and ``mac_prev``, under the key it
    replaces. With ``state``, the last MAC is kept in the sealed ``vault.state`` too, so a
    truncated log shows. :meth:`check` verifies all of it. Without a ring, lines are plain.

    Raises:
        InsecureFileError: the log is a symlink, not private, or another user's.
    """

    def __init__(self, directory: str | os.PathLike[str], context: Context,
                 ring: KeyRing | None = None, state: StateFile | None = None) -> None:
        self.path = os.path.join(os.fspath(directory), AUDIT_FILE)
        self._locks = os.path.join(os.fspath(directory), ".locks")
        self.context = context
        self.ring, self.state = ring, state

    def append(self, action: str, *, previous_key: str | None = None,
               **fields: Any) -> dict[str, Any]:
        """Append one record and make it durable; returns the record written.

        ``previous_key``: the id of a key this action replaced (rotation), which MACs the line
        too, so the chain can be followed across the change.

        Raises:
            ConfigurationError: a field could carry a secret or has an unsupported type.
        """
        for name, value in fields.items():
            _check_name(name)
            _check(value, name)
        who = self.context
        record: dict[str, Any] = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                                  "user": who.user, "host": who.host, "pid": os.getpid()}
        if who.sudo_user is not None:
            record["sudo_user"] = who.sudo_user
        record.update(action=action, **fields)
        if self.ring is None:
            files.append_durably(self.path, _body(record) + b"\n", "audit log")
            return record
        files.ensure_private_dir(self._locks)
        with files.FileLock(os.path.join(self._locks, "audit.lock"), timeout=10.0,
                            what="the audit log"):
            record["prev"] = self._last_mac()
            record["mac_key"], record["mac"] = self.ring.line_mac(_body(record))
            if previous_key is not None and previous_key in self.ring:
                body = _body({k: v for k, v in record.items() if k != "mac"})
                record["mac_prev_key"], record["mac_prev"] = self.ring.line_mac(
                    body, previous_key)
            files.append_durably(self.path, _body(record) + b"\n", "audit log")
            if self.state is not None:
                mac = record["mac"]
                # A vault.state that does not open must not silence the audit trail: the line
                # stays; verify then reports the state (and the head it could not record).
                with contextlib.suppress(ConfigurationError):
                    self.state.update(lambda s: replace(s, audit_head=mac))
        return record

    def _last_mac(self) -> str | None:
        last = None
        for record in self.records():
            last = record
        mac = None if last is None else last.get("mac")
        return mac if isinstance(mac, str) else None

    def records(self) -> Iterator[dict[str, Any]]:
        """Yield the records, oldest first; a damaged line is skipped (unverified: use
        :meth:`check` before trusting one)."""
        for _, record in self._lines():
            if isinstance(record, dict):
                yield record

    def _lines(self) -> Iterator[tuple[int, Any]]:
        try:
            data = files.read_private(self.path, 64 * 1024 * 1024)
        except FileNotFoundError:
            return
        for number, line in enumerate(data.decode("utf-8", "replace").splitlines(), 1):
            try:
                yield number, json.loads(line)
            except ValueError:
                yield number, None

    def check(self, ring: KeyRing, head: str | None = None) -> AuditCheck:
        """Verify every line's MAC and the chain; ``head`` (from ``vault.state``) must be the
        last MAC. A line under a key the ring lacks is unverifiable, not forged."""
        lines = verified = unverifiable = 0
        prev: str | None = None
        for number, record in self._lines():
            lines += 1
            if not isinstance(record, dict):
                return AuditCheck(lines, verified, unverifiable, f"line {number} is not JSON")
            mac, key_id = record.pop("mac", None), record.pop("mac_key", None)
            record.pop("mac_prev_key", None)
            record.pop("mac_prev", None)
            if not isinstance(mac, str) or not isinstance(key_id, str):
                unverifiable += 1  # written before the log was chained
                prev = None
                continue
            ok = ring.check_line_mac(_body(record), key_id, mac)
            if ok is None:
                unverifiable += 1  # under a key retired since: cannot tell, not forged
            elif not ok:
                return AuditCheck(lines, verified, unverifiable,
                                  f"line {number} was edited or forged (its MAC is wrong)")
            elif record.get("prev") != prev:
                return AuditCheck(lines, verified, unverifiable,
                                  f"the chain breaks at line {number}: a line before it was "
                                  "removed, added or moved")
            else:
                verified += 1
            prev = mac
        if head is not None and head != prev:
            return AuditCheck(lines, verified, unverifiable, "the log ends before the last "
                              "line the vault recorded: it was truncated or rolled back")
        return AuditCheck(lines, verified, unverifiable, None)


def audit_of(vault: Vault, context: Context) -> AuditLog:
    """The tamper-evident audit log of ``vault`` (keyed with its ring; head in its state)."""
    entries = entries_of(vault)
    return AuditLog(vault.directory, context, entries.keys, StateFile(entries))
