"""Where a vault's keys come from: the environment, the OS keyring, or a passphrase keyfile.

A :class:`KeySource` loads a :class:`~vault.keys.KeyRing` and can cheaply tell whether the
stored ring changed (another process rotated), so running services pick up new keys. A
:class:`ManagedKeySource` also lists key states and changes them: ``create`` (``credvault
init``), then for rotation ``add`` (decrypt-only), ``promote`` (active; the old active key
becomes decrypt-only) and ``retire`` (material dropped, the record kept). Exactly one key is
active; retired keys open nothing. Every error is a ``KeySourceError`` with a hint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NoReturn, Protocol, runtime_checkable

from vault import kdf
from vault.errors import InvalidKeyError, KeySourceError
from vault.keyring_source import NO_KEYRING_HINT, KeyringKeySource
from vault.keys import ACTIVE, DECRYPT_ONLY, Key, KeyRing, KeyState
from vault.passphrase_source import PassphraseKeySource

if TYPE_CHECKING:
    from vault.settings import VaultSettings

__all__ = ["NO_KEYRING_HINT", "EnvKeySource", "KeySource", "KeyringKeySource",
           "ManagedKeySource", "PassphraseKeySource", "source_from_settings"]


@runtime_checkable
class KeySource(Protocol):
    """The interface of a key source (environment, OS keyring, passphrase keyfile, yours)."""

    #: short name shown by ``credvault status``: "env", "keyring", "passphrase", ...
    kind: str

    def load(self) -> KeyRing:
        """Return the current ring (primary first, then decrypt-only keys).

        Raises:
            KeySourceError: the source cannot be read; ``hint`` says how to fix it.
        """
        ...

    def refresh(self, current: KeyRing) -> KeyRing | None:
        """Return the stored ring if it differs from ``current`` (the ring the caller holds),
        else ``None``; cheap when nothing changed.

        Comparing with the caller's ring, not with this object's last load, keeps it right
        when several vaults, or a vault and a rotation, share one source object.
        """
        ...


@runtime_checkable
class ManagedKeySource(KeySource, Protocol):
    """A key source that records key states and can change them (all three built-in ones)."""

    def states(self) -> list[KeyState]:
        """Every key the source records, retired ones included, in stored order."""
        ...

    def create(self, first_key: Key) -> None:
        """Store ``first_key`` as the only, active key; refused if the source holds keys."""
        ...

    def add(self, key: Key) -> None:
        """Store ``key`` as decrypt-only (rotation step 1)."""
        ...

    def promote(self, key_id: str) -> None:
        """Make ``key_id`` active; the active key becomes decrypt-only (step 2)."""
        ...

    def retire(self, key_id: str) -> None:
        """Drop ``key_id``'s material, keep its record (step 4); never the active key."""
        ...


# ---- environment ------------------------------------------------------------------------------

class EnvKeySource:
    """Keys given as ``VAULT_KEYS`` text (``cv1:<id>:<key>``, comma-separated, primary first).

    The text is parsed once; the environment does not change under a running process, so
    ``refresh`` returns ``None``. Mutations raise: the operator deploys a new ``VAULT_KEYS``.

    Raises:
        KeySourceError: malformed text, duplicate ids, wrong key length (never echoing text).
    """

    kind = "env"

    def __init__(self, text: str) -> None:
        try:
            self._ring = KeyRing.from_text(text)
        except InvalidKeyError as exc:
            raise KeySourceError(f"VAULT_KEYS is invalid: {exc.message}",
                                 hint="VAULT_KEYS holds cv1:<id>:<key> texts, comma-separated, "
                                      "primary first; `credvault init` prints a fresh one"
                                 ) from None

    def __repr__(self) -> str:
        return f"EnvKeySource(ids={list(self._ring.ids)!r})"

    def load(self) -> KeyRing:
        """Return the parsed ring."""
        return self._ring

    def refresh(self, current: KeyRing) -> KeyRing | None:
        """The parsed ring if ``current`` differs from it (a process's environment does not
        change), else ``None``."""
        return self._ring if self._ring.ids != current.ids else None

    def states(self) -> list[KeyState]:
        """The first key active, the others decrypt-only; no dates (``created_at`` is None)."""
        return [KeyState(key.id, ACTIVE if i == 0 else DECRYPT_ONLY, None)
                for i, key in enumerate(self._ring)]

    def _deployed(self, what: str) -> NoReturn:
        raise KeySourceError(f"the environment key source cannot {what}: VAULT_KEYS is deployed "
                             "by the operator",
                             hint="put the new VAULT_KEYS line in your secret manager and "
                                  "restart the services (`credvault rotate` prints it)")

    def create(self, first_key: Key) -> None:
        """Raise ``KeySourceError``: ``credvault init`` prints the key instead."""
        self._deployed("store keys")

    def add(self, key: Key) -> None:
        """Raise ``KeySourceError`` (see the class docstring)."""
        self._deployed("add a key")

    def promote(self, key_id: str) -> None:
        """Raise ``KeySourceError`` (see the class docstring)."""
        self._deployed("promote a key")

    def retire(self, key_id: str) -> None:
        """Raise ``KeySourceError`` (see the class docstring)."""
        self._deployed("retire a key")


def source_from_settings(settings: VaultSettings,
                         passphrase: bytes | str | None = None) -> ManagedKeySource:
    """Return the one key source ``settings.key_source`` selects (no fallback to another).

    Args:
        settings: validated settings.
        passphrase: for the passphrase source; default ``settings.passphrase``.

    Raises:
        ConfigurationError: ``VAULT_KEY_SOURCE`` or (for passphrase) ``VAULT_DIR`` unset.
        KeySourceError: ``VAULT_KEY_SOURCE=env`` without a valid ``VAULT_KEYS``.
    """
    kind = settings.require_key_source()
    if kind == "env":
        if settings.keys is None:
            raise KeySourceError("VAULT_KEY_SOURCE=env but VAULT_KEYS is not set",
                                 hint="run `credvault init` and put the VAULT_KEYS line it "
                                      "prints in your secret manager")
        return EnvKeySource(settings.keys.get_secret_value())
    if kind == "keyring":
        return KeyringKeySource(settings.keyring_service)
    if passphrase is None and settings.passphrase is not None:
        passphrase = settings.passphrase.get_secret_value()
    return PassphraseKeySource(settings.require_dir(), passphrase,
                               profile=settings.kdf_profile or kdf.DEFAULT_PROFILE)
