"""Export of vault entries back to Baileys' plaintext formats, to roll a migration back.

The inverse of the migration: a company entry ``<prefix>/<id>`` becomes a record of the
original service's cache file, an entry ``<prefix>/<stem>`` a file ``<stem>.json`` of a Baileys
multi-file auth folder, written as Baileys writes them (``JSON.stringify(value,
BufferJSON.replacer)``: compact, Buffers as ``{"type":"Buffer","data":"<base64>"}``).
**The output is plaintext credentials**: written only to files created private, never shown;
every export appends an audit record (counts, never names or values).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from vault import _files as files
from vault import codec
from vault._store.audit import audit_of
from vault._store.context import Context
from vault._store.store import Vault, entries_of
from vault.config import current_context
from vault.errors import ConfigurationError, MigrationError
from vault.integrations.baileys._migrate import check_prefix, ms_of

__all__ = ["export_auth_folder", "export_cache_file", "export_node", "write_cache_file"]

_ARRAY_INDEX = re.compile(r"0|[1-9][0-9]{0,9}")


def _open_entry(vault: Vault, name: str) -> tuple[int, Any]:
    """(created_at in ms, value) of an authenticated entry, expired or not."""
    entries = entries_of(vault)
    header, plaintext = entries.open(name, ms_of(None), check_ttl=False)
    return header.created_at, entries.decode(name, plaintext)[1]


def export_node(vault: Vault, name: str) -> bytes:
    """Return entry ``name``'s value as Baileys writes it (a folder file's exact content).

    That is ``JSON.stringify(value, BufferJSON.replacer)``: compact, Buffers as
    ``{"type":"Buffer","data":"<base64>"}``. Expired entries are exported too (authenticated).
    Raises: the errors of ``Vault.get`` except EntryExpiredError.
    """
    return codec.dumps(_open_entry(vault, name)[1], "node")


def _js_order(keys: Iterable[str]) -> list[str]:
    """Keys as JSON.stringify orders an object's: array indices ascending, then the rest."""
    keys = list(keys)
    index = sorted((k for k in keys if _ARRAY_INDEX.fullmatch(k) and int(k) < 2**32 - 1), key=int)
    return index + [k for k in keys if k not in set(index)]


def export_cache_file(vault: Vault, names: Iterable[str], *, prefix: str = "company") -> bytes:
    """Return the cache file that holds the company entries ``names``, as Node would write it.

    Each record is the entry's value plus ``timestamp`` (its created_at, ms) as last field;
    companies in JavaScript's key order. Byte-equal to the imported file if that was written
    by ``JSON.stringify(cache, BufferJSON.replacer)`` with ``timestamp`` last in each record.
    Raises: MigrationError for a name not under ``prefix`` or not holding a company record;
    the errors of ``Vault.get`` except EntryExpiredError.
    """
    prefix = check_prefix(prefix, allow_empty=True)
    records: dict[str, Any] = {}
    for name in names:
        if prefix and not name.startswith(prefix + "/"):
            raise MigrationError(f"entry {name!r} is not under the prefix {prefix!r}")
        created, value = _open_entry(vault, name)
        if type(value) is not dict or not {"creds", "keys"} <= value.keys() or "timestamp" in value:
            raise MigrationError(f"entry {name!r} does not hold a migrated company record")
        records[name[len(prefix) + 1:] if prefix else name] = {**value, "timestamp": created}
    return codec.dumps({k: records[k] for k in _js_order(records)}, "node")


def write_cache_file(vault: Vault, names: Iterable[str], output: str | os.PathLike[str], *,
                     prefix: str = "company", context: Context | None = None) -> Path:
    """Write :func:`export_cache_file`'s bytes to a new private file ``output``; audited.

    The file is created 0600 (temp file, fsync, then linked into place: never partial).
    Raises: as :func:`export_cache_file`; MigrationError if ``output`` exists.
    """
    data = export_cache_file(vault, names, prefix=prefix)
    target = os.fspath(output)
    try:
        files.write_new(target, data)
    except FileExistsError:
        raise ConfigurationError(f"{target} exists: export writes a new file",
                                 hint="choose a new --output path") from None
    audit_of(vault, context or current_context()).append(
        "export", outcome="written", kind="cache-file", files=1)
    return Path(target)


def export_auth_folder(vault: Vault, prefix: str, directory: str | os.PathLike[str], *,
                       new_directory: bool = False,
                       context: Context | None = None) -> list[Path]:
    """Write every entry ``<prefix>/<stem>`` to ``<directory>/<stem>.json`` as Baileys does.

    Files are written 0600 atomically and durably with their mtime set to the entry's
    created_at (so a re-import keeps the timestamps); ``directory`` is created 0700 if missing
    (with ``new_directory``, it must not exist yet). Audited.
    Every entry is opened before anything is written. Returns: the files written.
    Raises: MigrationError if no entry is under the prefix or a target file exists;
    InsecureFileError for a directory that is not private; the errors of ``Vault.get`` except
    EntryExpiredError.
    """
    start = check_prefix(prefix) + "/"
    names = [n for n in vault.names() if n.startswith(start) and "/" not in n[len(start):]]
    if not names:
        raise MigrationError(f"no entry is named {start}<file stem>")
    target = os.fspath(directory)
    if new_directory and os.path.lexists(target):
        raise ConfigurationError(f"{target} exists: export writes a new directory",
                                 hint="choose a new --output path")
    files.ensure_private_dir(target)
    paths = [os.path.join(target, name[len(start):] + ".json") for name in names]
    clash = [p for p in paths if os.path.lexists(p)]
    if clash:
        raise MigrationError(f"{len(clash)} files already exist in {target}, e.g. "
                             f"{os.path.basename(clash[0])!r}; nothing was written",
                             hint="export into an empty directory")
    opened = [_open_entry(vault, name) for name in names]
    for path, (created, value) in zip(paths, opened, strict=True):
        files.write_atomic(path, codec.dumps(value, "node"), "export")
        files.set_mtime(path, created * 1_000_000)
    audit_of(vault, context or current_context()).append(
        "export", outcome="written", kind="auth-folder", files=len(paths))
    return [Path(p) for p in paths]
