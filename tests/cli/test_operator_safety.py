"""Operator safety (issue 12): what status and diagnose tell an operator, driven through the
CLI as an operator runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import vault
from tests.helpers.clirunner import PASSPHRASE, Cli, fill
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
