"""The audit log: one JSON line per administrative action, next to the entries.

``<vault dir>/audit.jsonl``, created 0600, appended with ``O_APPEND`` and fsynced per record.
Each record holds the time (UTC), the user, the host, the process id, the action and its
fields: key ids, counts, an outcome. **Never a key, a passphrase or a value**: fields are
restricted to numbers, booleans, short strings, and lists/dicts of those, and names of the
fields that may carry secrets are refused outright.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from vault import _files as files
from vault._crypto.keys import KeyRing
from vault._store.context import Context
from vault._store.state import StateFile
from vault._store.store import Vault, entries_of
from vault.errors import ConfigurationError, VaultError

__all__ = ["AUDIT_FILE", "AuditCheck", "AuditLog", "audit_of"]

AUDIT_FILE = "audit.jsonl"
logger = logging.getLogger("vault.store")
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


_SUFFIX = re.compile(rb',"mac_key":"([0-9a-f]{16})","mac":"([0-9a-f]{64})"'
                     rb'(?:,"mac_prev_key":"([0-9a-f]{16})","mac_prev":"([0-9a-f]{64})")?\}\Z')


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
            record["prev"] = self._last_line_hash()
            body = _body(record)
            key_id, mac = self.ring.line_mac(body)
            suffix = f',"mac_key":"{key_id}","mac":"{mac}"'
            if previous_key is not None and previous_key in self.ring:
                old_id, old_mac = self.ring.line_mac(body, previous_key)
                suffix += f',"mac_prev_key":"{old_id}","mac_prev":"{old_mac}"'
            line = body[:-1] + suffix.encode() + b"}"
            files.append_durably(self.path, line + b"\n", "audit log")
            if self.state is not None:
                head = hashlib.sha256(line).hexdigest()
                # A vault.state that does not open must not silence the audit trail: the line
                # stays; verify then reports the state (and the head it could not record).
                try:
                    state = self.state.update(lambda s: replace(s, audit_head=head))
                except ConfigurationError:
                    state = None
                if state is not None:  # anchored outside the directory too, where possible
                    try:
                        self.state.anchor(state.vault_id, head)
                    except VaultError as exc:
                        logger.warning("the key source could not anchor the audit log's head "
                                       "(%s): `credseal verify` will flag it", exc.message)
        return {**record, "mac_key": key_id, "mac": mac}

    def _raw_lines(self) -> list[bytes]:
        try:
            data = files.read_private(self.path, 64 * 1024 * 1024)
        except FileNotFoundError:
            return []
        lines = data.split(b"\n")  # only "\n" ends a line (U+2028 and the like are text)
        return lines[:-1] if lines and lines[-1] == b"" else lines

    def _last_line_hash(self) -> str | None:
        lines = self._raw_lines()
        return hashlib.sha256(lines[-1]).hexdigest() if lines else None

    def records(self) -> Iterator[dict[str, Any]]:
        """Yield the records, oldest first; a damaged line is skipped (unverified: use
        :meth:`check` before trusting one)."""
        for raw in self._raw_lines():
            try:
                record = json.loads(raw)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record

    def check(self, ring: KeyRing, head: str | None = None,
              anchored: str | None = None) -> AuditCheck:
        """Verify every line's MAC and the chain over the exact bytes of the file.

        ``prev`` is the SHA-256 of the previous line's bytes, so a line under a key the ring
        no longer holds is still pinned by the lines after it, and ``head`` (from
        ``vault.state``: the SHA-256 of the last line) pins the end. A line whose MAC cannot be
        checked (a retired key; written before 0.2) is unverifiable, not forged. ``anchored``
        (the head the key source recorded for this directory, outside it) must be one of the
        lines: else the log and the state were rolled back together to an earlier pair.
        """
        lines = self._raw_lines()
        verified = unverifiable = 0
        prev: str | None = None
        hashes: list[str] = []
        chained = False
        for number, raw in enumerate(lines, 1):
            found = _SUFFIX.search(raw)
            digest = hashlib.sha256(raw).hexdigest()
            if found is None:
                unverifiable += 1  # written before the log was chained, or without keys
                prev = digest
                hashes.append(digest)
                continue
            chained = True
            body = raw[:found.start()] + b"}"
            try:
                record = json.loads(body)
            except ValueError:
                return AuditCheck(len(lines), verified, unverifiable, f"line {number} is not "
                                  "JSON")
            if not isinstance(record, dict) or record.get("prev") != prev:
                return AuditCheck(len(lines), verified, unverifiable, f"the chain breaks at "
                                  f"line {number}: a line before it was removed, added, moved "
                                  "or edited")
            key_id, mac = found.group(1).decode(), found.group(2).decode()
            ok = ring.check_line_mac(body, key_id, mac)
            if found.group(3) is not None and ring.check_line_mac(
                    body, found.group(3).decode(), found.group(4).decode()) is False:
                ok = False
            if ok is None:
                unverifiable += 1  # under a key retired since: cannot tell, not forged
            elif not ok:
                return AuditCheck(len(lines), verified, unverifiable,
                                  f"line {number} was edited or forged (its MAC is wrong)")
            else:
                verified += 1
            prev = digest
            hashes.append(digest)
        if chained and head is None:
            return AuditCheck(len(lines), verified, unverifiable, "the log is chained but "
                              "vault.state records no head for it: the state was removed")
        # A crash between writing the last line and recording it leaves the head one behind.
        if head is not None and head not in hashes[-2:]:
            return AuditCheck(len(lines), verified, unverifiable, "the log ends before the last "
                              "line the vault recorded: it was truncated or rolled back")
        if anchored is not None and anchored not in hashes:
            return AuditCheck(len(lines), verified, unverifiable, "the log lacks the line the "
                              "key source anchored for this directory: the log and vault.state "
                              "were rolled back together (a restored backup?), or replaced")
        return AuditCheck(len(lines), verified, unverifiable, None)


def audit_of(vault: Vault, context: Context) -> AuditLog:
    """The tamper-evident audit log of ``vault`` (keyed with its ring; head in its state)."""
    entries = entries_of(vault)
    return AuditLog(vault.directory, context, entries.keys, StateFile(entries))
