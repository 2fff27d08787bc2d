"""The everyday operator actions as library calls: init, status, inspect, verify, passwd.

``vault.cli`` only parses arguments, prompts, prints and exits; the work is here, returning
plain reports (``to_dict()`` gives their JSON form). ``status``, ``inspect`` and ``verify`` are
read-only: they open the vault with ``read_only=True`` and change nothing in the directory.
No report ever holds a key, a passphrase or a value, except :attr:`InitResult.key_text` for
the environment source, which the operator must store (printed once, on purpose).
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from vault import _files as files
from vault._crypto import kdf
from vault._crypto.keys import RETIRED, Key, KeyRing, KeyState
from vault._store.audit import AuditLog, audit_of
from vault._store.context import Context
from vault._store.entries import ENTRY_SUFFIX, QUARANTINE_DIR, EntryInfo, invalidity, ms
from vault._store.journal import JOURNAL_DIR, RECORD_SUFFIX, Journal
from vault._store.state import STATE_FILE, RotationLock, StateFile
from vault._store.store import DEFAULT_TTL, Vault, entries_of
from vault.cache import shared_target
from vault.config import (
    VaultSettings,
    current_context,
    open_primary,
    open_shared,
    source_from_settings,
)
from vault.errors import ConfigurationError, EntryExpiredError, VaultError
from vault.keysources import (
    KEYFILE_NAME,
    BoundKeySource,
    EnvKeySource,
    OSKeyringSource,
    PassphraseKeySource,
)
from vault.ops._binding import bind_directory
from vault.ops._reports import Report
from vault.sources import TableTarget

__all__ = [
    "EntryCheck",
    "InitResult",
    "InspectReport",
    "KeyUsage",
    "StatusReport",
    "VerifyReport",
    "change_passphrase",
    "existing_dir",
    "init_vault",
    "inspect_entry",
    "source_states",
    "status",
    "verify",
    "write_metrics",
]

CLOCK_SKEW = 60.0


@dataclass(frozen=True)
class InitResult(Report):
    """What ``init`` created. ``key_text`` is set for the env source only: **the secret key**.

    ``joined``: the directory joined the vault the key source already serves (``--join``);
    no key was made.
    """

    directory: Path
    source: str
    key_id: str
    key_text: str | None = field(default=None, repr=False)
    vault_id: str | None = None
    joined: bool = False


def _vault_contents(directory: Path) -> list[str]:
    """What in ``directory`` shows that a vault lives there already (empty if nothing)."""
    try:
        names = set(os.listdir(directory))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ConfigurationError(f"{directory} cannot be listed ({exc.strerror})") from None
    found = []
    entries = sum(name.endswith(ENTRY_SUFFIX) for name in names)
    if entries:
        found.append(f"{entries} entries")
    journal = directory / JOURNAL_DIR
    if JOURNAL_DIR in names and journal.is_dir() and any(
            n.endswith(RECORD_SUFFIX) for n in os.listdir(journal)):
        found.append("journal records")
    found += [name for name in (KEYFILE_NAME, STATE_FILE) if name in names]
    return found


def init_vault(settings: VaultSettings, *, passphrase: bytes | str | None = None,
               context: Context | None = None, join: bool = False) -> InitResult:
    """Create the vault directory and a first key in the configured key source, or with
    ``join`` add the directory to the vault the key source already serves; audited (the
    record dates the key, which the env source cannot).

    A directory that holds entries, journal records, a keyfile or a vault state is refused
    (init never makes a second key set beside a vault's data). A failed init removes what it
    created: the directory if it did not exist, else only the files it made, and a keyring
    key it stored.

    Raises:
        ConfigurationError: settings missing, ``CREDSEAL_KEYS`` already set (env source,
            without ``join``), the directory holds a vault, or ``join`` has nothing to join.
        KeySourceError: the source already holds keys, or cannot store them.
    """
    directory = settings.require_dir()
    kind = settings.require_key_source()
    if kind == "env" and settings.keys is not None and not join:
        raise ConfigurationError("CREDSEAL_KEYS is already set: it holds the keys of a vault",
                                 hint="to add this directory to that vault, run `credseal init "
                                      "--join`; for a new, separate vault, run init without "
                                      "CREDSEAL_KEYS set")
    if join and kind == "passphrase":
        raise ConfigurationError("a passphrase vault has one directory, its keyfile's: there "
                                 "is no vault to join", hint="run init without --join")
    found = _vault_contents(directory)
    if found:
        raise ConfigurationError(
            f"{directory} already holds a vault ({', '.join(found)}): init would make a second, "
            "unrelated key set beside it", hint="check CREDSEAL_DIR, CREDSEAL_KEY_SOURCE and "
            "CREDSEAL_KEYRING_SERVICE: this vault's own key source opens it (`credseal status` "
            "shows its key ids)")
    created = not os.path.lexists(directory)
    stored: Key | None = None
    source = None
    Vault(directory)  # creates the directory 0700, or checks an existing one
    try:
        with files.InitGuard(str(directory), created=created) as guard:
            found = _vault_contents(directory)  # again, under the lock: a concurrent init
            if found:
                guard.keep()  # that init's vault: never undo anything of it
                raise ConfigurationError(f"{directory} already holds a vault ({', '.join(found)})",
                                         hint="another init made it just now: use that vault")
            if join:  # (the guard undoes what follows if it fails)
                source = source_from_settings(settings, passphrase)
                keyed = Vault(directory, keys=source)
                state = bind_directory(keyed, source)
                key = keyed.keys.primary
            elif kind != "env":
                key = Key.generate()
                source = source_from_settings(settings, passphrase)
                source.create(key)
                stored = key
                keyed = Vault(directory, keys=source)
                state = bind_directory(keyed, source)
            else:  # the env source keeps no dates: the vault's sealed state dates the key
                key = Key.generate()
                keyed = Vault(directory, keys=KeyRing([key]))
                StateFile(entries_of(keyed)).named(key.id)
                state = StateFile(entries_of(keyed)).ensure()
            assert state is not None
            audit_of(keyed, context or current_context()).append(
                "init", outcome="joined" if join else "created", source_kind=kind,
                new_key_id=None if join else key.id, vault_id=state.vault_id)
    except BaseException:
        if stored is not None and isinstance(source, OSKeyringSource):
            with contextlib.suppress(VaultError):
                source.discard(stored.id)
        raise
    return InitResult(directory, kind, key.id,
                      key.to_text() if kind == "env" and not join else None,
                      vault_id=state.vault_id, joined=join)


def change_passphrase(settings: VaultSettings, *, current: bytes | str,
                      new: bytes | str) -> None:
    """Rewrap the keyfile under ``new`` (``credseal passwd``); entries are untouched.

    Raises:
        ConfigurationError: the key source is not ``passphrase``.
        KeySourceError: ``current`` is wrong, or ``new`` is empty.
    """
    source = source_from_settings(settings, current)
    if not isinstance(source, PassphraseKeySource):
        raise ConfigurationError("passwd applies to CREDSEAL_KEY_SOURCE=passphrase only")
    existing_dir(settings)  # a mistyped CREDSEAL_DIR is an error, never a new directory
    source.change_passphrase(new, profile=settings.kdf_profile)


def existing_dir(settings: VaultSettings) -> Path:
    """Return ``CREDSEAL_DIR`` after checking that it exists and is private (never creates it)."""
    directory = settings.require_dir()
    files.check_private_dir(str(directory))  # status and verify never create a vault
    return directory


def source_states(settings: VaultSettings) -> tuple[str, list[KeyState], str | None]:
    """Return (description, key states, KDF profile name) of the configured source.

    Reads without any decryption: for the passphrase source the keyfile is parsed without the
    passphrase (unverified). Raises what the source raises (``KeySourceError`` ...).
    """
    kind = settings.require_key_source()
    if kind == "passphrase":
        keyfile_source = PassphraseKeySource(settings.require_dir())
        keyfile = keyfile_source.unverified_keyfile()
        profile = kdf.profile_name(keyfile.params) or "custom"
        return (f"passphrase (keyfile {keyfile_source.path}; states read without the "
                "passphrase, unverified)", list(keyfile.states), profile)
    source = source_from_settings(settings)
    detail = ("env (CREDSEAL_KEYS)" if isinstance(source, EnvKeySource) else
              f"keyring (service {settings.keyring_service!r})")
    return detail, source.states(), None


@dataclass(frozen=True)
class KeyUsage(Report):
    """One key id: its state in the key source (``None``: unknown to it) and entries using it."""

    id: str
    state: str | None
    created_at: datetime | None
    retired_at: datetime | None
    entries: int


@dataclass(frozen=True)
class HostUsage:
    """One fleet host's last usage report: which key ids its local copies and journal use."""

    host_id: str
    host: str
    directory: str
    reported_at: datetime
    recent: bool
    entries: dict[str, int]
    journal: dict[str, int]


@dataclass(frozen=True)
class StatusReport(Report):
    """``credseal status``: computed from unverified headers, without decrypting anything."""

    directory: Path
    key_source: str | None
    key_source_error: str | None
    kdf_profile: str | None
    keys: tuple[KeyUsage, ...]
    entries: int
    oldest_age_seconds: float | None
    newest_age_seconds: float | None
    expired_unverified: int
    problems: tuple[str, ...]
    journal_pending: int = 0
    journal_oldest_age_seconds: float | None = None
    journal_conflicts: int = 0
    #: things to fix that do not fail the status (a keyfile KDF weaker than configured)
    warnings: tuple[str, ...] = ()
    #: a rotation "running (...)" or "unfinished (...)" (``credseal rotate`` resumes it),
    #: from the lock file, unverified; None when none is under way
    rotation: str | None = None
    #: files in quarantine/ (cached copies and journal records set aside)
    quarantined: int = 0
    #: the shared tier's records per key id (unverified headers); None: no tier configured
    shared_records: dict[str, int] | None = None
    #: why the shared tier could not be counted (an outage, a bad setting)
    shared_error: str | None = None
    #: the fleet's hosts by their authenticated usage reports (needs the key source)
    shared_hosts: tuple[HostUsage, ...] = ()
    #: a sealed primary's rows per key id ("plaintext" for rows not sealed yet; unverified
    #: headers); None: no sealed primary configured (``CREDSEAL_PRIMARY_SEALED``)
    primary_rows: dict[str, int] | None = None
    #: why the primary could not be counted
    primary_error: str | None = None

    def prometheus(self) -> str:
        """This report in Prometheus' text exposition format, for node_exporter's textfile
        collector: entries per key id, journal, quarantine, an unfinished rotation."""
        where = str(self.directory).replace("\\", "\\\\").replace('"', '\\"') \
            .replace("\n", "\\n")
        lines: list[str] = []

        def metric(name: str, help_text: str, values: list[tuple[str, float]]) -> None:
            lines.extend([f"# HELP {name} {help_text}", f"# TYPE {name} gauge"])
            for labels, value in values:
                shown = str(int(value)) if float(value).is_integer() else repr(float(value))
                lines.append(f'{name}{{dir="{where}"{labels}}} {shown}')
        metric("credseal_entries", "Entries per key id (from unverified headers).",
               [(f',key_id="{key.id}"', key.entries) for key in self.keys] or [("", 0)])
        metric("credseal_journal_pending", "Journaled writes waiting for the source.",
               [("", self.journal_pending)])
        metric("credseal_journal_conflicts", "Journaled writes set aside as conflicts.",
               [("", self.journal_conflicts)])
        metric("credseal_journal_oldest_age_seconds", "Age of the oldest journaled write.",
               [("", self.journal_oldest_age_seconds or 0.0)])
        metric("credseal_quarantined", "Files in quarantine/.", [("", self.quarantined)])
        if self.shared_records is not None:
            metric("credseal_shared_records", "Shared tier records per key id (unverified).",
                   [(f',key_id="{key}"', n) for key, n in sorted(self.shared_records.items())]
                   or [("", 0)])
        metric("credseal_rotation_unfinished", "1 if a rotation stopped before its end.",
               [("", int(self.rotation is not None and self.rotation.startswith("unfinished")))])
        return "\n".join(lines) + "\n"

    @property
    def ok(self) -> bool:
        """No problem found (key source readable, every file readable, no orphaned entry, no
        journal conflict waiting for an operator)."""
        return (not self.problems and self.key_source_error is None
                and not self.journal_conflicts)


def unverified_expired(info: EntryInfo, now: datetime, ttl: timedelta) -> bool:
    """The store's validity rule, applied to an unverified header."""
    return invalidity(ms(info.created_at), ms(info.expires_at), ms(now),
                      round(ttl.total_seconds() * 1000), round(CLOCK_SKEW * 1000)) is not None


def status(settings: VaultSettings, *, now: datetime | None = None) -> StatusReport:
    """Inventory the vault without a key.

    Raises:
        ConfigurationError: ``CREDSEAL_DIR`` unset. InsecureFileError: the directory is missing
            or not private.
    """
    directory = existing_dir(settings)
    now = now or datetime.now(UTC)
    ttl = timedelta(seconds=settings.ttl) if settings.ttl else DEFAULT_TTL
    read_only_vault = Vault(directory, read_only=True)
    scan = read_only_vault.scan()
    problems = [f"{path.name}: {why}" for path, why in scan.problems]
    detail: str | None = None
    states: list[KeyState] = []
    error = profile = None
    try:
        detail, states, profile = source_states(settings)
    except VaultError as exc:
        error = exc.message + (f" ({exc.hint})" if exc.hint else "")
    counts: dict[str, int] = {}
    for info in scan.entries:
        counts[info.key_id] = counts.get(info.key_id, 0) + 1
    usage = [KeyUsage(s.id, s.state, s.created_at, s.retired_at, counts.pop(s.id, 0))
             for s in states]
    usage += [KeyUsage(key_id, None, None, None, n) for key_id, n in sorted(counts.items())]
    for key in usage:
        if key.entries and (key.state == RETIRED or (key.state is None and error is None)):
            problems.append(f"{key.entries} entries use key {key.id}, which the key source "
                            f"{'retired' if key.state else 'does not hold'}: they cannot be "
                            "opened")
    ages = [(now - info.created_at).total_seconds() for info in scan.entries]
    warnings = []
    configured = settings.kdf_profile or kdf.DEFAULT_PROFILE
    if profile is not None and profile in kdf.PROFILES and configured in kdf.PROFILES and \
            kdf.weaker(kdf.PROFILES[profile], kdf.PROFILES[configured]):
        warnings.append(f"the keyfile's KDF profile {profile} is weaker than the configured "
                        f"{configured}: run `credseal passwd` with CREDSEAL_KDF_PROFILE="
                        f"{configured}")
    rotation = RotationLock(directory, current_context()).probe()
    if rotation is not None and rotation.startswith("unfinished"):
        rerun = rotation.rsplit("rerun: ", 1)[-1].rstrip(")") if "rerun: " in rotation \
            else "credseal rotate"
        problems.append(f"a rotation stopped before its end ({rotation.split('(', 1)[1]}: run "
                        f"`{rerun}` again to resume it")
    pending, oldest, conflicts = Journal(read_only_vault).unverified_summary()
    if conflicts:
        problems.append(f"{conflicts} journaled writes conflict with the source's value: "
                        "`credseal journal` lists them")
    shared_records, shared_error, hosts = _shared_usage(settings, directory)
    primary_rows, primary_error = _primary_usage(settings)
    if primary_rows and primary_rows.get("plaintext"):
        problems.append(f"the primary table is mixed: {primary_rows['plaintext']} plaintext "
                        "rows (`credseal migrate --primary --apply` seals them)")
    if shared_records:
        known = {key.id: key.state for key in usage}
        for key_id, n in sorted(shared_records.items()):
            if known.get(key_id, "") == RETIRED or (key_id not in known and error is None
                                                    and states):
                problems.append(f"{n} shared tier records use key {key_id}, which the key "
                                f"source {'retired' if key_id in known else 'does not hold'}")
    return StatusReport(
        directory=directory, key_source=detail, key_source_error=error, kdf_profile=profile,
        keys=tuple(usage), entries=len(scan.entries),
        oldest_age_seconds=max(ages, default=None), newest_age_seconds=min(ages, default=None),
        expired_unverified=sum(unverified_expired(info, now, ttl) for info in scan.entries),
        problems=tuple(problems), journal_pending=pending,
        journal_oldest_age_seconds=None if oldest is None else max(
            0.0, now.timestamp() - oldest / 1000),
        journal_conflicts=conflicts, warnings=tuple(warnings), rotation=rotation,
        quarantined=_quarantined(directory), shared_records=shared_records,
        shared_error=shared_error, shared_hosts=hosts, primary_rows=primary_rows,
        primary_error=primary_error)


def _primary_usage(settings: VaultSettings) -> tuple[dict[str, int] | None, str | None]:
    """A sealed primary's rows per key id (headers only), or why they could not be read."""
    if settings.primary is None or not settings.primary_sealed:
        return None, None
    try:
        primary = open_primary(settings)
    except VaultError as exc:
        return None, exc.message
    try:
        return dict(TableTarget(primary).key_ids()), None
    except VaultError as exc:
        return {}, exc.message
    except Exception as exc:  # the database is down: its driver's error, a status line
        return {}, f"{type(exc).__name__}: the primary did not answer"
    finally:
        close = getattr(primary, "close", None)
        if close is not None:
            close()


def _shared_usage(settings: VaultSettings, directory: Path
                  ) -> tuple[dict[str, int] | None, str | None, tuple[HostUsage, ...]]:
    """The shared tier's records per key id, the hosts' usage reports (when the key source
    opens: they are sealed), or why they could not be read."""
    try:
        tier = open_shared(settings)
    except VaultError as exc:
        return None, exc.message, ()
    if tier is None:
        return None, None, ()
    try:
        target = shared_target(tier, Vault(directory, read_only=True))
        records = dict(target.key_ids())
        try:
            keyed = shared_target(tier, Vault(directory, keys=source_from_settings(settings),
                                              read_only=True))
            reports = keyed.reports()[0]
        except VaultError:
            reports = []
        hosts = tuple(HostUsage(r.host_id, r.host, r.directory, r.at, r.recent, r.entries,
                                r.journal) for r in reports)
        return records, None, hosts
    except VaultError as exc:
        return {}, exc.message, ()
    finally:
        tier.close()

def write_metrics(path: str | os.PathLike[str], text: str) -> None:
    """Replace ``path`` with ``text`` atomically and durably, mode 0644 (metrics are no
    secret, and node_exporter reads them as its own user).

    Raises:
        ConfigurationError: ``path`` does not end in ``.prom`` (the textfile collector reads
            only those) or its directory does not exist.
    """
    where = os.fspath(path)
    if not where.endswith(".prom"):
        raise ConfigurationError(f"{where} must end in .prom: node_exporter's textfile "
                                 "collector reads only those")
    if not os.path.isdir(os.path.dirname(os.path.abspath(where))):
        raise ConfigurationError(f"the directory of {where} does not exist")
    files.write_atomic(os.path.abspath(where), text.encode("utf-8"), "metrics", mode=0o644)


def _quarantined(directory: Path) -> int:
    try:
        return len(os.listdir(directory / QUARANTINE_DIR))
    except OSError:
        return 0


@dataclass(frozen=True)
class InspectReport(Report):
    """One entry's header fields, **unverified** (read without a key); never the value.

    The fields of ``store.EntryInfo``, flat (it is the JSON of ``credseal inspect``), plus
    the validity computed for this reader's TTL.
    """

    name: str
    file: Path
    key_id: str
    created_at: datetime
    expires_at: datetime
    size: int
    valid_until: datetime
    expired_unverified: bool


def inspect_entry(settings: VaultSettings, name: str, *,
                  now: datetime | None = None) -> InspectReport:
    """Return the unverified header of entry ``name``.

    Raises:
        EntryNotFoundError, FormatError, InsecureFileError, ConfigurationError.
    """
    info = Vault(existing_dir(settings), read_only=True).info(name)
    ttl = timedelta(seconds=settings.ttl) if settings.ttl else DEFAULT_TTL
    return InspectReport(**asdict(info), valid_until=min(info.expires_at, info.created_at + ttl),
                         expired_unverified=unverified_expired(info, now or datetime.now(UTC), ttl))


@dataclass(frozen=True)
class EntryCheck(Report):
    """The outcome of opening one entry (or one unreadable file)."""

    name: str
    status: Literal["ok", "expired", "failed"]
    key_id: str | None
    detail: str | None = None


@dataclass(frozen=True)
class VerifyReport(Report):
    """``credseal verify``: every entry authenticated with the configured keys."""

    directory: Path
    checks: tuple[EntryCheck, ...]
    seconds: float
    audit_lines: int = 0
    audit_verified: int = 0
    audit_unverifiable: int = 0
    audit_problem: str | None = None
    #: a sealed primary's rows (``CREDSEAL_PRIMARY_SEALED``): how many were checked, and
    #: (name, why) of those that did not open; None when there is no sealed primary
    primary_checked: int | None = None
    primary_failures: tuple[tuple[str, str], ...] = ()

    def count(self, status: str) -> int:
        """How many checks have ``status`` ("ok", "expired" or "failed")."""
        return sum(check.status == status for check in self.checks)


def verify(settings: VaultSettings, *, passphrase: bytes | str | None = None,
           names: Sequence[str] | None = None) -> VerifyReport:
    """Open (authenticate) every entry, or only ``names`` (a missing one fails); unreadable
    files are reported as failed (all of them only when every entry is verified).

    Raises:
        ConfigurationError, KeySourceError, InsecureFileError: the vault cannot be opened.
    """
    started = time.monotonic()
    source = source_from_settings(settings, passphrase)  # settings errors before a missing dir
    directory = existing_dir(settings)
    vault = Vault(directory, keys=source, ttl=settings.ttl or DEFAULT_TTL, read_only=True)
    try:
        recorded = StateFile(entries_of(vault)).read()
    except ConfigurationError:  # a forged state: reported with the audit log below
        recorded = None
    if settings.ttl is None and recorded is not None and recorded.ttl_ms is not None:
        # a vault that is no cache (the keyring backend's) records its own TTL
        vault = Vault(directory, keys=source, ttl=recorded.ttl_ms / 1000, read_only=True)
    scan = vault.scan()
    checks = [EntryCheck(path.name, "failed", None, why) for path, why in scan.problems]
    infos = scan.entries
    if names is not None:
        wanted = set(names)
        infos = tuple(info for info in scan.entries if info.name in wanted)
        checks = [EntryCheck(name, "failed", None, "no such entry")
                  for name in sorted(wanted - {info.name for info in infos})]
    for info in infos:
        try:
            vault.read(info.name)
        except EntryExpiredError as exc:
            checks.append(EntryCheck(info.name, "expired", info.key_id, exc.message))
        except VaultError as exc:
            checks.append(EntryCheck(info.name, "failed", info.key_id,
                                     f"{type(exc).__name__}: {exc.message}"))
        else:
            checks.append(EntryCheck(info.name, "ok", info.key_id))
    checks.sort(key=lambda c: c.name)
    try:
        sealed = StateFile(entries_of(vault)).read()
        binding = source.binding() if isinstance(source, BoundKeySource) else None
        # Also when vault.state is gone: deleting it with the log must not hide the anchor.
        anchored = (binding.head_of(os.path.realpath(vault.directory))
                    if binding is not None and (sealed is None
                                                or binding.vault_id == sealed.vault_id)
                    else None)
        audit = AuditLog(vault.directory, current_context()).check(
            vault.keys, None if sealed is None else sealed.audit_head, anchored)
        lines, verified, unverifiable, problem = (audit.lines, audit.verified,
                                                  audit.unverifiable, audit.problem)
    except VaultError as exc:
        lines = verified = unverifiable = 0
        problem = exc.message
    primary_checked: int | None = None
    primary_failures: list[tuple[str, str]] = []
    if names is None and settings.primary is not None and settings.primary_sealed:
        primary = open_primary(settings, keys=source)
        try:
            rows = TableTarget(primary).verify()
        finally:
            close = getattr(primary, "close", None)
            if close is not None:
                close()
        primary_checked = len(rows)
        primary_failures = [(name, why) for name, why in rows if why is not None]
    return VerifyReport(directory=vault.directory, checks=tuple(checks),
                        seconds=time.monotonic() - started, audit_lines=lines,
                        audit_verified=verified, audit_unverifiable=unverifiable,
                        audit_problem=problem, primary_checked=primary_checked,
                        primary_failures=tuple(primary_failures))
