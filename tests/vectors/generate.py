"""Generate the frozen v1 test vectors (run once; existing files are never rewritten).

Usage: python -m tests.vectors.generate

Every vector is produced from fixed keys, salts, nonces and times through the private
``aead._seal_from_parts`` helper, then frozen: ``tests/crypto/test_vectors.py`` checks that every
release reads each one with the recorded outcome. Never edit a vector after release; add new
ones instead.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from vault import Key, codec
from vault._crypto import aead
from vault._crypto import format as fmt

HERE = Path(__file__).resolve().parent / "v1"
KEY_A = Key.from_bytes(bytes(range(32)))
KEY_B = Key.from_bytes(bytes(range(32, 64)))
KEY_C = Key.from_bytes(bytes(range(64, 96)))
T0 = 1_700_000_000_000
TTL = 300
BAILEYS_LIKE: dict[str, Any] = {
    "noiseKey": {"private": bytes(range(100, 132)), "public": bytes(range(132, 164))},
    "signedPreKey": {"keyPair": {"private": bytes(32), "public": b"\x05" + bytes(32)},
                     "signature": bytes(range(64)), "keyId": 1},
    "registrationId": 4711,
    "advSecretKey": "aGVsbG8gd29ybGQgdGhpcyBpcyBiYXNlNjQ=",
    "me": {"id": "4915100000000:7@s.whatsapp.net", "name": "Müller Café"},
    "$looks_like_a_tag": {"$b": "not bytes"},
    "buffer_shaped": {"type": "Buffer", "data": [1, 2, 3]},
}


def seal(key: Key, name: str, value: Any, *, created: int = T0, salt_byte: int = 1,
         nonce_byte: int = 2) -> bytes:
    """Seal ``value`` with a fixed salt and nonce (only ever for vectors)."""
    return aead._seal_from_parts(
        key._material, key._id_bytes, kind=fmt.KIND_ENTRY, name=name,
        plaintext=codec.dumps(value), created_at=created, expires_at=created + TTL * 1000,
        salt=bytes([salt_byte]) * fmt.SALT_SIZE, nonce=bytes([nonce_byte]) * fmt.NONCE_SIZE)


def patch(data: bytes, offset: int, new: bytes) -> bytes:
    """Return ``data`` with ``new`` written at ``offset``."""
    return data[:offset] + new + data[offset + len(new):]


def flip(data: bytes, offset: int) -> bytes:
    """Return ``data`` with one bit flipped at ``offset``."""
    return patch(data, offset, bytes([data[offset] ^ 0x01]))


def vectors() -> dict[str, dict[str, Any]]:
    """Return every vector by file stem."""
    simple = seal(KEY_A, "company-1", {"token": "t0k3n", "n": 1})
    rich = seal(KEY_A, "company-2", BAILEYS_LIKE, salt_byte=3, nonce_byte=4)
    under_b = seal(KEY_B, "company-3", [b"\x00\xff", None, True, -0.5], salt_byte=5,
                   nonce_byte=6)
    unicode_name = seal(KEY_A, "Kunde/Ünïcödé 名前", "ok", salt_byte=7, nonce_byte=8)
    ring_a, ring_ab, ring_ba = [KEY_A], [KEY_A, KEY_B], [KEY_B, KEY_A]
    v: dict[str, dict[str, Any]] = {}

    def add(stem: str, description: str, data: bytes, *, name: str = "company-1",
            ring: list[Key] = ring_a, now: int = T0 + 1000, expect: str,
            value: Any = None) -> None:
        vector: dict[str, Any] = {
            "description": description, "keys": [k.to_text() for k in ring], "name": name,
            "ttl_seconds": TTL, "clock_skew_seconds": 60, "now_ms": now,
            "file_hex": data.hex(), "expect": expect}
        if expect == "success":
            vector["plaintext"] = codec.dumps(value).decode("utf-8")
        v[stem] = vector

    add("success-simple", "a small dict under the primary key", simple, expect="success",
        value={"token": "t0k3n", "n": 1})
    add("success-baileys-like", "bytes, a tag-like key and a Buffer-shaped dict", rich,
        name="company-2", expect="success", value=BAILEYS_LIKE)
    add("success-decrypt-only-key", "sealed under a decrypt-only key of the ring", under_b,
        name="company-3", ring=ring_ab, expect="success", value=[b"\x00\xff", None, True, -0.5])
    add("success-primary-b", "the same file, its key now the primary", under_b,
        name="company-3", ring=ring_ba, expect="success", value=[b"\x00\xff", None, True, -0.5])
    add("success-unicode-name", "a non-ASCII entry name", unicode_name,
        name="Kunde/Ünïcödé 名前", expect="success", value="ok")
    add("success-at-ttl-boundary", "read exactly at created_at + ttl", simple,
        now=T0 + TTL * 1000, expect="success", value={"token": "t0k3n", "n": 1})
    add("success-within-skew", "created 60 s in the reader's future (the allowed skew)",
        simple, now=T0 - 60_000, expect="success", value={"token": "t0k3n", "n": 1})
    add("format-bad-magic", "magic changed to CVLU", patch(simple, 0, b"CVLU"),
        expect="format error")
    add("format-version-2", "an unknown future version", patch(simple, 4, b"\x02"),
        expect="format error")
    add("format-kind-3", "an undefined kind", patch(simple, 5, b"\x03"), expect="format error")
    add("format-truncated", "last byte missing", simple[:-1], expect="format error")
    add("format-extended", "one byte appended", simple + b"\x00", expect="format error")
    add("format-name-length-0", "NAME_LENGTH of zero", patch(simple, 110, b"\x00\x00"),
        expect="format error")
    add("format-created-after-expiry", "CREATED_AT later than EXPIRES_AT",
        patch(simple, 90, struct.pack(">Q", T0 + TTL * 1000 + 1)), expect="format error")
    add("format-empty", "an empty file", b"", expect="format error")
    add("decryption-tag-flipped", "last byte (tag) flipped", flip(simple, len(simple) - 1),
        expect="decryption failure")
    add("decryption-ciphertext-flipped", "first payload byte flipped",
        flip(simple, fmt.FIXED_HEADER_SIZE + len("company-1")), expect="decryption failure")
    add("decryption-salt-flipped", "a salt bit flipped", flip(simple, 20),
        expect="decryption failure")
    add("decryption-nonce-flipped", "a nonce bit flipped", flip(simple, 50),
        expect="decryption failure")
    add("decryption-commitment-flipped", "a commitment bit flipped", flip(simple, 60),
        expect="decryption failure")
    add("decryption-redated", "CREATED_AT moved one millisecond later", flip(simple, 97),
        expect="decryption failure")
    add("decryption-expiry-extended", "EXPIRES_AT moved later", flip(simple, 104),
        expect="decryption failure")
    add("decryption-renamed", "company-1's file requested as company-9", simple,
        name="company-9", expect="decryption failure")
    add("decryption-relabelled-key-id", "sealed under A, header names B (commitment fails)",
        patch(simple, 6, KEY_B._id_bytes), ring=ring_ab, expect="decryption failure")
    add("unknown-key", "sealed under a key the ring does not hold", under_b, name="company-3",
        ring=[KEY_C], expect="unknown key")
    add("expired", "read one millisecond after created_at + ttl", simple,
        now=T0 + TTL * 1000 + 1, expect="expired")
    add("expired-future-dated", "created more than the skew in the reader's future", simple,
        now=T0 - 60_001, expect="expired")
    return v


def main() -> None:
    """Write vectors that do not exist yet; refuse to touch existing ones."""
    HERE.mkdir(parents=True, exist_ok=True)
    for stem, vector in vectors().items():
        path = HERE / f"{stem}.json"
        if path.exists():
            if json.loads(path.read_text()) != vector:
                print(f"kept frozen {path.name} (differs from what the generator makes now)")
            continue
        path.write_text(json.dumps(vector, indent=2, ensure_ascii=False) + "\n")
        print(f"wrote {path.name}")


if __name__ == "__main__":
    main()
