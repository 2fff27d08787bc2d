"""The shared tier on a real Redis Cluster (``RedisTier`` on redis-py's ``RedisCluster``).

Three masters, no replicas (``redis_cluster`` / ``redis_cluster_module`` in
tests/realparts.py). The contract and the client checks share one cluster for the module,
each test under a namespace of its own; the outage tests get a fresh cluster and kill or
freeze one master. Each host is a ``FallbackCache`` on its own vault directory and tier, all
on one ``MemorySource`` whose ``fail_with`` is the database outage (as in
tests/cache/test_redis.py).

Timing: ``RedisTier.from_cluster`` fits its timeouts to the cluster (three nodes: 0.218 s, no
cluster-level retry), so one failing call is bounded by ``tier.worst_case_seconds`` (about
2 s); each bound asserted allows a second of slack on top.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.retry import Retry

import vault
import vault.testing
from tests.realparts import RedisClusterGroup
from vault._store.entries import name_stem
from vault.cache import CacheEvent, FallbackCache
from vault.cache._shared import pack_record
from vault.cache.redis import DEFAULT_TIMEOUT, MAX_CALL_SECONDS, RedisTier
from vault.errors import ConfigurationError, SharedTierError, SourceUnavailableError
from vault.testing import MemorySource

try:
    from redis.maint_notifications import MaintNotificationsConfig
except ImportError:  # redis-py before 7: no maintenance notifications to configure
    MaintNotificationsConfig = None  # type: ignore[assignment,misc]

SLACK = 1.0  # seconds allowed on top of a call's documented worst case
FITTED = min(DEFAULT_TIMEOUT, 0.218)  # the default, or the fit for three nodes if it is shorter

needs_maint = pytest.mark.skipif(MaintNotificationsConfig is None,
                                 reason="redis-py < 7 has no maint_notifications_config")


def later(ms: int = 60_000) -> int:
    """A PXAT ``ms`` from now."""
    return time.time_ns() // 1_000_000 + ms


def fresh_namespace() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


def cluster_client(group: RedisClusterGroup, **kwargs: Any) -> RedisCluster:
    """A ``RedisCluster`` on ``group`` with ``kwargs``; the caller closes it."""
    return RedisCluster(startup_nodes=[ClusterNode(host, port)
                                       for host, port in group.startup_nodes], **kwargs)


def bounded_kwargs(timeout: float, retries: int) -> dict[str, Any]:
    """Hand-built cluster settings: ``timeout`` to connect and read, ``retries`` cluster
    retries, maintenance notifications off."""
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                              "retry": Retry(NoBackoff(), retries)}
    if MaintNotificationsConfig is not None:
        kwargs["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return kwargs


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.monotonic()
    result = fn()
    return result, time.monotonic() - start


def node_timeout(tier: RedisTier) -> float:
    """The socket timeout a tier's cluster nodes use."""
    return float(tier.client.get_nodes()[0].redis_connection.connection_pool
                 .connection_kwargs["socket_timeout"])


# --------------------------------------------------------------------------- the contract


class TestRedisClusterTierContract(vault.testing.SharedTierContract):
    @pytest.fixture
    def tier(self, redis_cluster_module: RedisClusterGroup) -> Iterator[RedisTier]:
        with RedisTier.from_cluster(redis_cluster_module.startup_nodes,
                                    namespace=fresh_namespace()) as tier:
            yield tier


@pytest.fixture
def tier(redis_cluster_module: RedisClusterGroup) -> Iterator[RedisTier]:
    with RedisTier.from_cluster(redis_cluster_module.startup_nodes,
                                namespace=fresh_namespace()) as tier:
        yield tier


def test_records_spread_over_the_masters(tier: RedisTier,
                                         redis_cluster_module: RedisClusterGroup) -> None:
    group = redis_cluster_module
    stems = [name_stem(f"cred-{i}") for i in range(60)]
    for stem in stems:
        assert tier.put(stem, pack_record(1, stem.encode()), later())
    held = {port: group.keys_on(port, f"{tier.namespace}:e:*") for port in group.ports}
    assert sum(len(keys) for keys in held.values()) == len(stems)
    assert sum(1 for keys in held.values() if keys) > 1, held
    assert all(held.values()), {port: len(keys) for port, keys in held.items()}
    for stem in stems:  # each where the cluster says its slot is
        assert tier.key(stem).encode() in held[group.port_of(tier.key(stem))]
    # SCAN covers every master, and finds only this namespace
    assert sorted(tier.stems()) == sorted(stems)
    for host in range(5):
        tier.put_report(f"{host:032x}", b"report %d" % host, later())
    assert tier.reports() == {f"{host:032x}": b"report %d" % host for host in range(5)}
    assert tier.delete_report(f"{0:032x}") and len(tier.reports()) == 4


def test_mget_of_200_stems_over_many_slots_answers_in_order(
        tier: RedisTier, redis_cluster_module: RedisClusterGroup) -> None:
    stems = [name_stem(f"many-{i}") for i in range(200)]
    for i, stem in enumerate(stems):
        if i % 4:
            assert tier.put(stem, pack_record(i, b"v%d" % i), later())
    slots = {redis_cluster_module.slot_of(tier.key(stem)) for stem in stems}
    assert len(slots) > 150  # nearly one slot each: one MGET per slot
    got, took = timed(lambda: tier.mget(stems))
    assert got == [pack_record(i, b"v%d" % i) if i % 4 else None for i in range(200)]
    assert took < 1.0
    assert tier.mget(list(reversed(stems))) == list(reversed(got))
    assert tier.mget([stems[1], stems[0], stems[1]]) == [got[1], None, got[1]]


def test_scripts_run_on_a_master_whose_script_cache_was_flushed(
        tier: RedisTier, redis_cluster_module: RedisClusterGroup) -> None:
    """The compare-and-set scripts run as ``EVAL`` on the key's master: a master that lost
    its script cache (a restart) needs nothing loaded first."""
    stem = name_stem("flushed")
    port = redis_cluster_module.port_of(tier.key(stem))
    assert tier.put(stem, pack_record(2, b"two"), later())
    redis_cluster_module.command(port, "SCRIPT", "FLUSH")
    assert tier.put(stem, pack_record(1, b"one"), later()) is False
    assert tier.replace_if(stem, pack_record(2, b"two"), pack_record(3, b"three"), later())
    assert tier.delete_if(stem, pack_record(3, b"three"))
    assert tier.get(stem) is None


def test_server_info_asks_every_master(tier: RedisTier,
                                       redis_cluster_module: RedisClusterGroup) -> None:
    group = redis_cluster_module
    info = tier.server_info()
    assert info.version == group.command(group.ports[0], "INFO", "server")["redis_version"]
    assert (info.maxmemory_policy, info.problems) == ("noeviction", ())
    # one master with a policy that may evict records' neighbours: reported
    group.command(group.ports[2], "CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    try:
        info = tier.server_info()
    finally:
        group.command(group.ports[2], "CONFIG", "SET", "maxmemory-policy", "noeviction")
    assert info.maxmemory_policy == "allkeys-lru, noeviction"
    assert len(info.problems) == 1 and "allkeys-lru" in info.problems[0]


# --------------------------------------------------------------------------- client checks


def test_from_cluster_fits_its_timeouts_to_the_bound(
        redis_cluster_module: RedisClusterGroup) -> None:
    group = redis_cluster_module
    with RedisTier.from_cluster(group.startup_nodes) as tier:
        assert node_timeout(tier) == FITTED
        assert tier.worst_case_seconds == pytest.approx((3 + 1) * 2 * FITTED + 0.25)
        assert tier.worst_case_seconds <= MAX_CALL_SECONDS
        assert tier.client.retry.get_retries() == 0
    # one node's URL finds the others
    with RedisTier.from_cluster(f"redis://{group.host}:{group.ports[1]}",
                                namespace=fresh_namespace()) as tier:
        assert len(tier.client.get_primaries()) == 3
        assert tier.worst_case_seconds <= MAX_CALL_SECONDS
        assert tier.put("a" * 64, pack_record(1, b"one"), later()) and tier.get("a" * 64)
    # a timeout of one's own is kept, and checked
    with RedisTier.from_cluster(group.startup_nodes, timeout=0.1) as tier:
        assert node_timeout(tier) == 0.1
    with RedisTier.from_cluster(group.startup_nodes, timeout=0.09,
                                retry=Retry(NoBackoff(), 1)) as tier:  # so is a retry
        assert tier.client.retry.get_retries() == 1
        assert tier.worst_case_seconds == pytest.approx(2 * ((3 + 1) * 0.18 + 0.25))
    with pytest.raises(ConfigurationError, match="socket_timeout"):
        RedisTier.from_cluster(group.startup_nodes, timeout=0.25)


def test_from_cluster_checks_its_arguments(refused_port: int,
                                           redis_cluster_module: RedisClusterGroup) -> None:
    with pytest.raises(ConfigurationError, match="namespace"):
        RedisTier.from_cluster(redis_cluster_module.startup_nodes, namespace="a b")
    with pytest.raises(ConfigurationError, match="timeout"):
        RedisTier.from_cluster(redis_cluster_module.startup_nodes, timeout=5)
    with pytest.raises(ConfigurationError, match="URL"):
        RedisTier.from_cluster("http://127.0.0.1:1/")
    start = time.monotonic()
    with pytest.raises(SharedTierError, match="no startup node"):
        RedisTier.from_cluster([("127.0.0.1", refused_port)])
    assert time.monotonic() - start < 1.0


def _refused(what: str) -> tuple[dict[str, Any], str]:
    if what == "default-client":  # redis-py 8: 5 s timeouts, 10 cluster retries
        return {}, "retry.*socket_timeout"
    if what == "brief-settings":  # what a standalone client is allowed: too much here
        return bounded_kwargs(0.25, 1), r"can wait 4\.5 s.*retry"
    if what == "no-retry-but-0.25-s":
        return bounded_kwargs(0.25, 0), r"can wait 2\.[23] s.*socket_timeout"
    if what == "negative-retries":  # set later: redis-py 8 would not even try (constructing)
        return bounded_kwargs(0.1, 0), "negative count"
    if what == "decode-responses":
        return {**bounded_kwargs(0.1, 0), "decode_responses": True}, "decode_responses"
    raise AssertionError(what)


@pytest.mark.parametrize("what", ["default-client", "brief-settings", "no-retry-but-0.25-s",
                                  "negative-retries", "decode-responses"])
def test_unbounded_cluster_clients_are_refused_naming_the_setting(
        what: str, redis_cluster_module: RedisClusterGroup) -> None:
    kwargs, setting = _refused(what)
    client = cluster_client(redis_cluster_module, **kwargs)
    if what == "negative-retries":
        client.set_retry(Retry(NoBackoff(), -1))
    try:
        with pytest.raises(ConfigurationError, match=setting) as caught:
            RedisTier(client)
        if what != "decode-responses":
            assert "socket_timeout=0.218" in (caught.value.hint or "")  # what fits
    finally:
        client.close()


@needs_maint
def test_a_cluster_client_relaxing_its_timeouts_is_refused(
        redis_cluster_module: RedisClusterGroup) -> None:
    """RESP3 is redis-py 8's default, and so are maintenance notifications that relax the
    timeouts to 10 s."""
    kwargs = bounded_kwargs(0.1, 0)
    del kwargs["maint_notifications_config"]
    client = cluster_client(redis_cluster_module, **kwargs)
    try:
        with pytest.raises(ConfigurationError, match="maint_notifications_config"):
            RedisTier(client)
    finally:
        client.close()


def test_a_hand_built_cluster_client_within_the_bound_is_accepted(
        redis_cluster_module: RedisClusterGroup) -> None:
    client = cluster_client(redis_cluster_module, **bounded_kwargs(FITTED, 0))
    try:
        tier = RedisTier(client, namespace=fresh_namespace())
        assert tier.worst_case_seconds <= MAX_CALL_SECONDS
        record = pack_record(5, b"hand-built")
        assert tier.put("b" * 64, record, later()) and tier.get("b" * 64) == record
        tier.close()  # not the tier's client: it stays open
        assert client.get(tier.key("b" * 64)) == record
        client.delete(tier.key("b" * 64))
        # One cluster retry fits with timeouts under half as long.
        with cluster_client(redis_cluster_module, **bounded_kwargs(0.09, 1)) as retrying:
            assert RedisTier(retrying).worst_case_seconds == pytest.approx(
                2 * ((3 + 1) * 0.18 + 0.25))
    finally:
        client.close()


# --------------------------------------------------------------------------- a fleet


@dataclass
class Fleet:
    """Hosts on one source and one cluster, each with its own tier (``from_cluster``)."""

    group: RedisClusterGroup
    source: MemorySource
    make_vault: Callable[..., vault.Vault]
    namespace: str = "credseal"
    events: list[CacheEvent] = field(default_factory=list)
    tiers: list[RedisTier] = field(default_factory=list)

    def host(self, directory: str) -> FallbackCache:
        tier = RedisTier.from_cluster(self.group.startup_nodes, namespace=self.namespace)
        self.tiers.append(tier)
        # No usage reports: each would be one more write whose failure these tests count.
        return FallbackCache(self.source, self.make_vault(directory), shared=tier,
                             on_event=self.events.append, report_interval=None)

    def port_of(self, name: str) -> int:
        return self.group.port_of(self.tiers[0].key(name_stem(name)))


NAMES = [f"cred-{i}" for i in range(30)]


def value(name: str) -> dict[str, Any]:
    return {"token": f"token of {name}"}


@contextlib.contextmanager
def fleet_on(group: RedisClusterGroup, make_vault: Callable[..., vault.Vault],
             namespace: str) -> Iterator[Fleet]:
    fleet = Fleet(group, MemorySource({name: value(name) for name in NAMES}), make_vault,
                  namespace)
    try:
        yield fleet
    finally:
        for tier in fleet.tiers:
            tier.close()


@pytest.fixture
def fleet(redis_cluster: RedisClusterGroup,
          make_vault: Callable[..., vault.Vault]) -> Iterator[Fleet]:
    """Hosts on a cluster of their own (the test kills or freezes a master)."""
    with fleet_on(redis_cluster, make_vault, "credseal") as fleet:
        yield fleet


@pytest.fixture
def quiet_fleet(redis_cluster_module: RedisClusterGroup,
                make_vault: Callable[..., vault.Vault]) -> Iterator[Fleet]:
    """Hosts on the module's cluster, under a namespace of their own (no fault)."""
    with fleet_on(redis_cluster_module, make_vault, fresh_namespace()) as fleet:
        yield fleet


def tier_of(cache: FallbackCache) -> RedisTier:
    tier = cache.shared
    assert isinstance(tier, RedisTier)
    return tier


def test_a_new_host_warms_from_the_cluster_during_a_database_outage(quiet_fleet: Fleet) -> None:
    fleet = quiet_fleet
    a = fleet.host("a")
    names = [f"warm-{i}" for i in range(200)]
    for name in names:
        fleet.source.save(name, value(name))
        assert a.fetch(name).origin == "source"  # written through to the cluster
    fleet.source.fail_with()
    b = fleet.host("b")
    report, took = timed(lambda: b.prefetch(names))
    assert (report.asked, report.found, report.copied, report.shared_answered) == \
        (200, 200, 200, True)
    assert took < 5.0
    c = fleet.host("c")
    for name in names[:20]:
        fetched = c.fetch(name)
        assert (fetched.value, fetched.origin) == (value(name), "shared")
        assert b.fetch(name).value == value(name)


def test_a_dead_master_costs_its_slots_only(fleet: Fleet) -> None:
    a = fleet.host("a")
    for name in NAMES:
        assert a.fetch(name).origin == "source"
    by_port: dict[int, list[str]] = {}
    for name in NAMES:
        by_port.setdefault(fleet.port_of(name), []).append(name)
    victim = min(by_port, key=lambda port: (-len(by_port[port]), port))
    lost = by_port[victim]
    kept = [name for name in NAMES if name not in lost]
    assert len(lost) >= 3 and len(kept) >= 3, by_port
    fleet.source.fail_with()
    b = fleet.host("b")  # a new host: warmed from the cluster while the database is down
    for name in NAMES:
        fetched = b.fetch(name)
        assert (fetched.value, fetched.origin) == (value(name), "shared")
    tier = tier_of(b)
    # A cache may write the copies it took from the tier in the background: let it finish.
    wait_for_copies = getattr(b, "wait_for_copies", None)
    if wait_for_copies is not None:
        assert wait_for_copies(5.0)

    fleet.group.kill(victim)
    for name in lost:  # the cluster fails for these: the local copies serve
        fetched, took = timed(lambda name=name: b.fetch(name))
        assert took < tier.worst_case_seconds + SLACK, (name, took)
        # "shared": a copy taken from the tier a moment ago, not yet in the local vault
        assert fetched.value == value(name) and fetched.origin in ("cache", "shared")
    for name in lost:  # the tier answers nothing of the dead master's
        with pytest.raises(SharedTierError):
            tier.get(name_stem(name))
    assert tier.breaker_of(name_stem(lost[0])).state == "open"
    assert "shared_unavailable" in [event.kind for event in fleet.events]
    # The other masters' breakers are closed, the tier's too: their names are served.
    for name in kept:
        assert b.fetch(name).value == value(name)
        assert tier.breaker_of(name_stem(name)).state == "closed"
        assert tier.get(name_stem(name)) is not None
    assert tier.breaker.state == "closed"

    def new_host_serves(directory: str) -> None:
        """A host without copies: the other masters' names from the cluster, the dead
        master's not at all (the source is down too), each answer within the bound."""
        c = fleet.host(directory)
        bound = tier_of(c).worst_case_seconds + SLACK
        for name in kept:
            fetched, took = timed(lambda name=name: c.fetch(name))
            assert took < bound, (name, took)
            assert (fetched.value, fetched.origin) == (value(name), "shared")
        for name in lost:
            start = time.monotonic()
            with pytest.raises(SourceUnavailableError):
                c.fetch(name)
            assert time.monotonic() - start < bound

    new_host_serves("c")
    # Once the other masters flag it as failed they still serve their own slots (the
    # nodes run with cluster-require-full-coverage no), to a new client too.
    fleet.group.wait_until_failed(victim)
    new_host_serves("d")
    for name in kept:
        assert b.fetch(name).value == value(name)
    assert tier.breaker.state == "closed"


def test_a_frozen_master_fails_calls_within_the_bound(fleet: Fleet) -> None:
    """SIGSTOP: connections are accepted and nothing answers. (redis-py's own
    ``mget_nonatomic`` then sends each of the master's ``MGET`` commands again one at a time,
    each with its timeout and retries: many seconds for one call.)"""
    a = fleet.host("a")
    for name in NAMES:
        a.fetch(name)
    tier = tier_of(a)
    stems = [name_stem(name) for name in NAMES]
    victim = fleet.port_of(NAMES[0])
    lost = [stem for stem in stems if fleet.group.port_of(tier.key(stem)) == victim]
    kept = [stem for stem in stems if stem not in lost]
    bound = tier.worst_case_seconds + SLACK
    fleet.group.freeze(victim)
    try:
        for call in (lambda: tier.mget(stems), lambda: tier.get(lost[0]),
                     lambda: list(tier.stems())):
            start = time.monotonic()
            with pytest.raises(SharedTierError):
                call()
            assert time.monotonic() - start < bound
        for stem in kept:
            assert tier.get(stem) is not None
    finally:
        fleet.group.thaw(victim)
    # Thawed, it answers again (to a new tier: this one's breakers are open for 10 s).
    with RedisTier.from_cluster(fleet.group.startup_nodes) as fresh:
        assert None not in fresh.mget(stems)
