"""The keyring backend (issue 15, part 1): keyring's own backend test suite, the entry point,
privacy of names, concurrency, and keyring's own CLI, on real files and processes."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import keyring
import pytest
from keyring.testing.backend import BackendBasicTests

import vault
from tests.hygiene import secret
from vault import ops
from vault.config import KEYRING_BACKEND, BackendSettings
from vault.integrations.keyring_backend import MAX_NAME_CHARS, CredsealKeyring

PASSPHRASE = "keyring backend test passphrase 51c2"
secret(PASSPHRASE, "keyring backend passphrase")


def _settings(directory: Path) -> BackendSettings:
    return BackendSettings(_env_file=None, dir=directory, key_source="passphrase",
                           passphrase=PASSPHRASE, kdf_profile="test")


class TestKeyringsOwnSuite(BackendBasicTests):
    """keyring's BackendBasicTests, unchanged: every test runs, none is overridden."""

    base: Path

    @pytest.fixture(autouse=True, scope="class")
    @classmethod
    def _base(cls, tmp_path_factory: pytest.TempPathFactory) -> None:
        cls.base = tmp_path_factory.mktemp("keyring-suite")

    def init_keyring(self) -> CredsealKeyring:
        return CredsealKeyring(settings=_settings(self.base / secrets.token_hex(4)))


def _env(directory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("CREDSEAL_")}
    env.update(PYTHON_KEYRING_BACKEND=KEYRING_BACKEND, CREDSEAL_BACKEND_DIR=str(directory),
               CREDSEAL_BACKEND_KEY_SOURCE="passphrase",
               CREDSEAL_BACKEND_PASSPHRASE=PASSPHRASE, CREDSEAL_BACKEND_KDF_PROFILE="test")
    return env


def test_never_chosen_unless_configured(tmp_path: Path) -> None:
    """Registered under keyring.backends, so keyring loads the entry point in every process:
    unconfigured, that loads nothing of credseal (no import cost for pip and the like) and
    the backend is not viable; configured, keyring picks it."""
    probe = ("import sys, keyring\n"
             "chosen = type(keyring.get_keyring()).__name__\n"
             "loaded = 'vault' in sys.modules\n"
             "from vault.integrations.keyring_backend import CredsealKeyring\n"
             "print(loaded, CredsealKeyring.viable, chosen)")
    clean = {k: v for k, v in os.environ.items() if k != "PYTHON_KEYRING_BACKEND"}
    off = subprocess.run([sys.executable, "-c", probe], env=clean, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert off[:2] == ["False", "False"] and off[2] != "CredsealKeyring"
    on = subprocess.run([sys.executable, "-c", probe], env=_env(tmp_path / "v"), cwd=tmp_path,
                        capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert on == ["True", "True", "CredsealKeyring"]


def test_files_show_neither_service_nor_user(tmp_path: Path) -> None:
    """Entry names are an HMAC under the vault's name key, kept across a rotation; the pair is
    checked inside the sealed value; names are limited in length."""
    backend = CredsealKeyring(settings=_settings(tmp_path / "v"))
    backend.set_password("mail.example", "alice", "s3cret-pw-1")
    everything = b"".join(p.read_bytes() for p in (tmp_path / "v").rglob("*") if p.is_file())
    assert b"mail.example" not in everything and b"alice" not in everything
    assert b"s3cret-pw-1" not in everything
    source = vault.keysources.PassphraseKeySource(tmp_path / "v", PASSPHRASE)
    v = vault.Vault(tmp_path / "v", keys=source)
    assert ops.rotate(v, source).outcome == "rotated"
    again = CredsealKeyring(settings=_settings(tmp_path / "v"))
    assert again.get_password("mail.example", "alice") == "s3cret-pw-1"
    with pytest.raises(keyring.errors.PasswordSetError, match="at most 1024 characters"):
        again.set_password("x" * (MAX_NAME_CHARS + 1), "alice", "pw")
    # an entry renamed onto another pair's name is not served for that pair
    names = v.names()
    assert len(names) == 1 and names[0].startswith("keyring/")
    backend.set_password("mail.example", "bob", "bobs-pw")
    alice, bob = sorted(v.names(), key=lambda n: v.info(n).created_at)
    value = v.get(alice)
    v.put(bob, value)  # a writer with the key moving a value: the pair inside says no
    assert again.get_password("mail.example", "bob") is None


_WRITER = """\
import sys
from vault.integrations.keyring_backend import CredsealKeyring
backend = CredsealKeyring()
tag = sys.argv[1]
for i in range(25):
    backend.set_password("svc", f"{tag}-{i}", f"pw-{tag}-{i}")
"""


def test_four_processes_setting_passwords_at_once_lose_none(tmp_path: Path) -> None:
    """Four processes start on a vault that does not exist yet and set 25 passwords each."""
    env = _env(tmp_path / "v")
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, f"w{n}"], env=env, cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for n in range(4)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    backend = CredsealKeyring(settings=_settings(tmp_path / "v"))
    for n in range(4):
        for i in range(25):
            assert backend.get_password("svc", f"w{n}-{i}") == f"pw-w{n}-{i}"


def test_keyrings_own_cli_works_non_interactively(tmp_path: Path) -> None:
    """`keyring set/get/del` against the backend, the passphrase from the environment."""
    env = _env(tmp_path / "v")

    def cli(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "keyring", *args], env=env, cwd=tmp_path,
                              input=stdin, capture_output=True, text=True, timeout=60)
    assert cli("set", "db", "admin", stdin="hunter2-pw\n").returncode == 0
    got = cli("get", "db", "admin")
    assert got.returncode == 0 and got.stdout == "hunter2-pw\n", got.stderr
    assert cli("del", "db", "admin").returncode == 0
    assert cli("get", "db", "admin").returncode == 1
    assert json.loads((tmp_path / "v" / "keyfile.json").read_text())["format"]


def test_the_keyring_key_source_refuses_this_backend(tmp_path: Path) -> None:
    """The OS-keyring key source never keeps a vault's keys in the credseal backend."""
    source = vault.keysources.OSKeyringSource("svc",
                                              backend=CredsealKeyring(settings=_settings(
                                                  tmp_path / "v")))
    with pytest.raises(vault.KeySourceError, match="credseal's own keyring backend"):
        source.load()


def test_commands_on_the_backend_directory_keep_its_no_expiry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The no-expiry mode is recorded in the sealed state: `credseal prune` and `verify` run
    on the backend's directory with the default TTL, two days later, neither list nor remove
    a password as expired; a removed vault.state is not silently replaced by a new name key."""
    import io

    from vault import _clock
    from vault.cli import main

    backend = CredsealKeyring(settings=_settings(tmp_path / "v"))
    backend.set_password("db", "admin", "pw-kept")
    for name in list(os.environ):
        if name.upper().startswith("CREDSEAL_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CREDSEAL_DIR", str(tmp_path / "v"))
    monkeypatch.setenv("CREDSEAL_KEY_SOURCE", "passphrase")
    monkeypatch.setenv("CREDSEAL_PASSPHRASE", PASSPHRASE)
    monkeypatch.chdir(tmp_path)
    later = _clock.now_ms() + 2 * 86_400_000
    monkeypatch.setattr("vault._clock.now_ms", lambda: later)
    for command in (["prune", "--apply", "--json"], ["verify", "--json"]):
        out, err = io.StringIO(), io.StringIO()
        code = main(command, stdin=io.StringIO(), stdout=out, stderr=err)
        assert code in (0, 5), (command, err.getvalue())  # prune: 5, nothing to remove
        if command[0] == "verify":
            assert json.loads(out.getvalue())["summary"] == {"ok": 1, "expired": 0,
                                                              "failed": 0}
    assert CredsealKeyring(settings=_settings(tmp_path / "v")).get_password(
        "db", "admin") == "pw-kept"
    (tmp_path / "v" / "vault.state").unlink()
    with pytest.raises(keyring.errors.KeyringError, match="name key is gone"):
        CredsealKeyring(settings=_settings(tmp_path / "v")).get_password("db", "admin")


def test_backend_settings_never_default_to_the_services_keyring_or_dotenv(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The backend's keyring service is its own by default, and a .env in the working
    directory (a cloned repository's, read by every tool that asks keyring) is ignored."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("CREDSEAL_BACKEND_PASSPHRASE=from-a-cloned-repo\n")
    (tmp_path / ".env").chmod(0o600)
    monkeypatch.delenv("CREDSEAL_BACKEND_PASSPHRASE", raising=False)
    settings = BackendSettings()
    assert settings.keyring_service == "credseal-backend" and settings.passphrase is None
    assert vault.config.VaultSettings().keyring_service == "credseal"


def test_a_wrong_passphrase_is_reported_as_such_never_as_a_new_vault(tmp_path: Path) -> None:
    CredsealKeyring(settings=_settings(tmp_path / "v")).set_password("s", "u", "pw")
    wrong = BackendSettings(_env_file=None, dir=tmp_path / "v", key_source="passphrase",
                            passphrase="not the passphrase at all", kdf_profile="test")
    with pytest.raises(keyring.errors.KeyringError, match="wrong passphrase"):
        CredsealKeyring(settings=wrong).get_password("s", "u")


def test_prune_refuses_backend_passwords_when_the_state_lost_their_ttl(
        tmp_path: Path) -> None:
    """vault.state removed: a cache-TTL prune would delete every password older than a day."""
    CredsealKeyring(settings=_settings(tmp_path / "v")).set_password("s", "u", "pw")
    (tmp_path / "v" / "vault.state").unlink()
    source = vault.keysources.PassphraseKeySource(tmp_path / "v", PASSPHRASE)
    with pytest.raises(vault.ConfigurationError, match="records no TTL"):
        ops.plan_prune(vault.Vault(tmp_path / "v", keys=source))
