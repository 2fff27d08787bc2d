"""credvault: service credentials encrypted at rest, served through database outages.

The public API; see the README for the contract and the error table.
"""

from vault import codec
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    EntryExpiredError,
    EntryNotFoundError,
    FormatError,
    InsecureFileError,
    InvalidKeyError,
    KeySourceError,
    LockTimeoutError,
    RotationInProgressError,
    SerializationError,
    SourceUnavailableError,
    UnknownKeyError,
    VaultError,
)
from vault.keys import Key, KeyRing, KeyState
from vault.keysources import KeySource, ManagedKeySource
from vault.store import Entry, EntryInfo, RotationReport, Scan, Vault

__version__ = "0.1.0"

__all__ = [
    "ConfigurationError",
    "DecryptionError",
    "Entry",
    "EntryExpiredError",
    "EntryInfo",
    "EntryNotFoundError",
    "FormatError",
    "InsecureFileError",
    "InvalidKeyError",
    "Key",
    "KeyRing",
    "KeySource",
    "KeySourceError",
    "KeyState",
    "LockTimeoutError",
    "ManagedKeySource",
    "RotationInProgressError",
    "RotationReport",
    "Scan",
    "SerializationError",
    "SourceUnavailableError",
    "UnknownKeyError",
    "Vault",
    "VaultError",
    "__version__",
    "codec",
]
