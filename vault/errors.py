"""The exceptions of credseal, all of them; every one is also exported from ``vault``.

Every error the library raises on purpose is a subclass of :class:`VaultError`, so a
service can catch one type. Messages name what was wrong (an entry name, a key id, a
path, a setting) and never contain a key, a passphrase or a credential value. Where the
caller can do something about it, ``hint`` says what. The tree (a test keeps it complete)::

    VaultError
    ├── EntryNotFoundError       (also KeyError)
    ├── EntryExpiredError
    ├── DecryptionError
    ├── UnknownKeyError
    ├── FormatError
    ├── InsecureFileError
    ├── SerializationError       (also TypeError)
    ├── InvalidKeyError          (also ValueError)
    ├── ConfigurationError       (also ValueError)
    ├── KeySourceError
    ├── LockTimeoutError
    ├── RotationInProgressError
    ├── RewrapError
    ├── KeyInUseError
    ├── SourceUnavailableError
    ├── SharedTierError
    └── MigrationError
"""

from __future__ import annotations

__all__ = [
    "ConfigurationError",
    "DecryptionError",
    "EntryExpiredError",
    "EntryNotFoundError",
    "FormatError",
    "InsecureFileError",
    "InvalidKeyError",
    "KeyInUseError",
    "KeySourceError",
    "LockTimeoutError",
    "MigrationError",
    "RewrapError",
    "RotationInProgressError",
    "SerializationError",
    "SharedTierError",
    "SourceUnavailableError",
    "UnknownKeyError",
    "VaultError",
]


class VaultError(Exception):
    """Base class of every credseal error; never raised itself.

    Attributes:
        message: one line saying what went wrong.
        hint: one line saying how to fix it, or ``None``.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class EntryNotFoundError(VaultError, KeyError):
    """No entry of that name exists (also a ``KeyError``)."""

    def __str__(self) -> str:
        # KeyError.__str__ would repr() the message; keep it a plain sentence.
        return self.message


class EntryExpiredError(VaultError):
    """The entry authenticated but is outside its validity window (expired or future-dated)."""


class DecryptionError(VaultError):
    """Authentication failed: tampered, corrupted, moved, renamed or re-dated (no reason given)."""


class UnknownKeyError(VaultError):
    """The entry names a key id that the key ring does not hold (retired or never known)."""

    def __init__(self, key_id: str, *, hint: str | None = None) -> None:
        super().__init__(f"entry is sealed under key {key_id}, which the key ring does not hold",
                         hint=hint or "add that key to the ring as decrypt-only, "
                                      "or restore it from backup if it was retired too early")
        self.key_id = key_id


class FormatError(VaultError):
    """Not a vault file, an unsupported version, or malformed fields or lengths."""


class InsecureFileError(VaultError):
    """A symlink, a hard link, group/world access or a foreign owner; ``hint`` says how to fix.

    Its ``str()`` carries the hint, so a service's traceback shows the fix too."""

    def __str__(self) -> str:
        return self.message if self.hint is None else f"{self.message} (fix: {self.hint})"


class SerializationError(VaultError, TypeError):
    """A value the codec cannot hold, nested too deeply or too large (also a ``TypeError``)."""


class InvalidKeyError(VaultError, ValueError):
    """Malformed key material or key text, or duplicate ids in a ring (also a ``ValueError``)."""


class KeySourceError(VaultError):
    """A key source failed: no keyring backend, locked keyring, bad keys, wrong passphrase."""


class ConfigurationError(VaultError, ValueError):
    """A setting (``CREDSEAL_*`` variable or argument) has a value that cannot be used."""


class LockTimeoutError(VaultError):
    """An entry lock was not obtained in time because another writer held it."""


class MigrationError(VaultError):
    """A migration or export refused or failed; the message says why, never a value."""


class RotationInProgressError(VaultError):
    """Another rotation holds the rotation lock; the message names it (pid, host, since)."""


class RewrapError(VaultError):
    """A rewrap's own check failed: the new envelope did not open to the same plaintext.

    Nothing was replaced; the old envelope stays as it was.
    """


class KeyInUseError(VaultError):
    """``retire`` refused: entries or journal records are still sealed under the key."""


class SourceUnavailableError(VaultError):
    """The primary source failed and no valid cached copy exists; chains the driver's error."""


class SharedTierError(VaultError):
    """The shared tier (Redis) is unavailable (an outage, its breaker open) or unusable (a
    client without bounded timeouts, a server too old); chains the driver's error."""
