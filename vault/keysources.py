"""Where a vault's keys come from.

A :class:`KeySource` loads a :class:`~vault.keys.KeyRing` and can cheaply tell whether the
stored ring changed (another process rotated), so running services pick up new keys.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vault.keys import KeyRing

__all__ = ["KeySource"]


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

    def refresh(self) -> KeyRing | None:
        """Return a new ring if the stored one changed since the last load, else ``None``."""
        ...
