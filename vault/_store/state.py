"""The vault's own state beside its entries: the sealed ``vault.state`` and the rotation lock.

``vault.state`` is a ``KIND_STATE`` envelope (``docs/format.md``) sealed with the ring: the
vault id, the high-water mark of journal records applied to the source, and the resume state
of an unfinished rotation. A writer without the key can delete or restore an older copy of
it, never forge it. A directory adopts a vault id the first time a keyed writer needs the
state (a journal append or replay, a rotation); a ring that cannot open an existing state is
another vault's and is refused. ``rotation.lock`` is only ``flock``-ed for the whole of a
rotation; the holder (pid, host, since) written into it is advisory, shown in the "another
rotation is running" message and never used to decide anything.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from vault import _clock, codec
from vault import _files as files
from vault._crypto import format as fmt
from vault._crypto.keys import KeyRing
from vault._store.context import Context
from vault._store.entries import EntryStore
from vault._store.rewrap import PendingWrite, prepare_rewrap
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    FormatError,
    KeySourceError,
    RotationInProgressError,
    UnknownKeyError,
    VaultError,
)
from vault.keysources import Binding, BoundKeySource

__all__ = ["LOCK_FILE", "STATE_FILE", "RotationLock", "StateFile", "VaultState"]

LOCK_FILE = "rotation.lock"
RERUNS = ("credseal rotate", "credseal rotate --rewrap-only")
STATE_FILE = "vault.state"
MAX_TTL_MS = 36525 * 86_400_000  # vault.MAX_TTL
STATE_NAME = "credseal vault state"  # the envelope's authenticated name
logger = logging.getLogger("vault.store")


@dataclass(frozen=True)
class VaultState:
    """The authenticated state of one vault directory.

    Attributes:
        vault_id: 32 hex digits naming the logical vault (one ring, any number of directories).
        applied: the highest journal record sequence applied to the source (a record at or
            below it is refused: a replanted record cannot apply twice).
        rotation: an unfinished rotation, ``{"new_key_id", "phase", "back"}``, or None.
        keys: when this vault first named each key (ms), for the env source, which keeps no
            dates of its own: ``rotate --if-older-than`` reads key ages here, authenticated.
        published: a key ``rotate`` published for the env source and not yet deployed.
        audit_head: the SHA-256 of the audit log's last line, so a truncated log shows.
        conflicts: the journal records replay set aside, so that only those can be applied by
            an operator (a copy planted in ``conflicts/`` is not one of them).
    """

    vault_id: str
    applied: int = 0
    rotation: dict[str, Any] | None = field(default=None)
    keys: dict[str, int] = field(default_factory=dict)
    published: str | None = None
    audit_head: str | None = None
    conflicts: tuple[str, ...] = ()
    #: 64 hex digits: the key of names hashed by the keyring backend (kept by rotation)
    name_key: str | None = None
    #: the vault's own TTL in ms when it is not a cache (the keyring backend's: no expiry in
    #: practice): commands that open the directory use it unless CREDSEAL_TTL is set
    ttl_ms: int | None = None


def _strings_raw(value: object) -> list[object]:
    return list(value) if isinstance(value, list) else []


def _strings(value: object) -> list[str]:
    return [str(item) for item in _strings_raw(value)]


class StateFile:
    """``vault.state`` of a vault directory: read, changed under its lock, rewrapped.

    A rewrap target (``name`` "state") so that rotation reseals it like an entry.
    """

    name = "state"

    def __init__(self, entries: EntryStore) -> None:
        self._entries = entries
        self.path = f"{entries.dir}/{STATE_FILE}"

    def _lock(self) -> files.FileLock:
        files.ensure_private_dir(self._entries.locks)
        return files.FileLock(f"{self._entries.locks}/state.lock",
                              timeout=self._entries.lock_timeout, what="the vault state")

    def read(self) -> VaultState | None:
        """The authenticated state, or None if the directory has none yet.

        Raises:
            ConfigurationError: it does not open with this ring: another vault's (or forged);
                the vault refuses to follow it.
        """
        try:
            data = files.read_private(self.path, 64 * 1024)
        except FileNotFoundError:
            return None
        except (VaultError, OSError) as exc:  # a symlink, a FIFO, too large, unreadable
            raise ConfigurationError(f"{self.path} cannot be read as this vault's state "
                                     f"({type(exc).__name__}); it is not followed") from None
        try:
            _, plaintext = self._entries.open_envelope(data, kind=fmt.KIND_STATE,
                                                            name=STATE_NAME)
            doc = codec.loads(plaintext)
        except (DecryptionError, FormatError, UnknownKeyError) as exc:
            bound = self._bound_id_quietly()
            raise ConfigurationError(
                f"{self.path} does not open with this key ring ({type(exc).__name__}): the "
                "directory belongs to another vault than "
                + (f"vault {bound}, the key source's" if bound else "the key source's")
                + ", or the file was forged",
                hint="use this directory's own keys, or restore vault.state from a backup of "
                     "this directory; removing it would reset the journal's high-water mark, "
                     "so a replanted record could apply again: inspect journal/ first") from None
        keys = doc.get("keys", {}) if type(doc) is dict else None
        if (type(doc) is not dict or doc.get("v") not in (1, 2)
                or type(doc.get("vault_id")) is not str
                or not (doc.get("ttl_ms") is None or (
                    type(doc.get("ttl_ms")) is int
                    and 0 < int(str(doc.get("ttl_ms"))) <= MAX_TTL_MS))
                or type(doc.get("applied")) is not int
                or not (doc.get("rotation") is None or type(doc.get("rotation")) is dict)
                or type(keys) is not dict or not all(type(v) is int for v in keys.values())
                or not (doc.get("published") is None or type(doc.get("published")) is str)
                or not (doc.get("audit_head") is None or type(doc.get("audit_head")) is str)
                or not (doc.get("name_key") is None or (
                    type(doc.get("name_key")) is str and len(str(doc.get("name_key"))) == 64))
                or type(doc.get("conflicts", [])) is not list
                or len(_strings(doc.get("conflicts", []))) != sum(
                    type(c) is str for c in _strings_raw(doc.get("conflicts", [])))):
            raise ConfigurationError(f"{self.path} has an unknown layout")
        rotation, published, head = doc["rotation"], doc.get("published"), doc.get("audit_head")
        return VaultState(str(doc["vault_id"]), int(str(doc["applied"])),
                          None if rotation is None else dict(rotation),  # type: ignore[arg-type]
                          {str(k): int(str(v)) for k, v in keys.items()},
                          None if published is None else str(published),
                          None if head is None else str(head),
                          tuple(str(c) for c in _strings(doc.get("conflicts", []))),
                          None if doc.get("name_key") is None else str(doc.get("name_key")),
                          None if doc.get("ttl_ms") is None else int(str(doc.get("ttl_ms"))))

    def _bound_id_quietly(self) -> str | None:
        try:
            return self.bound_id()
        except VaultError:
            return None

    def bound_id(self) -> str | None:
        """The vault id the key source records (None for the env source, a bare ring, or a
        source made before bindings)."""
        source = self._entries.source
        if not isinstance(source, BoundKeySource):
            return None
        binding = source.binding()
        return None if binding is None else binding.vault_id

    def anchor(self, vault_id: str, head: str | None = None) -> None:
        """List this directory in the key source's binding of ``vault_id`` (with ``head``,
        its audit chain's head, when given): ``retire`` then checks it and ``verify`` finds a
        rollback of its log and state together. Nothing for a source without bindings, or
        bound to another vault (the commands refuse that one)."""
        source = self._entries.source
        if not isinstance(source, BoundKeySource):
            return
        binding = source.binding()
        here = os.path.realpath(self._entries.dir)
        if binding is None:
            binding = Binding(vault_id)
        elif binding.vault_id != vault_id or (
                binding.lists(here) and head in (None, binding.head_of(here))):
            return
        source.bind(binding.with_dir(here, head))

    def _write(self, state: VaultState) -> None:
        now = _clock.now_ms()
        self._entries.refresh()
        # v 2 once it holds what a release that reads only v 1 would drop on rewriting it
        # (the keyring backend's name key, its TTL): such a release refuses it instead.
        version = 2 if state.name_key is not None or state.ttl_ms is not None else 1
        plaintext = codec.dumps({"v": version, "vault_id": state.vault_id,
                                 "applied": state.applied,
                                 "rotation": state.rotation, "keys": state.keys,
                                 "published": state.published, "audit_head": state.audit_head,
                                 "conflicts": list(state.conflicts),
                                 "name_key": state.name_key, "ttl_ms": state.ttl_ms})
        envelope = self._entries.keys.seal(kind=fmt.KIND_STATE, name=STATE_NAME,
                                           plaintext=plaintext, created_at=now,
                                           expires_at=fmt.MAX_TIMESTAMP)
        files.write_atomic(self.path, envelope, "state")

    def ensure(self) -> VaultState:
        """The state, adopting a new vault id first if the directory has none."""
        state = self.read()
        if state is not None:
            return state
        return self.update(lambda current: current)

    def update(self, change: Callable[[VaultState], VaultState]) -> VaultState:
        """Read (or adopt), apply ``change`` and durably write the state, under its lock."""
        self._entries.check_writable()
        with self._lock():
            state = self.read()
            adopted = state is None
            if state is None:
                state = VaultState(self.bound_id() or secrets.token_hex(16))
                if self._entries.items():
                    logger.warning("vault %s had no vault id: it adopts %s now (a vault made "
                                   "before credseal 0.2); keep vault.state with its entries",
                                   self._entries.dir, state.vault_id)
            new = change(state)
            self._write(new)
        if adopted:  # a new directory of the vault: the key source lists it from now on
            try:
                self.anchor(new.vault_id)
            except KeySourceError as exc:
                logger.warning("vault %s: the key source could not record this directory "
                               "(%s); `credseal retire` will not see it", self._entries.dir,
                               exc.message)
        return new

    def named(self, key_id: str, *, published: bool = False) -> None:
        """Record that this vault first named ``key_id`` now (kept if known already); with
        ``published``, that it waits to be deployed."""
        now = _clock.now_ms()

        def change(s: VaultState) -> VaultState:
            keys = s.keys if key_id in s.keys else {**s.keys, key_id: now}
            return replace(s, keys=keys, published=key_id if published else s.published)
        self.update(change)

    def name_key(self, *, create: bool = True) -> bytes | None:
        """The vault's name key (32 random bytes, made on first use with ``create``), sealed
        in the state, so that it survives every rotation; None if there is none."""
        state = self.read()
        if (state is None or state.name_key is None) and create:
            made = secrets.token_hex(32)
            state = self.update(lambda s: s if s.name_key else replace(s, name_key=made))
        if state is None or state.name_key is None:
            return None
        return bytes.fromhex(state.name_key)

    def keep_ttl(self, ttl_ms: int) -> None:
        """Record that this vault's entries live ``ttl_ms`` (the commands then use it)."""
        state = self.read()
        if state is None or state.ttl_ms != ttl_ms:
            self.update(lambda s: replace(s, ttl_ms=ttl_ms))

    def applied(self, seq: int) -> None:
        """Raise the high-water mark of applied journal records to ``seq``."""
        self.update(lambda s: s if s.applied >= seq else replace(s, applied=seq))

    # ---- rewrap target

    def items(self) -> list[str]:
        """The state file, if any (its one item)."""
        return [STATE_FILE] if os.path.lexists(self.path) else []

    def prepare(self, item: str, ring: KeyRing,
                wait: bool = True) -> tuple[str, str | None] | PendingWrite | None:
        """Prepare the rewrap of the state (``prepare_rewrap``)."""
        self._entries.check_writable()
        return prepare_rewrap(self.path, "state", self._lock(), ring, kind=fmt.KIND_STATE,
                              name=STATE_NAME, wait=wait)

    def key_ids(self) -> Counter[str]:
        """The key id the state's (unverified) header names."""
        try:
            prefix, size = files.read_private_prefix(self.path, fmt.FIXED_HEADER_SIZE + 64)
            return Counter([fmt.parse_header(prefix, size).key_id.hex()])
        except (FileNotFoundError, VaultError):
            return Counter()

    def sealed_under(self, key_id: str) -> list[str]:
        """The state, if it claims ``key_id`` (it must open: a forged state is refused)."""
        if self.key_ids().get(key_id):
            self.read()
            return [STATE_FILE]
        return []


def _shown(value: Any) -> str:
    """An advisory field of the lock file, fit to be shown: short, printable, else "?"."""
    text = str(value) if isinstance(value, str | int) and not isinstance(value, bool) else "?"
    return text if len(text) <= 64 and text.isprintable() else "?"


class RotationLock:
    """The vault's rotation lock: one rotation at a time, and where an unfinished one was.

    The ``flock`` on ``rotation.lock`` excludes other rotations (the kernel drops it when its
    holder dies). How far a rotation got lives in the sealed vault state (``state``): a
    planted or edited lock file steers nothing. The holder (pid, host, since) written into
    the lock file is advisory, for the "another rotation is running" message only.
    """

    def __init__(self, directory: str | os.PathLike[str], context: Context,
                 state: StateFile | None = None) -> None:
        self.path = os.path.join(os.fspath(directory), LOCK_FILE)
        self.context = context
        self.state = state
        self._lock = files.FileLock(self.path, timeout=0.0, what="the rotation lock")

    def acquire(self, command: str = "credseal rotate") -> dict[str, Any] | None:
        """Take the lock; return the authenticated resume state an unfinished rotation left
        (None without a state file, or when nothing is unfinished).

        Raises:
            RotationInProgressError: a live process holds it; the message names it (advisory).
            ConfigurationError: the vault state does not open with this ring.
        """
        taken = False
        for _ in range(20):  # `status` probes with a momentary shared lock: try again briefly
            taken = self._lock.acquire(blocking=False)
            if taken:
                break
            time.sleep(0.005)
        if not taken:
            holder = self._read()
            raise RotationInProgressError(
                f"another rotation is running: pid {_shown(holder.get('pid'))} on host "
                f"{_shown(holder.get('host'))} since {_shown(holder.get('since'))}",
                hint="wait for it to finish; a rotation that was killed releases the lock "
                     "and the next run resumes it")
        try:
            self._lock.write_state(json.dumps({
                "pid": os.getpid(), "host": self.context.host,
                "since": datetime.now(UTC).isoformat(timespec="seconds"),
                "command": command}).encode())
            if self.state is None:
                return None
            current = self.state.read()
        except BaseException:
            self._lock.release()
            raise
        return None if current is None else current.rotation

    def probe(self) -> str | None:
        """Read-only, without the key: ``"running (...)"`` while a process holds the lock,
        ``"unfinished (...)"`` when the last rotation stopped before its end (the holder it
        named is still written), else None. Advisory: from the unauthenticated lock file."""
        try:
            held = files.lock_is_held(self.path)
        except VaultError:
            return None
        if held is None:
            return None
        holder = self._read()
        who = (f"pid {_shown(holder.get('pid'))} on host {_shown(holder.get('host'))} since "
               f"{_shown(holder.get('since'))}")
        if held:
            return f"running ({who})"
        # Only our own two commands: the file is unauthenticated, and its text is shown as
        # what the operator should run.
        rerun = holder.get("command") if holder.get("command") in RERUNS else "credseal rotate"
        return f"unfinished (stopped: {who}; rerun: {rerun})" if holder else None

    def _read(self) -> dict[str, Any]:
        try:
            data = files.read_private(self.path, 64 * 1024)
            holder = json.loads(data) if data else {}
        except (FileNotFoundError, ValueError, VaultError):
            return {}
        return holder if isinstance(holder, dict) else {}

    def record(self, **progress: Any) -> None:
        """Durably record how far the rotation got (phase, new key id) in the sealed state."""
        if self.state is not None:
            self.state.update(lambda s: replace(s, rotation=dict(progress)))

    def release(self, *, finished: bool) -> None:
        """Release; with ``finished`` the resume state is cleared (nothing to resume)."""
        try:
            if finished:
                if self.state is not None:
                    self.state.update(
                        lambda s: s if s.rotation is None else replace(s, rotation=None))
                self._lock.write_state(b"")  # kept otherwise: `status` shows it unfinished
        finally:
            self._lock.release()
