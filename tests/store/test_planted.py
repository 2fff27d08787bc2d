"""Forged, truncated and random files planted in every subdirectory and state-file path of a
vault in use (the attacker who can write the directory but holds no key): no crash, no
healthy source left unread, no value in the primary changed, no acknowledged write lost."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from tests.helpers.backends import FakeClock
from vault import ops
from vault._crypto import aead
from vault._crypto import format as fmt
from vault._store.entries import name_stem
from vault._store.journal import Journal
from vault.config import VaultSettings
from vault.testing import MemorySource

RECORD = "01700000000000000000-1-0000cafe"
PLACES: dict[str, Callable[[Path], Path]] = {
    "an entry path": lambda d: d / f"{name_stem('planted')}.cve",
    "a file of another name": lambda d: d / f"{'f' * 64}.cve",
    "a temp file": lambda d: d / f".{name_stem('c1')}.{'0' * 16}.tmp",
    "a journal record": lambda d: d / "journal" / f"{RECORD}.cvj",
    "a journal conflict": lambda d: d / "journal" / "conflicts" / f"{RECORD}.cvj",
    "the quarantine": lambda d: d / "quarantine" / f"20260101T000000.000000Z-{RECORD}.cvj",
    "an entry lock": lambda d: d / ".locks" / f"{name_stem('c1')}.lock",
    "the replay lock": lambda d: d / "journal" / ".locks" / "replay.lock",
    "the rotation lock": lambda d: d / "rotation.lock",
    "the audit log": lambda d: d / "audit.jsonl",
    "the vault state": lambda d: d / "vault.state",
}


def _forged(path: Path) -> bytes:
    """A well-formed envelope for that place, sealed under a key no vault holds."""
    kind, name = fmt.KIND_ENTRY, "planted"
    if path.suffix == ".cvj":
        kind, name = fmt.KIND_JOURNAL, RECORD
    elif path.name == "vault.state":
        kind, name = fmt.KIND_STATE, "credseal vault state"
    return aead.seal(os.urandom(32), os.urandom(8), kind=kind, name=name, plaintext=b"{}",
                     created_at=1_700_000_000_000, expires_at=fmt.MAX_TIMESTAMP)


CONTENTS: dict[str, Callable[[Path, bytes], bytes]] = {
    "forged": lambda path, genuine: _forged(path),
    "truncated": lambda path, genuine: genuine[:57],
    "random": lambda path, genuine: os.urandom(300),
}


@pytest.mark.parametrize("content", sorted(CONTENTS))
@pytest.mark.parametrize("place", sorted(PLACES))
def test_a_planted_file_breaks_nothing(place: str, content: str, tmp_path: Path) -> None:
    """A planted file in any of the vault's places: the healthy source is read, no value in
    it changes, the write acknowledged during the outage reaches it (or still waits), and
    inventory, verification, prune and rotation run to the end."""
    ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(tmp_path / "v", keys=ring)
    source = MemorySource({"c1": "v0", "c2": "w0"})
    cache = vault.FallbackCache(source, v, clock=FakeClock())
    assert cache.get("c1") == "v0" and cache.get("c2") == "w0"
    source.fail_with()
    acknowledged = cache.save("c2", "w1")
    assert acknowledged.journaled
    genuine = (v.directory / f"{name_stem('c1')}.cve").read_bytes()
    target = PLACES[place](v.directory)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.write_bytes(CONTENTS[content](target, genuine))
    target.chmod(0o600)

    source.recover()
    cache.breaker.reset()
    fetched = cache.fetch("c1")
    assert (fetched.origin, fetched.value) == ("source", "v0")
    snapshot = source.snapshot()
    assert snapshot["c1"] == "v0"
    assert snapshot["c2"] == "w1" or acknowledged.record_id in Journal(v).ids()
    assert set(snapshot) == {"c1", "c2"}
    assert cache.get("c2") == snapshot["c2"]

    settings = VaultSettings(_env_file=None, dir=v.directory, key_source="env",
                             keys=ring.to_text())
    status = ops.status(settings)
    assert status.entries >= 2
    checked = ops.verify(settings)
    assert checked.count("ok") >= 2
    ops.apply_prune(v, ops.plan_prune(v))
    env = vault.keysources.EnvKeySource(ring.to_text())
    if place == "the vault state":  # not this vault's: rotation refuses to follow it
        with pytest.raises(vault.ConfigurationError, match=r"vault\.state does not open"):
            ops.rotate(v, env, rewrap_only=True)
    else:
        assert ops.rotate(v, env, rewrap_only=True).outcome in ("current", "rotated", "failed")
    assert v.get("c1") == "v0" and source.snapshot()["c1"] == "v0"


@pytest.mark.parametrize("content", sorted(CONTENTS))
def test_a_planted_keyfile_is_a_clear_key_source_error(content: str, tmp_path: Path) -> None:
    """A forged, truncated or random keyfile.json: opening the keys fails with a
    KeySourceError naming the keyfile (never an internal error); a running service that
    holds its ring still reads its healthy source, and its failing write-through is an
    event, not a crash."""
    from vault.keysources import PassphraseKeySource

    directory = tmp_path / "v"
    PassphraseKeySource(directory, "pw", profile="test").create(vault.Key.generate())
    v = vault.Vault(directory, keys=PassphraseKeySource(directory, "pw"), refresh_interval=0)
    source = MemorySource({"c1": "v0"})
    events: list[vault.CacheEvent] = []
    cache = vault.FallbackCache(source, v, on_event=events.append, clock=FakeClock())
    assert cache.get("c1") == "v0"
    keyfile = directory / "keyfile.json"
    keyfile.write_bytes(CONTENTS[content](keyfile, keyfile.read_bytes()))
    keyfile.chmod(0o600)
    with pytest.raises(vault.KeySourceError, match="keyfile"):
        PassphraseKeySource(directory, "pw").load()
    source.save("c1", "v1")
    assert cache.fetch("c1").origin == "source" and cache.get("c1") == "v1"
    assert any(e.kind == "cache_write_failed" for e in events)
