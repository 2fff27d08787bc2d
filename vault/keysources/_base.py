"""The key source protocols: what a vault needs of a source of keys, and what rotation needs."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from vault._crypto.keys import Key, KeyRing, KeyState
from vault.keysources._binding import Binding

__all__ = ["BoundKeySource", "KeySource", "ManagedKeySource"]


@runtime_checkable
class KeySource(Protocol):
    """The interface of a key source (environment, OS keyring, passphrase keyfile, yours)."""

    #: short name shown by ``credseal status``: "env", "keyring", "passphrase", ...
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


@runtime_checkable
class BoundKeySource(Protocol):
    """A key source that records which vault it serves (``vault.keysources._binding``): the
    keyring and keyfile sources. The env source cannot: its vault id lives in the
    directories' sealed state only."""

    def binding(self) -> Binding | None:
        """The recorded binding (authenticated where the source authenticates), or None for
        a source made before bindings existed."""
        ...

    def bind(self, binding: Binding) -> None:
        """Record ``binding``, replacing the one recorded."""
        ...
