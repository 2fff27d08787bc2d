"""The CLI and a fleet's shared tier on a real redis-server: status counts its records,
rotate rewraps them, retire refuses while one is under the key (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import vault
from tests.cli.test_cli_maintenance import env_vault
from tests.helpers.clirunner import PLAINTEXT, Cli
from tests.realparts import RedisServer
from vault.cache import FallbackCache, shared_target
from vault.cache.redis import RedisTier
from vault.sources import SQLiteSource

NAMES = [f"company-{i}" for i in range(12)]


def shared_key_ids(url: str, directory: Path, ring: vault.KeyRing) -> dict[str, int]:
    with RedisTier.from_url(url) as tier:
        return dict(shared_target(tier, vault.Vault(directory, keys=ring)).key_ids())


def fleet_vault(cli: Cli, redis_server: RedisServer) -> vault.KeyRing:
    """An env vault whose service wrote every name through to the local vault and to Redis."""
    ring = env_vault(cli)
    db = cli.home / "app.db"
    with SQLiteSource(db) as source:
        source.create_schema()
        for name in NAMES:
            source.save(name, {"secret": PLAINTEXT, "name": name})
        with RedisTier.from_url(redis_server.url) as tier, \
                FallbackCache(source, vault.Vault(cli.dir, keys=ring), shared=tier,
                              host="operator-host") as cache:
            for name in NAMES:
                assert cache.fetch(name).origin == "source"
        with RedisTier.from_url(redis_server.url) as tier, \
                FallbackCache(source, vault.Vault(cli.home / "host-b", keys=ring), shared=tier,
                              host="host-b") as cache:
            cache.get(NAMES[0])  # another host of the fleet, with a copy under the key
    return ring


def test_rotate_rewraps_the_shared_tier_and_retire_asks_it(cli: Cli,
                                                           redis_server: RedisServer) -> None:
    ring = fleet_vault(cli, redis_server)
    old = ring.primary.id
    env = {"key_source": "env", "redis_url": redis_server.url}

    status = cli.run("status", "--json", keys=ring.to_text(), **env)
    assert json.loads(status.stdout)["shared_records"] == {old: len(NAMES)}
    human = cli.run("status", keys=ring.to_text(), **env)
    assert f"shared      {len(NAMES)} records ({len(NAMES)} under {old})" in human.stdout

    published = cli.run("rotate", keys=ring.to_text(), **env)
    assert published.returncode == 0, published.stderr
    text = published.stdout.strip().removeprefix("CREDSEAL_KEYS=")
    cli.allowed.append(text)
    new_ring = vault.KeyRing.from_text(text)
    cli.add_ring(new_ring)

    # Until the shared tier is rewrapped, the old key cannot be retired.
    early = cli.run("retire", old, keys=new_ring.to_text(), **env)
    assert early.returncode != 0 and "shared items" in early.stderr, early.stderr

    done = cli.run("rotate", "--rewrap-only", "--json", keys=new_ring.to_text(), **env)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["shared"]["rewrapped"] == len(NAMES)
    assert report["shared"]["by_key"] == {old: len(NAMES)}
    assert shared_key_ids(redis_server.url, cli.dir, new_ring) == \
        {new_ring.primary.id: len(NAMES)}
    again = cli.run("rotate", "--rewrap-only", keys=new_ring.to_text(), **env)
    assert again.returncode == 5 and f"shared    0 rewrapped, {len(NAMES)} already current" \
        in again.stdout

    # Every copy still opens for a host on the new ring, from Redis alone.
    db = cli.home / "app.db"
    db.unlink()  # the primary is gone
    with RedisTier.from_url(redis_server.url) as tier, \
            FallbackCache(SQLiteSource(db), vault.Vault(cli.home / "fresh", keys=new_ring),
                          shared=tier) as cache:
        for name in NAMES:
            fetched = cache.fetch(name)
            assert (fetched.origin, fetched.value["name"]) == ("shared", name)

    # host-b has not rewrapped (nor reported since): retire names it until it is forgotten.
    status = json.loads(cli.run("status", "--json", keys=new_ring.to_text(), **env).stdout)
    hosts = {h["directory"]: h for h in status["shared_hosts"]}
    here, b = str(cli.dir.resolve()), str((cli.home / "host-b").resolve())
    assert hosts[b]["entries"] == {old: 1} and hosts[b]["host"] == "host-b"
    assert hosts[here]["entries"] == {new_ring.primary.id: len(NAMES)}  # rotate reported it
    assert len(hosts) == 3  # and the fresh host below's, all on the new key
    refused = cli.run("retire", old, keys=new_ring.to_text(), **env)
    assert refused.returncode != 0 and f"host {hosts[b]['host_id']} (host-b:" \
        in refused.stderr, refused.stderr
    retired = cli.run("retire", old, "--forget-host", hosts[b]["host_id"],
                      keys=new_ring.to_text(), **env)
    assert retired.returncode == 0, retired.stderr
    assert "forgot host" in retired.stderr
    cli.allowed.append(retired.stdout.strip().removeprefix("CREDSEAL_KEYS="))  # to deploy


def test_status_names_a_shared_tier_it_cannot_reach(cli: Cli,
                                                    redis_server: RedisServer) -> None:
    ring = env_vault(cli)
    url = redis_server.url
    redis_server.kill()
    status = cli.run("status", "--json", key_source="env", keys=ring.to_text(), redis_url=url)
    report = json.loads(status.stdout)
    assert report["shared_records"] == {} and "Redis failed" in report["shared_error"]
    both = cli.run("status", key_source="env", keys=ring.to_text(), redis_url=url,
                   redis_sentinels="127.0.0.1:1")
    assert both.returncode != 0 or "not both" in both.stdout + both.stderr
    assert "not both" in both.stdout + both.stderr


def test_diagnose_checks_the_shared_tier(cli: Cli, redis_server: RedisServer) -> None:
    import redis

    ring = env_vault(cli)
    env = {"key_source": "env", "keys": ring.to_text(), "redis_url": redis_server.url}

    def shared_check() -> dict[str, str]:
        result = cli.run("diagnose", "--json", **env)
        checks = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "shared tier"]
        assert len(checks) == 1, result.stdout
        return checks[0]

    ok = shared_check()
    assert ok["level"] == "ok" and "Redis 7" in ok["detail"]
    admin = redis.Redis.from_url(redis_server.url)
    try:
        admin.config_set("maxmemory-policy", "allkeys-lru")
        evicting = shared_check()
        assert evicting["level"] == "warning" and "volatile" in evicting["hint"]
    finally:
        admin.close()
    redis_server.kill()
    down = shared_check()
    assert down["level"] == "error" and "does not answer" in down["detail"]
    assert redis_server.url not in json.dumps(down)  # the URL may hold a password
