"""The environment key source: ``CREDSEAL_KEYS`` text, deployed by the operator."""

from __future__ import annotations

from typing import NoReturn

from vault._crypto.keys import ACTIVE, DECRYPT_ONLY, Key, KeyRing, KeyState
from vault.errors import InvalidKeyError, KeySourceError

__all__ = ["EnvKeySource"]


class EnvKeySource:
    """Keys given as ``CREDSEAL_KEYS`` text (``cv1:<id>:<key>``, comma-separated, primary first).

    The text is parsed once; the environment does not change under a running process, so
    ``refresh`` returns ``None``. Mutations raise: the operator deploys a new ``CREDSEAL_KEYS``.

    Raises:
        KeySourceError: malformed text, duplicate ids, wrong key length (never echoing text).
    """

    kind = "env"

    def __init__(self, text: str) -> None:
        try:
            self._ring = KeyRing.from_text(text)
        except InvalidKeyError as exc:
            raise KeySourceError(f"CREDSEAL_KEYS is invalid: {exc.message}",
                                 hint="CREDSEAL_KEYS holds cv1:<id>:<key> texts, comma-separated, "
                                      "primary first; `credseal init` prints a fresh one"
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
        raise KeySourceError(f"the environment key source cannot {what}: CREDSEAL_KEYS is deployed "
                             "by the operator",
                             hint="put the new CREDSEAL_KEYS line in your secret manager and "
                                  "restart the services (`credseal rotate` prints it)")

    def create(self, first_key: Key) -> None:
        """Raise ``KeySourceError``: ``credseal init`` prints the key instead."""
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
