"""Tests of the maintenance commands (rotate, retire, prune, migrate, export), run as a user
would run them, with every key source, crash injection and concurrent writers.

All output goes through the ``cli`` fixture, which fails the test if any secret it knows
appears in it (tests/helpers/clirunner.py).
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import vault
from tests.helpers.clirunner import BIN, PASSPHRASE, PLAINTEXT, Cli, fill
from tests.helpers.locks import held_rotation_lock
from tests.realparts import SecretService
from vault._store.entries import name_stem
from vault._store.store import entries_of
from vault.keysources import OSKeyringSource, PassphraseKeySource

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "data" / "migrate"


def key_ids(directory: Path) -> set[str]:
    """The key ids of every entry in a vault (from headers)."""
    v = vault.Vault(directory)
    return {v.info(name).key_id for name in v.names()}


def env_vault(cli: Cli, *names: str) -> vault.KeyRing:
    """An env-source vault with ``names`` filled in; returns its ring (its keys are secrets)."""
    ring = vault.KeyRing([vault.Key.generate()])
    cli.add_ring(ring)
    fill(cli.dir, ring, *names)
    return ring


# ---- rotate, per key source --------------------------------------------------------------

def test_rotate_env_publishes_then_rewraps(cli: Cli) -> None:
    """env: rotate prints the new CREDSEAL_KEYS (new first, old kept) and stops; after deploying
    it, --rewrap-only moves every entry; a rerun has nothing to do (exit 5)."""
    ring = env_vault(cli, "a", "b")
    published = cli.run("rotate", key_source="env", keys=ring.to_text())
    assert published.returncode == 0, published.stderr
    assert "deploy it to every service" in published.stderr
    line = published.stdout.strip()
    assert line.startswith("CREDSEAL_KEYS=") and line.count("\n") == 0
    new_ring = vault.KeyRing.from_text(line.removeprefix("CREDSEAL_KEYS="))
    cli.allowed.append(line.removeprefix("CREDSEAL_KEYS="))
    cli.add_ring(new_ring)
    assert new_ring.ids[1:] == ring.ids and key_ids(cli.dir) == {ring.primary.id}
    done = cli.run("rotate", "--rewrap-only", "--json", key_source="env",
                   keys=new_ring.to_text())
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["outcome"] == "rotated" and report["entries"]["rewrapped"] == 2
    assert report["entries"]["by_key"] == {ring.primary.id: 2}
    assert key_ids(cli.dir) == {new_ring.primary.id}
    again = cli.run("rotate", "--rewrap-only", key_source="env", keys=new_ring.to_text())
    assert again.returncode == 5 and "0 rewrapped, 2 already current" in again.stdout


def test_rotate_passphrase_in_one_command(cli: Cli) -> None:
    """passphrase: one rotate adds, promotes and rewraps; retire of the old key then works."""
    assert cli.run("init", key_source="passphrase", passphrase=PASSPHRASE).returncode == 0
    source = PassphraseKeySource(cli.dir, PASSPHRASE, profile="test")
    cli.add_ring(source.load())
    fill(cli.dir, source, "a", "b", "c")
    old = source.load().primary.id
    result = cli.run("rotate", key_source="passphrase", passphrase=PASSPHRASE)
    assert result.returncode == 0, result.stderr
    assert "rotated:" in result.stdout and "3 rewrapped" in result.stdout
    new = PassphraseKeySource(cli.dir, PASSPHRASE).load()
    cli.add_ring(new)
    assert new.primary.id != old and key_ids(cli.dir) == {new.primary.id}
    retired = cli.run("retire", old, key_source="passphrase", passphrase=PASSPHRASE)
    assert retired.returncode == 0, retired.stderr
    audit = [json.loads(line) for line in (cli.dir / "audit.jsonl").read_text().splitlines()]
    assert [r["action"] for r in audit] == ["init", "rotate", "retire"]


def test_rotate_keyring(cli: Cli, secret_service: SecretService,
                        use_secret_service: SecretService) -> None:
    """keyring (real Secret Service): rotate in one command; the keys never appear."""
    env = {**cli.base_env, **secret_service.subprocess_env()}
    service = f"credseal-cli-rotate-{os.getpid()}"
    assert cli.run("init", env=env, key_source="keyring",
                   keyring_service=service).returncode == 0
    source = OSKeyringSource(service)
    cli.add_ring(source.load())
    fill(cli.dir, source, "a", "b")
    result = cli.run("rotate", "--json", env=env, key_source="keyring", keyring_service=service)
    assert result.returncode == 0, result.stderr
    new = OSKeyringSource(service).load()
    cli.add_ring(new)
    assert json.loads(result.stdout)["new_key_id"] == new.primary.id
    assert key_ids(cli.dir) == {new.primary.id}


def test_if_older_than_and_exit_codes(cli: Cli) -> None:
    """--if-older-than 90d on a new key is not due (exit 5); 0s rotates (exit 0)."""
    assert cli.run("init", key_source="passphrase", passphrase=PASSPHRASE).returncode == 0
    cli.add_ring(PassphraseKeySource(cli.dir, PASSPHRASE).load())
    fill(cli.dir, PassphraseKeySource(cli.dir, PASSPHRASE), "a")
    not_due = cli.run("rotate", "--if-older-than", "90d", key_source="passphrase",
                      passphrase=PASSPHRASE)
    assert not_due.returncode == 5 and "nothing to do" in not_due.stdout
    due = cli.run("rotate", "--if-older-than", "0s", key_source="passphrase",
                  passphrase=PASSPHRASE)
    assert due.returncode == 0, due.stderr
    cli.add_ring(PassphraseKeySource(cli.dir, PASSPHRASE).load())
    bad = cli.run("rotate", "--if-older-than", "soon", key_source="passphrase",
                  passphrase=PASSPHRASE)
    assert bad.returncode == 2 and "not a duration" in bad.stderr


def test_rotate_busy_exit_code(cli: Cli) -> None:
    """While another rotation holds the lock, rotate exits 75 naming the holder."""
    ring = env_vault(cli, "a")
    with held_rotation_lock(cli.dir) as pid:
        busy = cli.run("rotate", "--rewrap-only", key_source="env", keys=ring.to_text())
    assert busy.returncode == 75 and f"pid {pid}" in busy.stderr


def test_retire_refused_while_in_use(cli: Cli) -> None:
    """retire names how many entries still use the key, and changes nothing."""
    assert cli.run("init", key_source="passphrase", passphrase=PASSPHRASE).returncode == 0
    source = PassphraseKeySource(cli.dir, PASSPHRASE)
    cli.add_ring(source.load())
    old = source.load().primary.id
    fill(cli.dir, source, "a", "b")
    new = vault.Key.generate()
    cli.add_key(new)
    source.add(new)
    source.promote(new.id)
    refused = cli.run("retire", old, key_source="passphrase", passphrase=PASSPHRASE)
    assert refused.returncode == 4
    assert f"key {old} still seals 2 entries" in refused.stderr and "rewrap-only" in refused.stderr
    assert {s.id: s.state for s in source.states()}[old] == "decrypt-only"


def test_retire_env_prints_the_ring_without_the_key(cli: Cli) -> None:
    """env: retire checks no entry uses the key and prints CREDSEAL_KEYS without it."""
    old = vault.Key.generate()
    new = vault.Key.generate()
    ring = vault.KeyRing([new, old])
    cli.add_ring(ring)
    fill(cli.dir, vault.KeyRing([new]), "a")
    result = cli.run("retire", old.id, key_source="env", keys=ring.to_text())
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip().removeprefix("CREDSEAL_KEYS=")
    cli.allowed.append(line)
    assert vault.KeyRing.from_text(line).ids == (new.id,)


# ---- crash injection ---------------------------------------------------------------------

def _wait_for_replacement(path: Path, proc: subprocess.Popen[str]) -> None:
    """Wait until the file at ``path`` is replaced (a new inode: the rotation has rewrapped
    it, so it is rewrapping now), or until the process ended."""
    before = path.stat().st_ino
    deadline = time.monotonic() + 30
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            if path.stat().st_ino != before:
                return
        except FileNotFoundError:
            pass
        time.sleep(0.002)


@pytest.fixture(scope="session")
def big_vault(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A vault of 3,000 entries under an old key (built once); returns (path, old ring text)."""
    directory = tmp_path_factory.mktemp("big") / "vault"
    ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(directory, keys=ring, ttl=86400)
    for i in range(3000):
        v.put(f"company-{i:04d}", {"i": i, "secret": PLAINTEXT})
    return directory, ring.to_text()


@pytest.mark.slow
def test_sigkill_during_rewrap_then_resume(cli: Cli, big_vault: tuple[Path, str]) -> None:
    """SIGKILL `credseal rotate --rewrap-only` at random moments (20 times) on 3,000 entries:
    after each kill every entry opens; resuming finishes with all under the new key."""
    shutil.copytree(big_vault[0], cli.dir)
    old_ring = vault.KeyRing.from_text(big_vault[1])
    new = vault.Key.generate()
    ring = old_ring.with_primary(new)
    cli.add_ring(ring)
    env = {**cli.base_env, "CREDSEAL_DIR": str(cli.dir), "CREDSEAL_KEY_SOURCE": "env",
           "CREDSEAL_KEYS": ring.to_text()}
    reader = vault.Vault(cli.dir, keys=ring, ttl=86400)
    rng = random.Random(20261128)
    kills = progressed = under_new = 0
    frontier = cli.dir / f"{name_stem('company-0000')}.cve"  # entries go in name order
    for _trial in range(60):
        proc = subprocess.Popen([str(BIN), "rotate", "--rewrap-only"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 0.3))  # during start-up, before any rewrap
        else:
            _wait_for_replacement(frontier, proc)
            time.sleep(rng.uniform(0.0, 0.04))  # a random moment of the rewrap
        finished = proc.poll() is not None
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate(timeout=60)
        cli.outputs += [(out, "stdout of a killed rotate"), (err, "stderr of a killed rotate")]
        kills += not finished
        names = reader.names()
        assert len(names) == 3000
        for name in names:
            assert reader.get(name)["i"] == int(name.split("-")[1])
        still_old = [name for name in names if reader.info(name).key_id != new.id]
        now_new = 3000 - len(still_old)
        if still_old:
            frontier = cli.dir / f"{name_stem(still_old[0])}.cve"
        progressed += not finished and under_new < now_new < 3000  # killed in mid-rewrap
        under_new = now_new
        if kills >= 20 or now_new == 3000:
            break
    assert kills >= 20 and progressed >= 10, (kills, progressed)
    done = cli.run("rotate", "--rewrap-only", "--json", env=env)
    assert done.returncode in (0, 5), done.stderr
    assert json.loads(done.stdout)["entries"]["failed"] == 0
    assert key_ids(cli.dir) == {new.id}
    assert not list(cli.dir.glob(".*.tmp"))


# ---- concurrent writers during a rotation, per key source ----------------------------------

Writer = tuple[subprocess.Popen[str], str]


def _writers(cli: Cli, settings_env: dict[str, str], old_ring: vault.KeyRing,
             stop: Path) -> list[Writer]:
    """Two writers that follow the key source, one on the ring from before the promotion;
    they write until ``stop`` exists."""
    procs = []
    for tag, extra in (("s1", settings_env), ("s2", settings_env),
                       ("old", {"CREDSEAL_KEYS": old_ring.to_text()})):
        env = {**cli.base_env, "PYTHONPATH": str(ROOT), "WRITER_TAG": tag, "WRITER_PREFIX": tag,
               "WRITER_STOP_FILE": str(stop), **extra}
        procs.append(subprocess.Popen([sys.executable, "-m", "tests.helpers.writer",
                                       str(cli.dir), "5", "100000"], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    writers = []
    for proc in procs:  # the rotation starts only once every writer is writing
        assert proc.stdout is not None
        first = _first_line(proc.stdout.fileno())
        assert first, proc.communicate(timeout=60)[1]
        writers.append((proc, first))
    return writers


def _first_line(fd: int) -> str:
    """One line read byte by byte from ``fd``: nothing beyond it is buffered, because
    ``communicate()`` later reads the raw descriptor and would miss what a readline had read
    ahead (a half line, then: seen as a flaky "1" line under load)."""
    data = b""
    while not data.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        data += byte
    return data.decode()


def _check_writers(cli: Cli, writers: list[Writer], reader: vault.Vault) -> None:
    """Every writer succeeded and every entry holds its writer's last reported value."""
    last: dict[str, int] = {}
    for proc, first in writers:
        out, err = proc.communicate(timeout=300)
        out = first + out
        cli.outputs += [(out, "stdout of a writer"), (err, "stderr of a writer")]
        assert proc.returncode == 0, err
        for line in out.splitlines():
            name, counter = line.split()
            last[name] = int(counter)
    assert len(last) == 15
    for name, counter in last.items():
        assert reader.get(name)["counter"] == counter


@pytest.fixture(params=["env", "passphrase", "keyring"])
def rotation_setup(request: pytest.FixtureRequest, cli: Cli) -> Iterator[dict[str, str]]:
    """A vault initialised with each key source; yields the settings for its services."""
    if request.param == "env":
        ring = env_vault(cli)
        yield {"CREDSEAL_DIR": str(cli.dir), "CREDSEAL_KEY_SOURCE": "env",
               "CREDSEAL_KEYS": ring.to_text()}
        return
    if request.param == "passphrase":
        settings = {"CREDSEAL_DIR": str(cli.dir), "CREDSEAL_KEY_SOURCE": "passphrase",
                    "CREDSEAL_PASSPHRASE": PASSPHRASE}
    else:
        service: SecretService = request.getfixturevalue("secret_service")
        request.getfixturevalue("use_secret_service")
        settings = {**service.subprocess_env(), "CREDSEAL_DIR": str(cli.dir),
                    "CREDSEAL_KEY_SOURCE": "keyring",
                    "CREDSEAL_KEYRING_SERVICE": f"credseal-concurrent-{os.getpid()}"}
    result = subprocess.run([str(BIN), "init"], env={**cli.base_env, **settings},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    yield settings


def _ring_of(settings: dict[str, str]) -> vault.KeyRing:
    if settings["CREDSEAL_KEY_SOURCE"] == "env":
        return vault.KeyRing.from_text(settings["CREDSEAL_KEYS"])
    if settings["CREDSEAL_KEY_SOURCE"] == "passphrase":
        return PassphraseKeySource(settings["CREDSEAL_DIR"], PASSPHRASE).load()
    return OSKeyringSource(settings["CREDSEAL_KEYRING_SERVICE"]).load()


def test_writers_during_rotation(cli: Cli, rotation_setup: dict[str, str]) -> None:
    """Writers in other processes (one still on the pre-rotation ring) during a rotation lose
    no write and leave no unreadable entry; a final rewrap puts everything under the new key."""
    settings = rotation_setup
    old_ring = _ring_of(settings)
    cli.add_ring(old_ring)
    fill(cli.dir, old_ring, *(f"{p}-{i}" for p in ("s1", "s2", "old") for i in range(5)))
    stop = cli.home / "stop-writers"
    writers = _writers(cli, settings, old_ring, stop)
    env = {**cli.base_env, **settings}
    if settings["CREDSEAL_KEY_SOURCE"] == "env":
        published = subprocess.run([str(BIN), "rotate"], env=env, capture_output=True,
                                   text=True, timeout=120)
        new_text = published.stdout.strip().removeprefix("CREDSEAL_KEYS=")
        cli.outputs.append((published.stderr, "stderr of rotate"))
        cli.allowed.append(new_text)
        cli.outputs.append((published.stdout, "stdout of rotate"))
        env["CREDSEAL_KEYS"] = new_text  # deployed
        step = [str(BIN), "rotate", "--rewrap-only"]
    else:
        step = [str(BIN), "rotate"]
    rotation = subprocess.run(step, env=env, capture_output=True, text=True, timeout=300)
    cli.outputs += [(rotation.stdout, "stdout of rotate"), (rotation.stderr, "stderr of rotate")]
    assert rotation.returncode in (0, 5), rotation.stderr
    assert all(p.poll() is None for p, _ in writers)  # they wrote through the whole rotation
    stop.touch()
    final = _ring_of({**settings, "CREDSEAL_KEYS": env["CREDSEAL_KEYS"]} if "CREDSEAL_KEYS" in env
                     else settings)
    cli.add_ring(final)
    reader = vault.Vault(cli.dir, keys=final, ttl=3600)
    _check_writers(cli, writers, reader)
    again = subprocess.run([str(BIN), "rotate", "--rewrap-only"], env=env, capture_output=True,
                           text=True, timeout=300)
    cli.outputs += [(again.stdout, "stdout of rotate"), (again.stderr, "stderr of rotate")]
    assert again.returncode in (0, 5), again.stderr
    assert key_ids(cli.dir) == {final.primary.id}
    assert final.primary.id != old_ring.primary.id


# ---- prune, migrate, export -------------------------------------------------------------

def test_prune_dry_run_then_apply(cli: Cli) -> None:
    """prune lists expired entries without removing them; --apply removes them."""
    ring = env_vault(cli)
    v = vault.Vault(cli.dir, keys=ring, ttl=60)
    entries_of(v).put("old", "x", 1_700_000_000_000)
    v.put("fresh", "y")
    dry = cli.run("prune", key_source="env", keys=ring.to_text(), ttl="60")
    assert dry.returncode == 0 and "would remove  entry old" in dry.stdout
    assert sorted(v.names()) == ["fresh", "old"]
    applied = cli.run("prune", "--apply", "--json", key_source="env", keys=ring.to_text(),
                      ttl="60")
    assert applied.returncode == 0 and json.loads(applied.stdout)["removed_entries"] == ["old"]
    assert v.names() == ["fresh"]


def test_migrate_cache_file_and_export_back(cli: Cli, tmp_path: Path) -> None:
    """migrate: dry run imports nothing; --apply imports and verifies; --remove-plaintext
    deletes the source; export --node writes it back byte for byte."""
    ring = env_vault(cli)
    source = tmp_path / "cache.json"
    shutil.copy(DATA / "cache-baileys7.json", source)
    original = source.read_bytes()
    settings = {"key_source": "env", "keys": ring.to_text(), "ttl": str(10 * 365 * 86400)}
    dry = cli.run("migrate", "--from-cache-file", str(source), **settings)
    assert dry.returncode == 0 and "would import" in dry.stdout
    assert vault.Vault(cli.dir).names() == []
    applied = cli.run("migrate", "--from-cache-file", str(source), "--apply",
                      "--remove-plaintext", "--json", **settings)
    assert applied.returncode == 0, applied.stderr
    report = json.loads(applied.stdout)
    assert report["verified"] and report["plaintext_removed"] == [str(source)]
    assert not source.exists()
    names = [e["name"] for e in report["entries"]]
    back = tmp_path / "back.json"
    exported = cli.run("export", "--node", "--cache-file", *names, "--output", str(back),
                       **settings)
    assert exported.returncode == 0, exported.stderr
    assert back.read_bytes() == original and oct(back.stat().st_mode)[-3:] == "600"


def test_migrate_auth_folder_needs_prefix_and_imports(cli: Cli, tmp_path: Path) -> None:
    """An auth folder needs --prefix; with it every file becomes an entry."""
    ring = env_vault(cli)
    settings = {"key_source": "env", "keys": ring.to_text(), "ttl": str(10 * 365 * 86400)}
    folder = tmp_path / "auth"
    shutil.copytree(DATA / "auth", folder)
    missing = cli.run("migrate", "--from-auth-folder", str(folder), **settings)
    assert missing.returncode == 2 and "--prefix" in missing.stderr
    applied = cli.run("migrate", "--from-auth-folder", str(folder), "--prefix", "wa/shop",
                      "--include-expired", "--apply", **settings)
    assert applied.returncode == 0, applied.stderr
    names = vault.Vault(cli.dir).names()
    assert "wa/shop/creds" in names and len(names) == len(list(folder.glob("*.json")))


def test_env_init_dates_its_key_for_if_older_than(cli: Cli) -> None:
    """init with the env source writes an audit record, so a daily `rotate --if-older-than`
    right after it knows the key is young (exit 5) instead of rotating a brand-new key."""
    keys = cli.init_env()
    audit = [json.loads(line) for line in (cli.dir / "audit.jsonl").read_text().splitlines()]
    assert [(r["action"], r["outcome"], r["source_kind"]) for r in audit] == [
        ("init", "created", "env")]
    assert audit[0]["new_key_id"] == vault.KeyRing.from_text(keys).primary.id
    result = cli.run("rotate", "--if-older-than", "90d", key_source="env", keys=keys)
    assert result.returncode == 5 and "younger than --if-older-than" in result.stdout


def test_journal_lists_and_resolves_conflicts_without_showing_values(cli: Cli) -> None:
    """`journal` lists pending records and conflicts by name and time, never values, and
    changes nothing; `journal resolve NAME --keep-primary` moves that name's conflicts to
    quarantine/, audited; status counts them and reports the conflict as a problem."""
    from vault.testing import MemorySource

    keys = cli.init_env()
    ring = vault.KeyRing.from_text(keys)
    v = vault.Vault(cli.dir, keys=ring)
    source = MemorySource({"company/1": {"password": PLAINTEXT}})
    cache = vault.FallbackCache(source, v)
    source.fail_with()
    cache.save("company/2", {"password": PLAINTEXT})  # no copy: based on an unknown value
    source.recover()
    cache.breaker.reset()
    source.save("company/2", {"password": "someone else's"})
    cache.get("company/1")  # the replay sets the record aside
    listed = cli.run("journal", key_source="env", keys=keys)
    assert listed.returncode == 1 and "conflict" in listed.stdout and "company/2" in listed.stdout
    assert "0 pending, 1 conflicts" in listed.stdout
    status = cli.run("status", "--json", key_source="env", keys=keys)
    data = json.loads(status.stdout)
    assert data["journal_conflicts"] == 1 and status.returncode == 1
    resolved = cli.run("journal", "resolve", "company/2", "--keep-primary", key_source="env",
                       keys=keys)
    assert resolved.returncode == 0, resolved.stderr
    assert "0 pending, 0 conflicts" in cli.run("journal", key_source="env", keys=keys).stdout
    assert list((cli.dir / "quarantine").glob("*.cvj"))
    again = cli.run("journal", "resolve", "company/2", "--keep-primary", key_source="env",
                    keys=keys)
    assert again.returncode == 4 and "no journal conflict names" in again.stderr
    audit = [json.loads(line) for line in (cli.dir / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["action"] == "journal-resolve" and audit[-1]["records"] == 1


def test_journal_resolve_apply_writes_the_journaled_value_to_the_primary(
        cli: Cli, tmp_path: Path) -> None:
    """`journal resolve NAME --apply` writes the newest conflicting value to the source named
    by CREDSEAL_PRIMARY (a sqlite:/// URL here), audited; without the setting it says what to
    set; the URL never appears in output."""
    from vault.sources import SQLiteSource

    keys = cli.init_env()
    db = tmp_path / "primary.db"
    db.touch()
    source = SQLiteSource(db)
    source.create_schema()
    cache = vault.FallbackCache(source, vault.Vault(cli.dir, keys=vault.KeyRing.from_text(keys)))
    away = tmp_path / "away.db"
    db.rename(away)  # the database is gone: an outage
    assert cache.save("company/2", {"password": PLAINTEXT}).journaled
    away.rename(db)
    cache.breaker.reset()
    source.save("company/2", {"password": "someone else's"})
    cache.get("company/1")  # the replay sets the journaled write aside as a conflict
    missing = cli.run("journal", "resolve", "company/2", "--apply", key_source="env", keys=keys)
    assert missing.returncode == 2 and "CREDSEAL_PRIMARY is not set" in missing.stderr
    applied = cli.run("journal", "resolve", "company/2", "--apply", key_source="env",
                      keys=keys, primary=f"sqlite://{db}")
    assert applied.returncode == 0, applied.stderr
    assert str(db) not in applied.stdout + applied.stderr
    assert source.load("company/2") == {"password": PLAINTEXT}
    assert "0 conflicts" in cli.run("journal", key_source="env", keys=keys).stdout
    audit = [json.loads(line) for line in (cli.dir / "audit.jsonl").read_text().splitlines()]
    assert (audit[-1]["action"], audit[-1]["outcome"]) == ("journal-resolve", "applied")
    source.close()
