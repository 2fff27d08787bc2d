"""``CredsealKeyring``: a ``keyring`` backend that keeps passwords in a credseal vault.

For servers without a desktop session, where the Secret Service needs a D-Bus session and the
alternatives are weak (``docs/integrations.md`` compares them). Every password is an entry of
its own vault: sealed with AES-256-GCM, written atomically and durably, under the vault's
locks. It is used only when configured, never chosen by surprise::

    export PYTHON_KEYRING_BACKEND=vault.integrations.keyring_backend.CredsealKeyring
    export CREDSEAL_BACKEND_DIR=/var/lib/myapp/keyring CREDSEAL_BACKEND_KEY_SOURCE=passphrase
    export CREDSEAL_BACKEND_PASSPHRASE_FILE=/run/credentials/myapp/credseal_backend_passphrase

(or ``default-keyring`` in keyring's configuration file). Its settings are credseal's under
the prefix ``CREDSEAL_BACKEND_`` (``vault.config.BackendSettings``), so it never shares a
vault with a service by accident; the vault is created on first use (with the passphrase
source, its keyfile; with the keyring source, its keys, in another keyring than this one).

Names stay private: the entry of (service, username) is named by an HMAC of the pair, as
canonical JSON, under the vault's name key (32 random bytes sealed in ``vault.state``, kept
by every rotation), so the files show neither. The pair is stored inside the sealed value and
checked on every read. Limits: service and username up to ``MAX_NAME_CHARS`` characters each,
a password up to ``MAX_PASSWORD_BYTES`` bytes of UTF-8. Passwords are not a cache: the vault
uses the longest TTL (``vault.MAX_TTL``, about 100 years), so an entry never expires in
practice and the rollback window is as long (``docs/security.md``).
"""

from __future__ import annotations

import json
import logging
import os
import threading
from typing import Any

from jaraco.classes import properties
from keyring import errors as keyring_errors
from keyring.backend import KeyringBackend

from vault import _files as files
from vault._crypto import aead
from vault._crypto.keys import Key
from vault._store.state import StateFile
from vault._store.store import MAX_TTL, Vault, entries_of
from vault.config import BackendSettings, keyring_backend_configured, source_from_settings
from vault.errors import EntryNotFoundError, KeySourceError, VaultError
from vault.keysources import KeySource, PassphraseKeySource

__all__ = ["MAX_NAME_CHARS", "MAX_PASSWORD_BYTES", "CredsealKeyring"]

MAX_NAME_CHARS = 1024
MAX_PASSWORD_BYTES = 64 * 1024
_ENTRY_PREFIX = "keyring/"
logger = logging.getLogger("vault.integrations")


def _other_keyring() -> Any:
    """The best viable keyring backend that is not this one (for the keyring key source)."""
    from keyring.backend import get_all_keyring

    skipped = ("keyring.backends.fail", "keyring.backends.chainer")
    # keyring's own rule: a priority of 1 or more is recommended; below that are plaintext
    # files (keyrings.alt) and backends that prompt, which must never hold a vault's keys.
    found = [k for k in get_all_keyring() if not getattr(k, "credseal_backend", False)
             and type(k).__module__ not in skipped and k.priority >= 1]
    if not found:
        raise KeySourceError("no other keyring backend fit to hold the backend vault's keys "
                             "(priority 1 or more) is available",
                             hint="use CREDSEAL_BACKEND_KEY_SOURCE=passphrase (or env)")
    return max(found, key=lambda k: k.priority)


def _open_source(settings: BackendSettings) -> KeySource:
    """The backend vault's key source, its keys made on first use (keyring, passphrase)."""
    other = _other_keyring() if settings.require_key_source() == "keyring" else None
    source = source_from_settings(settings, keyring_backend=other)
    if source.kind == "env":
        return source
    directory = str(settings.require_dir())
    files.ensure_private_dir(directory)
    files.ensure_private_dir(f"{directory}/.locks")
    # One first use at a time: the keyring source's create is a read-then-write of its index.
    with files.FileLock(f"{directory}/.locks/backend.lock", timeout=30.0,
                        what="the keyring backend's vault"):
        if not _has_keys(source):
            source.create(Key.generate())  # first use
        source.load()  # a wrong passphrase and the like: that error, not a confusing other
    return source


def _has_keys(source: KeySource) -> bool:
    """Whether the source holds keys already (a keyfile, a keyring index)."""
    if isinstance(source, PassphraseKeySource):
        return os.path.lexists(source.path)
    try:
        source.states()  # type: ignore[attr-defined]
    except KeySourceError as exc:
        if "holds no credseal keys" in exc.message:
            return False
        raise
    return True


class CredsealKeyring(KeyringBackend):
    """The keyring backend over a credseal vault (no ``__slots__``: keyring sets properties).

    Args:
        settings: the backend's settings; default ``BackendSettings()`` (environment and
            ``.env``, prefix ``CREDSEAL_BACKEND_``). keyring instantiates it without arguments.
    """

    credseal_backend = True  # the OS keyring key source refuses to keep keys in this backend

    @properties.classproperty
    def priority(cls) -> float:
        """1 when configured (``PYTHON_KEYRING_BACKEND`` or keyring's configuration file name
        it); otherwise ``RuntimeError``: not viable, so keyring never picks it by itself."""
        if not keyring_backend_configured():
            raise RuntimeError("credseal's keyring backend is used only when configured: set "
                               "PYTHON_KEYRING_BACKEND=vault.integrations.keyring_backend."
                               "CredsealKeyring")
        return 1.0

    def __init__(self, *, settings: BackendSettings | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self._settings = settings
        self._vault: Vault | None = None
        self._name_key: bytes | None = None
        self._names: dict[tuple[str, str], str] = {}  # pair -> entry name, in memory only
        self._lock = threading.Lock()

    def _open(self) -> tuple[Vault, bytes]:
        with self._lock:
            if self._vault is None or self._name_key is None:
                settings = self._settings if self._settings is not None else BackendSettings()
                source = _open_source(settings)
                vault = Vault(settings.require_dir(), keys=source, ttl=MAX_TTL)
                state = StateFile(entries_of(vault))
                # No expiry, recorded where every command that opens the directory reads it.
                state.keep_ttl(round(MAX_TTL.total_seconds() * 1000))
                key = state.name_key(create=False)
                if key is None:
                    if any(name.startswith(_ENTRY_PREFIX) for name in vault.names()):
                        raise KeySourceError(
                            "the keyring backend's vault holds passwords but its name key is "
                            "gone (vault.state was removed, or restored from before the key)",
                            hint="restore vault.state from a backup of this directory: without "
                                 "it the passwords cannot be found")
                    key = state.name_key()
                assert key is not None
                self._name_key = key
                self._vault = vault
            return self._vault, self._name_key

    @staticmethod
    def _pair(service: str, username: str) -> bytes:
        for what, text in (("service", service), ("username", username)):
            if not isinstance(text, str) or len(text) > MAX_NAME_CHARS:
                raise ValueError(f"the {what} name must be a string of at most "
                                 f"{MAX_NAME_CHARS} characters")
        try:  # canonical and unambiguous: no separator a name could contain
            return json.dumps([service, username], ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("the service or username is not valid Unicode (a lone "
                             "surrogate)") from None

    def _entry(self, service: str, username: str) -> tuple[Vault, str]:
        vault, name_key = self._open()
        name = self._names.get((service, username))
        if name is None:
            name = _ENTRY_PREFIX + aead.name_digest(name_key, self._pair(service, username))
            if len(self._names) >= 1024:
                self._names.clear()  # bounded: a long-lived process asks for few pairs
            self._names[service, username] = name
        return vault, name

    def get_password(self, service: str, username: str) -> str | None:
        """The password of (service, username), or None."""
        try:
            vault, name = self._entry(service, username)
            value = vault.get(name)
        except EntryNotFoundError:
            return None
        except (VaultError, ValueError) as exc:
            raise keyring_errors.KeyringError(f"credseal keyring: {exc}") from None
        if (not isinstance(value, dict) or value.get("service") != service
                or value.get("username") != username
                or not isinstance(value.get("password"), str)):
            logger.error("credseal keyring: entry %s does not hold the pair it is named for; "
                         "it is ignored", name)
            return None
        password: str = value["password"]
        return password

    def set_password(self, service: str, username: str, password: str) -> None:
        """Store the password of (service, username), atomically and durably."""
        if not isinstance(password, str) or len(password.encode("utf-8", "surrogatepass")) \
                > MAX_PASSWORD_BYTES:
            raise keyring_errors.PasswordSetError(
                f"credseal keyring: a password must be a string of at most "
                f"{MAX_PASSWORD_BYTES} bytes of UTF-8")
        try:
            vault, name = self._entry(service, username)
            vault.put(name, {"service": service, "username": username, "password": password})
        except (VaultError, ValueError) as exc:
            raise keyring_errors.PasswordSetError(f"credseal keyring: {exc}") from None

    def delete_password(self, service: str, username: str) -> None:
        """Delete the password of (service, username); ``PasswordDeleteError`` if none."""
        try:
            vault, name = self._entry(service, username)
            if name not in vault:
                raise keyring_errors.PasswordDeleteError("credseal keyring: no such password")
            vault.delete(name)
        except (VaultError, ValueError) as exc:
            raise keyring_errors.PasswordDeleteError(f"credseal keyring: {exc}") from None
