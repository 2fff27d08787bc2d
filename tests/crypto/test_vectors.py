"""The frozen v1 vectors: every release must read each with its recorded outcome."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import vault
from vault._crypto import aead
from vault._crypto import format as fmt
from vault._store.entries import name_stem
from vault._store.store import entries_of

VECTORS = sorted((Path(__file__).parent.parent / "vectors" / "v1").glob("*.json"))
OUTCOMES = {"format error": vault.FormatError, "decryption failure": vault.DecryptionError,
            "unknown key": vault.UnknownKeyError, "expired": vault.EntryExpiredError}


def load(path: Path) -> dict[str, Any]:
    """Read one vector file."""
    return json.loads(path.read_text(encoding="utf-8"))  # type: ignore[no-any-return]


def test_vectors_exist_for_every_outcome() -> None:
    """There are vectors for success and for every failure outcome."""
    assert {load(p)["expect"] for p in VECTORS} == {"success", *OUTCOMES}


@pytest.mark.parametrize("path", VECTORS, ids=lambda p: p.stem)
def test_vector(path: Path, tmp_path: Path) -> None:
    """The vector's file, placed as its entry, opens (or fails) exactly as recorded."""
    vector = load(path)
    ring = vault.KeyRing([vault.Key.from_text(t) for t in vector["keys"]])
    v = vault.Vault(tmp_path / "vault", keys=ring, ttl=vector["ttl_seconds"],
                    clock_skew=vector["clock_skew_seconds"])
    entry = v.directory / f"{name_stem(vector['name'])}.cve"
    entry.write_bytes(bytes.fromhex(vector["file_hex"]))
    entry.chmod(0o600)
    if vector["expect"] == "success":
        got = entries_of(v).load(vector["name"], vector["now_ms"])[1]
        assert got == vault.codec.loads(vector["plaintext"])
        assert vault.codec.dumps(got) == vector["plaintext"].encode("utf-8")
    else:
        with pytest.raises(OUTCOMES[vector["expect"]]):
            entries_of(v).load(vector["name"], vector["now_ms"])


@pytest.mark.parametrize("path", [p for p in VECTORS if load(p)["expect"] == "success"],
                         ids=lambda p: p.stem)
def test_sealing_is_reproducible(path: Path) -> None:
    """Sealing the plaintext again with the vector's salt, nonce and times gives its bytes."""
    vector = load(path)
    data = bytes.fromhex(vector["file_hex"])
    header = fmt.parse(data)[0]
    ring = vault.KeyRing([vault.Key.from_text(t) for t in vector["keys"]])
    key = ring.get(header.key_id.hex())
    again = aead._seal_from_parts(
        key._material, key._id_bytes, kind=header.kind, name=header.name,
        plaintext=vector["plaintext"].encode("utf-8"), created_at=header.created_at,
        expires_at=header.expires_at, salt=header.salt, nonce=header.nonce)
    assert again == data
