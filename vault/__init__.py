"""credseal: service credentials encrypted at rest, served through database outages.

The curated API (the README has the contract and the error table). Subpackages hold the
rest: ``vault.cache``, ``vault.sources``, ``vault.keysources``, ``vault.config``,
``vault.ops``, ``vault.integrations``, ``vault.cli``, ``vault.testing``. A name is public
exactly when its path has no part starting with an underscore.
"""

from __future__ import annotations

import warnings
from typing import Any

from vault import codec
from vault._crypto.keys import Key, KeyRing, KeyState
from vault._store.rewrap import RewrapReport
from vault._store.store import Entry, EntryInfo, Scan, Vault
from vault.cache import (
    AsyncFallbackCache,
    CacheEvent,
    CircuitBreaker,
    FallbackCache,
    Fetched,
    SaveResult,
)
from vault.config import open_cache, open_vault
from vault.errors import (
    ConfigurationError,
    DecryptionError,
    EntryExpiredError,
    EntryNotFoundError,
    FormatError,
    InsecureFileError,
    InvalidKeyError,
    KeyInUseError,
    KeySourceError,
    LockTimeoutError,
    MigrationError,
    RewrapError,
    RotationInProgressError,
    SerializationError,
    SharedTierError,
    SourceUnavailableError,
    UnknownKeyError,
    VaultError,
)
from vault.keysources import KeySource, ManagedKeySource
from vault.sources import SQLiteSource

__version__ = "0.2.0"

__all__ = [
    "AsyncFallbackCache",
    "CacheEvent",
    "CircuitBreaker",
    "ConfigurationError",
    "DecryptionError",
    "Entry",
    "EntryExpiredError",
    "EntryInfo",
    "EntryNotFoundError",
    "FallbackCache",
    "Fetched",
    "FormatError",
    "InsecureFileError",
    "InvalidKeyError",
    "Key",
    "KeyInUseError",
    "KeyRing",
    "KeySource",
    "KeySourceError",
    "KeyState",
    "LockTimeoutError",
    "ManagedKeySource",
    "MigrationError",
    "RewrapError",
    "RewrapReport",
    "RotationInProgressError",
    "SQLiteSource",
    "SaveResult",
    "Scan",
    "SerializationError",
    "SharedTierError",
    "SourceUnavailableError",
    "UnknownKeyError",
    "Vault",
    "VaultError",
    "__version__",
    "codec",
    "open_cache",
    "open_vault",
]

_DEPRECATED = {"RotationReport": ("RewrapReport", RewrapReport)}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED:
        new, value = _DEPRECATED[name]
        warnings.warn(f"vault.{name} is deprecated: use vault.{new}", DeprecationWarning,
                      stacklevel=2)
        return value
    raise AttributeError(f"module 'vault' has no attribute {name!r}")
