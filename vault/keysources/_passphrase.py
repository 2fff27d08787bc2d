"""The passphrase key source: ``<vault dir>/keyfile.json`` (``docs/format.md`` section 10).

The ring's random keys are wrapped under a key-encryption key that Argon2id derives from the
passphrase (``vault._crypto.kdf``); the file format is ``vault.keysources._keyfile``. Mutations
hold the lock ``<vault dir>/.locks/keyfile.lock`` and replace the file atomically.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from vault import _files as files
from vault._crypto import kdf
from vault._crypto.keys import ACTIVE, Key, KeyRing, KeyState
from vault.errors import KeySourceError
from vault.keysources import _keyfile as kf
from vault.keysources._binding import Binding
from vault.keysources._states import (
    now,
    ring_from,
    trimmed,
    with_added,
    with_promoted,
    with_retired,
)

__all__ = ["PassphraseKeySource"]

_STALE_KEYFILE_TEMP = re.compile(r"\.keyfile\.[0-9a-f]{16}\.tmp")
_KEK_CACHE = 8  # distinct (params, salt) pairs remembered per source


class PassphraseKeySource:
    """Keys in ``<directory>/keyfile.json``, wrapped under an Argon2id key of a passphrase.

    The passphrase is kept as bytes inside this object (never shown) so that ``refresh`` can
    reload after another process rotated; the Argon2id derivation runs again only if the salt
    or the parameters changed (``credseal passwd``), not per load and never per entry.

    Args:
        directory: the vault directory.
        passphrase: str or bytes; may be ``None`` for ``unverified_keyfile`` only.
        profile: KDF profile of a new keyfile (``create``); ``change_passphrase`` takes its own.

    Raises:
        ConfigurationError: an unknown profile. KeySourceError: an empty passphrase.
    """

    kind = "passphrase"

    def __init__(self, directory: str | os.PathLike[str], passphrase: bytes | str | None = None,
                 *, profile: str = kdf.DEFAULT_PROFILE) -> None:
        self.directory = Path(directory)
        self.path = self.directory / kf.KEYFILE_NAME
        self._passphrase = None if passphrase is None else kdf.encode_passphrase(passphrase)
        self._new_params = kdf.profile(profile)
        # Derived KEKs by (params, salt): a keyfile swapped back and forth (by an attacker, or
        # a restore) costs one derivation per distinct keyfile, not one per swap.
        self._keks: dict[tuple[kdf.KdfParams, bytes], bytes] = {}
        self._ring: KeyRing | None = None
        self._signature: tuple[int, int, int] | None = None

    def __repr__(self) -> str:
        return f"PassphraseKeySource({str(self.path)!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        raise TypeError("PassphraseKeySource holds a passphrase and cannot be pickled")

    def _read(self) -> tuple[tuple[int, int, int], kf.Keyfile]:
        try:
            st = os.stat(self.path)  # before reading: a concurrent replace causes a reload
            data = files.read_private(str(self.path), kf.MAX_KEYFILE_SIZE)
        except FileNotFoundError:
            raise KeySourceError(f"no keyfile at {self.path}",
                                 hint="run `credseal init` with CREDSEAL_KEY_SOURCE=passphrase, "
                                      "or check CREDSEAL_DIR") from None
        return (st.st_ino, st.st_mtime_ns, st.st_size), kf.parse(data, str(self.path))

    def _kek_for(self, params: kdf.KdfParams, salt: bytes) -> bytes:
        kek = self._keks.get((params, salt))
        if kek is not None:
            return kek
        if self._passphrase is None:
            raise KeySourceError("the keyfile's passphrase is needed",
                                 hint="set CREDSEAL_PASSPHRASE, or run on a terminal to be asked")
        kek = kdf.derive(self._passphrase, salt, params)
        self._remember(params, salt, kek)
        return kek

    def _remember(self, params: kdf.KdfParams, salt: bytes, kek: bytes) -> None:
        if len(self._keks) >= _KEK_CACHE:
            del self._keks[next(iter(self._keks))]  # the oldest
        self._keks[params, salt] = kek

    def _open(self) -> tuple[kf.Keyfile, dict[str, Key], bytes]:
        signature, keyfile = self._read()
        kek = self._kek_for(keyfile.params, keyfile.salt)
        keys = kf.unwrap_all(keyfile, kek, str(self.path))
        self._signature = signature
        return keyfile, keys, kek

    def load(self) -> KeyRing:
        """Read, authenticate and unwrap the keyfile.

        Raises:
            KeySourceError: no keyfile, malformed keyfile (naming the field), no or wrong
                passphrase. InsecureFileError: the keyfile is not private.
        """
        keyfile, keys, _ = self._open()
        self._ring = ring_from(keyfile.states, keys)
        return self._ring

    def refresh(self, current: KeyRing) -> KeyRing | None:
        """The keyfile's ring if it differs from ``current``; the keyfile is read again only
        when its (inode, mtime, size) changed since this object last read it."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return self.load()  # raises the "no keyfile" error
        if self._ring is None or (st.st_ino, st.st_mtime_ns, st.st_size) != self._signature:
            self.load()
        assert self._ring is not None
        return self._ring if self._ring.ids != current.ids else None

    def states(self) -> list[KeyState]:
        """The keyfile's records, authenticated (needs the passphrase)."""
        return list(self._open()[0].states)

    def unverified_keyfile(self) -> kf.Keyfile:
        """The parsed keyfile **without** authentication (no passphrase): for status output."""
        return self._read()[1]

    def _lock(self) -> files.FileLock:
        files.ensure_private_dir(str(self.directory))
        files.ensure_private_dir(str(self.directory / ".locks"))
        return files.FileLock(str(self.directory / ".locks" / "keyfile.lock"), timeout=10.0,
                              what="the keyfile")

    def _write(self, keyfile: kf.Keyfile) -> None:
        # _signature is left alone: the next refresh() reloads, so a Vault on this source sees it.
        files.write_atomic(str(self.path), kf.dumps(keyfile), "keyfile")
        for name in os.listdir(self.directory):
            if _STALE_KEYFILE_TEMP.fullmatch(name):  # a crashed earlier write; we hold the lock
                files.unlink_durably(str(self.directory / name))

    def create(self, first_key: Key) -> None:
        """Write a new keyfile holding ``first_key`` as the active key.

        Raises:
            KeySourceError: a keyfile exists already, or no passphrase was given.
        """
        with self._lock():
            if self.path.exists() or self.path.is_symlink():
                raise KeySourceError(f"a keyfile already exists at {self.path}",
                                     hint="rotate its keys instead, or choose another CREDSEAL_DIR")
            # A fresh random salt per keyfile: equal passphrases never give equal KEKs.
            salt = os.urandom(kdf.SALT_SIZE)
            kek = self._kek_for(self._new_params, salt)
            states = (KeyState(first_key.id, ACTIVE, now()),)
            self._write(kf.build(self._new_params, salt, kek, states, {first_key.id: first_key}))

    def _mutate(self, change: Callable[[tuple[KeyState, ...]], tuple[KeyState, ...]],
                new_key: Key | None = None, *,
                binding: Callable[[Binding | None], Binding | None] = lambda b: b) -> None:
        with self._lock():
            keyfile, keys, kek = self._open()
            states = trimmed(change(keyfile.states), lambda s: len(s) <= kf.MAX_RECORDS)
            if new_key is not None:
                keys[new_key.id] = new_key
            # Every wrap is redone: each one's aad covers the whole new list of records.
            self._write(kf.build(keyfile.params, keyfile.salt, kek, states, keys,
                                 binding(keyfile.binding)))

    def binding(self) -> Binding | None:
        """The keyfile's ``vault`` field, authenticated (needs the passphrase)."""
        return self._open()[0].binding

    def bind(self, binding: Binding) -> None:
        """Record ``binding`` in the keyfile (every wrap covers it)."""
        self._mutate(lambda states: states, binding=lambda _: binding)

    def add(self, key: Key) -> None:
        """Wrap ``key`` into the keyfile as decrypt-only."""
        self._mutate(lambda states: with_added(states, key), key)

    def promote(self, key_id: str) -> None:
        """Make ``key_id`` the active key."""
        self._mutate(lambda states: with_promoted(states, key_id))

    def retire(self, key_id: str) -> None:
        """Drop ``key_id``'s wrapped material; keep its id, state and dates."""
        self._mutate(lambda states: with_retired(states, key_id))

    def change_passphrase(self, new_passphrase: bytes | str, *, profile: str | None = None) -> None:
        """Rewrap the keyfile under ``new_passphrase`` with a new salt (``credseal passwd``).

        Entries are untouched: only the wrapping of the ring keys changes. ``profile`` sets new
        KDF parameters; by default the keyfile's are kept. Parameters weaker than this
        source's profile (``profile=`` when it was made: ``CREDSEAL_KDF_PROFILE``, else the
        default) are refused: a rewrap never weakens the keyfile below what is configured.

        Raises:
            KeySourceError: the current passphrase is wrong, the new one is empty, or the
                parameters are weaker than the configured profile (nothing is changed).
        """
        secret = kdf.encode_passphrase(new_passphrase)
        with self._lock():
            keyfile, keys, _ = self._open()
            params = kdf.profile(profile) if profile is not None else keyfile.params
            if kdf.weaker(params, self._new_params):
                wanted = kdf.profile_name(self._new_params) or "the configured profile"
                raise KeySourceError(
                    f"the KDF parameters ({kdf.profile_name(params) or 'custom'}) are weaker "
                    f"than the configured profile {wanted}; the keyfile was not changed",
                    hint=f"run passwd with CREDSEAL_KDF_PROFILE={wanted} (or stronger) to "
                         "rewrap the keyfile with it")
            salt = os.urandom(kdf.SALT_SIZE)
            kek = kdf.derive(secret, salt, params)
            self._write(kf.build(params, salt, kek, keyfile.states, keys, keyfile.binding))
            self._passphrase = secret
            self._keks.clear()  # derived from the old passphrase: never reuse them
            self._remember(params, salt, kek)
