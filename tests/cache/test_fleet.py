"""A fleet tested as one: host processes, one PostgreSQL, one Redis, one ring (issue 13).

Each host is a child process (tests/helpers/fleet_host.py) with its own vault directory,
driven one JSON action at a time. The story is the seed's, at fleet scale: the database
goes away, a host with an empty disk starts anyway, Redis goes away too, both come back.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import redis

import vault
from tests.helpers.backends import PostgresBackend
from tests.hygiene import CANARY_VALUE
from tests.realparts import PostgresServer, RedisServer
from vault import codec

ROOT = Path(__file__).resolve().parents[2]
NAMES = [f"company-{i:02d}" for i in range(50)]
UPDATED = NAMES[:10]
CONTESTED = NAMES[49]


class Host:
    """One host process; ``ask`` sends an action and returns its answer."""

    def __init__(self, directory: Path, table: str, env: dict[str, str]) -> None:
        self.directory = directory
        self.log: str | None = None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.helpers.fleet_host", str(directory), table], cwd=ROOT,
            env=env, text=True, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)

    def ask(self, *action: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(codec.dumps(list(action)).decode() + "\n")
        self.proc.stdin.flush()
        ready, _, _ = select.select([self.proc.stdout], [], [], 30)
        assert ready, f"host {self.directory.name} did not answer {action[0]} in 30 s"
        line = self.proc.stdout.readline()
        assert line, f"host {self.directory.name} died: {self.stop()}"
        answer: dict[str, Any] = codec.loads(line)
        return answer

    def stop(self) -> str:
        """Close stdin, wait, and return stderr (the host's error log); idempotent."""
        if self.log is None:
            try:  # communicate closes stdin: the host's loop ends
                _, self.log = self.proc.communicate(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                _, self.log = self.proc.communicate()
        return self.log


def value(i: int, rev: Any) -> dict[str, Any]:
    return {"session": CANARY_VALUE, "noiseKey": bytes([i]) * 32, "company": i, "rev": rev}


def test_a_fleet_serves_through_a_database_and_a_redis_outage(
        pg: PostgresServer, redis_server: RedisServer, tmp_path: Path) -> None:
    backend = PostgresBackend(pg)
    with backend.source() as source:
        for i, name in enumerate(NAMES):
            source.save(name, value(i, 0))
    backend.install_audit()
    ring = vault.KeyRing([vault.Key.generate()])
    env = {**os.environ, "CREDSEAL_KEYS": ring.to_text(), "TEST_PG_DSN": pg.dsn,
           "TEST_REDIS_URL": redis_server.url}
    hosts = [Host(tmp_path / f"host-{i}", backend.table, env) for i in range(3)]
    everyone = list(hosts)
    try:
        # 1. Every host serves every company from PostgreSQL (and writes through).
        for host in hosts:
            for i, name in enumerate(NAMES):
                assert host.ask("get", name) == {"op": "get", "value": value(i, 0),
                                                 "origin": "source"}

        # 2. PostgreSQL stops. A host with an empty directory starts and serves every
        #    company from Redis; updates saved during the outage reach the other hosts.
        backend.down()
        new = Host(tmp_path / "host-new", backend.table, env)
        everyone.append(new)
        for i, name in enumerate(NAMES[:25]):
            assert new.ask("get", name) == {"op": "get", "value": value(i, 0),
                                            "origin": "shared"}
        assert new.ask("prefetch", NAMES) == {"op": "prefetch", "found": 50, "copied": 25}
        for i, name in enumerate(NAMES[25:], 25):
            assert new.ask("get", name) == {"op": "get", "value": value(i, 0),
                                            "origin": "cache"}
        writer, other, third = hosts
        for i, name in enumerate(UPDATED):
            assert writer.ask("save", name, value(i, 1))["journaled"] is True
        for host in (other, third, new):
            for i, name in enumerate(UPDATED):
                assert host.ask("get", name)["value"] == value(i, 1)
        assert writer.ask("save", CONTESTED, value(49, "writer"))["journaled"] is True
        assert other.ask("save", CONTESTED, value(49, "other"))["journaled"] is True

        # 3. Redis stops too: every host, the new one included, serves its local copies.
        for host in everyone:
            assert host.ask("sync")["done"] is True  # copies taken from Redis are on disk
        redis_server.kill()
        for host in everyone:
            for i, name in enumerate(NAMES[:-1]):
                answer = host.ask("get", name)
                assert answer["origin"] == "cache", (host.directory.name, name, answer)
                assert answer["value"] == value(i, 1 if name in UPDATED else 0)

        # 4. Both come back: every journaled update reaches PostgreSQL exactly once, the
        #    contested name ends as one applied write and one visible conflict, and nothing
        #    stale is written back.
        redis_server.start()
        backend.up()
        time.sleep(0.6)  # the hosts' breakers (0.5 s) let a probe through
        for host in everyone:
            for name in NAMES:
                assert host.ask("get", name)["origin"] == "source"
        audit = backend.audit()
        for i, name in enumerate(UPDATED):
            assert audit.count(("save", name, value(i, 1))) == 1, name
        contested = [row for row in audit if row[1] == CONTESTED]
        assert len(contested) == 1 and contested[0][2]["rev"] in ("writer", "other")
        assert len(audit) == len(UPDATED) + 1, audit  # nothing else was written
        pending = [host.ask("pending") for host in everyone]
        assert sum(p["count"] for p in pending) == 0
        assert sorted(p["conflicts"] for p in pending) == [0, 0, 0, 1]
        with backend.source() as source:
            winner = source.load(CONTESTED)
        for host in everyone:
            assert host.ask("get", CONTESTED)["value"] == winner
    finally:
        logs = [host.stop() for host in everyone]
    assert not any("Traceback" in log for log in logs), logs

    # No plaintext anywhere: every Redis key and value, every file of every host.
    marker = CANARY_VALUE.encode()
    client = redis.Redis.from_url(redis_server.url)
    try:
        keys = list(client.scan_iter(count=1000))
        assert keys and all(k.startswith(b"credseal:e:") and len(k) == 11 + 64 for k in keys)
        assert not any(marker in (client.get(k) or b"") for k in keys)
    finally:
        client.close()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert files and not any(marker in p.read_bytes() for p in files)


def test_a_live_rotation_with_the_two_phase_deploy(
        pg: PostgresServer, redis_server: RedisServer, tmp_path: Path) -> None:
    """The env source's rotation (docs/operations.md): the new key is deployed to every host
    as a decrypt-only key, then as the primary, then the shared tier is rewrapped. Between
    every step, with the database down, every host opens every copy, local or shared."""
    backend = PostgresBackend(pg)
    names = NAMES[:20]
    with backend.source() as source:
        for i, name in enumerate(names):
            source.save(name, value(i, 0))
    old, new = vault.Key.generate(), vault.Key.generate()
    base = {**os.environ, "TEST_PG_DSN": pg.dsn, "TEST_REDIS_URL": redis_server.url}

    def deploy(hosts: list[Host], ring: vault.KeyRing) -> list[Host]:
        """Restart the hosts one by one on ``ring`` (a rolling deploy)."""
        started = []
        for host in hosts:
            assert "Traceback" not in host.stop()
            started.append(Host(host.directory, backend.table,
                                {**base, "CREDSEAL_KEYS": ring.to_text()}))
        return started

    def everyone_reads_everything(hosts: list[Host], rev: int) -> None:
        backend.down()
        for host in hosts:
            host.ask("sync")
        try:
            for host in hosts:
                host.ask("events")
                for i, name in enumerate(names):
                    answer = host.ask("get", name)
                    assert answer.get("value") == value(i, rev), (host.directory.name, answer)
                kinds = host.ask("events")["kinds"]
                assert "shared_skipped" not in kinds and "quarantined" not in kinds, kinds
        finally:
            backend.up()
        time.sleep(0.6)  # breakers

    hosts = [Host(tmp_path / f"host-{i}", backend.table,
                  {**base, "CREDSEAL_KEYS": vault.KeyRing([old]).to_text()}) for i in range(3)]
    try:
        for host in hosts:
            for name in names:
                host.ask("get", name)
        hosts = deploy(hosts, vault.KeyRing([old, new]))  # phase 1: new key, decrypt-only
        everyone_reads_everything(hosts, 0)
        # Phase 2, rolling: the first host seals with the new key while the others do not yet.
        hosts[:1] = deploy(hosts[:1], vault.KeyRing([new, old]))
        for i, name in enumerate(names):
            assert hosts[0].ask("save", name, value(i, 1))["journaled"] is False
        everyone_reads_everything(hosts, 1)
        hosts[1:] = deploy(hosts[1:], vault.KeyRing([new, old]))
        everyone_reads_everything(hosts, 1)
        # The shared tier is rewrapped (what `credseal rotate --rewrap-only` does).
        from vault._store.rewrap import rewrap
        from vault.cache import shared_target
        from vault.cache.redis import RedisTier

        ring = vault.KeyRing([new, old])
        with RedisTier.from_url(redis_server.url) as tier:
            target = shared_target(tier, vault.Vault(tmp_path / "operator", keys=ring))
            rewrap(target, ring)
            assert set(target.key_ids()) == {new.id}
        everyone_reads_everything(hosts, 1)
    finally:
        logs = [host.stop() for host in hosts]
    assert not any("Traceback" in log for log in logs), logs
