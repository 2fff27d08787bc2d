"""credvault: service credentials encrypted at rest, served through database outages.

The public API; see the README for the contract and the error table.
"""

from vault import codec
from vault.breaker import CircuitBreaker
from vault.cache import FallbackCache
from vault.cache_async import AsyncFallbackCache
from vault.cachecore import Fetched, SaveResult
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
from vault.health import CacheEvent
from vault.keys import Key, KeyRing, KeyState
from vault.keysources import KeySource, ManagedKeySource
from vault.rewrap import RotationReport
from vault.sources.sqlite import SQLiteSource
from vault.store import Entry, EntryInfo, Scan, Vault

__version__ = "0.1.0"

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
    "KeyRing",
    "KeySource",
    "KeySourceError",
    "KeyState",
    "LockTimeoutError",
    "ManagedKeySource",
    "RotationInProgressError",
    "RotationReport",
    "SQLiteSource",
    "SaveResult",
    "Scan",
    "SerializationError",
    "SourceUnavailableError",
    "UnknownKeyError",
    "Vault",
    "VaultError",
    "__version__",
    "codec",
]
