"""Tests of the installed ``credseal`` command, run as a user would run it.

Every run goes through the :class:`Cli` fixture, which keeps its stdout and stderr and, at the
end of each test, scans them for every secret the test knows (key material as raw bytes, hex,
base64 and base64url; passphrases; plaintext values). The only secret allowed in any output is
the ``CREDSEAL_KEYS=...`` line that ``credseal init`` prints on purpose for the env source.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import vault
from tests.helpers.clirunner import (
    KEY_LINE,
    NEW_PASSPHRASE,
    PASSPHRASE,
    PLAINTEXT,
    SECRET_LOOKING,
    Cli,
    fill,
    material,
)
from tests.realparts import SecretService
from vault._store.entries import name_stem
from vault._store.store import entries_of
from vault.keysources import OSKeyringSource, PassphraseKeySource

# ---- help and usage ---------------------------------------------------------------------------

def test_version(cli: Cli) -> None:
    """--version prints the package version and exits 0."""
    result = cli.run("--version")
    assert result.returncode == 0 and result.stdout.strip() == f"credseal {vault.__version__}"


def test_help_documents_commands_and_exit_codes(cli: Cli) -> None:
    """--help lists the commands, examples and the exit codes."""
    result = cli.run("--help")
    assert result.returncode == 0 and "usage: credseal" in result.stdout
    for text in ("init", "status", "inspect", "verify", "diagnose", "passwd", "examples:",
                 "exit codes:", "3 key source error"):
        assert text in result.stdout


@pytest.mark.parametrize("command", ["init", "status", "inspect", "verify", "diagnose", "ls",
                                     "delete", "quarantine", "passwd"])
def test_every_command_help_has_examples(cli: Cli, command: str) -> None:
    """Each command's --help has usage examples; read commands offer --json."""
    result = cli.run(command, "--help")
    assert result.returncode == 0 and "examples:" in result.stdout
    assert ("--json" in result.stdout) == (command in {"status", "inspect", "verify",
                                                       "diagnose", "ls", "init"})


def test_no_command_is_a_usage_error(cli: Cli) -> None:
    """Without a command: the help on stderr, exit code 2."""
    result = cli.run()
    assert result.returncode == 2 and "usage: credseal" in result.stderr


def test_python_dash_m(cli: Cli) -> None:
    """python -m vault is the same command."""
    result = subprocess.run([sys.executable, "-m", "vault", "--version"], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0 and vault.__version__ in result.stdout


# ---- environment source -----------------------------------------------------------------------

def test_env_init_prints_one_key_line_and_warns(cli: Cli) -> None:
    """init with env: exactly one CREDSEAL_KEYS line on stdout, a warning on stderr, a 0700 dir."""
    result = cli.run("init", key_source="env")
    assert result.returncode == 0
    assert len(result.stdout.splitlines()) == 1 and KEY_LINE.fullmatch(result.stdout.strip())
    assert "credseal: warning:" in result.stderr and "secret manager" in result.stderr
    assert cli.dir.is_dir() and (cli.dir.stat().st_mode & 0o777) == 0o700
    cli.allowed.append(KEY_LINE.fullmatch(result.stdout.strip()).group(1))  # type: ignore[union-attr]


def test_env_init_refuses_when_keys_are_set(cli: Cli) -> None:
    """init with CREDSEAL_KEYS already set is a configuration error (exit 2)."""
    keys = cli.init_env()
    result = cli.run("init", key_source="env", keys=keys)
    assert result.returncode == 2 and "CREDSEAL_KEYS is already set" in result.stderr


def test_env_every_command_and_no_secret_anywhere(cli: Cli) -> None:
    """init, status, inspect, verify, diagnose (text and --json) on a filled vault: right
    exit codes and contents, and no key material, plaintext or passphrase in any output."""
    keys = cli.init_env()
    ring = vault.KeyRing.from_text(keys)
    fill(cli.dir, ring, "db/password", "api/token")
    env = {"key_source": "env", "keys": keys}
    status = cli.run("status", **env)
    assert status.returncode == 0, status.stderr
    assert f"key         {ring.primary.id}  active" in status.stdout
    assert "entries 2" in status.stdout
    data = json.loads(cli.run("status", "--json", **env).stdout)
    assert data["entries"] == 2 and data["ok"] is True and data["expired_unverified"] == 0
    assert data["keys"] == [{"id": ring.primary.id, "state": "active", "created_at": None,
                             "retired_at": None, "entries": 2}]
    inspect = cli.run("inspect", "db/password", **env)
    assert inspect.returncode == 0 and ring.primary.id in inspect.stdout
    assert "unverified" in inspect.stdout
    info = json.loads(cli.run("inspect", "db/password", "--json", **env).stdout)
    assert info["name"] == "db/password" and info["key_id"] == ring.primary.id
    assert info["size"] > 0 and info["expired_unverified"] is False
    verify = cli.run("verify", **env)
    assert verify.returncode == 0 and "ok       api/token" in verify.stdout
    assert "2 entries: 2 ok, 0 expired, 0 failed" in verify.stdout
    report = json.loads(cli.run("verify", "--json", **env).stdout)
    assert report["summary"] == {"ok": 2, "expired": 0, "failed": 0}
    diagnose = cli.run("diagnose", **env)
    assert diagnose.returncode == 0 and "ok       settings: valid" in diagnose.stdout
    assert json.loads(cli.run("diagnose", "--json", **env).stdout)["ok"] is True
    assert len(cli.outputs) == 18 and cli.leaks() == []
    assert sum(keys in text for text, _ in cli.outputs) == 1  # only init's own line


def test_verify_reports_ok_expired_failed(cli: Cli) -> None:
    """verify: one line per entry; a tampered entry fails (exit 1), an expired one does not."""
    keys = cli.init_env()
    ring = vault.KeyRing.from_text(keys)
    fill(cli.dir, ring, "good", "bad")
    old = vault.Vault(cli.dir, keys=ring)
    entries_of(old).put("old", PLAINTEXT, vault._clock.now_ms() - 3 * 86400 * 1000)
    bad = cli.dir / (name_stem("bad") + ".cve")
    data = bytearray(bad.read_bytes())
    data[-1] ^= 1
    bad.write_bytes(bytes(data))
    result = cli.run("verify", key_source="env", keys=keys)
    assert result.returncode == 1
    assert "ok       good" in result.stdout and "expired  old" in result.stdout
    assert "failed   bad: DecryptionError" in result.stdout
    status = json.loads(cli.run("status", "--json", key_source="env", keys=keys).stdout)
    assert status["expired_unverified"] == 1 and status["entries"] == 3


def test_status_reports_orphaned_entries_and_permissions(cli: Cli) -> None:
    """status: entries under a key the source lacks, and a world-readable file, are problems
    (exit 1); nothing is decrypted."""
    keys = cli.init_env()
    stranger = vault.KeyRing([vault.Key.generate()])
    cli.add_ring(stranger)
    fill(cli.dir, stranger, "orphan")
    fill(cli.dir, vault.KeyRing.from_text(keys), "loose")
    os.chmod(cli.dir / (name_stem("loose") + ".cve"), 0o644)
    result = cli.run("status", key_source="env", keys=keys)
    assert result.returncode == 1
    assert f"{stranger.primary.id}  unknown to the key source" in result.stdout
    assert "1 entries use key" in result.stdout and "group or others" in result.stdout


def test_bad_settings_are_named_never_echoed(cli: Cli) -> None:
    """A bad CREDSEAL_TTL or CREDSEAL_KEY_SOURCE: exit 2, one error line, value not shown."""
    for variables in ({"ttl": SECRET_LOOKING}, {"key_source": SECRET_LOOKING}):
        result = cli.run("status", **variables)
        name = f"CREDSEAL_{next(iter(variables)).upper()}"
        assert result.returncode == 2 and result.stdout == ""
        assert result.stderr.startswith(f"credseal: error: invalid setting {name}: expected")
        assert "credseal: hint:" in result.stderr and "Traceback" not in result.stderr
        debug = cli.run("--debug", "status", **variables)
        assert "Traceback" in debug.stderr


def test_bad_vault_keys(cli: Cli) -> None:
    """A malformed CREDSEAL_KEYS: verify exits 3 naming the problem, not the text."""
    cli.init_env()
    result = cli.run("verify", key_source="env", keys=SECRET_LOOKING)
    assert result.returncode == 3 and "CREDSEAL_KEYS is invalid" in result.stderr


def test_missing_settings_and_vault(cli: Cli) -> None:
    """No CREDSEAL_KEY_SOURCE: exit 2; no vault directory: exit 4 with the init hint."""
    result = cli.run("verify")
    assert result.returncode == 2 and "CREDSEAL_KEY_SOURCE is not set" in result.stderr
    result = cli.run("status", key_source="env")
    assert result.returncode == 4 and "does not exist" in result.stderr
    assert "credseal init" in result.stderr


def test_inspect_missing_entry(cli: Cli) -> None:
    """inspect of an unknown name exits 4 with a one-line error."""
    cli.init_env()
    result = cli.run("inspect", "nope")
    assert result.returncode == 4 and result.stderr.strip() == \
        "credseal: error: no entry named 'nope'"


def test_dir_option_overrides_vault_dir(cli: Cli) -> None:
    """--dir, before or after the command, wins over CREDSEAL_DIR."""
    keys = cli.init_env()
    fill(cli.dir, vault.KeyRing.from_text(keys), "x")
    for args in (("--dir", str(cli.dir), "status"), ("status", "--dir", str(cli.dir))):
        result = cli.run(*args, key_source="env", keys=keys, dir="/nonexistent")
        assert result.returncode == 0 and f"vault       {cli.dir}" in result.stdout
    assert cli.run("status", key_source="env", keys=keys, dir="/nonexistent").returncode == 4


def test_diagnose_warns_about_typos_and_a_readable_dotenv(cli: Cli) -> None:
    """diagnose: an unknown CREDSEAL_* name and a group-readable .env are warnings, not errors."""
    cli.init_env()
    dotenv = cli.home / ".env"
    dotenv.write_text("CREDSEAL_KEY_SOURCE=env\n")
    dotenv.chmod(0o644)
    result = cli.run("diagnose", tll="30")
    assert ("warning  settings: CREDSEAL_TLL in the environment is not a credseal setting: did "
            "you mean CREDSEAL_TTL?") in result.stdout
    assert ".env is readable by group or others (mode 644)" in result.stdout
    assert "hint: chmod 600 .env" in result.stdout
    assert "error    keys: CREDSEAL_KEY_SOURCE=env but CREDSEAL_KEYS is not set" in result.stdout
    assert result.returncode == 1


def test_passwd_needs_the_passphrase_source(cli: Cli) -> None:
    """passwd with the env source is a configuration error (exit 2)."""
    keys = cli.init_env()
    result = cli.run("passwd", key_source="env", keys=keys)
    assert result.returncode == 2 and "CREDSEAL_KEY_SOURCE=passphrase only" in result.stderr


# ---- passphrase source ------------------------------------------------------------------------

def test_passphrase_lifecycle(cli: Cli) -> None:
    """init (stdin), status (no passphrase), verify (env, stdin, wrong, none), passwd."""
    init = cli.run("init", key_source="passphrase", input=PASSPHRASE + "\n")
    assert init.returncode == 0 and "key source" in init.stdout
    assert "CREDSEAL_KEYS" not in init.stdout
    assert ((cli.dir / "keyfile.json").stat().st_mode & 0o777) == 0o600
    source = PassphraseKeySource(cli.dir, PASSPHRASE)
    cli.add_ring(source.load())
    fill(cli.dir, source, "db/password")
    status = cli.run("status", key_source="passphrase")
    assert status.returncode == 0 and "unverified" in status.stdout and "kdf         test" in \
        status.stdout
    ok = cli.run("verify", key_source="passphrase", passphrase=PASSPHRASE)
    assert ok.returncode == 0 and "1 ok" in ok.stdout
    assert cli.run("verify", key_source="passphrase", input=PASSPHRASE + "\n").returncode == 0
    wrong = cli.run("verify", key_source="passphrase", input="not it\n")
    assert wrong.returncode == 3
    assert "credseal: error: wrong passphrase (or the keyfile was modified)" in wrong.stderr
    missing = cli.run("verify", key_source="passphrase")
    assert missing.returncode == 3 and "CREDSEAL_PASSPHRASE is not set" in missing.stderr
    passwd = cli.run("passwd", key_source="passphrase",
                     input=f"{PASSPHRASE}\n{NEW_PASSPHRASE}\n")
    assert passwd.returncode == 0 and "update CREDSEAL_PASSPHRASE" in passwd.stderr
    assert cli.run("verify", key_source="passphrase", passphrase=PASSPHRASE).returncode == 3
    assert cli.run("verify", key_source="passphrase", passphrase=NEW_PASSPHRASE).returncode == 0
    diagnose = cli.run("diagnose", key_source="passphrase")
    assert diagnose.returncode == 0 and "KDF profile 'test' is for tests only" in diagnose.stdout


def test_passphrase_init_twice(cli: Cli) -> None:
    """A second init on the same vault is refused (exit 3); the keyfile is kept."""
    cli.run("init", key_source="passphrase", passphrase=PASSPHRASE)
    before = (cli.dir / "keyfile.json").read_bytes()
    again = cli.run("init", key_source="passphrase", passphrase=PASSPHRASE)
    assert again.returncode == 2 and "already holds a vault (keyfile.json" in again.stderr
    assert (cli.dir / "keyfile.json").read_bytes() == before


# ---- OS keyring source (real Secret Service) --------------------------------------------------

def test_keyring_lifecycle(cli: Cli, use_secret_service: SecretService) -> None:
    """init stores the key (prints only its id); status, verify, diagnose use the keyring."""
    env = use_secret_service.subprocess_env()
    env = {k: v for k, v in env.items() if not k.upper().startswith("CREDSEAL_")}
    env["CREDSEAL_KEY_SOURCE"] = "keyring"
    env["CREDSEAL_KEYRING_SERVICE"] = "credseal-cli-test"
    init = cli.run("init", env=env)
    assert init.returncode == 0, init.stderr
    source = OSKeyringSource("credseal-cli-test")
    ring = source.load()
    cli.add_ring(ring)
    assert ring.primary.id in init.stdout and "CREDSEAL_KEYS" not in init.stdout
    fill(cli.dir, source, "db/password")
    status = cli.run("status", env=env)
    assert status.returncode == 0 and f"{ring.primary.id}  active" in status.stdout
    assert "keyring (service 'credseal-cli-test')" in status.stdout
    verify = cli.run("verify", env=env)
    assert verify.returncode == 0 and "ok       db/password" in verify.stdout
    diagnose = cli.run("diagnose", "--json", env=env)
    checks = {c["name"]: c for c in json.loads(diagnose.stdout)["checks"]}
    assert diagnose.returncode == 0
    assert "keyring.backends.SecretService.Keyring" in checks["keyring backend"]["detail"]
    use_secret_service.lock()
    locked = cli.run("verify", env=env)
    assert locked.returncode == 3 and "the OS keyring is locked" in locked.stderr
    assert "unlock the login keyring" in locked.stderr
    assert cli.run("status", env=env).returncode == 1


def test_keyring_headless(cli: Cli, env_without_bus: dict[str, str]) -> None:
    """No session bus: init exits 3 with the three ways out; diagnose says no backend."""
    env = {k: v for k, v in env_without_bus.items() if not k.upper().startswith("CREDSEAL_")}
    env["CREDSEAL_KEY_SOURCE"] = "keyring"
    init = cli.run("init", env=env)
    assert init.returncode == 3 and "no OS keyring backend is available" in init.stderr
    for fix in ("CREDSEAL_KEY_SOURCE=env", "CREDSEAL_KEY_SOURCE=passphrase", "Secret Service"):
        assert fix in init.stderr
    diagnose = cli.run("diagnose", env=env)
    assert diagnose.returncode == 1 and "none found (keyring.backends.fail.Keyring)" in \
        diagnose.stdout


def test_leak_scanner_finds_every_form(tmp_path: Path) -> None:
    """The scanner behind every CLI test finds a key in each encoding and the plaintext, and
    ignores only the allowed init line."""
    key = vault.Key.generate()
    raw = material(key)
    scanner = Cli(tmp_path, {})
    scanner.add_key(key)
    for text in (raw.hex(), base64.b64encode(raw).decode(), key.to_text().split(":")[2],
                 repr(raw), raw.hex().upper()[:30], PLAINTEXT, PASSPHRASE):
        scanner.outputs = [(f"before {text} after", "sample")]
        assert scanner.leaks(), text
    scanner.allowed.append(key.to_text())
    scanner.outputs = [(f"CREDSEAL_KEYS={key.to_text()}\n", "init")]
    assert scanner.leaks() == []


# ---- read-only commands, HashiCorp's variables ---------------------------------------------

def _tree(directory: Path) -> dict[str, tuple[int, int, int, int]]:
    """Every path below ``directory`` (itself included) with its inode, mode, size, mtime."""
    found = {}
    for path in [directory, *sorted(directory.rglob("*"))]:
        st = path.lstat()
        found[str(path.relative_to(directory))] = (st.st_ino, st.st_mode, st.st_size,
                                                   st.st_mtime_ns)
    return found


def test_read_only_commands_change_nothing(cli: Cli) -> None:
    """status, inspect, verify and diagnose leave the directory as it was: no .locks/ made, a
    stale temp file not removed, nothing quarantined, even for a damaged entry."""
    keys = cli.init_env()
    ring = vault.KeyRing.from_text(keys)
    fill(cli.dir, ring, "a", "b")
    shutil.rmtree(cli.dir / ".locks")
    stale = cli.dir / f".{name_stem('a')}.{'0' * 16}.tmp"
    stale.write_bytes(b"left by a crashed writer")
    stale.chmod(0o600)
    damaged = cli.dir / f"{name_stem('b')}.cve"
    damaged.write_bytes(damaged.read_bytes()[:-1] + b"\0")
    before = _tree(cli.dir)
    for args in (("status",), ("status", "--json"), ("inspect", "a"), ("verify",),
                 ("diagnose",), ("verify", "--json")):
        result = cli.run(*args, key_source="env", keys=keys)
        assert result.returncode in (0, 1), (args, result.stderr)
        assert _tree(cli.dir) == before, args
    assert "failed" in cli.run("verify", key_source="env", keys=keys).stdout


def test_diagnose_leaves_hashicorp_variables_alone(cli: Cli) -> None:
    """VAULT_ADDR and VAULT_TOKEN belong to HashiCorp Vault: shown as theirs, not as typos;
    an old credvault VAULT_DIR alone is an error naming CREDSEAL_DIR."""
    keys = cli.init_env()
    env = {**cli.base_env, "VAULT_ADDR": "https://vault.example:8200", "VAULT_TOKEN": "hvs.t"}
    result = cli.run("diagnose", env=env, key_source="env", keys=keys)
    assert "VAULT_ADDR, VAULT_TOKEN: HashiCorp Vault's variables" in result.stdout
    assert "not a credseal setting" not in result.stdout and result.returncode == 0
    old = {**cli.base_env, "VAULT_KEY_SOURCE": "env"}
    result = cli.run("status", env=old, keys=keys)
    assert result.returncode == 2
    assert "VAULT_KEY_SOURCE is set but CREDSEAL_KEY_SOURCE is not" in result.stderr


def test_diagnose_checks_the_dotenv_it_read_for_near_misses(cli: Cli) -> None:
    """A typo in .env was not caught: diagnose names the file and the setting it meant."""
    keys = cli.init_env()
    dotenv = cli.home / ".env"
    dotenv.write_text("CREDSEAL_KEY_SORCE=env\nCREDSEAL_COLOUR=blue\n")
    dotenv.chmod(0o600)
    result = cli.run("diagnose", key_source="env", keys=keys)
    assert (f"CREDSEAL_KEY_SORCE in {dotenv} is not a credseal setting: did you mean "
            "CREDSEAL_KEY_SOURCE?") in result.stdout
    assert "hint: rename it to CREDSEAL_KEY_SOURCE" in result.stdout
    assert f"CREDSEAL_COLOUR in {dotenv} is not a credseal setting (a typo?)" in result.stdout
    assert "blue" not in result.stdout
