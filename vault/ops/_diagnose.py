"""``credseal diagnose`` as a library call: settings, vault directory, keys, keyring backend.

Every problem becomes a :class:`Check` (level ok / warning / error) instead of an exception,
so one run reports everything at once. Never shows a key, a passphrase or a setting's value.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from vault import _clock
from vault._crypto import kdf
from vault._store.journal import Journal
from vault._store.state import RotationLock
from vault._store.store import Vault
from vault.config import (
    VaultSettings,
    current_context,
    dotenv_variables,
    hashicorp_variables,
    near_miss,
    open_shared,
    unknown_variables,
)
from vault.errors import ConfigurationError, VaultError
from vault.keysources import NO_KEYRING_HINT
from vault.ops._everyday import existing_dir, source_states
from vault.ops._reports import Report

__all__ = ["Check", "DiagnoseReport", "diagnose"]


@dataclass(frozen=True)
class Check(Report):
    """One diagnose line: ``level`` is "ok", "warning" or "error"."""

    name: str
    level: Literal["ok", "warning", "error"]
    detail: str
    hint: str | None = None


@dataclass(frozen=True)
class DiagnoseReport(Report):
    """``credseal diagnose``: settings, vault directory, key source, keyring backend."""

    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        """No check is an error."""
        return all(check.level != "error" for check in self.checks)


def _keyring_backend(needed: bool) -> Check:
    import keyring
    from keyring.backends import fail

    try:
        backend = keyring.get_keyring()
    except Exception as exc:  # a broken keyring configuration is worth reporting, not a crash
        return Check("keyring backend", "error" if needed else "warning",
                     f"keyring failed to choose a backend ({type(exc).__name__})")
    name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    if isinstance(backend, fail.Keyring):
        return Check("keyring backend", "error" if needed else "ok",
                     f"none found ({name})" + ("" if needed else "; not needed"),
                     NO_KEYRING_HINT if needed else None)
    return Check("keyring backend", "ok", f"{name} (priority {getattr(backend, 'priority', '?')})")


def _keys_check(settings: VaultSettings) -> Check:
    try:
        detail, states, profile = source_states(settings)
    except VaultError as exc:
        return Check("keys", "error", exc.message, exc.hint)
    by_state: dict[str, int] = {}
    for state in states:
        by_state[state.state] = by_state.get(state.state, 0) + 1
    text = f"{detail}: " + ", ".join(f"{n} {s}" for s, n in by_state.items())
    if profile == "test" and settings.kdf_profile != "test":
        return Check("keys", "warning", text + "; KDF profile 'test' is for tests only",
                     "run `credseal passwd` with CREDSEAL_KDF_PROFILE=rfc9106-low-memory")
    configured = settings.kdf_profile or kdf.DEFAULT_PROFILE
    if profile is not None and profile in kdf.PROFILES and kdf.weaker(
            kdf.PROFILES[profile], kdf.PROFILES[configured]):
        return Check("keys", "warning", text + f"; the keyfile's KDF profile {profile} is "
                     f"weaker than the configured {configured}",
                     f"run `credseal passwd` with CREDSEAL_KDF_PROFILE={configured}")
    if profile == "test":
        return Check("keys", "warning", text + "; KDF profile 'test' is for tests only",
                     "run `credseal passwd` with CREDSEAL_KDF_PROFILE=rfc9106-low-memory")
    if settings.key_source == "passphrase" and settings.passphrase is None:
        text += "; CREDSEAL_PASSPHRASE is not set (commands will ask for it)"
    return Check("keys", "ok", text + (f"; KDF profile {profile}" if profile else ""))


def _dotenv_check() -> list[Check]:
    """A ``.env`` that others can read may hand out CREDSEAL_KEYS or CREDSEAL_PASSPHRASE."""
    try:
        mode = stat.S_IMODE(os.stat(".env").st_mode)
    except OSError:
        return []
    if mode & 0o077:
        return [Check("settings", "warning", f".env is readable by group or others (mode "
                      f"{mode:o}); it may hold CREDSEAL_KEYS or CREDSEAL_PASSPHRASE",
                      "chmod 600 .env")]
    return []


def _journal_and_rotation(reader: Vault) -> list[Check]:
    """Pending journaled writes (a warning: they wait for the source), conflicts and an
    unfinished rotation (errors: an operator must act), all read without the key."""
    checks = []
    pending, oldest, conflicts = Journal(reader).unverified_summary()
    if pending:
        age = ("" if oldest is None else
               f", the oldest from {max(0, _clock.now_ms() - oldest) // 1000} s ago")
        checks.append(Check("journal", "warning", f"{pending} journaled writes wait for the "
                            f"source{age}", "they replay when the source is reachable; "
                            "`credseal journal` lists them"))
    if conflicts:
        checks.append(Check("journal", "error", f"{conflicts} journaled writes conflict with "
                            "the source's value", "`credseal journal` lists them; `credseal "
                            "journal resolve NAME --keep-primary|--apply` settles one"))
    if not pending and not conflicts:
        checks.append(Check("journal", "ok", "no journaled write waits"))
    rotation = RotationLock(reader.directory, current_context()).probe()
    if rotation is not None:
        unfinished = rotation.startswith("unfinished")
        rerun = rotation.rsplit("rerun: ", 1)[-1].rstrip(")") if "rerun: " in rotation \
            else "credseal rotate"
        checks.append(Check("rotation", "error" if unfinished else "ok",
                            f"a rotation is {rotation} (from rotation.lock, unverified)",
                            f"run `{rerun}` again: it resumes" if unfinished else None))
    return checks


def diagnose(overrides: Mapping[str, Any] | None = None) -> DiagnoseReport:
    """Check the settings, the vault directory, the key source and the keyring backend.

    Never raises for what it checks (each problem is a :class:`Check`); never shows a key.
    """
    checks: list[Check] = []
    try:
        settings = VaultSettings(**(overrides or {}))
    except ConfigurationError as exc:
        checks.append(Check("settings", "error", exc.message, exc.hint))
        return DiagnoseReport((*checks, _keyring_backend(needed=False)))
    checks.append(Check("settings", "ok", "valid"))
    def typo(name: str, where: str) -> Check:
        meant = near_miss(name)
        return Check("settings", "warning", f"{name} {where} is not a credseal setting"
                     + (f": did you mean {meant}?" if meant else " (a typo?)"),
                     f"rename it to {meant}" if meant else None)
    checks += [typo(name, "in the environment") for name in unknown_variables()]
    dotenv = os.path.abspath(".env")
    in_file = {name: "" for name in dotenv_variables(dotenv)}
    checks += [typo(name, f"in {dotenv}") for name in unknown_variables(in_file)]
    theirs = hashicorp_variables()
    if theirs:
        checks.append(Check("settings", "ok", f"{', '.join(theirs)}: HashiCorp Vault's "
                            "variables, not credseal's; ignored"))
    checks += _dotenv_check()
    if settings.dir is None:
        checks.append(Check("vault directory", "error", "CREDSEAL_DIR is not set",
                            "export CREDSEAL_DIR=/var/lib/<service>/vault"))
    elif not settings.dir.exists() and not settings.dir.is_symlink():
        checks.append(Check("vault directory", "warning", f"{settings.dir} does not exist yet",
                            "`credseal init` creates it"))
    else:
        try:
            reader = Vault(existing_dir(settings), read_only=True)
            scan = reader.scan()
            checks.append(Check("vault directory", "ok" if not scan.problems else "warning",
                                f"{settings.dir}: private, {len(scan.entries)} entries, "
                                f"{len(scan.problems)} unreadable files"))
            checks += _journal_and_rotation(reader)
        except VaultError as exc:
            checks.append(Check("vault directory", "error", exc.message, exc.hint))
    if settings.key_source is None:
        checks.append(Check("key source", "error", "CREDSEAL_KEY_SOURCE is not set",
                            "set it to env, keyring or passphrase (keys.md in the "
                            "documentation explains each)"))
    else:
        checks.append(Check("key source", "ok", settings.key_source))
    checks.append(_keyring_backend(needed=settings.key_source == "keyring"))
    if settings.key_source is not None and (settings.dir is not None
                                            or settings.key_source != "passphrase"):
        checks.append(_keys_check(settings))
    shared = _shared_check(settings)
    if shared is not None:
        checks.append(shared)
    return DiagnoseReport(tuple(checks))


def _shared_check(settings: VaultSettings) -> Check | None:
    """The shared tier (``CREDSEAL_REDIS_*``), if configured: reachable, Redis >= 6.2, and an
    eviction policy that evicts only keys with an expiry (every record has one)."""
    try:
        tier = open_shared(settings)
    except VaultError as exc:
        return Check("shared tier", "error", exc.message, exc.hint)
    if tier is None:
        return None
    try:
        info = tier.server_info()
    except VaultError as exc:
        return Check("shared tier", "error", f"Redis does not answer: {exc.message}",
                     "check CREDSEAL_REDIS_URL (or the Sentinels) and that Redis runs; a "
                     "fleet serves from local copies meanwhile")
    finally:
        tier.close()
    policy = info.maxmemory_policy or "unknown (CONFIG GET is not allowed)"
    detail = (f"Redis {info.version}, maxmemory-policy {policy}, worst case per call "
              f"{tier.worst_case_seconds:.2f} s")
    if info.problems:
        too_old = any("older than 6.2" in problem for problem in info.problems)
        return Check("shared tier", "error" if too_old else "warning",
                     f"{detail}: {'; '.join(info.problems)}",
                     "set maxmemory-policy to a volatile-* policy (volatile-lru): every "
                     "record expires, so only records are evicted, and never before others")
    return Check("shared tier", "ok", detail)

