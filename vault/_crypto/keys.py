"""Ring keys and key rings.

A :class:`Key` is 32 random bytes with a public id derived from them (``docs/format.md``
section 3). Its material never leaves this module and ``vault._crypto.aead``: a key's ``repr`` and
``str`` show the id only, it has no ``__bytes__``, and pickling it raises. The one deliberate
way out is :meth:`Key.to_text`, for the operator who must store a key in a secret manager.

A :class:`KeyRing` holds a primary key, which seals, and older keys, which only open. It picks
the key an envelope names by id and never tries the others.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, NoReturn

from vault._crypto import aead
from vault._crypto import format as fmt
from vault.errors import DecryptionError, InvalidKeyError, UnknownKeyError

__all__ = ["ACTIVE", "DECRYPT_ONLY", "KEY_STATES", "RETIRED", "Key", "KeyRing", "KeyState", "State"]

TEXT_PREFIX = "cv1"
_ID_TEXT = re.compile(r"[0-9a-f]{16}")
_MATERIAL_TEXT = re.compile(r"[A-Za-z0-9_-]{43}")


State = Literal["active", "decrypt-only", "retired"]
ACTIVE: State = "active"
DECRYPT_ONLY: State = "decrypt-only"
RETIRED: State = "retired"
KEY_STATES: tuple[State, ...] = (ACTIVE, DECRYPT_ONLY, RETIRED)


@dataclass(frozen=True)
class KeyState:
    """What a key source records about one key; public, holds no material.

    Attributes:
        id: the key id (16 hex digits).
        state: ``"active"`` (the primary: seals and opens), ``"decrypt-only"`` (opens), or
            ``"retired"`` (material dropped: opens nothing; kept for the record).
        created_at: when the key was created (UTC), or ``None`` where the source keeps no
            dates (the environment source).
        retired_at: when it was retired (UTC), for retired keys only.
    """

    id: str
    state: State
    created_at: datetime | None
    retired_at: datetime | None = None


def _no_pickle(obj: object) -> NoReturn:
    raise TypeError(f"{type(obj).__name__} objects cannot be pickled: key material must not be "
                    "serialized by accident; use Key.to_text() deliberately")


class Key:
    """One 256-bit ring key. Build it with :meth:`generate`, :meth:`from_bytes` or
    :meth:`from_text`; ``Key()`` itself is not allowed.

    ``key.id`` is 16 hex digits derived from the material: the same key always has the same id.
    """

    __slots__ = ("_id", "_id_bytes", "_material")
    _material: bytes
    _id_bytes: bytes
    _id: str

    def __init__(self) -> None:
        raise TypeError("use Key.generate(), Key.from_bytes() or Key.from_text()")

    @classmethod
    def _from_material(cls, material: bytes) -> Key:
        key = object.__new__(cls)
        key._material = material
        key._id_bytes = aead.key_id(material)
        key._id = key._id_bytes.hex()
        return key

    @classmethod
    def generate(cls) -> Key:
        """Return a new key from the operating system's CSPRNG."""
        return cls._from_material(aead.random_key())

    @classmethod
    def from_bytes(cls, raw: bytes | bytearray | memoryview) -> Key:
        """Return the key whose material is ``raw``.

        Raises:
            InvalidKeyError: ``raw`` is not exactly 32 bytes.
        """
        if not isinstance(raw, bytes | bytearray | memoryview):
            raise InvalidKeyError(f"key material must be bytes, not {type(raw).__name__}")
        material = bytes(raw)
        if len(material) != aead.KEY_SIZE:
            raise InvalidKeyError(f"a key must be exactly {aead.KEY_SIZE} bytes, "
                                  f"got {len(material)}")
        return cls._from_material(material)

    @classmethod
    def from_text(cls, text: str) -> Key:
        """Parse ``cv1:<id>:<base64url>``; the id is recomputed and must match.

        Raises:
            InvalidKeyError: malformed text, or an id that does not belong to the key. The
                message says which part is wrong and never repeats the text.
        """
        if not isinstance(text, str):
            raise InvalidKeyError(f"key text must be a str, not {type(text).__name__}")
        parts = text.strip().split(":")
        if len(parts) != 3 or parts[0] != TEXT_PREFIX:
            raise InvalidKeyError(f"key text must look like {TEXT_PREFIX}:<16 hex id>:"
                                  "<43 base64url characters>")
        _, id_text, material_text = parts
        if not _ID_TEXT.fullmatch(id_text):
            raise InvalidKeyError("key text id must be 16 lowercase hex digits")
        if not _MATERIAL_TEXT.fullmatch(material_text):
            raise InvalidKeyError("key text material must be 43 base64url characters "
                                  "(32 bytes, no padding)")
        try:
            material = base64.urlsafe_b64decode(material_text + "=")
        except (binascii.Error, ValueError):
            raise InvalidKeyError("key text material is not valid base64url") from None
        key = cls._from_material(material)
        # 43 characters carry 258 bits: the last 2 must be zero, or two texts would share a key.
        if key._material_text() != material_text:
            raise InvalidKeyError("key text material is not canonical base64url")
        if not hmac.compare_digest(key._id, id_text):
            raise InvalidKeyError(f"key text id {id_text} does not match its key material "
                                  "(mistyped or truncated text?)")
        return key

    def _material_text(self) -> str:
        return base64.urlsafe_b64encode(self._material).rstrip(b"=").decode("ascii")

    def to_text(self) -> str:
        """Return ``cv1:<id>:<base64url>``. **This is the secret key: store it like one.**"""
        return f"{TEXT_PREFIX}:{self._id}:{self._material_text()}"

    @property
    def id(self) -> str:
        """The public id: 16 lowercase hex digits."""
        return self._id

    def __repr__(self) -> str:
        return f"Key(id={self._id!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Key):
            return NotImplemented
        return hmac.compare_digest(self._material, other._material)

    def __hash__(self) -> int:
        return hash(self._id)

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _no_pickle(self)

    def __copy__(self) -> Key:
        return self

    def __deepcopy__(self, memo: object) -> Key:
        return self


class KeyRing:
    """An ordered set of keys: the first is the primary (it seals), all of them open.

    ``repr`` shows ids only. Rings are immutable; :meth:`with_primary` and :meth:`without`
    return new rings.

    Raises:
        InvalidKeyError: an empty ring, a non-Key item, or two keys with the same id.
    """

    __slots__ = ("_by_id", "_by_raw_id", "_keys")

    def __init__(self, keys: Iterable[Key]) -> None:
        ring = tuple(keys)
        if not ring:
            raise InvalidKeyError("a key ring needs at least one key")
        by_id: dict[str, Key] = {}
        for position, key in enumerate(ring, 1):
            if not isinstance(key, Key):
                raise InvalidKeyError(f"key ring item {position} is a {type(key).__name__}, "
                                      "not a Key")
            if key.id in by_id:
                raise InvalidKeyError(f"key ring holds key {key.id} twice (item {position})")
            by_id[key.id] = key
        self._keys = ring
        self._by_id = by_id
        self._by_raw_id = {key._id_bytes: key for key in ring}

    @classmethod
    def from_text(cls, text: str) -> KeyRing:
        """Parse comma-separated key texts, primary first (the ``CREDSEAL_KEYS`` form).

        Raises:
            InvalidKeyError: naming the item (1-based) that is wrong, never its text.
        """
        if not isinstance(text, str) or not text.strip():
            raise InvalidKeyError("key ring text is empty: expected cv1:... key texts, "
                                  "comma-separated, primary first")
        keys = []
        for position, item in enumerate(text.split(","), 1):
            if not item.strip():
                raise InvalidKeyError(f"key ring text item {position} is empty")
            try:
                keys.append(Key.from_text(item))
            except InvalidKeyError as exc:
                raise InvalidKeyError(f"key ring text item {position}: {exc.message}") from None
        return cls(keys)

    def to_text(self) -> str:
        """Return the ``CREDSEAL_KEYS`` form. **Secret: every key of the ring.**"""
        return ",".join(key.to_text() for key in self._keys)

    @property
    def primary(self) -> Key:
        """The key that seals new envelopes."""
        return self._keys[0]

    @property
    def keys(self) -> tuple[Key, ...]:
        """All keys, primary first."""
        return self._keys

    @property
    def ids(self) -> tuple[str, ...]:
        """All key ids, primary first."""
        return tuple(self._by_id)

    def get(self, key_id: str) -> Key:
        """Return the key with id ``key_id``.

        Raises:
            UnknownKeyError: the ring does not hold it.
        """
        try:
            return self._by_id[key_id]
        except KeyError:
            raise UnknownKeyError(key_id) from None

    def with_primary(self, key: Key) -> KeyRing:
        """Return a ring with ``key`` as primary and every other key of this ring after it."""
        return KeyRing([key, *(k for k in self._keys if k.id != key.id)])

    def without(self, key_id: str) -> KeyRing:
        """Return this ring without ``key_id`` (which must not be the primary)."""
        if key_id == self.primary.id:
            raise InvalidKeyError(f"key {key_id} is the primary key and cannot be removed")
        return KeyRing([k for k in self._keys if k.id != key_id])

    def __contains__(self, key_id: object) -> bool:
        return key_id in self._by_id

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[Key]:
        return iter(self._keys)

    def __repr__(self) -> str:
        return f"KeyRing(primary={self.primary.id!r}, decrypt_only={list(self.ids[1:])!r})"

    def __reduce_ex__(self, protocol: object) -> NoReturn:
        _no_pickle(self)

    # Sealing and opening live here so that key material never leaves this module and aead.

    def line_mac(self, data: bytes, key_id: str | None = None) -> tuple[str, str]:
        """(key id, hex MAC of ``data``) under ``key_id``'s audit subkey (default: primary).

        Raises:
            UnknownKeyError: the ring lacks ``key_id``.
        """
        key = self.primary if key_id is None else self.get(key_id)
        return key.id, aead.line_mac(key._material, data).hex()

    def check_line_mac(self, data: bytes, key_id: str, mac: str) -> bool | None:
        """Whether ``mac`` is ``data``'s MAC under ``key_id``; None if the ring lacks the key."""
        if key_id not in self:
            return None
        expected = aead.line_mac(self.get(key_id)._material, data).hex()
        return hmac.compare_digest(expected, mac)

    def seal(self, *, kind: int, name: str, plaintext: bytes, created_at: int,
             expires_at: int) -> bytes:
        """Seal under the primary key (``docs/format.md`` section 5); returns the envelope."""
        key = self.primary
        return aead.seal(key._material, key._id_bytes, kind=kind, name=name,
                         plaintext=plaintext, created_at=created_at, expires_at=expires_at)

    def seal_verified(self, *, kind: int, name: str, plaintext: bytes, created_at: int,
                      expires_at: int) -> bytes:
        """:meth:`seal`, the new envelope opened again before it is returned (a rewrap's
        check; ``aead.seal_verified``). Raises ``RewrapError`` if it does not open."""
        key = self.primary
        return aead.seal_verified(key._material, key._id_bytes, kind=kind, name=name,
                                  plaintext=plaintext, created_at=created_at,
                                  expires_at=expires_at)

    def reseal(self, data: bytes, *, kind: int, name: str, prefix: bytes = b"",
               wrong_prefix: str = "the plaintext does not carry the expected binding"
               ) -> tuple[bytes | None, bytes]:
        """A rewrap of one envelope: open ``data`` (expected ``kind`` named ``name``), check
        that its plaintext starts with ``prefix``, and seal the plaintext again under the
        primary with the same name and timestamps, the new envelope opened again before it is
        returned (:meth:`seal_verified`). Returns the new envelope (None: ``data`` is already
        under the primary, and is not opened) and the old key id (raw bytes).

        Raises:
            FormatError: malformed. UnknownKeyError: sealed under a key id the ring lacks.
            DecryptionError: wrong kind or name, failed authentication, or a plaintext that
            does not start with ``prefix`` (the message ``wrong_prefix``). RewrapError: the
            new envelope did not open.
        """
        header, header_bytes, payload = fmt.parse(data)
        primary = self._keys[0]
        old_id = header.key_id
        if old_id == primary._id_bytes:
            return None, old_id
        if header.kind != kind or header.name != name:
            raise DecryptionError("entry failed authentication")
        key = self._by_raw_id.get(old_id)
        if key is None:
            raise UnknownKeyError(old_id.hex())
        plaintext = aead.open_payload(key._material, header, header_bytes, payload)
        if not plaintext.startswith(prefix):
            raise DecryptionError(wrong_prefix)
        return aead.seal_verified(primary._material, primary._id_bytes, kind=kind, name=name,
                                  plaintext=plaintext, created_at=header.created_at,
                                  expires_at=header.expires_at), old_id

    def open(self, data: bytes, *, kind: int, name: str) -> tuple[fmt.Header, bytes]:
        """Open an envelope expected to be ``kind`` named ``name`` (section 6, steps 1-10).

        Returns the authenticated header and the plaintext. Validity in time (step 11) is the
        caller's business.

        Raises:
            FormatError: malformed file. DecryptionError: wrong kind or name, or failed
            authentication. UnknownKeyError: the key id is not in this ring.
        """
        header, header_bytes, payload = fmt.parse(data)
        return header, self._open_parsed(header, header_bytes, payload, kind, name)

    def open_parsed(self, header: fmt.Header, header_bytes: bytes, payload: bytes, *,
                    kind: int, name: str) -> bytes:
        """Steps 7-10 of :meth:`open` on an already parsed envelope; returns the plaintext."""
        return self._open_parsed(header, header_bytes, payload, kind, name)

    def _open_parsed(self, header: fmt.Header, header_bytes: bytes, payload: bytes, kind: int,
                     name: str) -> bytes:
        # Positional: this runs on every read (keyword calls cost more than the checks).
        if header.kind != kind or header.name != name:
            raise DecryptionError("entry failed authentication")
        key = self._by_raw_id.get(header.key_id)
        if key is None:
            raise UnknownKeyError(header.key_id.hex())
        return aead.open_payload(key._material, header, header_bytes, payload)


# Key-wrapping for the passphrase keyfile (vault/keyfile.py): material stays in this module.

def wrap_key(key: Key, kek: bytes, aad: bytes) -> bytes:
    """Return ``key``'s material encrypted under ``kek`` with ``aad`` (``aead.wrap``)."""
    return aead.wrap(kek, key._material, aad)


def unwrap_key(blob: bytes, kek: bytes, aad: bytes) -> Key:
    """Reverse :func:`wrap_key`.

    Raises:
        DecryptionError: wrong ``kek``, or the blob or ``aad`` changed.
        InvalidKeyError: the unwrapped material is not 32 bytes.
    """
    return Key.from_bytes(aead.unwrap(kek, blob, aad))
