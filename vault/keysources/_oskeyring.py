"""The OS keyring key source: Secret Service, macOS Keychain, Windows Credential Locker.

Errors of ``keyring`` become :class:`~vault.errors.KeySourceError` with a hint:
``NoKeyringError`` (a headless machine: no backend) says how to choose another source or
start a Secret Service; ``KeyringLocked`` says to unlock the login keyring. ``keyring`` is
imported on first use, so the other key sources never pay for it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from typing import TYPE_CHECKING, Any

from vault._crypto.keys import ACTIVE, RETIRED, Key, KeyRing, KeyState
from vault.errors import ConfigurationError, InvalidKeyError, KeySourceError
from vault.keysources._binding import Binding, parse_binding
from vault.keysources._states import (
    check_states,
    exact_keys,
    invalid,
    loads_strict,
    now,
    parse_state,
    ring_from,
    state_to_json,
    trimmed,
    with_added,
    with_promoted,
    with_retired,
)

if TYPE_CHECKING:
    from keyring.backend import KeyringBackend

__all__ = ["DEFAULT_SERVICE", "LEGACY_SERVICE", "MAX_INDEX_CHARS", "NO_KEYRING_HINT",
           "OSKeyringSource"]

DEFAULT_SERVICE = "credseal"
#: The default service name before the rename; a vault made then keeps its keys there.
LEGACY_SERVICE = "credvault"
logger = logging.getLogger("vault.keysources")

NO_KEYRING_HINT = ("set CREDSEAL_KEY_SOURCE=env with CREDSEAL_KEYS (`credseal init` prints "
                   "them), or CREDSEAL_KEY_SOURCE=passphrase, or start a Secret Service in a D-Bus "
                   "session (dbus-run-session, then gnome-keyring-daemon --unlock "
                   "--components=secrets)")
MAX_INDEX_CHARS = 1024  # Windows Credential Locker: 2,560 bytes of UTF-16 per item


class OSKeyringSource:
    """Keys in the OS keyring (Secret Service, macOS Keychain, Windows Credential Locker).

    One small item per key (user ``key:<id>``, the key text) plus an index item (user
    ``index``): JSON ``{"version": 1, "keys": [{"id", "state", "created_at"[, "retired_at"]}]}``
    kept under ``MAX_INDEX_CHARS`` by dropping the oldest retired records; and a ``vault``
    item (``{"version": 1, "vault": {"id", "dirs"}}``, the binding) kept under the same
    bound by forgetting the least recently bound directories. Mutations are
    read-modify-write of the index: run one administrative command at a time.

    Args:
        service: the keyring service name (``CREDSEAL_KEYRING_SERVICE``).
        backend: a ``keyring`` backend; default: ``keyring.get_keyring()`` at each call.
        legacy_service: a service to use instead while ``service`` holds no index and this
            one does (the default service's name before the rename, ``LEGACY_SERVICE``): its
            keys are used, with a warning, so an upgrade never looks like an empty keyring.
    """

    kind = "keyring"
    INDEX_USER = "index"
    VAULT_USER = "vault"
    INDEX_VERSION = 1

    def __init__(self, service: str = DEFAULT_SERVICE, *,
                 backend: KeyringBackend | None = None,
                 legacy_service: str | None = None) -> None:
        if not isinstance(service, str) or not service.strip():
            raise ConfigurationError("the keyring service name must be a non-empty string")
        self.service = service
        self._legacy = legacy_service if legacy_service != service else None
        self._backend = backend
        self._index_text: str | None = None
        self._ring: KeyRing | None = None

    def __repr__(self) -> str:
        return f"OSKeyringSource(service={self.service!r})"

    def _call(self, what: str, method: str, *args: str, service: str | None = None) -> Any:
        import keyring
        from keyring import errors

        backend = self._backend or keyring.get_keyring()
        if getattr(backend, "credseal_backend", False):
            raise KeySourceError(
                "the OS keyring key source cannot keep a vault's keys in credseal's own keyring "
                "backend: they would be sealed by themselves",
                hint="name a real keyring for this process (unset PYTHON_KEYRING_BACKEND, or "
                     "set it to keyring.backends.SecretService.Keyring), or use "
                     "CREDSEAL_KEY_SOURCE=passphrase")
        try:
            return getattr(backend, method)(service or self.service, *args)
        except errors.NoKeyringError as exc:
            raise KeySourceError("no OS keyring backend is available (no Secret Service, "
                                 "Keychain or Credential Locker was found)",
                                 hint=NO_KEYRING_HINT) from exc
        except errors.KeyringLocked as exc:
            raise KeySourceError("the OS keyring is locked",
                                 hint="unlock the login keyring (log in to the desktop, or "
                                      "`gnome-keyring-daemon --unlock` on a server), then "
                                      "retry") from exc
        except errors.KeyringError as exc:
            raise KeySourceError(f"the OS keyring failed to {what} ({type(exc).__name__})",
                                 hint="run `credseal diagnose`; check that the Secret "
                                      "Service (or Keychain) is running and unlocked") from exc

    def _read_index(self, service: str | None = None) -> tuple[str | None, tuple[KeyState, ...]]:
        service = service or self.service
        text = self._call("read the key index", "get_password", self.INDEX_USER,
                          service=service)
        if text is None:
            return None, ()
        where = f"keyring item {service}/{self.INDEX_USER}"
        doc = exact_keys(loads_strict(text.encode("utf-8"), where, 4 * MAX_INDEX_CHARS),
                             {"version", "keys"}, where, "document")
        if type(doc["version"]) is not int or doc["version"] != self.INDEX_VERSION:
            invalid(where, "version", f"unsupported: this release reads {self.INDEX_VERSION}")
        if not isinstance(doc["keys"], list) or not doc["keys"]:
            invalid(where, "keys", "must be a non-empty list")
        states = tuple(parse_state(obj, where, f"keys[{i}]", material_field=None)[0]
                       for i, obj in enumerate(doc["keys"]))
        check_states(states, where)
        return text, states

    def _legacy_index(self) -> tuple[str | None, tuple[KeyState, ...]]:
        """The index under the legacy service (switching to it), if the own one is empty."""
        assert self._legacy is not None
        own, legacy = self.service, self._legacy
        text, states = self._read_index(legacy)
        if text is None:
            return None, ()
        self.service, self._legacy = legacy, None  # from now on every call goes there
        logger.warning("the OS keyring holds no keys under service %r but does under %r, the "
                       "default before credvault became credseal: using those; set "
                       "CREDSEAL_KEYRING_SERVICE=%s to say so and silence this warning",
                       own, legacy, legacy)
        return text, states

    def _index(self) -> tuple[str, tuple[KeyState, ...]]:
        text, states = self._read_index()
        if text is None and self._legacy is not None:
            text, states = self._legacy_index()
        if text is None:
            raise KeySourceError(f"the OS keyring holds no credseal keys for service "
                                 f"{self.service!r}",
                                 hint="run `credseal init` with CREDSEAL_KEY_SOURCE=keyring, or "
                                      "check CREDSEAL_KEYRING_SERVICE")
        return text, states

    def _dump_index(self, states: tuple[KeyState, ...]) -> str:
        return json.dumps({"version": self.INDEX_VERSION,
                           "keys": [state_to_json(s) for s in states]},
                          separators=(",", ":"))

    def _write_index(self, states: tuple[KeyState, ...]) -> None:
        states = trimmed(states, lambda s: len(self._dump_index(s)) <= MAX_INDEX_CHARS)
        self._call("write the key index", "set_password", self.INDEX_USER,
                   self._dump_index(states))

    def _ring_for(self, text: str, states: tuple[KeyState, ...]) -> KeyRing:
        keys = {}
        for state in states:
            if state.state == RETIRED:
                continue
            item = self._call("read a key", "get_password", f"key:{state.id}")
            if item is None:
                raise KeySourceError(f"the OS keyring item of key {state.id} is missing",
                                     hint="restore it from backup, or retire the key if no "
                                          "entry uses it")
            try:
                key = Key.from_text(item)
            except InvalidKeyError:
                key = None
            if key is None or key.id != state.id:
                raise KeySourceError(f"the OS keyring item of key {state.id} does not hold "
                                     "that key", hint="restore it from backup")
            keys[state.id] = key
        self._index_text = text
        return ring_from(states, keys)

    def load(self) -> KeyRing:
        """Read the index and every live key item."""
        self._ring = self._ring_for(*self._index())
        return self._ring

    def refresh(self, current: KeyRing) -> KeyRing | None:
        """The stored ring if it differs from ``current``: re-reads the index item, and the
        key items only when the index changed since this object last read them."""
        text, states = self._index()
        if self._ring is None or text != self._index_text:
            self._ring = self._ring_for(text, states)
        return self._ring if self._ring.ids != current.ids else None

    def states(self) -> list[KeyState]:
        """The records of the index item (no key item is read)."""
        return list(self._index()[1])

    def binding(self) -> Binding | None:
        """The ``vault`` item: the vault id and directories this service's keys serve."""
        self._index()  # the legacy fallback decides the service first
        text = self._call("read the vault binding", "get_password", self.VAULT_USER)
        if text is None:
            return None
        where = f"keyring item {self.service}/{self.VAULT_USER}"
        doc = exact_keys(loads_strict(text.encode("utf-8"), where, 4 * MAX_INDEX_CHARS),
                         {"version", "vault"}, where, "document")
        if type(doc["version"]) is not int or doc["version"] != self.INDEX_VERSION:
            invalid(where, "version", f"unsupported: this release reads {self.INDEX_VERSION}")
        return parse_binding(doc["vault"], where)

    def bind(self, binding: Binding) -> None:
        """Store ``binding``, forgetting the least recently bound directories if it is too
        long for one item (``MAX_INDEX_CHARS``)."""
        def text(b: Binding) -> str:
            return json.dumps({"version": self.INDEX_VERSION, "vault": b.to_json()},
                              separators=(",", ":"))
        while len(text(binding)) > MAX_INDEX_CHARS and binding.dirs:
            binding = binding.dropping_oldest()  # retire then asks for --all-checked
        self._call("write the vault binding", "set_password", self.VAULT_USER, text(binding))

    def discard(self, key_id: str) -> None:
        """Undo a ``create`` of ``key_id`` that a failed ``credseal init`` made: delete the
        index, binding and key items, only while the index holds that one key alone."""
        from keyring.errors import PasswordDeleteError

        text, states = self._read_index()
        if text is None or [s.id for s in states] != [key_id]:
            return
        for user in (self.VAULT_USER, f"key:{key_id}", self.INDEX_USER):
            try:
                self._call("delete an item", "delete_password", user)
            except KeySourceError as exc:
                if not isinstance(exc.__cause__, PasswordDeleteError):
                    raise

    def _taken(self) -> str:
        binding = None
        with contextlib.suppress(KeySourceError):
            binding = self.binding()
        return f"vault {binding.vault_id}" if binding is not None else "another vault"

    def create(self, first_key: Key) -> None:
        """Store ``first_key`` as the active key; refused if the index item exists."""
        if self._read_index()[0] is not None:
            raise KeySourceError(
                f"the OS keyring service {self.service!r} already holds the keys of "
                f"{self._taken()}; one service serves one vault",
                hint="for a separate vault, set another CREDSEAL_KEYRING_SERVICE (for example "
                     f"{self.service}-<app>) and run init again; to add this directory to "
                     "that vault instead (several directories of one vault), run "
                     "`credseal init --join`")
        if self._legacy is not None and self._legacy_index()[0] is not None:
            raise KeySourceError(f"the OS keyring already holds keys under service "
                                 f"{self.service!r}, the default name before the rename",
                                 hint="those keys are this vault's and are used as they are; "
                                      "to make a separate vault, set another "
                                      "CREDSEAL_KEYRING_SERVICE")
        self._call("store a key", "set_password", f"key:{first_key.id}", first_key.to_text())
        self._write_index((KeyState(first_key.id, ACTIVE, now()),))

    def add(self, key: Key) -> None:
        """Store ``key``'s item, then record it as decrypt-only in the index."""
        states = with_added(self._index()[1], key)
        self._call("store a key", "set_password", f"key:{key.id}", key.to_text())
        self._write_index(states)

    def promote(self, key_id: str) -> None:
        """Make ``key_id`` active in the index."""
        self._write_index(with_promoted(self._index()[1], key_id))

    def retire(self, key_id: str) -> None:
        """Mark ``key_id`` retired in the index, then delete its key item."""
        from keyring.errors import PasswordDeleteError

        self._write_index(with_retired(self._index()[1], key_id))
        try:
            self._call("delete a key", "delete_password", f"key:{key_id}")
        except KeySourceError as exc:
            if not isinstance(exc.__cause__, PasswordDeleteError):
                raise  # a missing item is fine: retiring twice, or a crash in between
