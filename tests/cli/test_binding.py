"""One vault, one ring: the mistakes that made two vaults share a key ring (issue 12, items 1-3)
and the vault id and audit head anchored in the key source (issue 11), driven through the CLI
as an operator would, on a real Secret Service and with the passphrase keyfile.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keyring
import pytest

import vault
from tests.helpers.clirunner import PASSPHRASE, Cli, fill
from tests.realparts import SecretService
from vault._store.entries import ENTRY_SUFFIX
from vault._store.state import StateFile
from vault._store.store import entries_of
from vault.keysources import OSKeyringSource, PassphraseKeySource

SERVICE = "credseal-binding-test"


@pytest.fixture
def keyring_env(cli: Cli, use_secret_service: SecretService) -> dict[str, str]:
    env = {k: v for k, v in use_secret_service.subprocess_env().items()
           if not k.upper().startswith("CREDSEAL_")}
    env.update(CREDSEAL_KEY_SOURCE="keyring", CREDSEAL_KEYRING_SERVICE=SERVICE,
               CREDSEAL_KDF_PROFILE="test")
    return env


def key_ids(directory: Path) -> set[str]:
    v = vault.Vault(directory)
    return {v.info(name).key_id for name in v.names()}


def test_second_vault_on_one_keyring_service_cannot_destroy_the_first(
        cli: Cli, keyring_env: dict[str, str]) -> None:
    """The reported sequence: init A; init B on the same service (refused, and its hint no
    longer says rotate); then B joins A's vault, rotates, and `retire <old id>` from B is
    refused because A still holds 40 entries under the key; after rewrapping A it works and
    every entry of A still opens."""
    first, second = cli.dir, cli.home / "second"
    assert cli.run("init", env=keyring_env).returncode == 0
    source = OSKeyringSource(SERVICE)
    ring = source.load()
    cli.add_ring(ring)
    names = [f"company/{i}" for i in range(40)]
    fill(first, source, *names)

    refused = cli.run("--dir", str(second), "init", env=keyring_env)
    assert refused.returncode == 3, refused.stderr
    assert "already holds the keys of vault" in refused.stderr
    assert "CREDSEAL_KEYRING_SERVICE" in refused.stderr and "--join" in refused.stderr
    assert "rotate" not in refused.stderr
    assert not second.exists(), list(second.iterdir())  # a failed init leaves nothing behind

    joined = cli.run("--dir", str(second), "init", "--join", env=keyring_env)
    assert joined.returncode == 0, joined.stderr
    vault_id = StateFile(entries_of(vault.Vault(first, keys=source))).read()
    assert vault_id is not None and vault_id.vault_id in joined.stdout
    old = ring.primary.id
    assert cli.run("--dir", str(second), "rotate", env=keyring_env).returncode == 0
    cli.add_ring(source.load())
    assert key_ids(first) == {old}  # the first directory was not rewrapped
    retire = cli.run("--dir", str(second), "retire", old, env=keyring_env)
    assert retire.returncode != 0
    assert "still seals 40 entries" in retire.stderr and str(first) in retire.stderr
    assert old in source.load()  # not retired: the first vault's entries still open

    assert cli.run("rotate", "--rewrap-only", env=keyring_env).returncode == 0
    retire = cli.run("--dir", str(second), "retire", old, env=keyring_env)
    assert retire.returncode == 0, retire.stderr
    assert "2 directories" in retire.stdout
    reader = vault.Vault(first, keys=source)
    assert all(reader.get(name)["name"] == name for name in names)


def test_a_directory_of_another_vault_is_refused_naming_the_sources_vault(
        cli: Cli, keyring_env: dict[str, str]) -> None:
    """Two vaults on two keyring services; a command run on vault A's directory with vault
    B's service is refused (exit 2), naming B's vault id; nothing in A is changed."""
    assert cli.run("init", env=keyring_env).returncode == 0
    first = OSKeyringSource(SERVICE)
    cli.add_ring(first.load())
    fill(cli.dir, first, "a")
    other_env = {**keyring_env, "CREDSEAL_KEYRING_SERVICE": f"{SERVICE}-b"}
    assert cli.run("--dir", str(cli.home / "b"), "init", env=other_env).returncode == 0
    other = OSKeyringSource(f"{SERVICE}-b")
    cli.add_ring(other.load())
    bound = other.binding()
    assert bound is not None
    before = {p.name: p.read_bytes() for p in cli.dir.iterdir() if p.is_file()}
    for command in (("rotate",), ("retire", "0" * 16), ("journal",), ("prune",)):
        result = cli.run(*command, env=other_env)
        assert result.returncode == 2, (command, result.stderr)
        assert f"another vault than vault {bound.vault_id}" in result.stderr
    assert {p.name: p.read_bytes() for p in cli.dir.iterdir() if p.is_file()} == before


def test_a_directory_from_before_bindings_takes_the_rings_vault_id(
        cli: Cli, keyring_env: dict[str, str], tmp_path: Path) -> None:
    """0.2.0 gave each directory its own vault id: a second directory of the same ring is
    re-identified to the key source's vault (with a warning) and listed, so retire sees it."""
    assert cli.run("init", env=keyring_env).returncode == 0
    source = OSKeyringSource(SERVICE)
    cli.add_ring(source.load())
    second = tmp_path / "second"
    v = vault.Vault(second, keys=source.load())  # a bare ring: no binding involved
    v.put("a", {"v": 1})
    own = StateFile(entries_of(v)).ensure()
    binding = source.binding()
    assert binding is not None and own.vault_id != binding.vault_id
    status = cli.run("--dir", str(second), "rotate", "--rewrap-only", env=keyring_env)
    assert status.returncode in (0, 5), status.stderr
    assert "it takes that id now" in status.stderr
    after = StateFile(entries_of(vault.Vault(second, keys=source))).read()
    assert after is not None and after.vault_id == binding.vault_id
    listed = source.binding()
    assert listed is not None and listed.lists(str(second.resolve()))


def test_init_refuses_a_populated_directory_whatever_the_source(
        cli: Cli, keyring_env: dict[str, str]) -> None:
    """A mistyped service name or another key source on a directory holding entries:
    init refuses (exit 2) and creates no key anywhere."""
    keys = cli.init_env()
    fill(cli.dir, vault.KeyRing.from_text(keys), "one", "two")
    typo = {**keyring_env, "CREDSEAL_KEYRING_SERVICE": "credseal-typo"}
    for env, extra in ((typo, {}), (None, {"key_source": "passphrase",
                                           "passphrase": PASSPHRASE})):
        result = cli.run("init", env=env, **extra)
        assert result.returncode == 2, result.stderr
        assert "already holds a vault (2 entries" in result.stderr
        assert "run `credseal init`" not in result.stderr
    assert keyring.get_password("credseal-typo", "index") is None
    assert not (cli.dir / "keyfile.json").exists()


def test_a_failed_init_removes_only_what_it_created(cli: Cli, tmp_path: Path) -> None:
    """In a directory that existed (a systemd StateDirectory), a failed init removes the files
    it made and keeps the directory and what was there; a directory it made goes away."""
    cli.dir.mkdir(mode=0o700)
    (cli.dir / "README").write_text("kept")
    # the keyfile's lock cannot be taken: a directory squats the lock path
    (cli.dir / ".locks").mkdir(mode=0o700)
    (cli.dir / ".locks" / "keyfile.lock").mkdir()
    failed = cli.run("init", key_source="passphrase", passphrase=PASSPHRASE)
    assert failed.returncode != 0
    assert sorted(p.name for p in cli.dir.iterdir()) == [".locks", "README"]
    shutil.rmtree(cli.dir)
    assert cli.run("init", key_source="passphrase", passphrase="").returncode != 0
    assert not cli.dir.exists()


def test_env_init_join_and_no_rotate_hint(cli: Cli) -> None:
    """With CREDSEAL_KEYS set, a plain init says how to join or make a separate vault (never
    rotate); --join adds the directory with the same keys."""
    keys = cli.init_env()
    again = cli.run("--dir", str(cli.home / "second"), "init", key_source="env", keys=keys)
    assert again.returncode == 2 and "--join" in again.stderr and "rotate" not in again.stderr
    assert not (cli.home / "second").exists()
    joined = cli.run("--dir", str(cli.home / "second"), "init", "--join", key_source="env",
                     keys=keys)
    assert joined.returncode == 0 and "CREDSEAL_KEYS" not in joined.stdout, joined.stderr
    v = vault.Vault(cli.home / "second", keys=vault.KeyRing.from_text(keys))
    v.put("x", {"ok": True})
    assert v.get("x") == {"ok": True}


def test_keyfile_binds_the_vault_and_anchors_the_audit_head(cli: Cli) -> None:
    """The keyfile records the vault id and this directory's audit head, authenticated:
    restoring audit.jsonl and vault.state together from an earlier copy is found by verify;
    editing the binding in the keyfile breaks every wrap."""
    assert cli.run("init", key_source="passphrase", passphrase=PASSPHRASE).returncode == 0
    source = PassphraseKeySource(cli.dir, PASSPHRASE)
    cli.add_ring(source.load())
    fill(cli.dir, source, "a")
    early = {name: (cli.dir / name).read_bytes() for name in ("audit.jsonl", "vault.state")}
    assert cli.run("rotate", key_source="passphrase", passphrase=PASSPHRASE).returncode == 0
    cli.add_ring(source.load())
    ok = cli.run("verify", "--json", key_source="passphrase", passphrase=PASSPHRASE)
    assert ok.returncode == 0 and json.loads(ok.stdout)["audit_problem"] is None, ok.stdout
    binding = source.binding()
    state = StateFile(entries_of(vault.Vault(cli.dir, keys=source))).read()
    assert binding is not None and state is not None
    assert binding.vault_id == state.vault_id
    assert binding.head_of(str(cli.dir.resolve())) == state.audit_head

    # the rotation rewrapped vault.state: an older pair opens only with a key still held
    for name, data in early.items():
        (cli.dir / name).write_bytes(data)
    rolled = cli.run("verify", "--json", key_source="passphrase", passphrase=PASSPHRASE)
    assert rolled.returncode == 1
    assert "rolled back together" in json.loads(rolled.stdout)["audit_problem"]

    for name in early:  # deleting both does not hide the anchor either
        (cli.dir / name).unlink()
    gone = cli.run("verify", "--json", key_source="passphrase", passphrase=PASSPHRASE)
    assert gone.returncode == 1 and json.loads(gone.stdout)["audit_problem"]

    doc = json.loads((cli.dir / "keyfile.json").read_bytes())
    doc["vault"]["id"] = "0" * 32
    (cli.dir / "keyfile.json").write_text(json.dumps(doc))
    forged = cli.run("verify", key_source="passphrase", passphrase=PASSPHRASE)
    assert forged.returncode == 3
    assert "wrong passphrase (or the keyfile was modified)" in forged.stderr


def test_a_library_directory_joins_the_keyring_vault_and_is_listed(
        cli: Cli, keyring_env: dict[str, str], tmp_path: Path) -> None:
    """A service on a new directory (a new host's disk) adopts the key source's vault id on
    its first state write and is listed in the binding, so retire checks it too."""
    assert cli.run("init", env=keyring_env).returncode == 0
    source = OSKeyringSource(SERVICE)
    cli.add_ring(source.load())
    fresh = tmp_path / "fresh"
    v = vault.Vault(fresh, keys=source)
    v.put("a", {"v": 1})
    state = StateFile(entries_of(v)).ensure()
    binding = source.binding()
    assert binding is not None and state.vault_id == binding.vault_id
    assert binding.lists(str(fresh.resolve()))
    old = source.load().primary.id
    assert cli.run("rotate", env=keyring_env).returncode == 0
    cli.add_ring(source.load())
    assert list(fresh.glob(f"*{ENTRY_SUFFIX}"))
    refused = cli.run("retire", old, env=keyring_env)
    assert refused.returncode != 0 and str(fresh.resolve()) in refused.stderr
    shutil.rmtree(fresh)  # the host's disk is gone: retire refuses until told to forget it
    unseen = cli.run("retire", old, env=keyring_env)
    assert unseen.returncode == 4 and "is not visible here" in unseen.stderr
    assert f"--forget {fresh.resolve()}" in unseen.stderr
    retired = cli.run("retire", old, "--forget", str(fresh), env=keyring_env)
    assert retired.returncode == 0, retired.stderr
    assert f"forgot {fresh.resolve()}" in retired.stderr
    after = source.binding()
    assert after is not None and not after.lists(str(fresh.resolve()))


def test_retire_refuses_a_listed_directory_whose_state_does_not_open(
        cli: Cli, keyring_env: dict[str, str], tmp_path: Path) -> None:
    """A keyless writer garbles a second directory's vault.state: retire from the first must
    not take that directory for another vault's and retire a key it still uses."""
    assert cli.run("init", env=keyring_env).returncode == 0
    source = OSKeyringSource(SERVICE)
    cli.add_ring(source.load())
    second = tmp_path / "second"
    assert cli.run("--dir", str(second), "init", "--join", env=keyring_env).returncode == 0
    fill(second, source, "b")
    old = source.load().primary.id
    assert cli.run("rotate", env=keyring_env).returncode == 0
    cli.add_ring(source.load())
    (second / "vault.state").write_bytes(b"garbage")
    refused = cli.run("retire", old, env=keyring_env)
    assert refused.returncode == 4 and "cannot be checked" in refused.stderr
    assert old in source.load()


def test_forget_also_covers_a_listed_directory_that_is_another_vaults_now(
        cli: Cli, keyring_env: dict[str, str], tmp_path: Path) -> None:
    """A listed directory whose state no longer opens (re-made for another vault, or garbled)
    blocks retire until the operator names it with --forget; then it is forgotten."""
    assert cli.run("init", env=keyring_env).returncode == 0
    source = OSKeyringSource(SERVICE)
    cli.add_ring(source.load())
    second = tmp_path / "second"
    assert cli.run("--dir", str(second), "init", "--join", env=keyring_env).returncode == 0
    old = source.load().primary.id
    assert cli.run("rotate", env=keyring_env).returncode == 0
    cli.add_ring(source.load())
    (second / "vault.state").write_bytes(b"garbage")
    assert cli.run("retire", old, env=keyring_env).returncode == 4
    forgot = cli.run("retire", old, "--forget", str(second), env=keyring_env)
    assert forgot.returncode == 0, forgot.stderr
    binding = source.binding()
    assert binding is not None and not binding.lists(str(second.resolve()))
