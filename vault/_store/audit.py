"""The audit log: one JSON line per administrative action, next to the entries.

``<vault dir>/audit.jsonl``, created 0600, appended with ``O_APPEND`` and fsynced per record.
Each record holds the time (UTC), the user, the host, the process id, the action and its
fields: key ids, counts, an outcome. **Never a key, a passphrase or a value**: fields are
restricted to numbers, booleans, short strings, and lists/dicts of those, and names of the
fields that may carry secrets are refused outright.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from vault import _files as files
from vault._store.context import Context
from vault.errors import ConfigurationError

__all__ = ["AUDIT_FILE", "AuditLog"]

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


class AuditLog:
    """Append-only JSON-lines audit log in a vault directory.

    Raises:
        InsecureFileError: the log is a symlink, not private, or another user's.
    """

    def __init__(self, directory: str | os.PathLike[str], context: Context) -> None:
        self.path = os.path.join(os.fspath(directory), AUDIT_FILE)
        self.context = context

    def append(self, action: str, **fields: Any) -> dict[str, Any]:
        """Append one record and make it durable; returns the record written.

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
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        files.append_durably(self.path, line, "audit log")
        return record

    def records(self) -> Iterator[dict[str, Any]]:
        """Yield the records, oldest first; a damaged line is skipped."""
        try:
            data = files.read_private(self.path, 64 * 1024 * 1024)
        except FileNotFoundError:
            return
        for line in data.decode("utf-8", "replace").splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                yield record
