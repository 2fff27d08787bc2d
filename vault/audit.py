"""The audit log: one JSON line per administrative action, next to the entries.

``<vault dir>/audit.jsonl``, created 0600, appended with ``O_APPEND`` and fsynced per record.
Each record holds the time (UTC), the user, the host, the process id, the action and its
fields: key ids, counts, an outcome. **Never a key, a passphrase or a value**: fields are
restricted to numbers, booleans, short strings, and lists/dicts of those, and names of the
fields that may carry secrets are refused outright.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from vault import files
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


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers): fall back to the uid
        return f"uid {os.geteuid()}"


class AuditLog:
    """Append-only JSON-lines audit log in a vault directory.

    Raises:
        InsecureFileError: the log is a symlink, not private, or another user's.
    """

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = os.path.join(os.fspath(directory), AUDIT_FILE)

    def append(self, action: str, **fields: Any) -> dict[str, Any]:
        """Append one record and make it durable; returns the record written.

        Raises:
            ConfigurationError: a field could carry a secret or has an unsupported type.
        """
        for name, value in fields.items():
            _check_name(name)
            _check(value, name)
        record = {"time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                  "user": _user(), "host": socket.gethostname(), "pid": os.getpid(),
                  "action": action, **fields}
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        fd, _ = files.open_nofollow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT,
                                    "audit log")
        try:
            os.write(fd, line)  # one write of one line: O_APPEND keeps concurrent lines whole
            os.fsync(fd)
        finally:
            os.close(fd)
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
