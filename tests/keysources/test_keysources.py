"""Tests of the key sources: environment, OS keyring (a real Secret Service), passphrase."""

from __future__ import annotations

import gc
import json
import os
import stat
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import keyring
import pytest

import vault
from tests.realparts import SecretService
from vault._crypto import kdf
from vault._store.store import entries_of
from vault.errors import KeySourceError, UnknownKeyError
from vault.keysources import (
    ACTIVE,
    DECRYPT_ONLY,
    MAX_INDEX_CHARS,
    RETIRED,
    EnvKeySource,
    KeySource,
    ManagedKeySource,
    OSKeyringSource,
    PassphraseKeySource,
)

try:  # the suite-wide secret scan (tests/hygiene.py), when present
    from tests.hygiene import secret
except ImportError:  # pragma: no cover
    def secret(value: str | bytes, what: str) -> None:
        """No suite-wide scan: nothing to declare."""

PASSPHRASE = "keysources test passphrase 5b0e"
NEW_PASSPHRASE = "keysources new passphrase 93ad"
secret(PASSPHRASE, "test passphrase")
secret(NEW_PASSPHRASE, "new test passphrase")
AUTH = "wrong passphrase (or the keyfile was modified)"


@pytest.fixture
def make_keyfile(tmp_path: Path) -> Callable[..., tuple[PassphraseKeySource, vault.Key]]:
    """Return a factory: a new keyfile (test KDF profile) in a vault directory, its source and
    its first key."""
    def make(name: str = "v") -> tuple[PassphraseKeySource, vault.Key]:
        source = PassphraseKeySource(tmp_path / name, PASSPHRASE, profile="test")
        key = vault.Key.generate()
        source.create(key)
        return source, key
    return make


@pytest.fixture
def derivations(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Count Argon2id derivations: the real kdf.derive, recording the salt of each call."""
    calls: list[bytes] = []
    real = kdf.derive

    def counting(passphrase: bytes | str, salt: bytes, params: kdf.KdfParams) -> bytes:
        calls.append(salt)
        return real(passphrase, salt, params)
    monkeypatch.setattr(kdf, "derive", counting)
    return calls


@pytest.fixture
def make_keyring(use_secret_service: SecretService) -> Iterator[Callable[..., OSKeyringSource]]:
    """Return a factory of keyring sources on the private Secret Service (one service name
    per test, so sources made by one test share its items)."""
    def make(service: str = "credseal-test") -> OSKeyringSource:
        return OSKeyringSource(service)
    yield make


# ---- environment ------------------------------------------------------------------------------

def test_env_source_loads_primary_first() -> None:
    """CREDSEAL_KEYS text gives a ring with the first key primary; states follow the order."""
    new, old = vault.Key.generate(), vault.Key.generate()
    source = EnvKeySource(f"{new.to_text()},{old.to_text()}")
    assert isinstance(source, ManagedKeySource) and isinstance(source, KeySource)
    assert source.kind == "env" and source.load().primary == new
    assert source.refresh(source.load()) is None
    assert [(s.id, s.state, s.created_at) for s in source.states()] == [
        (new.id, ACTIVE, None), (old.id, DECRYPT_ONLY, None)]
    assert new.to_text() not in repr(source) and new.id in repr(source)


@pytest.mark.parametrize(("build", "match"), [
    (lambda k: "not-a-key", "item 1"),
    (lambda k: f"{k.to_text()},{k.to_text()}", "twice"),
    (lambda k: k.to_text()[:-1], "43 base64url"),
    (lambda k: f"{k.to_text()},", "item 2 is empty"),
    (lambda k: k.to_text()[:-1] + ("A" if k.to_text()[-1] != "A" else "B"), "item 1"),
])
def test_env_source_rejects_bad_keys(build: Callable[[vault.Key], str], match: str) -> None:
    """Malformed text, duplicates, wrong length: KeySourceError naming the item, not the text."""
    key = vault.Key.generate()
    text = build(key)
    with pytest.raises(KeySourceError, match=match) as caught:
        EnvKeySource(text)
    assert text not in caught.value.message and "credseal init" in (caught.value.hint or "")


@pytest.mark.parametrize("mutation", ["create", "add", "promote", "retire"])
def test_env_source_mutations_say_deploy(mutation: str) -> None:
    """The environment source cannot store anything: each mutation explains the deploy step."""
    key = vault.Key.generate()
    source = EnvKeySource(key.to_text())
    argument: Any = key if mutation in {"create", "add"} else key.id
    with pytest.raises(KeySourceError, match="CREDSEAL_KEYS is deployed") as caught:
        getattr(source, mutation)(argument)
    assert "secret manager" in (caught.value.hint or "")


# ---- passphrase keyfile -----------------------------------------------------------------------

def test_keyfile_create_and_load(make_keyfile: Callable[..., Any], tmp_path: Path) -> None:
    """create writes a private keyfile.json; a new source with the passphrase loads the key."""
    source, key = make_keyfile()
    path = tmp_path / "v" / "keyfile.json"
    assert source.path == path and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    other = PassphraseKeySource(tmp_path / "v", PASSPHRASE)
    assert other.kind == "passphrase" and other.load().primary == key
    assert [(s.id, s.state) for s in other.states()] == [(key.id, ACTIVE)]
    assert PASSPHRASE not in repr(other) and key.to_text().split(":")[2] not in path.read_text()


def test_keyfile_create_refuses_to_overwrite(make_keyfile: Callable[..., Any]) -> None:
    """A second create on the same directory is refused; the first keyfile stays."""
    source, key = make_keyfile()
    with pytest.raises(KeySourceError, match="already exists"):
        source.create(vault.Key.generate())
    assert source.load().primary == key


def test_keyfile_wrong_or_missing_passphrase(make_keyfile: Callable[..., Any],
                                             tmp_path: Path) -> None:
    """A wrong passphrase is one clear error; none at all asks for it; unverified reads work."""
    make_keyfile()
    with pytest.raises(KeySourceError) as caught:
        PassphraseKeySource(tmp_path / "v", NEW_PASSPHRASE).load()
    assert caught.value.message == AUTH and "CREDSEAL_PASSPHRASE" in (caught.value.hint or "")
    no_passphrase = PassphraseKeySource(tmp_path / "v")
    with pytest.raises(KeySourceError, match="passphrase is needed"):
        no_passphrase.load()
    assert no_passphrase.unverified_keyfile().params == kdf.TEST_PARAMS


def test_keyfile_missing(tmp_path: Path) -> None:
    """No keyfile: KeySourceError naming the path, hinting at credseal init."""
    with pytest.raises(KeySourceError, match="no keyfile at") as caught:
        PassphraseKeySource(tmp_path, PASSPHRASE).load()
    assert "credseal init" in (caught.value.hint or "")


def test_keyfile_hostile_params_refused_before_hashing(
        make_keyfile: Callable[..., Any], tmp_path: Path, derivations: list[bytes]) -> None:
    """A keyfile asking for 1 TiB of memory is refused fast, naming the field, never hashed."""
    make_keyfile()
    path = tmp_path / "v" / "keyfile.json"
    for field, value in (("memory_cost_kib", 2**30), ("time_cost", 10**9)):
        doc = json.loads(path.read_text())
        doc["kdf"]["params"][field] = value
        path.write_text(json.dumps(doc))
        derivations.clear()
        start = time.perf_counter()
        with pytest.raises(KeySourceError, match=f"kdf.params: .*{field}"):
            PassphraseKeySource(tmp_path / "v", PASSPHRASE).load()
        assert time.perf_counter() - start < 0.1 and derivations == []


def test_keyfile_tampered_state_fails(make_keyfile: Callable[..., Any], tmp_path: Path) -> None:
    """Editing a record (here a date) on disk makes the load fail authentication."""
    make_keyfile()
    path = tmp_path / "v" / "keyfile.json"
    doc = json.loads(path.read_text())
    doc["keys"][0]["created_at"] = "2000-01-01T00:00:00Z"
    path.write_text(json.dumps(doc))
    with pytest.raises(KeySourceError, match="wrong passphrase"):
        PassphraseKeySource(tmp_path / "v", PASSPHRASE).load()


def test_keyfile_passwd_rewraps_only_the_keyfile(make_keyfile: Callable[..., Any],
                                                 tmp_path: Path) -> None:
    """passwd: new salt and wraps, same keys; entries untouched; old passphrase refused."""
    source, key = make_keyfile()
    v = vault.Vault(tmp_path / "v", keys=source)
    v.put("db/password", "value-1")
    entry = next((tmp_path / "v").glob("*.cve")).read_bytes()
    before = json.loads(source.path.read_text())
    source.change_passphrase(NEW_PASSPHRASE)
    after = json.loads(source.path.read_text())
    assert after["kdf"]["salt"] != before["kdf"]["salt"]
    assert after["keys"][0]["wrapped"] != before["keys"][0]["wrapped"]
    assert after["keys"][0]["id"] == key.id and after["kdf"]["params"] == before["kdf"]["params"]
    assert next((tmp_path / "v").glob("*.cve")).read_bytes() == entry
    with pytest.raises(KeySourceError, match="wrong passphrase"):
        PassphraseKeySource(tmp_path / "v", PASSPHRASE).load()
    reopened = vault.Vault(tmp_path / "v", keys=PassphraseKeySource(tmp_path / "v",
                                                                   NEW_PASSPHRASE))
    assert reopened.get("db/password") == "value-1"


def test_keyfile_passwd_can_change_profile(make_keyfile: Callable[..., Any]) -> None:
    """passwd with a profile writes that profile's parameters."""
    source, key = make_keyfile()
    source.change_passphrase(NEW_PASSPHRASE, profile="test")
    assert source.unverified_keyfile().params == kdf.TEST_PARAMS
    assert source.load().primary == key


def test_keyfile_rotation_states(make_keyfile: Callable[..., Any], tmp_path: Path) -> None:
    """add (decrypt-only), promote (old active becomes decrypt-only), retire (material gone)."""
    source, first = make_keyfile()
    second = vault.Key.generate()
    source.add(second)
    assert source.load().ids == (first.id, second.id)
    source.promote(second.id)
    assert source.load().ids == (second.id, first.id)
    source.retire(first.id)
    states = {s.id: s for s in source.states()}
    assert states[first.id].state == RETIRED and states[first.id].retired_at is not None
    assert states[second.id].state == ACTIVE
    assert source.load().ids == (second.id,)
    doc = json.loads(source.path.read_text())
    assert "wrapped" not in next(r for r in doc["keys"] if r["id"] == first.id)


def test_keyfile_rotation_rules(make_keyfile: Callable[..., Any]) -> None:
    """The active key cannot be retired, retired keys cannot come back, ids must be known."""
    source, first = make_keyfile()
    with pytest.raises(KeySourceError, match="active key and cannot be retired"):
        source.retire(first.id)
    with pytest.raises(KeySourceError, match="already in the key source"):
        source.add(first)
    second = vault.Key.generate()
    source.add(second)
    source.promote(second.id)
    source.retire(first.id)
    with pytest.raises(KeySourceError, match="retired"):
        source.promote(first.id)
    with pytest.raises(KeySourceError, match="0123456789abcdef is not in the key source"):
        source.promote("0123456789abcdef")
    source.retire(first.id)  # retiring twice is harmless
    source.promote(second.id)  # promoting the active key too
    assert source.load().ids == (second.id,)


def test_retired_key_opens_nothing(make_keyfile: Callable[..., Any], tmp_path: Path) -> None:
    """Once its key is retired, an entry sealed under it raises UnknownKeyError naming the id."""
    source, first = make_keyfile()
    vault.Vault(tmp_path / "v", keys=source).put("old", "sealed under the first key")
    second = vault.Key.generate()
    source.add(second)
    source.promote(second.id)
    source.retire(first.id)
    fresh = vault.Vault(tmp_path / "v", keys=PassphraseKeySource(tmp_path / "v", PASSPHRASE))
    with pytest.raises(UnknownKeyError, match=first.id):
        fresh.get("old")


def test_refresh_sees_rotation_by_another_source(make_keyfile: Callable[..., Any],
                                                 tmp_path: Path,
                                                 derivations: list[bytes]) -> None:
    """A service's vault picks up a key added and promoted by another process's source, with
    no new Argon2id derivation (same salt); after passwd it needs the new passphrase."""
    make_keyfile()
    derivations.clear()
    service = vault.Vault(tmp_path / "v", keys=PassphraseKeySource(tmp_path / "v", PASSPHRASE),
                          refresh_interval=3600)
    for i in range(50):
        service.put(f"entry-{i}", i)
        assert service.get(f"entry-{i}") == i
    assert len(derivations) == 1  # once per source, not per entry
    source = entries_of(service)._source
    assert source is not None and source.refresh(service.keys) is None
    admin_source = PassphraseKeySource(tmp_path / "v", PASSPHRASE, profile="test")
    new = vault.Key.generate()
    admin_source.add(new)
    admin_source.promote(new.id)
    admin = vault.Vault(tmp_path / "v", keys=admin_source)
    admin.put("rotated", "sealed under the new key")
    assert admin.info("rotated").key_id == new.id
    assert service.get("rotated") == "sealed under the new key"  # unknown id -> refresh
    assert service.keys.primary == new
    assert len(derivations) == 2  # one per source object: the service's and the admin's
    admin_source.change_passphrase(NEW_PASSPHRASE)
    with pytest.raises(KeySourceError, match="wrong passphrase"):
        source.refresh(service.keys)
    # passwd derived under a new salt; the service had to derive again, and failed.
    assert len(derivations) == 4 and derivations[2] == derivations[3] != derivations[0]


def test_stale_keyfile_temp_is_removed(make_keyfile: Callable[..., Any], tmp_path: Path) -> None:
    """A temp file left by a crashed keyfile write is removed by the next mutation."""
    source, _ = make_keyfile()
    stale = tmp_path / "v" / ".keyfile.0123456789abcdef.tmp"
    stale.write_bytes(b"{}")
    source.add(vault.Key.generate())
    assert not stale.exists()


def test_passphrase_source_cannot_be_pickled(make_keyfile: Callable[..., Any]) -> None:
    """The source holds the passphrase: pickling it raises."""
    import pickle
    source, _ = make_keyfile()
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(source)


# ---- OS keyring (real Secret Service) -----------------------------------------------------------

def test_keyring_create_load_and_items(make_keyring: Callable[..., OSKeyringSource]) -> None:
    """create stores one key item and a small index; a new source object loads the ring."""
    key = vault.Key.generate()
    make_keyring().create(key)
    source = make_keyring()
    assert source.kind == "keyring" and source.load().primary == key
    index = keyring.get_password("credseal-test", "index")
    assert index is not None and len(index) < MAX_INDEX_CHARS
    assert json.loads(index)["keys"][0]["id"] == key.id
    assert keyring.get_password("credseal-test", f"key:{key.id}") == key.to_text()
    with pytest.raises(KeySourceError, match="already holds the keys of another vault"):
        source.create(vault.Key.generate())


def test_keyring_rotation_and_refresh(make_keyring: Callable[..., OSKeyringSource]) -> None:
    """add/promote/retire through one source; another source's refresh sees each change."""
    first, second = vault.Key.generate(), vault.Key.generate()
    admin = make_keyring()
    admin.create(first)
    service = make_keyring()
    current = service.load()
    assert current.ids == (first.id,) and service.refresh(current) is None
    admin.add(second)
    refreshed = service.refresh(current)
    assert refreshed is not None and refreshed.ids == (first.id, second.id)
    admin.promote(second.id)
    promoted = service.refresh(refreshed)
    assert promoted is not None and promoted.ids == (second.id, first.id)
    assert service.refresh(promoted) is None
    admin.retire(first.id)
    retired = service.refresh(promoted)
    assert retired is not None and retired.ids == (second.id,)
    assert keyring.get_password("credseal-test", f"key:{first.id}") is None
    states = {s.id: s for s in service.states()}
    assert states[first.id].state == RETIRED and states[first.id].retired_at is not None
    admin.retire(first.id)  # twice: the item is already gone, which is fine


def test_keyring_vault_follows_rotation(make_keyring: Callable[..., OSKeyringSource],
                                        tmp_path: Path) -> None:
    """A running vault opens an entry sealed under a key promoted by another process."""
    first, second = vault.Key.generate(), vault.Key.generate()
    make_keyring().create(first)
    service = vault.Vault(tmp_path / "v", keys=make_keyring(), refresh_interval=3600)
    service.put("before", 1)
    admin_source = make_keyring()
    admin_source.add(second)
    admin_source.promote(second.id)
    vault.Vault(tmp_path / "v", keys=make_keyring()).put("after", 2)
    assert service.get("after") == 2 and service.get("before") == 1
    assert service.keys.primary == second


def test_keyring_index_stays_small(make_keyring: Callable[..., OSKeyringSource]) -> None:
    """Many rotations: the index drops the oldest retired records to stay under the cap."""
    source = make_keyring()
    current = vault.Key.generate()
    source.create(current)
    for _ in range(12):
        new = vault.Key.generate()
        source.add(new)
        source.promote(new.id)
        source.retire(current.id)
        current = new
    index = keyring.get_password("credseal-test", "index")
    assert index is not None and len(index) <= MAX_INDEX_CHARS
    states = source.states()
    assert 1 < len(states) < 13 and states[-1].id == current.id
    assert source.load().ids == (current.id,)


def test_keyring_empty_and_damaged(make_keyring: Callable[..., OSKeyringSource]) -> None:
    """No index: says to run init. Bad index JSON, or a missing key item: named errors."""
    source = make_keyring()
    with pytest.raises(KeySourceError, match="holds no credseal keys") as caught:
        source.load()
    assert "credseal init" in (caught.value.hint or "")
    key = vault.Key.generate()
    source.create(key)
    keyring.delete_password("credseal-test", f"key:{key.id}")
    with pytest.raises(KeySourceError, match=f"item of key {key.id} is missing"):
        source.load()
    keyring.set_password("credseal-test", f"key:{key.id}", vault.Key.generate().to_text())
    with pytest.raises(KeySourceError, match="does not hold that key"):
        source.load()
    keyring.set_password("credseal-test", "index", '{"version": 1, "keys": [{"id": 1}]}')
    with pytest.raises(KeySourceError, match=r"keys\[0\]"):
        source.load()


def test_keyring_locked(make_keyring: Callable[..., OSKeyringSource],
                        use_secret_service: SecretService) -> None:
    """A locked keyring is its own clear error; one failed call leaks no more than keyring's
    own one connection."""
    make_keyring().create(vault.Key.generate())
    use_secret_service.lock()
    source = make_keyring()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with pytest.raises(KeySourceError, match="the OS keyring is locked") as error:
            source.load()
        assert "unlock the login keyring" in (error.value.hint or "")
        del error
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, ResourceWarning)]
    assert len(leaks) <= 1


def test_keyring_daemon_down(make_keyring: Callable[..., OSKeyringSource],
                             use_secret_service: SecretService) -> None:
    """With the Secret Service daemon gone, the error names the keyring failure with a hint."""
    use_secret_service.stop_daemon()
    with pytest.raises(KeySourceError, match="OS keyring") as caught:
        make_keyring().load()
    assert caught.value.hint


@pytest.mark.usefixtures("no_keyring_backend")
def test_headless_no_keyring_backend() -> None:
    """Without a session bus: KeySourceError whose hint names every way out."""
    with pytest.raises(KeySourceError, match="no OS keyring backend") as caught:
        OSKeyringSource().load()
    hint = caught.value.hint or ""
    for fix in ("CREDSEAL_KEY_SOURCE=env", "CREDSEAL_KEYS", "CREDSEAL_KEY_SOURCE=passphrase",
                "Secret Service", "D-Bus"):
        assert fix in hint


def test_keyring_service_name_is_checked() -> None:
    """A blank service name is a configuration error."""
    with pytest.raises(vault.ConfigurationError):
        OSKeyringSource("  ")


def test_sources_never_reveal_material(make_keyfile: Callable[..., Any]) -> None:
    """repr of every source shows ids or paths only."""
    source, key = make_keyfile()
    env = EnvKeySource(key.to_text())
    material = key.to_text().split(":")[2]
    for text in (repr(source), repr(env), repr(OSKeyringSource("svc"))):
        assert material not in text and PASSPHRASE not in text
    assert os.fspath(source.path) in repr(source)


def test_keyring_falls_back_to_the_legacy_service_with_a_warning(
        make_keyring: Callable[..., OSKeyringSource], caplog: pytest.LogCaptureFixture) -> None:
    """An empty new service next to an old one holding a ring uses the old ring, with a warning
    and no hint to init; init under the new name is refused; without a ring anywhere the
    usual "run init" error stays."""
    old = make_keyring("credvault-legacy-test")
    key = vault.Key.generate()
    old.create(key)
    source = OSKeyringSource("credseal-renamed-test", legacy_service="credvault-legacy-test")
    with caplog.at_level("WARNING", logger="vault.keysources"):
        ring = source.load()
    assert ring.primary == key and source.service == "credvault-legacy-test"
    assert any("credvault-legacy-test" in r.getMessage() and "init" not in r.getMessage()
               for r in caplog.records)
    fresh = OSKeyringSource("credseal-renamed-test", legacy_service="credvault-legacy-test")
    with pytest.raises(KeySourceError, match="already holds keys under service") as refused:
        fresh.create(vault.Key.generate())
    assert "init" not in (refused.value.hint or "")
    nothing = OSKeyringSource("credseal-renamed-test", legacy_service="credvault-nothing-test")
    with pytest.raises(KeySourceError, match="holds no credseal keys") as missing:
        nothing.load()
    assert nothing.service == "credseal-renamed-test" and "credseal init" in (
        missing.value.hint or "")


def test_swapped_keyfiles_cost_one_derivation_each(make_keyfile: Callable[..., Any],
                                                   derivations: list[bytes],
                                                   tmp_path: Path) -> None:
    """A writer of the directory swapping two keyfiles back and forth (with the costliest
    parameters the caps allow, that was seconds and a GiB per swap) makes the source derive
    once per distinct keyfile, not once per swap: the claim "once per process" holds per
    keyfile."""
    _, key_a = make_keyfile("a")
    _, key_b = make_keyfile("b")
    file_a = (tmp_path / "a" / "keyfile.json").read_bytes()
    file_b = (tmp_path / "b" / "keyfile.json").read_bytes()
    service = PassphraseKeySource(tmp_path / "a", PASSPHRASE)
    derivations.clear()
    target = tmp_path / "a" / "keyfile.json"
    for i in range(10):
        target.write_bytes(file_b if i % 2 else file_a)
        assert service.load().primary == (key_b if i % 2 else key_a)
    assert len(derivations) == 2


def test_passwd_never_weakens_the_keyfile_below_the_configured_profile(
        make_keyfile: Callable[..., Any], tmp_path: Path) -> None:
    """A .env (or anything) that set the KDF profile to "test" once made passwd rewrap the
    keyfile with t=1, m=8 KiB. Rewrapping with parameters weaker than the source's configured
    profile is refused and changes nothing; the configured profile itself is accepted."""
    source, key = make_keyfile()
    path = tmp_path / "v" / "keyfile.json"
    before = path.read_bytes()
    strict = PassphraseKeySource(tmp_path / "v", PASSPHRASE)  # the default profile
    with pytest.raises(KeySourceError, match="weaker than the configured profile") as caught:
        strict.change_passphrase(NEW_PASSPHRASE)  # would keep the keyfile's test params
    assert "CREDSEAL_KDF_PROFILE=rfc9106-low-memory" in (caught.value.hint or "")
    with pytest.raises(KeySourceError, match="weaker"):
        strict.change_passphrase(NEW_PASSPHRASE, profile="test")
    assert path.read_bytes() == before
    source.change_passphrase(NEW_PASSPHRASE)  # configured "test": allowed
    assert PassphraseKeySource(tmp_path / "v", NEW_PASSPHRASE).load().primary == key
