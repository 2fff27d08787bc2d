"""Tests of vault.aead: sealing, opening, commitment and key wrapping."""

from __future__ import annotations

import os

import pytest

from vault._crypto import aead
from vault._crypto import format as fmt
from vault.errors import DecryptionError, FormatError, RewrapError

KEY = bytes(range(32))
KEY_ID = aead.key_id(KEY)


def seal(plaintext: bytes = b"secret value", name: str = "n", key: bytes = KEY) -> bytes:
    """Seal an entry with fixed times under ``key``."""
    return aead.seal(key, aead.key_id(key), kind=fmt.KIND_ENTRY, name=name, plaintext=plaintext,
                     created_at=1000, expires_at=2000)


def open_(data: bytes, key: bytes = KEY) -> bytes:
    """Parse and open an envelope under ``key``."""
    header, header_bytes, payload = fmt.parse(data)
    return aead.open_payload(key, header, header_bytes, payload)


def test_round_trip_and_sizes() -> None:
    """Sealing then opening returns the plaintext; overhead is header plus 16-byte tag."""
    data = seal(b"x" * 1000, name="abc")
    assert len(data) == fmt.FIXED_HEADER_SIZE + 3 + 1000 + 16
    assert open_(data) == b"x" * 1000
    assert open_(seal(b"")) == b""


def test_fresh_salt_and_nonce_per_seal() -> None:
    """Sealing the same input twice gives different salts, nonces and ciphertexts."""
    a, b = fmt.parse(seal())[0], fmt.parse(seal())[0]
    assert a.salt != b.salt and a.nonce != b.nonce and a.commitment != b.commitment


def test_plaintext_is_not_in_the_envelope() -> None:
    """The ciphertext does not contain the plaintext."""
    assert b"secret value" not in seal(b"secret value")


def test_key_id_is_deterministic() -> None:
    """The key id is 8 bytes and depends only on the key."""
    assert aead.key_id(KEY) == aead.key_id(bytes(KEY)) and len(KEY_ID) == 8
    assert aead.key_id(os.urandom(32)) != KEY_ID


def test_every_byte_is_authenticated() -> None:
    """Flipping any single byte of the envelope (first, middle, last, every header byte) fails."""
    data = seal(b"0123456789" * 10, name="entry")
    positions = set(range(fmt.FIXED_HEADER_SIZE + 5)) | {len(data) // 2, len(data) - 1}
    for position in sorted(positions):
        bad = bytearray(data)
        bad[position] ^= 0x01
        with pytest.raises((DecryptionError, FormatError)):
            open_(bytes(bad))


def test_wrong_key_fails_at_the_commitment() -> None:
    """Opening with another key fails as a decryption error, without a reason."""
    with pytest.raises(DecryptionError) as info:
        open_(seal(), key=os.urandom(32))
    assert str(info.value) == "entry failed authentication"


def test_commitment_catches_a_header_naming_another_key() -> None:
    """An envelope re-labelled with another key's id does not open under that key."""
    other = os.urandom(32)
    data = bytearray(seal())
    data[6:14] = aead.key_id(other)
    with pytest.raises(DecryptionError):
        open_(bytes(data), key=other)


def test_plaintext_limit() -> None:
    """Plaintexts over the format limit are refused before sealing."""
    with pytest.raises(FormatError, match="exceeds"):
        seal(b"x" * (fmt.MAX_PLAINTEXT_LENGTH + 1))


def test_wrap_unwrap() -> None:
    """Wrapped keys unwrap under the same KEK and aad only."""
    kek = os.urandom(32)
    blob = aead.wrap(kek, KEY, b"aad")
    assert aead.unwrap(kek, blob, b"aad") == KEY
    for bad_kek, bad_aad, bad_blob in ((os.urandom(32), b"aad", blob), (kek, b"other", blob),
                                       (kek, b"aad", blob[:-1]), (kek, b"aad", b"short")):
        with pytest.raises(DecryptionError):
            aead.unwrap(bad_kek, bad_blob, bad_aad)


# RFC 5869, appendix A, test cases 1-3 (HKDF-SHA256): (ikm, salt, info, first 42 bytes of OKM).
RFC5869 = [
    ("0b" * 22, "000102030405060708090a0b0c", "f0f1f2f3f4f5f6f7f8f9",
     "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865"),
    (bytes(range(0x00, 0x50)).hex(), bytes(range(0x60, 0xb0)).hex(),
     bytes(range(0xb0, 0x100)).hex(),
     "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb"),
    ("0b" * 22, "", "",
     "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8"),
]


@pytest.mark.parametrize("ikm, salt, info, okm", RFC5869)
def test_hkdf_matches_rfc5869(ikm: str, salt: str, info: str, okm: str) -> None:
    """The HKDF-SHA256 used for entry keys gives RFC 5869's test-vector output."""
    got = aead._hkdf_sha256_64(bytes.fromhex(ikm), bytes.fromhex(salt), bytes.fromhex(info))
    assert got[:42].hex() == okm



def test_seal_verified_opens_like_seal() -> None:
    """seal_verified's envelope is an ordinary envelope: open_payload reads it."""
    key = aead.random_key()
    envelope = aead.seal_verified(key, aead.key_id(key), kind=fmt.KIND_ROW, name="n",
                                  plaintext=b"value", created_at=1, expires_at=2)
    header, header_bytes, payload = fmt.parse(envelope)
    assert aead.open_payload(key, header, header_bytes, payload) == b"value"
    assert (header.kind, header.name, header.created_at, header.expires_at) == \
        (fmt.KIND_ROW, "n", 1, 2)


@pytest.mark.parametrize("fault", ["header", "payload"])
def test_seal_verified_refuses_an_envelope_that_does_not_open(
        fault: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check can fail: a fault between the seal and the bytes returned (here a parse that
    reads another nonce, or a flipped ciphertext byte) raises RewrapError, nothing returned."""
    real_parse = fmt.parse

    def faulty(data: bytes) -> tuple[fmt.Header, bytes, bytes]:
        header, header_bytes, payload = real_parse(data)
        if fault == "header":
            return header._replace(nonce=bytes(12)), header_bytes, payload
        return header, header_bytes, payload[:-1] + bytes([payload[-1] ^ 1])

    monkeypatch.setattr(aead.fmt, "parse", faulty)
    key = aead.random_key()
    with pytest.raises(RewrapError):
        aead.seal_verified(key, aead.key_id(key), kind=fmt.KIND_ROW, name="n",
                           plaintext=b"value", created_at=1, expires_at=2)
