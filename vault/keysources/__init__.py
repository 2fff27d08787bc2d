"""Where a vault's keys come from: the environment, the OS keyring, or a passphrase keyfile.

A :class:`KeySource` loads a :class:`~vault.KeyRing` and can cheaply tell whether the
stored ring changed (another process rotated), so running services pick up new keys. A
:class:`ManagedKeySource` also lists key states and changes them: ``create`` (``credseal
init``), then for rotation ``add`` (decrypt-only), ``promote`` (active; the old active key
becomes decrypt-only) and ``retire`` (material dropped, the record kept). Exactly one key is
active; retired keys open nothing. Every error is a ``KeySourceError`` with a hint.

``vault.config.source_from_settings`` picks the one source that the settings name.
"""

from vault._crypto.keys import ACTIVE, DECRYPT_ONLY, RETIRED, KeyState
from vault.keysources._base import BoundKeySource, KeySource, ManagedKeySource
from vault.keysources._binding import MAX_DIRS, Binding
from vault.keysources._env import EnvKeySource
from vault.keysources._keyfile import KEYFILE_NAME
from vault.keysources._oskeyring import (
    DEFAULT_SERVICE,
    LEGACY_SERVICE,
    MAX_INDEX_CHARS,
    NO_KEYRING_HINT,
    OSKeyringSource,
)
from vault.keysources._passphrase import PassphraseKeySource

__all__ = [
    "ACTIVE",
    "DECRYPT_ONLY",
    "DEFAULT_SERVICE",
    "KEYFILE_NAME",
    "LEGACY_SERVICE",
    "MAX_DIRS",
    "MAX_INDEX_CHARS",
    "NO_KEYRING_HINT",
    "RETIRED",
    "Binding",
    "BoundKeySource",
    "EnvKeySource",
    "KeySource",
    "KeyState",
    "ManagedKeySource",
    "OSKeyringSource",
    "PassphraseKeySource",
]
