"""Migration of plaintext Baileys credentials into a vault, and export back for rollback.

Sources (``docs/migration.md`` is the operator's runbook):

- **cache file** of the original service, ``{"<id>": {"creds": .., "keys": .., "timestamp": <ms>}}``
  written by Node: company ``<id>`` becomes entry ``<prefix>/<id>`` (default prefix ``company``;
  ``""`` for the bare id), valued the record without ``timestamp`` (``{"creds": .., "keys": ..}``
  plus any other field, in file order), created at ``timestamp``.
- **multi-file auth folder** of Baileys' ``useMultiFileAuthState``: file ``<stem>.json`` becomes
  entry ``<prefix>/<stem>`` valued the file's JSON, created at the file's modification time.

Every Buffer form is read (``codec.loads(.., "node")``). An object that is bytes only by its
shape (keys ``"0"``..``"n-1"``, ints 0-255, no Buffer marker: a Uint8Array's JSON, or a map of
counters) is listed in the plan and revived or kept as ``bytes_by_shape`` says (``_shapes``).
``expires_at`` is ``created_at`` plus the
vault's TTL. A record or file already expired under that TTL is skipped and reported, unless
``include_expired=True``: then it is imported **re-dated to the plan's time** (kept with its old
date it would be an entry that ``get`` refuses, as useless as none; the plan shows the old date in
``redated_from``). One dated beyond the vault's clock skew in the future is malformed.

Flow: ``plan_*`` (dry run: reads the source, writes nothing) -> :func:`apply` (writes with those
timestamps, then :func:`verify`) -> :func:`remove_plaintext` (only after a verified apply).
``export_*`` write entries back as Baileys does, for rollback. ``apply``, ``remove_plaintext``
(``_remove``; also when it refuses) and the exports each append their own audit record. Plans,
results and errors never show a value: plaintext is held in a field whose ``repr`` is
``<hidden>``.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NoReturn

from vault import _clock, codec
from vault import _files as files
from vault._crypto import format as fmt
from vault._store.audit import audit_of
from vault._store.context import Context
from vault._store.entries import EntryStore
from vault._store.store import Vault, entries_of
from vault.config import current_context
from vault.errors import EntryNotFoundError, InsecureFileError, MigrationError, VaultError
from vault.integrations.baileys import _shapes
from vault.integrations.baileys._shapes import REVIVE, ShapedBytes

__all__ = [
    "EXISTS", "FAILED", "IMPORTED", "MAX_SOURCE_SIZE", "MISMATCH", "PRESENT", "MigrationPlan",
    "MigrationResult", "Outcome", "PlannedEntry", "Skipped", "apply", "audit_fields",
    "check_prefix", "ms_of", "plan_auth_folder", "plan_cache_file", "verify",
]

MAX_SOURCE_SIZE = 256 * 1024 * 1024
_MAX_AUDIT_PATH = 200  # the audit writer refuses longer strings
#: Outcome statuses. IMPORTED: written now and verified; PRESENT: verified, already there (a
#: rerun); EXISTS: another value holds the name (not written); FAILED: the write raised;
#: MISMATCH: the entry does not open to the planned value and times.
IMPORTED, PRESENT, EXISTS, FAILED, MISMATCH = "imported", "present", "exists", "failed", "mismatch"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_KINDS = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", int: "an integer",
          float: "a float", type(None): "null"}
# Baileys' useMultiFileAuthState (WhiskeySockets/Baileys src/Utils/use-multi-file-auth-state.ts)
# writes JSON.stringify(value, BufferJSON.replacer) (compact, no newline) to `creds.json` and to
# fixFileName(`${type}-${id}.json`), fixFileName replacing '/' with '__' and ':' with '-'. That
# map is not injective ('a:b' and 'a-b' share a file), so entries are named after the file stem,
# which is reversible, rather than after (type, id).


class _Hidden:
    """Plaintext kept for apply and verify: shown as ``<hidden>``, never pickled or copied."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def __repr__(self) -> str:
        return "<hidden>"

    def __deepcopy__(self, memo: dict[int, object]) -> _Hidden:
        return self  # dataclasses.asdict copies deeply: keep it hidden rather than exposed

    def __reduce__(self) -> NoReturn:
        raise TypeError("migration plaintext cannot be pickled")


@dataclass(frozen=True)
class PlannedEntry:
    """An entry to import: its name, source (company id or file name), size and times.

    ``size`` is the stored (tagged) serialization in bytes; ``exists``: the vault already had
    an entry of that name when planned; ``redated_from``: the source's own date, if re-dated;
    ``by_shape``: its objects that are bytes by their shape alone (revived or kept as planned).
    """

    name: str
    source: str
    size: int
    created_at: datetime
    expires_at: datetime
    plaintext: _Hidden = field(repr=False, compare=False)
    exists: bool = False
    redated_from: datetime | None = None
    by_shape: tuple[ShapedBytes, ...] = ()


@dataclass(frozen=True)
class Skipped:
    """A record or file not imported; ``kind``: "expired", "malformed" or "ignored"."""

    source: str
    kind: str
    reason: str


@dataclass(frozen=True)
class MigrationPlan:
    """What :func:`apply` would import (``kind``: "cache-file" or "auth-folder").

    ``bytes_by_shape``: "revive" or "keep", what was done with the objects :attr:`by_shape`
    lists.
    """

    kind: str
    path: Path
    prefix: str
    planned_at: datetime
    entries: tuple[PlannedEntry, ...]
    skipped: tuple[Skipped, ...]
    plan_id: str = field(default_factory=lambda: secrets.token_hex(8))
    #: SHA-256 of every source file read, by path: removal refuses a file changed since.
    digests: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    bytes_by_shape: str = REVIVE

    @property
    def by_shape(self) -> tuple[ShapedBytes, ...]:
        """Every object of a planned entry that is bytes by its shape alone, in plan order."""
        return tuple(shaped for entry in self.entries for shaped in entry.by_shape)


@dataclass(frozen=True)
class Outcome:
    """What happened to one planned entry: ``status`` (see IMPORTED..) and why, if not well."""

    name: str
    status: str
    reason: str = ""


@dataclass(frozen=True)
class MigrationResult:
    """The outcomes of :func:`apply`, one per planned entry, in plan order."""

    plan_id: str
    outcomes: tuple[Outcome, ...]

    @property
    def verified(self) -> bool:
        """True if every planned entry is in the vault and opens to the planned value and times."""
        return all(o.status in (IMPORTED, PRESENT) for o in self.outcomes)


def ms_of(when: datetime | None) -> int:
    """``when`` (an aware datetime; default: the clock) in ms since the epoch."""
    if when is None:
        return _clock.now_ms()
    if when.tzinfo is None:
        raise MigrationError("now must be a timezone-aware datetime")
    return (when - _EPOCH) // timedelta(milliseconds=1)


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=ms)


def _why(exc: VaultError | OSError) -> str:
    text = exc.message if isinstance(exc, VaultError) else exc.strerror or "failed"
    return f"{type(exc).__name__}: {text}"


def check_prefix(prefix: str, *, allow_empty: bool = False) -> str:
    """Return ``prefix`` if it can start entry names ("" only with ``allow_empty``).

    Raises:
        MigrationError: empty, or with a leading or trailing '/'. FormatError: a bad name.
    """
    if prefix == "" and allow_empty:
        return prefix
    if not prefix or prefix.startswith("/") or prefix.endswith("/"):
        raise MigrationError(f"invalid prefix {prefix!r}: it must be non-empty, "
                             "without a leading or trailing '/'")
    fmt.check_name(prefix)  # FormatError for control characters or over 1024 bytes
    return prefix


def _read_source(path: str) -> tuple[bytes, os.stat_result]:
    """Read a plaintext source file: no symlink, a regular file, at most MAX_SOURCE_SIZE bytes.

    Unlike ``files.read_private``, any mode and owner is accepted: such files are what we migrate.
    """
    try:
        return files.read_foreign(path, MAX_SOURCE_SIZE)
    except InsecureFileError as exc:
        problem = ("is a symlink (not followed)" if "symlink" in exc.message
                   else "not a regular file")
        raise MigrationError(f"cannot read {path}: {problem}") from None
    except OSError as exc:
        raise MigrationError(f"cannot read {path}: {exc.strerror}") from None
    except VaultError:
        raise MigrationError(f"{path} is over the {MAX_SOURCE_SIZE}-byte limit of a source "
                             "file") from None


def _exists(vault: Vault, name: str) -> bool:
    try:
        vault.info(name)
    except EntryNotFoundError:
        return False
    except VaultError:
        return True  # an unreadable file holds the name
    return True


def audit_fields(plan: MigrationPlan) -> dict[str, str]:
    """The fields every migrate audit record has: the source's kind and its path.

    The path is absolute (not resolved), with undecodable bytes escaped; one longer than the
    audit writer takes is shortened to ``.../<start of its file name> [sha256:<16 hex of the
    whole path>]``, under 200 characters.
    """
    path = os.fsencode(os.path.abspath(plan.path)).decode("utf-8", "backslashreplace")
    if len(path) > _MAX_AUDIT_PATH:
        digest = hashlib.sha256(path.encode()).hexdigest()[:16]
        tail = f" [sha256:{digest}]"
        path = ".../" + os.path.basename(path)[:_MAX_AUDIT_PATH - 5 - len(tail)] + tail
    return {"source_kind": plan.kind, "source_path": path}


def _revive(plain: Any, text: str | bytes, mode: str) -> tuple[Any, list[tuple[str, int]]]:
    """``text`` (the JSON of ``plain``) read by the node dialect, objects bytes by shape alone
    revived or kept as ``mode`` says, and their (path, length). Raises: VaultError."""
    revived = codec.loads(text, "node")
    if not _shapes.might_hold(text):
        return revived, []
    return _shapes.sort_out(json.loads(text) if plain is None else plain, revived, mode)


def _plan_entry(vault: Vault, name: str, source: str, value: Any, created: int, now: int,
                include_expired: bool,
                shaped: list[tuple[str, int]] | None = None) -> PlannedEntry | Skipped:
    """Check one revived value and its date against the vault's rules (module docstring)."""
    entries = entries_of(vault)
    try:
        fmt.check_name(name)
        plaintext = codec.dumps(value)
    except VaultError as exc:
        return Skipped(source, "malformed", exc.message)
    if len(plaintext) > vault.max_entry_size:
        return Skipped(source, "malformed", f"{len(plaintext)} bytes serialized, over the "
                                            f"vault's entry limit of {vault.max_entry_size}")
    if created < 0:
        return Skipped(source, "malformed", "dated before 1970")
    if created > now + entries.skew_ms:
        return Skipped(source, "malformed", "dated in the future, beyond the vault's clock skew")
    redated_from = None
    if now > created + entries.ttl_ms:
        if not include_expired:
            return Skipped(source, "expired", f"dated {(now - created) / 3.6e6:.1f} h before the "
                                              f"plan, over the vault's TTL of {vault.ttl:g} s")
        redated_from, created = _dt(created), now
    return PlannedEntry(name, source, len(plaintext), _dt(created), _dt(created + entries.ttl_ms),
                        _Hidden(plaintext), _exists(vault, name), redated_from,
                        tuple(ShapedBytes(name, source, path, n) for path, n in shaped or ()))


def _plan_record(vault: Vault, name: str, company: str, record: Any, now: int,
                 include_expired: bool, mode: str) -> PlannedEntry | Skipped:
    """One company record of a cache file: checked, its Buffers revived, planned."""
    if type(record) is not dict:
        return Skipped(company, "malformed", f"record is {_KINDS.get(type(record))}, not an object")
    missing = [k for k in ("creds", "keys", "timestamp") if k not in record]
    if missing:
        return Skipped(company, "malformed", f"record has no {' or '.join(missing)}")
    if type(stamp := record["timestamp"]) is not int:
        return Skipped(company, "malformed", f"timestamp is {_KINDS.get(type(stamp))}, not an "
                                             "integer of ms since the epoch")
    try:
        revived, shaped = _revive(record, _JSON.encode(record), mode)
    except VaultError as exc:
        return Skipped(company, "malformed", exc.message)
    for key in ("creds", "keys"):  # checked after revival: {"0": 1} is bytes, not an object
        if type(revived[key]) is not dict:
            return Skipped(company, "malformed",
                           f"{key} is {_KINDS.get(type(revived[key]), 'bytes')}, not an object")
    value = {k: v for k, v in revived.items() if k != "timestamp"}
    return _plan_entry(vault, name, company, value, stamp, now, include_expired, shaped)


def plan_cache_file(path: str | os.PathLike[str], vault: Vault, *, prefix: str = "company",
                    include_expired: bool = False, now: datetime | None = None,
                    bytes_by_shape: str = REVIVE) -> MigrationPlan:
    """Plan the import of the original service's cache file (a dry run: nothing is written).

    Args: ``path``, the JSON file; ``vault``, the target (its TTL, clock skew and entry size
    limit apply); ``prefix``, entry names are ``<prefix>/<companyId>`` (``""``: the bare id);
    ``include_expired``, import expired records re-dated to ``now``; ``now``, an aware
    datetime, the time of the plan (default: the clock); ``bytes_by_shape``, what becomes of
    an object that is bytes by its shape alone (keys "0".."n-1", ints 0-255, no Buffer
    marker): "revive" (bytes) or "keep" (the object). Either way ``plan.by_shape`` lists
    them. The default is "revive" because that is what the codec and Baileys' own reader do
    with a Uint8Array's JSON, which Baileys 6 wrote for every key (so older sources hold
    dozens); "keep" is for sources whose numbered maps are data. The CLI has no default: it
    refuses ``--apply`` while any such object is undecided.
    Returns: the plan; records that cannot be imported are in ``skipped`` with a reason.
    Raises: MigrationError if the file cannot be read, is not JSON or not a JSON object, or
    for a bad prefix, a naive ``now`` or an unknown ``bytes_by_shape``; FormatError for a
    prefix with control characters.
    """
    now_ms, prefix = ms_of(now), check_prefix(prefix, allow_empty=True)
    mode = _shapes.check_mode(bytes_by_shape)
    data, _ = _read_source(os.fspath(path))
    try:
        document = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise MigrationError(f"{os.fspath(path)} is not UTF-8 text") from None
    except (ValueError, RecursionError) as exc:  # the message says where, never what
        where = (f": {exc.msg} at line {exc.lineno} column {exc.colno}"
                 if isinstance(exc, json.JSONDecodeError) else "")
        raise MigrationError(f"{os.fspath(path)} is not valid JSON{where}") from None
    if type(document) is not dict:
        raise MigrationError(f"{os.fspath(path)} holds {_KINDS.get(type(document))}, not an "
                             "object of company records")
    planned = [_plan_record(vault, f"{prefix}/{company}" if prefix else company, company, record,
                            now_ms, include_expired, mode)
               for company, record in document.items()]
    return _plan(planned, "cache-file", path, prefix, now_ms,
                 {os.fspath(path): hashlib.sha256(data).hexdigest()}, mode)


def plan_auth_folder(path: str | os.PathLike[str], vault: Vault, *, prefix: str,
                     include_expired: bool = False, now: datetime | None = None,
                     bytes_by_shape: str = REVIVE) -> MigrationPlan:
    """Plan the import of a Baileys multi-file auth folder (a dry run: nothing is written).

    Each regular ``*.json`` file becomes entry ``<prefix>/<file name without .json>``, created
    at the file's modification time. Anything else (symlinks, directories, other files) is
    ``ignored`` and left in place; subfolders are not entered.
    Args and raises as :func:`plan_cache_file`; ``prefix`` is required and non-empty.
    """
    now_ms, prefix, folder = ms_of(now), check_prefix(prefix), os.fspath(path)
    mode = _shapes.check_mode(bytes_by_shape)
    try:
        if not stat.S_ISDIR(os.lstat(folder).st_mode):
            raise MigrationError(f"{folder} is not a directory (symlinks are not followed)")
        with os.scandir(folder) as listing:
            items = sorted(listing, key=lambda item: item.name)
    except OSError as exc:
        raise MigrationError(f"cannot list {folder}: {exc.strerror}") from None
    planned: list[PlannedEntry | Skipped] = []
    digests: dict[str, str] = {}
    for item in items:
        if (item.is_symlink() or not item.is_file(follow_symlinks=False)
                or not item.name.endswith(".json")):
            planned.append(Skipped(item.name, "ignored", "not a regular .json file; left alone"))
            continue
        data, st = _read_source(item.path)
        digests[item.path] = hashlib.sha256(data).hexdigest()
        try:
            value, shaped = _revive(None, data, mode)
        except VaultError as exc:
            planned.append(Skipped(item.name, "malformed", exc.message))
            continue
        planned.append(_plan_entry(vault, f"{prefix}/{item.name[:-5]}", item.name, value,
                                   st.st_mtime_ns // 1_000_000, now_ms, include_expired, shaped))
    return _plan(planned, "auth-folder", path, prefix, now_ms, digests, mode)


def _plan(planned: list[PlannedEntry | Skipped], kind: str, path: str | os.PathLike[str],
          prefix: str, now_ms: int, digests: dict[str, str], mode: str) -> MigrationPlan:
    return MigrationPlan(kind, Path(path), prefix, _dt(now_ms),
                         tuple(p for p in planned if isinstance(p, PlannedEntry)),
                         tuple(p for p in planned if isinstance(p, Skipped)), digests=digests,
                         bytes_by_shape=mode)


def _verify_one(entries: EntryStore, entry: PlannedEntry) -> Outcome:
    try:
        header, plaintext = entries.open(entry.name, ms_of(None), check_ttl=False)
        # What get() returns, serialized again: byte-equal means same value, types included.
        same = codec.dumps(entries.decode(entry.name, plaintext)[1]) == entry.plaintext.data
    except VaultError as exc:
        return Outcome(entry.name, MISMATCH, _why(exc))
    if not same:
        return Outcome(entry.name, MISMATCH, "the entry opens to a different value")
    if (header.created_at, header.expires_at) != (ms_of(entry.created_at), ms_of(entry.expires_at)):
        return Outcome(entry.name, MISMATCH, "the entry holds other timestamps")
    return Outcome(entry.name, PRESENT)


def verify(plan: MigrationPlan, vault: Vault) -> tuple[Outcome, ...]:
    """Check that every planned entry opens (authenticated) to its planned value and times.

    Expiry is not checked: an entry that expired since the plan still verifies.
    Returns: one Outcome per planned entry: PRESENT, or MISMATCH with the reason.
    """
    entries = entries_of(vault)
    return tuple(_verify_one(entries, entry) for entry in plan.entries)


def apply(plan: MigrationPlan, vault: Vault, *, overwrite: bool = False,
          context: Context | None = None) -> MigrationResult:
    """Import the planned entries with their planned timestamps, then verify each one; audited.

    An entry already holding the planned value and times is PRESENT (so a rerun after a crash
    finishes the job); one holding anything else is EXISTS and left alone unless ``overwrite``.
    **Warning:** run it while nothing else writes these names (the check is not atomic).
    Returns: a MigrationResult; ``result.verified`` says if every entry is in place.
    Raises: nothing for one entry's failure (it is reported as FAILED or MISMATCH).
    """
    entries = entries_of(vault)
    outcomes: list[Outcome] = []
    for entry in plan.entries:
        if _exists(vault, entry.name):
            check = _verify_one(entries, entry)
            if check.status == PRESENT or not overwrite:
                outcomes.append(check if check.status == PRESENT else Outcome(
                    entry.name, EXISTS, f"{check.reason}; pass overwrite=True to replace it"))
                continue
        try:
            entries.write(entry.name, entry.plaintext.data, ms_of(entry.created_at),
                          ms_of(entry.expires_at))
        except (VaultError, OSError) as exc:
            outcomes.append(Outcome(entry.name, FAILED, _why(exc)))
            continue
        check = _verify_one(entries, entry)
        outcomes.append(Outcome(entry.name, IMPORTED) if check.status == PRESENT else check)
    result = MigrationResult(plan.plan_id, tuple(outcomes))
    audit_of(vault, context or current_context()).append(
        "migrate", outcome="verified" if result.verified else "failed", **audit_fields(plan),
        entries=len(plan.entries), skipped=len(plan.skipped),
        imported=sum(o.status == IMPORTED for o in outcomes))
    return result
