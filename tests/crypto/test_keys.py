"""Tests of vault.keys: Key and KeyRing."""

from __future__ import annotations

import base64
import copy
import pickle

import pytest

import vault
from vault._crypto import format as fmt
from vault.errors import DecryptionError, InvalidKeyError, UnknownKeyError


def test_generate_gives_256_bit_keys_with_distinct_ids() -> None:
    """Two generated keys differ and have 16-hex-digit ids."""
    a, b = vault.Key.generate(), vault.Key.generate()
    assert a != b and a.id != b.id
    assert len(a.id) == 16 and int(a.id, 16) >= 0


def test_same_material_same_id() -> None:
    """The id is derived from the key: the same bytes always give the same id."""
    raw = bytes(range(32))
    assert vault.Key.from_bytes(raw).id == vault.Key.from_bytes(bytearray(raw)).id
    assert vault.Key.from_bytes(raw) == vault.Key.from_bytes(memoryview(raw))


@pytest.mark.parametrize("size", [0, 16, 31, 33, 64])
def test_from_bytes_rejects_wrong_length(size: int) -> None:
    """Only exactly 32 bytes make a key."""
    with pytest.raises(InvalidKeyError, match="exactly 32 bytes"):
        vault.Key.from_bytes(b"k" * size)


def test_from_bytes_rejects_non_bytes() -> None:
    """A str is not key material."""
    with pytest.raises(InvalidKeyError):
        vault.Key.from_bytes("x" * 32)  # type: ignore[arg-type]


def test_direct_construction_is_refused() -> None:
    """Key() without material is not a thing."""
    with pytest.raises(TypeError):
        vault.Key()


def test_text_round_trip() -> None:
    """to_text and from_text are inverse and the text has the documented shape."""
    key = vault.Key.generate()
    text = key.to_text()
    prefix, key_id, material = text.split(":")
    assert prefix == "cv1" and key_id == key.id and len(material) == 43
    assert "=" not in material
    assert vault.Key.from_text(text) == key
    assert vault.Key.from_text(f"  {text}\n") == key


def test_text_id_is_checked() -> None:
    """A text whose id belongs to another key is refused, naming the id problem."""
    a, b = vault.Key.generate(), vault.Key.generate()
    forged = f"cv1:{b.id}:{a.to_text().split(':')[2]}"
    with pytest.raises(InvalidKeyError, match="does not match"):
        vault.Key.from_text(forged)


@pytest.mark.parametrize("mangle", [
    lambda t: t.replace("cv1:", "cv2:"),
    lambda t: t[:-1],
    lambda t: t + "A",
    lambda t: t.replace(":", ";", 1),
    lambda t: t.upper(),
    lambda t: t + "=",
    lambda t: t[:-1] + "!",
    lambda t: "",
])
def test_malformed_text_is_refused_without_echo(mangle: object) -> None:
    """Malformed key texts raise InvalidKeyError whose message never contains the material."""
    key = vault.Key.generate()
    text = mangle(key.to_text())  # type: ignore[operator]
    with pytest.raises(InvalidKeyError) as info:
        vault.Key.from_text(text)
    material = key.to_text().split(":")[2]
    assert material[:20] not in str(info.value) and material[:20] not in repr(info.value)


def test_non_canonical_base64_is_refused() -> None:
    """The last base64url character may not carry nonzero spare bits."""
    key = vault.Key.from_bytes(bytes(32))
    text = key.to_text()
    assert text.endswith("A")
    with pytest.raises(InvalidKeyError, match="canonical"):
        vault.Key.from_text(text[:-1] + "B")


def test_repr_and_str_show_only_the_id() -> None:
    """Neither repr nor str nor format of a key or ring contains key material in any encoding."""
    key = vault.Key.generate()
    ring = vault.KeyRing([key, vault.Key.generate()])
    raw = base64.b64decode(key.to_text().split(":")[2] + "=", altchars=b"-_")
    shown = [repr(key), str(key), f"{key}", repr(ring), str(ring)]
    for text in shown:
        for encoding in (raw.hex(), base64.b64encode(raw).decode()[:30],
                         base64.urlsafe_b64encode(raw).decode()[:30]):
            assert encoding not in text
    assert key.id in repr(key) and key.id in repr(ring)
    assert not hasattr(key, "__bytes__")


def test_keys_and_rings_cannot_be_pickled() -> None:
    """Pickling raises instead of serializing key material."""
    key = vault.Key.generate()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(key)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(vault.KeyRing([key]))


def test_copy_returns_the_same_key() -> None:
    """Keys are immutable, so copies are the key itself."""
    key = vault.Key.generate()
    assert copy.copy(key) is key and copy.deepcopy(key) is key


def test_ring_primary_and_lookup() -> None:
    """The first key is primary; every key is found by id; unknown ids raise UnknownKeyError."""
    a, b = vault.Key.generate(), vault.Key.generate()
    ring = vault.KeyRing([a, b])
    assert ring.primary is a and ring.get(b.id) is b and list(ring) == [a, b]
    assert ring.ids == (a.id, b.id) and len(ring) == 2 and b.id in ring
    with pytest.raises(UnknownKeyError) as info:
        ring.get("0123456789abcdef")
    assert "0123456789abcdef" in str(info.value)


def test_ring_rejects_duplicates_and_empty() -> None:
    """A ring needs at least one key and no id twice."""
    key = vault.Key.generate()
    with pytest.raises(InvalidKeyError, match="twice"):
        vault.KeyRing([key, vault.Key.from_text(key.to_text())])
    with pytest.raises(InvalidKeyError, match="at least one"):
        vault.KeyRing([])
    with pytest.raises(InvalidKeyError, match="not a Key"):
        vault.KeyRing([key.to_text()])  # type: ignore[list-item]


def test_ring_text_round_trip_and_errors() -> None:
    """KeyRing.from_text reads the CREDSEAL_KEYS form and names the bad item by position."""
    a, b = vault.Key.generate(), vault.Key.generate()
    ring = vault.KeyRing.from_text(f"{a.to_text()}, {b.to_text()}")
    assert ring.ids == (a.id, b.id)
    assert vault.KeyRing.from_text(ring.to_text()).ids == ring.ids
    with pytest.raises(InvalidKeyError, match="item 2"):
        vault.KeyRing.from_text(f"{a.to_text()},cv1:nope")
    with pytest.raises(InvalidKeyError, match="item 2 is empty"):
        vault.KeyRing.from_text(f"{a.to_text()},,{b.to_text()}")
    with pytest.raises(InvalidKeyError, match="empty"):
        vault.KeyRing.from_text("  ")
    with pytest.raises(InvalidKeyError, match="twice"):
        vault.KeyRing.from_text(f"{a.to_text()},{a.to_text()}")


def test_with_primary_and_without() -> None:
    """with_primary puts a key first and keeps the others; without drops a decrypt-only key."""
    a, b, c = (vault.Key.generate() for _ in range(3))
    ring = vault.KeyRing([a, b])
    assert ring.with_primary(c).ids == (c.id, a.id, b.id)
    assert ring.with_primary(b).ids == (b.id, a.id)
    assert ring.without(b.id).ids == (a.id,)
    with pytest.raises(InvalidKeyError, match="primary"):
        ring.without(a.id)


def test_ring_open_uses_the_named_key_only() -> None:
    """A ring opens envelopes of any of its keys, and refuses wrong names and kinds."""
    a, b = vault.Key.generate(), vault.Key.generate()
    sealed = vault.KeyRing([b]).seal(kind=fmt.KIND_ENTRY, name="n", plaintext=b"p",
                                     created_at=1, expires_at=2)
    ring = vault.KeyRing([a, b])
    header, plaintext = ring.open(sealed, kind=fmt.KIND_ENTRY, name="n")
    assert plaintext == b"p" and header.key_id.hex() == b.id
    with pytest.raises(DecryptionError):
        ring.open(sealed, kind=fmt.KIND_ENTRY, name="other")
    with pytest.raises(DecryptionError):
        ring.open(sealed, kind=fmt.KIND_JOURNAL, name="n")
    with pytest.raises(UnknownKeyError):
        vault.KeyRing([a]).open(sealed, kind=fmt.KIND_ENTRY, name="n")


def test_reseal_moves_an_envelope_to_the_primary() -> None:
    """reseal opens under the old key and seals under the primary with the same name and
    timestamps; an envelope already under the primary is left alone (not opened)."""
    a, b = vault.Key.generate(), vault.Key.generate()
    old = vault.KeyRing([a]).seal(kind=fmt.KIND_ROW, name="n", plaintext=b"PFXvalue",
                                  created_at=5, expires_at=fmt.MAX_TIMESTAMP)
    ring = vault.KeyRing([b, a])
    new, old_id = ring.reseal(old, kind=fmt.KIND_ROW, name="n", prefix=b"PFX")
    assert new is not None and old_id.hex() == a.id
    header, plaintext = vault.KeyRing([b]).open(new, kind=fmt.KIND_ROW, name="n")
    assert plaintext == b"PFXvalue" and header.key_id.hex() == b.id
    assert (header.created_at, header.expires_at) == (5, fmt.MAX_TIMESTAMP)
    assert ring.reseal(new, kind=fmt.KIND_ROW, name="n") == (None, header.key_id)


def test_reseal_refuses_what_does_not_open() -> None:
    a, b = vault.Key.generate(), vault.Key.generate()
    old = vault.KeyRing([a]).seal(kind=fmt.KIND_ROW, name="n", plaintext=b"PFXvalue",
                                  created_at=5, expires_at=6)
    ring = vault.KeyRing([b, a])
    with pytest.raises(DecryptionError):
        ring.reseal(old, kind=fmt.KIND_ROW, name="other")
    with pytest.raises(DecryptionError):
        ring.reseal(old, kind=fmt.KIND_ENTRY, name="n")
    with pytest.raises(DecryptionError, match="another table"):
        ring.reseal(old, kind=fmt.KIND_ROW, name="n", prefix=b"XYZ",
                    wrong_prefix="sealed for another table")
    with pytest.raises(UnknownKeyError):
        vault.KeyRing([b]).reseal(old, kind=fmt.KIND_ROW, name="n")
    forged = bytearray(old)
    forged[-1] ^= 1
    with pytest.raises(DecryptionError):
        ring.reseal(bytes(forged), kind=fmt.KIND_ROW, name="n")
