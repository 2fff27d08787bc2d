"""The shared tier on a real redis-server (``vault.cache.redis.RedisTier``): its contract, the
clients it refuses, and the fallback cache through real Redis outages (no mock of redis-py).

The same fleet behaviour on the in-memory tier is in tests/cache/test_shared.py. Each "host"
here is a ``FallbackCache`` with its own vault directory and its own ``RedisTier`` (its own
client and circuit breaker, as a separate process would have), all on one ``MemorySource``
(whose ``fail_with`` is the database outage) and one redis-server (``redis_server`` in
tests/realparts.py, which kills, freezes and restarts it).

Timing: the tiers use 0.125 s timeouts and one retry, so one failing call is bounded by
``tier.worst_case_seconds`` (1.5 s: redis-py retries the connect inside each attempt, and a
new connection's handshake reads replies of its own); each bound asserted allows a second of
slack on top.
Breakers run on a fake clock that the tests advance.
"""

from __future__ import annotations

import base64
import os
import re
import signal
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.exceptions
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry
from redis.sentinel import Sentinel

import vault
import vault.testing
from tests.helpers.backends import FakeClock
from tests.hygiene import CANARY_VALUE
from tests.realparts import RedisServer
from vault._store.entries import name_stem
from vault._store.store import entries_of
from vault.cache import CacheEvent, CircuitBreaker, FallbackCache
from vault.cache._shared import pack_record
from vault.cache.redis import RedisTier
from vault.errors import ConfigurationError, SharedTierError, SourceUnavailableError
from vault.testing import MemorySource, MemoryTier

try:
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # redis-py before 7: no maintenance notifications to configure
    MaintNotificationsConfig = None  # type: ignore[assignment,misc]

NOISE = os.urandom(32)
CRED = {"token": CANARY_VALUE, "noiseKey": NOISE}
TIMEOUT = 0.125  # the tiers' connect and read timeouts
SLACK = 1.0  # seconds allowed on top of a call's documented worst case
AT_ONCE = 0.2  # seconds: a call while the breaker is open
RESET = 10.0  # the breakers' reset_after, on the fake clock
KEY = re.compile(rb"credseal:e:[0-9a-f]{64}")

needs_maint = pytest.mark.skipif(MaintNotificationsConfig is None,
                                 reason="redis-py < 7 has no maint_notifications_config")


def later(ms: int = 60_000) -> int:
    """A PXAT ``ms`` from now."""
    return time.time_ns() // 1_000_000 + ms


def kinds(events: list[CacheEvent]) -> list[str]:
    return [event.kind for event in events]


def shared_kinds(events: list[CacheEvent]) -> list[str]:
    return [kind for kind in kinds(events) if kind.startswith("shared_")]


def bounded_client_kwargs() -> dict[str, Any]:
    """A hand-built client within the bound (what the module's hint says)."""
    kwargs: dict[str, Any] = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT,
                              "retry": Retry(NoBackoff(), 1)}
    if MaintNotificationsConfig is not None:
        kwargs["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return kwargs


def plain_client(server: RedisServer, timeout: float = 10.0) -> redis.Redis:
    """A plain client for the test itself (admin commands, looking at keys); the caller
    closes it."""
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": 2.0,
                              "retry": Retry(NoBackoff(), 0)}
    if MaintNotificationsConfig is not None:
        kwargs["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return redis.Redis(host=server.host, port=server.port, **kwargs)


@pytest.fixture
def admin(redis_server: RedisServer) -> Iterator[redis.Redis]:
    client = plain_client(redis_server)
    try:
        yield client
    finally:
        client.close()


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


# --------------------------------------------------------------------------- the contract


class TestRedisTierContract(vault.testing.SharedTierContract):
    @pytest.fixture
    def tier(self, redis_server: RedisServer) -> Iterator[RedisTier]:
        with RedisTier.from_url(redis_server.url) as tier:
            yield tier


class TestMemoryTierContract(vault.testing.SharedTierContract):
    @pytest.fixture
    def tier(self) -> MemoryTier:
        return MemoryTier()


def test_namespaces_keep_fleets_apart(redis_server: RedisServer) -> None:
    with RedisTier.from_url(redis_server.url, namespace="one") as one, \
            RedisTier.from_url(redis_server.url, namespace="two") as two:
        assert one.put("a" * 64, pack_record(1, b"one"), later())
        assert two.get("a" * 64) is None
        assert list(two.stems()) == []
        assert list(one.stems()) == ["a" * 64]
        assert one.key("a" * 64) == "one:e:" + "a" * 64


# --------------------------------------------------------------------------- client checks


def _sentinel_default() -> Any:
    return Sentinel([("127.0.0.1", 1)]).master_for("mymaster")


REFUSED: dict[str, tuple[Callable[[], Any], str]] = {
    # redis-py's defaults: 5 s timeouts, 10 retries with backoff (about a minute in practice)
    "default-client": (lambda: redis.Redis("127.0.0.1", 1), "socket_timeout"),
    "no-read-timeout": (lambda: redis.Redis("127.0.0.1", 1, **{
        **bounded_client_kwargs(), "socket_timeout": None}), "socket_timeout"),
    "sentinel-without-timeouts": (_sentinel_default, "socket_timeout"),
    "retries-forever": (lambda: redis.Redis("127.0.0.1", 1, **{
        **bounded_client_kwargs(), "retry": Retry(NoBackoff(), -1)}), "retry"),
    "too-many-retries": (lambda: redis.Redis("127.0.0.1", 1, **{
        **bounded_client_kwargs(), "retry": Retry(NoBackoff(), 5)}), "retry"),
    "decode-responses": (lambda: redis.Redis("127.0.0.1", 1, decode_responses=True,
                                             **bounded_client_kwargs()), "decode_responses"),
}


@pytest.mark.parametrize("what", sorted(REFUSED))
def test_unbounded_clients_are_refused_naming_the_setting(what: str) -> None:
    make, setting = REFUSED[what]
    client = make()
    try:
        with pytest.raises(ConfigurationError, match=setting):
            RedisTier(client)
    finally:
        client.close()


@needs_maint
@pytest.mark.parametrize("config", [
    pytest.param(lambda: None, id="default-auto-10s"),
    pytest.param(lambda: MaintNotificationsConfig(enabled=True, relaxed_timeout=10),
                 id="enabled-10s"),
    # None: redis-py blocks without any timeout while the server announces maintenance
    pytest.param(lambda: MaintNotificationsConfig(enabled=True, relaxed_timeout=None),
                 id="enabled-no-timeout"),
])
def test_a_resp3_client_with_long_relaxed_timeouts_is_refused(config: Any) -> None:
    kwargs = {**bounded_client_kwargs(), "protocol": 3}
    made = config()
    if made is None:
        del kwargs["maint_notifications_config"]
    else:
        kwargs["maint_notifications_config"] = made
    client = redis.Redis("127.0.0.1", 1, **kwargs)
    try:
        with pytest.raises(ConfigurationError, match="maint_notifications_config"):
            RedisTier(client)
    finally:
        client.close()


@needs_maint
def test_short_relaxed_timeouts_and_disabled_relaxing_are_accepted() -> None:
    for config in (MaintNotificationsConfig(enabled=True, relaxed_timeout=0.2),
                   MaintNotificationsConfig(enabled=True, relaxed_timeout=-1)):
        client = redis.Redis("127.0.0.1", 1, protocol=3, **{
            **bounded_client_kwargs(), "maint_notifications_config": config})
        try:
            assert RedisTier(client).worst_case_seconds <= 2.0
        finally:
            client.close()


def test_a_hand_built_bounded_client_is_accepted_and_stays_the_callers(
        redis_server: RedisServer) -> None:
    client = redis.Redis(redis_server.host, redis_server.port, **bounded_client_kwargs())
    try:
        tier = RedisTier(client)
        assert 0 < tier.worst_case_seconds <= 2.0
        record = pack_record(5, b"hand-built")
        assert tier.put("a" * 64, record, later()) and tier.get("a" * 64) == record
        tier.close()  # not the tier's client: it stays open
        assert client.get(tier.key("a" * 64)) == record
    finally:
        client.close()


def test_a_backoff_counts_in_the_worst_case() -> None:
    client = redis.Redis("127.0.0.1", 1, **{**bounded_client_kwargs(),
                                            "retry": Retry(ExponentialBackoff(cap=0.3), 1)})
    try:
        # two attempts of (two connects, three handshake reads, a read) and three pauses
        assert RedisTier(client, max_call_seconds=3.0).worst_case_seconds == \
            pytest.approx(2 * (2 * TIMEOUT + 4 * TIMEOUT) + 3 * 0.3)
        with pytest.raises(ConfigurationError, match="retry"):
            RedisTier(client)
    finally:
        client.close()


@pytest.mark.parametrize("thing", [object(), "redis://127.0.0.1:6379/0", None])
def test_what_is_not_a_client_is_refused(thing: Any) -> None:
    with pytest.raises(ConfigurationError, match="redis-py client"):
        RedisTier(thing)


def test_from_url_checks_its_arguments() -> None:
    with pytest.raises(ConfigurationError, match="timeout"):
        RedisTier.from_url("redis://127.0.0.1:1/0", timeout=5)
    with pytest.raises(ConfigurationError, match="URL"):
        RedisTier.from_url("http://127.0.0.1:1/")
    with pytest.raises(ConfigurationError, match="namespace"):
        RedisTier.from_url("redis://127.0.0.1:1/0", namespace="a b")
    with RedisTier.from_url("redis://127.0.0.1:1/0") as tier:
        assert tier.worst_case_seconds <= 2.0


def test_server_info_reports_the_version_and_the_eviction_policy(
        redis_server: RedisServer, admin: redis.Redis) -> None:
    with RedisTier.from_url(redis_server.url) as tier:
        info = tier.server_info()
        assert info.version == admin.info("server")["redis_version"]
        assert info.maxmemory_policy == "noeviction"  # redis-server's default
        assert info.problems == ()
        admin.config_set("maxmemory-policy", "allkeys-lru")
        info = tier.server_info()
        assert info.maxmemory_policy == "allkeys-lru"
        assert len(info.problems) == 1 and "allkeys-lru" in info.problems[0]
        admin.config_set("maxmemory-policy", "volatile-lru")
        info = tier.server_info()
        assert (info.maxmemory_policy, info.problems) == ("volatile-lru", ())
        redis_server.kill()
        with pytest.raises(SharedTierError):
            tier.server_info()


# --------------------------------------------------------------------------- a fleet


@dataclass
class Fleet:
    """Hosts on one source and one redis-server, each with its own tier (fake-clock breaker)."""

    server: RedisServer
    source: MemorySource
    make_vault: Callable[..., vault.Vault]
    clock: FakeClock = field(default_factory=FakeClock)
    events: list[CacheEvent] = field(default_factory=list)
    tiers: list[RedisTier] = field(default_factory=list)

    def tier(self) -> RedisTier:
        tier = RedisTier.from_url(self.server.url, timeout=TIMEOUT,
                                  breaker=CircuitBreaker(2, RESET, clock=self.clock))
        self.tiers.append(tier)
        return tier

    def host(self, directory: str, **kwargs: Any) -> FallbackCache:
        kwargs.setdefault("shared", self.tier())
        kwargs.setdefault("on_event", self.events.append)
        kwargs.setdefault("clock", self.clock)  # the cache's own (source) breaker too
        # No usage reports: each would be one more write whose failure these tests count.
        kwargs.setdefault("report_interval", None)
        return FallbackCache(self.source, self.make_vault(directory), **kwargs)


@pytest.fixture
def fleet(redis_server: RedisServer, make_vault: Callable[..., vault.Vault]) -> Iterator[Fleet]:
    fleet = Fleet(redis_server, MemorySource({"c1": CRED}), make_vault)
    try:
        yield fleet
    finally:
        for tier in fleet.tiers:
            tier.close()


def tier_of(cache: FallbackCache) -> RedisTier:
    tier = cache.shared
    assert isinstance(tier, RedisTier)
    return tier


def in_redis(admin: redis.Redis, tier: RedisTier, name: str) -> bool:
    return bool(admin.exists(tier.key(name_stem(name))))


# --------------------------------------------------------------------------- outages


def _wait_until_busy(server: RedisServer) -> None:
    """Return once the server accepts a connection but does not answer PING in 0.3 s."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((server.host, server.port), timeout=0.3) as sock:
                sock.sendall(b"PING\r\n")
                sock.recv(16)
        except TimeoutError:
            return
        time.sleep(0.01)
    raise AssertionError("redis-server never got busy")


def begin_fault(fault: str, server: RedisServer, admin: redis.Redis) -> Callable[[], None]:
    """Start ``fault``; return what ends it (the server answers again afterwards)."""
    if fault == "sigkill":
        server.kill()
        return server.start
    if fault == "sigstop":
        server.freeze()
        return server.thaw
    if fault == "pause-all":
        # CLIENT UNPAUSE itself waits for the end of an ALL pause: keep it short.
        assert admin.execute_command("CLIENT", "PAUSE", 3000, "ALL")

        def unpause() -> None:
            admin.execute_command("CLIENT", "UNPAUSE")
        return unpause
    if fault == "debug-sleep":
        sleeper = plain_client(server)
        failures: list[BaseException] = []

        def sleep() -> None:
            try:
                sleeper.execute_command("DEBUG", "SLEEP", 3)
            except BaseException as exc:  # reported by the join below
                failures.append(exc)

        thread = threading.Thread(target=sleep, name="redis-debug-sleep", daemon=True)
        thread.start()
        _wait_until_busy(server)

        def wake() -> None:
            thread.join(10)
            sleeper.close()
            assert not thread.is_alive() and not failures, failures
        return wake
    raise AssertionError(fault)


@pytest.mark.parametrize("fault", ["sigkill", "sigstop", "pause-all", "debug-sleep"])
def test_a_redis_outage_is_bounded_and_falls_back_to_the_local_copy(
        fleet: Fleet, admin: redis.Redis, fault: str) -> None:
    a = fleet.host("a")
    tier = tier_of(a)
    assert tier.worst_case_seconds <= 1.5
    assert a.fetch("c1").origin == "source"  # written through to Redis
    assert in_redis(admin, tier, "c1")
    fleet.source.fail_with()  # the database is down too: only copies can answer
    end = begin_fault(fault, fleet.server, admin)
    try:
        for failures in (1, 2):
            fetched, took = timed(lambda: a.fetch("c1"))
            assert took < tier.worst_case_seconds + SLACK, (fault, took)
            assert (fetched.value, fetched.origin) == (CRED, "cache")
            assert tier.breaker.failures == failures
        assert tier.breaker.state == "open"
        # While it is open no call waits for Redis.
        fetched, took = timed(lambda: a.fetch("c1"))
        assert took < AT_ONCE, took
        assert (fetched.value, fetched.origin) == (CRED, "cache")
        start = time.monotonic()
        with pytest.raises(SharedTierError, match="circuit breaker"):
            tier.get(name_stem("c1"))
        assert time.monotonic() - start < AT_ONCE
        assert shared_kinds(fleet.events) == ["shared_unavailable"]
    finally:
        end()
    assert tier.breaker.state == "open"  # nothing tried Redis since
    fleet.clock.advance(RESET)  # the probe is due
    fetched = a.fetch("c1")
    assert (fetched.value, fetched.origin) == (CRED, "cache")
    assert tier.breaker.state == "closed"
    assert shared_kinds(fleet.events) == ["shared_unavailable", "shared_recovered"]
    assert "degraded" in kinds(fleet.events)
    # With the database back, the host writes through again.
    fleet.source.recover()
    fleet.clock.advance(RESET)
    assert a.save("c2", {"n": 2}).journaled is False
    assert in_redis(admin, tier, "c2")
    assert tier.breaker.failures == 0


def test_a_write_pause_still_serves_reads_and_never_fails_a_save(
        fleet: Fleet, admin: redis.Redis) -> None:
    a = fleet.host("a")
    tier = tier_of(a)
    a.get("c1")
    assert admin.execute_command("CLIENT", "PAUSE", 10_000, "WRITE")
    try:
        # The database takes the save; the shared write times out and is only reported.
        result, took = timed(lambda: a.save("c2", {"n": 2}))
        assert took < tier.worst_case_seconds + SLACK, took
        assert result.journaled is False
        assert fleet.source.snapshot()["c2"] == {"n": 2}
        assert shared_kinds(fleet.events) == ["shared_unavailable"]
        fleet.source.fail_with()
        # A save during both outages: journaled, not failed.
        result, took = timed(lambda: a.save("c2", {"n": 3}))
        assert took < tier.worst_case_seconds + SLACK, took
        assert result.journaled is True
        assert tier.breaker.state == "open"
        # Reads still work: a new host with an empty directory is served from Redis.
        fresh = fleet.host("fresh")
        fetched, took = timed(lambda: fresh.fetch("c1"))
        assert took < tier.worst_case_seconds + SLACK, took
        assert (fetched.value, fetched.origin) == (CRED, "shared")
        assert tier_of(fresh).breaker.state == "closed"
        assert a.fetch("c2").value == {"n": 3}  # its own journaled write, locally
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    fleet.clock.advance(RESET)
    assert a.fetch("c1").origin == "cache"
    assert tier.breaker.state == "closed"
    assert shared_kinds(fleet.events) == ["shared_unavailable", "shared_recovered"]
    fleet.source.recover()
    fleet.clock.advance(RESET)  # the cache's own breaker probes the database
    assert a.get("c2") == {"n": 3}  # the journal reached the database
    assert fleet.source.snapshot()["c2"] == {"n": 3}


def test_a_redis_that_restarted_empty_is_filled_again(fleet: Fleet, admin: redis.Redis) -> None:
    eager = fleet.host("eager", shared_refresh=0)
    lazy = fleet.host("lazy")  # the default refresh: what it wrote is not rewritten soon
    assert eager.get("c1") == CRED and lazy.get("c1") == CRED
    assert in_redis(admin, tier_of(eager), "c1")
    fleet.server.restart_empty()
    admin.connection_pool.disconnect()
    assert not in_redis(admin, tier_of(eager), "c1")
    lazy.get("c1")
    assert not in_redis(admin, tier_of(eager), "c1")
    eager.get("c1")  # its next healthy get writes it again (a reconnect, no failure)
    assert in_redis(admin, tier_of(eager), "c1")
    assert "shared_unavailable" not in kinds(fleet.events)
    fleet.source.fail_with()
    fresh = fleet.host("fresh")
    fetched = fresh.fetch("c1")
    assert (fetched.value, fetched.origin) == (CRED, "shared")


def test_evicted_records_are_misses_not_hangs_or_wrong_values(
        fleet: Fleet, admin: redis.Redis) -> None:
    a = fleet.host("a")
    tier = tier_of(a)
    names = [f"big-{i:02d}" for i in range(40)]
    values = {name: {"blob": os.urandom(16_384), "i": i} for i, name in enumerate(names)}
    used = int(admin.info("memory")["used_memory"])
    admin.config_set("maxmemory-policy", "volatile-lru")
    admin.config_set("maxmemory", used + 300_000)
    for name in names:
        assert a.save(name, values[name]).journaled is False
    evicted = int(admin.info("stats")["evicted_keys"])
    admin.config_set("maxmemory", 0)  # no more evictions: what is left stays
    present = {name for name in names if in_redis(admin, tier, name)}
    assert evicted > 0 and 0 < len(present) < len(names), (evicted, len(present))
    assert len(present) + evicted == len(names)
    assert "shared_unavailable" not in kinds(fleet.events) and tier.breaker.failures == 0
    fleet.source.fail_with()
    fresh = fleet.host("fresh")
    for name in names:
        start = time.monotonic()
        if name in present:
            fetched = fresh.fetch(name)
            assert (fetched.value, fetched.origin) == (values[name], "shared")
        else:
            with pytest.raises(SourceUnavailableError, match="no copy"):
                fresh.fetch(name)
        assert time.monotonic() - start < tier.worst_case_seconds + SLACK
    assert "shared_unavailable" not in kinds(fleet.events)


# --------------------------------------------------------------------------- fork safety


def _reap(pid: int, timeout: float) -> int:
    """Wait for child ``pid`` (SIGKILL it after ``timeout`` seconds); its wait status."""
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            return os.waitpid(pid, 0)[1]
        time.sleep(0.01)


def test_a_tier_built_before_a_fork_works_in_parent_and_child(redis_server: RedisServer) -> None:
    rounds = 200
    with RedisTier.from_url(redis_server.url, timeout=TIMEOUT) as tier:
        shared = pack_record(1, b"written before the fork")
        assert tier.put("a" * 64, shared, later())
        parent_id = tier.client.client_id()
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():  # 3.12+: fork of a multi-threaded process
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*fork")
            pid = os.fork()
        if pid == 0:  # the child never returns into pytest
            code = 70
            try:
                os.close(read_end)
                child_id = tier.client.client_id()  # a new connection, opened here
                ok = child_id != parent_id
                for i in range(rounds):
                    mine = pack_record(i + 1, b"child %d" % i)
                    ok &= tier.put("c" * 64, mine, later()) is True
                    ok &= tier.get("c" * 64) == mine
                    ok &= tier.mget(["a" * 64, "c" * 64]) == [shared, mine]
                ok &= tier.client.client_id() == child_id  # and kept: no reconnect
                os.write(write_end, str(child_id).encode())
                code = 0 if ok else 1
            except BaseException:
                code = 2
            finally:
                os._exit(code)
        os.close(write_end)
        try:
            ok = True
            for i in range(rounds):  # interleaved with the child's calls
                mine = pack_record(i + 1, b"parent %d" % i)
                ok &= tier.put("p" * 64, mine, later()) is True
                ok &= tier.get("p" * 64) == mine
                ok &= tier.get("a" * 64) == shared
        finally:
            status = _reap(pid, timeout=30)
            child_said = os.read(read_end, 64).decode()
            os.close(read_end)
        assert os.waitstatus_to_exitcode(status) == 0
        assert ok
        child_id = int(child_said)
        assert child_id != parent_id  # the child opened its own connection
        assert tier.client.client_id() == parent_id  # the parent kept its own: no reconnect
        assert tier.get("c" * 64) == pack_record(rounds, b"child %d" % (rounds - 1))
        assert tier.breaker.failures == 0


# --------------------------------------------------------------------------- what Redis sees


def test_redis_sees_no_plaintext_and_keys_reveal_no_names(
        fleet: Fleet, admin: redis.Redis, ring: vault.KeyRing) -> None:
    a = fleet.host("a")
    assert a.get("c1") == CRED
    a.save("company-42", {"token": CANARY_VALUE + "-2", "noiseKey": NOISE})
    a.delete("c1")  # a tombstone is a record too
    secrets = [CANARY_VALUE.encode(), NOISE, *(key._material for key in ring.keys)]
    needles = set()
    for raw in secrets:
        needles |= {raw, raw.hex().encode(), base64.b64encode(raw).rstrip(b"="),
                    base64.urlsafe_b64encode(raw).rstrip(b"=")}
    keys = sorted(admin.scan_iter(match="*", count=100))
    assert keys == sorted(tier_of(a).key(name_stem(name)).encode()
                          for name in ("c1", "company-42"))
    for key in keys:
        assert KEY.fullmatch(key), key
        value = admin.get(key)
        assert value is not None and value.startswith(b"CSR1")
        for needle in needles:
            assert needle not in key and needle not in value
        assert 0 < admin.pttl(key) <= a.vault.ttl * 1000  # it expires with its envelope


# ---- what a writer of Redis may plant (review of the fleet change)

def test_a_planted_key_of_another_type_is_replaced_not_an_outage(
        fleet: Fleet, admin: redis.Redis) -> None:
    """A list under a record's key makes GET fail with WRONGTYPE: it must not count as an
    outage (the breaker stays closed), and the next write replaces it."""
    a = fleet.host("a")
    tier = tier_of(a)
    a.get("c1")
    key = tier.key(name_stem("c1"))
    admin.delete(key)
    admin.rpush(key, b"planted")
    fleet.source.fail_with()
    fresh = fleet.host("fresh")
    for _ in range(3):
        with pytest.raises(vault.SourceUnavailableError):
            fresh.get("c1")  # a miss, not a tier failure
    assert tier_of(fresh).breaker.state == "closed"
    assert admin.type(key) in (b"none", b"string")  # the reader removed it
    fleet.source.recover()
    fleet.clock.advance(RESET)
    admin.delete(key)
    admin.rpush(key, b"planted again")
    a.save("c1", {"n": 2})  # the write replaces it
    assert admin.type(key) == b"string" and in_redis(admin, tier, "c1")


def test_a_planted_record_without_expiry_cannot_block_a_name(
        fleet: Fleet, admin: redis.Redis) -> None:
    """A record under a key id the ring lacks is left alone by readers, but credseal never
    writes one without an expiry: such a plant is replaced by the next write."""
    other = vault.Vault(fleet.make_vault("other").directory,
                        keys=vault.KeyRing([vault.Key.generate()]))
    a = fleet.host("a")
    tier = tier_of(a)
    envelope = entries_of(other).seal("c1", b'"planted"', 0, 2**62)
    key = tier.key(name_stem("c1"))
    admin.set(key, pack_record(10**18, envelope))  # a huge order, no expiry
    a.get("c1")
    assert in_redis(admin, tier, "c1") and admin.pttl(key) > 0


def test_a_bad_url_never_shows_itself() -> None:
    secret = "hunter2-SECRET"
    with pytest.raises(ConfigurationError) as caught:
        RedisTier.from_url(f"rediss://:{secret}@127.0.0.1:1/0?ssl_cert_reqs={secret}")
    assert secret not in str(caught.value) and secret not in repr(caught.value)
