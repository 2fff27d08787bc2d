"""AES-256-GCM sealing and opening of v1 envelopes (``docs/format.md`` sections 3-6).

The only module that imports ``cryptography.hazmat``. Callers pass raw key material and get
whole envelopes back; they never choose a nonce, a salt, an algorithm or a size. Key material
stays inside ``vault._crypto.keys`` and this module.
"""

from __future__ import annotations

import hashlib
import hmac
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from vault._crypto import format as fmt
from vault.errors import DecryptionError, FormatError, RewrapError

KEY_SIZE = 32
HKDF_INFO = b"credvault v1 envelope"
KEY_ID_INFO = b"credvault v1 key id"
WRAP_NONCE_SIZE = 12
_SHA256 = SHA256()
_FRESH_SIZE = fmt.SALT_SIZE + fmt.NONCE_SIZE

__all__ = ["KEY_SIZE", "key_id", "open_payload", "random_key", "seal", "seal_verified", "unwrap",
           "wrap"]


def random_key() -> bytes:
    """Return 32 fresh bytes from the operating system's CSPRNG."""
    return os.urandom(KEY_SIZE)


def key_id(material: bytes) -> bytes:
    """Return the 8-byte public id of a ring key (spec section 3)."""
    # A PRF of the key: reveals nothing about it, and the same key always has the same id.
    return hmac.digest(material, KEY_ID_INFO, hashlib.sha256)[: fmt.KEY_ID_SIZE]


AUDIT_INFO = b"credseal v1 audit line"


def line_mac(material: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under the audit subkey of a ring key (``docs/format.md`` 11)."""
    # A subkey of its own: an audit MAC can never be confused with any use of the ring key.
    subkey = HKDF(_SHA256, 32, None, AUDIT_INFO).derive(material)
    return hmac.digest(subkey, data, hashlib.sha256)


def name_digest(name_key: bytes, data: bytes) -> str:
    """HMAC-SHA256 of ``data`` under a vault's name key, as hex: a name that shows nothing of
    ``data`` (the keyring backend's entry names, ``docs/format.md`` 12)."""
    return hmac.digest(name_key, data, hashlib.sha256).hex()


def _hkdf_sha256_64(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 (RFC 5869) with L = 64 (tests check it against RFC 5869's vectors).

    With the ring key, an envelope's salt and ``HKDF_INFO``: the entry key (first 32 bytes)
    and the key commitment (last 32) of spec section 4. One derived key per seal lifts GCM's
    2^32 random-nonce bound.
    """
    return HKDF(_SHA256, 64, salt, info).derive(ikm)


def seal(material: bytes, material_id: bytes, *, kind: int, name: str, plaintext: bytes,
         created_at: int, expires_at: int) -> bytes:
    """Seal ``plaintext`` into a v1 envelope under the ring key ``material``.

    Args:
        material: the 32-byte ring key.
        material_id: its id, ``key_id(material)`` (the caller keeps it; not recomputed).
        kind: ``format.KIND_ENTRY`` or ``format.KIND_JOURNAL``.
        name: the entry name, bound into the associated data.
        plaintext: at most ``format.MAX_PLAINTEXT_LENGTH`` bytes.
        created_at, expires_at: milliseconds since the epoch, bound into the associated data.

    Raises:
        FormatError: a field breaks the spec's rules (name, timestamps, size).
    """
    fresh = os.urandom(_FRESH_SIZE)  # one call: both fresh, independent
    return _seal_from_parts(material, material_id, kind, name, plaintext, created_at,
                            expires_at, fresh[:fmt.SALT_SIZE], fresh[fmt.SALT_SIZE:])


def _seal_from_parts(material: bytes, material_id: bytes, kind: int, name: str,
                     plaintext: bytes, created_at: int, expires_at: int, salt: bytes,
                     nonce: bytes) -> bytes:
    """Seal with a given salt and nonce. **Only for frozen test vectors: never reuse either.**"""
    if len(plaintext) > fmt.MAX_PLAINTEXT_LENGTH:
        raise FormatError(f"plaintext of {len(plaintext)} bytes exceeds the format limit of "
                          f"{fmt.MAX_PLAINTEXT_LENGTH}")
    okm = _hkdf_sha256_64(material, salt, HKDF_INFO)  # entry key || commitment
    header = fmt.pack_fields(kind, material_id, salt, nonce, okm[32:], created_at, expires_at,
                             len(plaintext) + fmt.TAG_SIZE, name)
    return header + AESGCM(okm[:32]).encrypt(nonce, plaintext, header)


def seal_verified(material: bytes, material_id: bytes, *, kind: int, name: str,
                  plaintext: bytes, created_at: int, expires_at: int) -> bytes:
    """:func:`seal`, then open the new envelope again before returning it (a rewrap's check,
    Tink's rule: nothing replaces an old envelope before its successor has been opened).

    The new bytes are opened as any reader opens them: parsed, every header field checked
    against what was sealed (kind, name, key id, timestamps), the key derived again from the
    ring key and the salt (a fault in the first derivation shows here), the commitment
    checked and the payload decrypted with a cipher of its own; the plaintext must come back
    equal.

    Raises:
        FormatError: as :func:`seal`. RewrapError: the new envelope did not open to the same
        plaintext (nothing should replace anything).
    """
    envelope = seal(material, material_id, kind=kind, name=name, plaintext=plaintext,
                    created_at=created_at, expires_at=expires_at)
    header, header_bytes, payload = fmt.parse(envelope)
    if (header.kind, header.key_id, header.name, header.created_at, header.expires_at) != \
            (kind, material_id, name, created_at, expires_at):
        raise RewrapError("the new envelope's header is not the one sealed")
    try:
        reopened = open_payload(material, header, header_bytes, payload)
    except DecryptionError:
        raise RewrapError("the new envelope failed authentication") from None
    if reopened != plaintext:
        raise RewrapError("the new envelope did not open to the same plaintext")
    return envelope


def open_payload(material: bytes, header: fmt.Header, header_bytes: bytes,
                 payload: bytes) -> bytes:
    """Authenticate and decrypt a parsed envelope (spec section 6, steps 9-10).

    The caller has parsed the file (``format.parse``), checked the kind and name it expected,
    and selected ``material`` by the header's key id.

    Raises:
        DecryptionError: the commitment or the tag does not verify (no reason is given).
    """
    okm = _hkdf_sha256_64(material, header.salt, HKDF_INFO)  # entry key || commitment
    # Checked first: GCM alone would let one ciphertext open under two keys.
    if not hmac.compare_digest(okm[32:], header.commitment):
        raise DecryptionError("entry failed authentication")
    try:
        return AESGCM(okm[:32]).decrypt(header.nonce, payload, header_bytes)
    except InvalidTag:
        raise DecryptionError("entry failed authentication") from None


def wrap(kek: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt a small secret (a ring key) under a key-encryption key; returns nonce||ct."""
    # The KEK wraps a handful of keys over its life, far below GCM's random-nonce bound.
    nonce = os.urandom(WRAP_NONCE_SIZE)
    return nonce + AESGCM(kek).encrypt(nonce, plaintext, aad)


def unwrap(kek: bytes, blob: bytes, aad: bytes) -> bytes:
    """Reverse :func:`wrap`.

    Raises:
        DecryptionError: wrong key-encryption key, or the blob or its aad was changed.
    """
    if len(blob) < WRAP_NONCE_SIZE + fmt.TAG_SIZE:
        raise DecryptionError("wrapped key failed authentication")
    try:
        return AESGCM(kek).decrypt(blob[:WRAP_NONCE_SIZE], blob[WRAP_NONCE_SIZE:], aad)
    except InvalidTag:
        raise DecryptionError("wrapped key failed authentication") from None
