"""``RedisTier`` and ``AsyncRedisTier``: the fleet's shared tier of sealed copies, on Redis
(extra ``credseal[redis]``).

Redis holds **records** only (``vault.cache._shared``; ``docs/format.md`` section 14): the
entry envelope a host's local file holds, sealed with the ring (``KIND_ENTRY``, bound to the
name and its times), with the source version in clear in front so that a Lua script can
compare-and-set without a key. Keys are ``<namespace>:e:<stem>`` where the stem is the
SHA-256 file stem of the name; each record expires with its envelope (``SET ... PXAT``).
What Redis sees is what a file shows: names (in the v1 header), key ids, sizes, times.

**Bounded calls.** redis-py has no per-command timeout: a call waits as long as the client's
socket timeouts and retry policy allow (its defaults wait about 59 s against a frozen
server). So ``RedisTier(client)`` takes the caller's client (``redis.Redis``,
``Sentinel(...).master_for(...)``, ``RedisCluster``: TLS, ACL users and pools stay
redis-py's business) but refuses one whose worst case exceeds ``max_call_seconds``
(default :data:`MAX_CALL_SECONDS`), naming the setting. :meth:`RedisTier.from_url`,
:meth:`RedisTier.from_sentinel` and :meth:`RedisTier.from_cluster` build a client within the
bound. The tier has its own :class:`~vault.cache.CircuitBreaker`: while it is open a call
fails at once.

**Redis Cluster** (``redis.cluster.RedisCluster``). Records spread over the masters by hash
slot (the keys have no hash tag). redis-py repeats a failed call ``retry.get_retries()`` times
(it does not use the retry's backoff), and after a connection error or ``CLUSTERDOWN`` it
refreshes its slot map, asking the nodes one after the other, before it gives up or tries
again. So one call's worst case is taken as ``(retries + 1) * ((nodes + 1) * per node +
0.25 s)``: ``per node`` is one connect and one read, ``nodes`` counts replicas too, 0.25 s is
redis-py's pause after ``CLUSTERDOWN``. No call fans out under those retries: ``SCAN`` and
``INFO`` ask one master per call, and ``mget`` sends each master one pipeline of ``MGET``
commands (one per slot), not retried. The scripts run as ``EVAL`` on the key's master (no
``SCRIPT LOAD`` on every master). A call on one key has the breaker of the master that holds
its slot (made like ``breaker``): a master that is down does not stop the others being used;
the calls that span the cluster have ``breaker``. Redirections during a resharding
(``MOVED``/``ASK``, which redis-py follows) are not in the bound.

**Server.** Redis >= 6.2 (``PXAT``), checked on the first call that reaches it. Records
expire, so the eviction policy should be a ``volatile-*`` one (``diagnose`` says which is set).

**asyncio.** :class:`AsyncRedisTier` is the same tier on ``redis.asyncio`` (the same
records, scripts, client check and breaker), for ``AsyncFallbackCache``. The cache's record
rules run in its worker threads, which schedule each Redis call on the cache's event loop
through :class:`LoopBridge` and wait for it; the loop itself never waits for Redis.

**Fork safety.** redis-py's connection pools notice a fork (they compare the process id) and
open new connections in the child, so a tier built before ``gunicorn --preload`` forks is
safe to use in every worker; no connection is shared.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import inspect
import math
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

try:
    import redis
    import redis.asyncio
    import redis.exceptions
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import ConstantBackoff, NoBackoff
    from redis.retry import Retry
    try:
        from redis.maint_notifications import MaintNotificationsConfig
    except ImportError:  # redis-py before 7
        MaintNotificationsConfig = None  # type: ignore[assignment,misc]
except ModuleNotFoundError as exc:  # the optional extra is not installed
    if exc.name != "redis":
        raise
    raise ModuleNotFoundError('vault.cache.redis needs redis-py, which is not installed: '
                              'pip install "credseal[redis]"', name="redis") from None

from vault.cache._breaker import CircuitBreaker
from vault.cache._health import describe
from vault.cache._shared import RECORD_MAGIC, RECORD_PREFIX_SIZE
from vault.errors import ConfigurationError, SharedTierError

__all__ = ["DEFAULT_NAMESPACE", "DEFAULT_TIMEOUT", "MAX_CALL_SECONDS", "MIN_SERVER_VERSION",
           "AsyncRedisTier", "LoopBridge", "RedisTier", "ServerInfo"]

DEFAULT_NAMESPACE = "credseal"
DEFAULT_TIMEOUT = 0.125  # seconds: connect and read timeouts of the clients built here
#: replies a new connection's handshake waits for (HELLO or AUTH, CLIENT SETINFO twice):
#: counted in a standalone or Sentinel client's worst case
HANDSHAKE_READS = 3
MAX_CALL_SECONDS = 2.0  # the documented bound on one call's worst case
MIN_SERVER_VERSION = (6, 2)
T = TypeVar("T")
_CLUSTER_DOWN_PAUSE = 0.25  # redis-py sleeps this long after CLUSTERDOWN, then refreshes

# KEYS[1]: the key; ARGV[1]: the record; ARGV[2]: its clear version (20 digits); ARGV[3]: PXAT.
# Equal-length digit strings compare as numbers; an equal version may refresh the record.
# What credseal never writes is no record: a value that is not a string (GET would fail
# with WRONGTYPE for every reader), or one without an expiry (every record has one).
_NOT_OURS = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if kind ~= 'none' and (kind ~= 'string' or redis.call('PTTL', KEYS[1]) == -1) then
  redis.call('DEL', KEYS[1])
end
"""
_PUT = _NOT_OURS + f"""
local cur = redis.call('GET', KEYS[1])
if cur and string.sub(cur, 1, {len(RECORD_MAGIC)}) == '{RECORD_MAGIC.decode()}'
    and string.len(cur) >= {RECORD_PREFIX_SIZE}
    and string.sub(cur, {len(RECORD_MAGIC) + 1}, {RECORD_PREFIX_SIZE}) > ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[3])
return 1
"""
_REPLACE_IF = _NOT_OURS + """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PXAT', ARGV[3])
  return 1
end
return 0
"""
_DELETE_IF = _NOT_OURS + """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
#: the replies a server makes for a key that holds no string: not a record (a reader that
#: gets it removes the key through _DELETE_IF)
NOT_A_STRING = b""


@dataclass(frozen=True)
class ServerInfo:
    """What :meth:`RedisTier.server_info` found: the server ``version``, its
    ``maxmemory_policy`` (None if ``CONFIG GET`` is not allowed) and ``problems``."""

    version: str
    maxmemory_policy: str | None
    problems: tuple[str, ...]


def _worst_case(connection: Any, retry: Any, lookup: float = 0.0,
                handshake_reads: int = 0) -> tuple[float, str | None]:
    """A connection's worst-case seconds per call, or (inf, the setting to fix). ``lookup``
    is added to every connect (a Sentinel client asks the sentinels for the master first).
    With ``handshake_reads``: redis-py 8 retries the connect itself inside every attempt of
    a command, and a new connection's handshake (``HELLO``, ``CLIENT SETINFO``...) waits for
    replies of its own, so an attempt is ``(retries + 1)`` connects, those reads and the
    command's own read."""
    read = getattr(connection, "socket_timeout", None)
    connect = getattr(connection, "socket_connect_timeout", None)
    if read is None:
        return math.inf, "socket_timeout"
    if connect is None:
        return math.inf, "socket_connect_timeout"
    if retry is None:
        retries, backoff = 0, 0.0
    else:
        retries = retry.get_retries()
        if retries < 0:
            return math.inf, "retry (it retries forever)"
        policy = getattr(retry, "_backoff", None)
        if isinstance(policy, NoBackoff):
            backoff = 0.0
        elif isinstance(policy, ConstantBackoff):
            backoff = float(policy._backoff)
        elif policy is not None and hasattr(policy, "_cap"):
            backoff = float(policy._cap)
        else:
            return math.inf, f"retry (a backoff of unknown bound: {type(policy).__name__})"
    if handshake_reads:
        attempt = (retries + 1) * (float(connect) + lookup) + (handshake_reads + 1) * float(read)
        pauses = (retries + 1) * retries + retries  # between connects, and between attempts
        return (retries + 1) * attempt + pauses * backoff, None
    return (retries + 1) * (float(read) + float(connect) + lookup) + retries * backoff, None


def _discard(connection: Any) -> None:
    """Drop a connection made only to read its settings (never connected; an asyncio one's
    ``disconnect`` is a coroutine, closed unawaited)."""
    with contextlib.suppress(Exception):
        result = connection.disconnect()
        if inspect.iscoroutine(result):
            result.close()


def _sentinel_lookup(client: Any) -> tuple[float, str | None]:
    """The worst-case seconds of finding the master through ``client``'s sentinels (asked
    one after the other), 0 for a client without them."""
    manager = getattr(getattr(client, "connection_pool", None), "sentinel_manager", None)
    total = 0.0
    for sentinel in getattr(manager, "sentinels", None) or ():
        connection, _ = _connection_of(sentinel)
        try:
            worst, setting = _worst_case(connection, connection.retry,
                                         handshake_reads=HANDSHAKE_READS)
        finally:
            _discard(connection)
        if setting is not None:
            return math.inf, f"the sentinels' {setting} (sentinel_kwargs)"
        total += worst
    return total, None


def _is_cluster(client: Any) -> bool:
    return getattr(client, "nodes_manager", None) is not None


def _connection_of(client: Any) -> tuple[Any, Any]:
    """A connection configured like ``client``'s (not connected), and ``client`` itself if
    it is a ``RedisCluster`` (else None)."""
    if _is_cluster(client):
        # Configured like the connections of a node's own client: the cluster's settings,
        # and the node's retry (none since redis-py 6: the cluster retries).
        node = next((node for node in client.get_nodes()
                     if getattr(node, "redis_connection", None) is not None), None)
        if node is None:
            raise ConfigurationError(f"RedisTier needs a redis.cluster.RedisCluster that "
                                     f"found its nodes, not {type(client).__name__}")
        return _connection_of(node.redis_connection)[0], client
    pool = getattr(client, "connection_pool", None)
    if pool is None:
        raise ConfigurationError(f"RedisTier needs a redis-py client, not "
                                 f"{type(client).__name__}",
                                 hint="redis.Redis(...), Sentinel(...).master_for(...) or "
                                 "RedisCluster(...); or RedisTier.from_url(url)")
    if getattr(client, "get_encoder", None) is not None and \
            pool.connection_kwargs.get("decode_responses"):
        raise ConfigurationError("RedisTier needs a client with decode_responses=False "
                                 "(records are bytes)")
    connection = pool.connection_class(**pool.connection_kwargs)
    return connection, None


_CLIENT_HINT = (f"e.g. socket_timeout={DEFAULT_TIMEOUT}, socket_connect_timeout={DEFAULT_TIMEOUT}, "
                "retry=Retry(NoBackoff(), 1), maint_notifications_config="
                "MaintNotificationsConfig(enabled=False); or RedisTier.from_url(url)")


def _retries(retry: Any) -> int:
    return 0 if retry is None else max(0, retry.get_retries())


def _cluster_retries(cluster: Any) -> int:
    """How often a ``RedisCluster`` repeats a failed call: its ``retry`` (redis-py 6+, which
    uses only the count), ``cluster_error_retry_attempts`` before."""
    legacy = getattr(cluster, "cluster_error_retry_attempts", None)
    if isinstance(legacy, int) and not isinstance(legacy, bool):
        return legacy
    retry = getattr(cluster, "retry", None)
    return 0 if retry is None else int(retry.get_retries())


def _cluster_nodes(cluster: Any) -> int:
    """How many nodes a ``RedisCluster``'s slot-map refresh may ask in turn (its startup
    nodes: every node it found, replicas too, unless ``dynamic_startup_nodes=False``)."""
    manager = cluster.nodes_manager
    return max(1, len(manager.startup_nodes), len(manager.nodes_cache))


def _cluster_worst_case(per_node: float, retries: int, nodes: int) -> float:
    """One call's worst case through a ``RedisCluster`` (see the module docstring): each
    attempt asks its node, then (after a failure) every node for the slot map."""
    return (retries + 1) * ((nodes + 1) * per_node + _CLUSTER_DOWN_PAUSE)


def _cluster_timeout(bound: float, nodes: int) -> float:
    """The longest connect and read timeout (each, ms precision) that keeps a cluster client
    without retries within ``bound``; 0 if none does."""
    fit = (bound - _CLUSTER_DOWN_PAUSE) / (2 * (nodes + 1))
    return max(0.0, math.floor(fit * 1000) / 1000)


def _cluster_hint(cluster: Any, bound: float) -> str:
    nodes = _cluster_nodes(cluster)
    fit = _cluster_timeout(bound, nodes)
    return (f"this cluster has {nodes} nodes: e.g. RedisCluster(..., socket_timeout={fit}, "
            f"socket_connect_timeout={fit}, retry=Retry(NoBackoff(), 0), "
            "maint_notifications_config=MaintNotificationsConfig(enabled=False)); or "
            "RedisTier.from_cluster(nodes)")


def check_client(client: Any, bound: float) -> float:
    """The worst-case seconds of one call through ``client``.

    Raises:
        ConfigurationError: it can wait longer than ``bound`` (names the setting).
    """
    try:
        connection, cluster = _connection_of(client)
        lookup, setting = _sentinel_lookup(client)
    except ConfigurationError:
        raise
    except Exception as exc:  # redis-py refused a setting: its text may quote the URL
        raise ConfigurationError(f"redis-py refused the client's connection settings "
                                 f"({type(exc).__name__})",
                                 hint="check the URL's options (TLS files, ssl_cert_reqs)"
                                 ) from None
    try:
        if setting is None:
            worst, setting = _worst_case(connection, connection.retry, lookup,
                                         0 if cluster is not None else HANDSHAKE_READS)
        else:
            worst = math.inf
    finally:
        _discard(connection)
    hint = _CLIENT_HINT
    if cluster is not None:
        hint = _cluster_hint(cluster, bound)
        retries = _cluster_retries(cluster)
        if setting is None and retries < 0:
            worst, setting = math.inf, "the cluster's retry (a negative count)"
        elif setting is None:
            worst = _cluster_worst_case(worst, retries, _cluster_nodes(cluster))
            if worst > bound:
                setting = ("the cluster's retry (retry=Retry(NoBackoff(), 0)) and "
                           if retries > 0 else "") + "shorter socket_timeout and " \
                    "socket_connect_timeout (a failed call asks every node in turn)"
    if setting is not None or worst > bound:
        what = setting or "socket_timeout, socket_connect_timeout and retry"
        waits = "without bound" if math.isinf(worst) else f"{worst:.1f} s"
        raise ConfigurationError(
            f"this Redis client can wait {waits} per call, over the shared tier's bound of "
            f"{bound:.1f} s: set {what}", hint=hint)
    # redis-py 8 relaxes the timeouts (to 10 s by default) while a managed server announces
    # maintenance over RESP3: part of the worst case too.
    # relaxed_timeout -1 keeps the usual timeouts; None removes them (redis-py then blocks).
    maint = getattr(connection, "maint_notifications_config", None)
    relaxed_timeout = getattr(maint, "relaxed_timeout", -1)
    if maint is not None and str(getattr(connection, "protocol", "")) == "3" \
            and getattr(maint, "enabled", False) not in (False, None) \
            and (relaxed_timeout is None or relaxed_timeout > 0):
        relaxed = math.inf if relaxed_timeout is None else \
            2 * float(relaxed_timeout) * (_retries(connection.retry) + 1)
        if relaxed > bound:
            to = "no timeout at all" if relaxed_timeout is None else f"{relaxed_timeout} s"
            raise ConfigurationError(
                f"this Redis client relaxes its timeouts to {to} while the "
                f"server announces maintenance, over the shared tier's bound of {bound:.1f} s: "
                "set maint_notifications_config", hint=hint)
    return worst


def _bounded_kwargs(timeout: float) -> dict[str, Any]:
    if not (isinstance(timeout, int | float) and not isinstance(timeout, bool)
            and 0 < timeout <= MAX_CALL_SECONDS / 4):
        raise ConfigurationError(f"timeout must be a number of seconds in (0, "
                                 f"{MAX_CALL_SECONDS / 4}]")
    kwargs: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": timeout,
                              "retry": Retry(NoBackoff(), 1), "health_check_interval": 0}
    if MaintNotificationsConfig is not None:
        kwargs["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    return kwargs


class RedisTier:
    """The shared tier on a redis-py client (see the module docstring).

    Args:
        client: a redis-py client (``decode_responses=False``) with bounded timeouts.
        namespace: the key prefix (``<namespace>:e:<stem>``); fleets of different vaults on
            one Redis need different namespaces.
        max_call_seconds: the bound the client's worst case is checked against.
        breaker: the tier's :class:`~vault.cache.CircuitBreaker` (default: 2 failures, 10 s);
            on a cluster also the model of each master's (see :meth:`breaker_of`).

    Raises:
        ConfigurationError: a client that can wait longer than the bound, or a bad namespace.
    """

    def __init__(self, client: Any, *, namespace: str = DEFAULT_NAMESPACE,
                 max_call_seconds: float = MAX_CALL_SECONDS,
                 breaker: CircuitBreaker | None = None, clock: Callable[[], float] = time.monotonic,
                 _owned: bool = False) -> None:
        _check_namespace(namespace)
        self.worst_case_seconds = check_client(client, max_call_seconds)
        self.client, self.namespace = client, namespace
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self._owned = _owned
        self._cluster = _is_cluster(client)
        self._node_breakers: dict[str, CircuitBreaker] = {}  # a cluster's, by master
        self._node_breakers_lock = threading.Lock()
        self._put = _script(client, _PUT)
        self._delete_if = _script(client, _DELETE_IF)
        self._replace_if = _script(client, _REPLACE_IF)
        self._checked: str | None = None  # the server version, once checked
        self._unusable: str | None = None

    def __repr__(self) -> str:
        return f"RedisTier(namespace={self.namespace!r}, breaker={self.breaker.state})"

    @classmethod
    def from_url(cls, url: str, *, timeout: float = DEFAULT_TIMEOUT,
                 namespace: str = DEFAULT_NAMESPACE, breaker: CircuitBreaker | None = None,
                 **client_kwargs: Any) -> RedisTier:
        """A tier on ``redis.Redis.from_url(url)`` with ``timeout`` seconds to connect and to
        read, one immediate retry (a reconnect), and no health-check round trips.
        ``client_kwargs`` go to redis-py (TLS files, ``username``...)."""
        kwargs = {**_bounded_kwargs(timeout), **client_kwargs, "decode_responses": False}
        try:
            client = redis.Redis.from_url(url, **kwargs)
        except (ValueError, redis.exceptions.RedisError) as exc:  # their text may quote it
            raise ConfigurationError(f"not a Redis URL ({type(exc).__name__})",
                                     hint="redis://host:port/db, rediss:// for TLS, or "
                                     "unix:///path") from None
        return cls(client, namespace=namespace, breaker=breaker, _owned=True)

    @classmethod
    def from_sentinel(cls, sentinels: Sequence[tuple[str, int]], service_name: str, *,
                      timeout: float = DEFAULT_TIMEOUT, namespace: str = DEFAULT_NAMESPACE,
                      breaker: CircuitBreaker | None = None,
                      sentinel_kwargs: dict[str, Any] | None = None,
                      **client_kwargs: Any) -> RedisTier:
        """A tier on the master of ``service_name`` as ``sentinels`` report it (redis-py's
        ``Sentinel(...).master_for``), following failovers, with bounded timeouts for the
        master and the sentinels."""
        from redis.sentinel import Sentinel

        bounded = _bounded_kwargs(timeout)
        # Every connect asks the sentinels in turn: no retry of the master's (a call after a
        # failover reconnects: the next one finds the new master), and each sentinel gets an
        # equal share of what the bound leaves after the master's own connect and reads.
        bounded["retry"] = Retry(NoBackoff(), 0)
        left = 0.9 * MAX_CALL_SECONDS - (HANDSHAKE_READS + 2) * timeout
        per_sentinel = HANDSHAKE_READS + 2  # its connect, its handshake, the question
        quick = max(0.02, min(timeout, left / (per_sentinel * max(1, len(sentinels)))))
        sentinel_settings = {**bounded, "socket_timeout": quick, "socket_connect_timeout": quick,
                             "retry": Retry(NoBackoff(), 0), **(sentinel_kwargs or {})}
        sentinel = Sentinel(list(sentinels), sentinel_kwargs=sentinel_settings,  # type: ignore[no-untyped-call]
                            **{**bounded, **client_kwargs})
        master_settings = {**bounded, **client_kwargs, "decode_responses": False}
        client = sentinel.master_for(service_name, **master_settings)  # type: ignore[no-untyped-call]
        return cls(client, namespace=namespace, breaker=breaker, _owned=True)

    @classmethod
    def from_cluster(cls, startup_nodes: str | Sequence[tuple[str, int]], *,
                     timeout: float | None = None, namespace: str = DEFAULT_NAMESPACE,
                     breaker: CircuitBreaker | None = None, **client_kwargs: Any) -> RedisTier:
        """A tier on a Redis Cluster (redis-py's ``RedisCluster``) found from one node's URL
        (``redis://host:port``, ``rediss://`` for TLS) or (host, port) startup nodes, which
        it asks for the slot map at once. No cluster-level retry (a failed call fails; the
        breaker and the next call do the rest), no health-check round trips, and ``timeout``
        seconds to connect and to read: by default the longest, up to
        :data:`DEFAULT_TIMEOUT`, that keeps this cluster's worst case within
        :data:`MAX_CALL_SECONDS` (a failed call asks every node in turn).

        Raises:
            ConfigurationError: a bad URL, timeout or namespace, or a cluster too large for
                the bound. SharedTierError: no startup node answered.
        """
        from redis.cluster import ClusterNode, RedisCluster

        _check_namespace(namespace)

        def build(seconds: float) -> Any:
            # RedisCluster() asks its default node (the first master) for COMMAND: with a
            # retry it asks another master if that one is down; none afterwards (unless the
            # caller gives one).
            kwargs = {**_bounded_kwargs(seconds), **client_kwargs,
                      "retry": Retry(NoBackoff(), 2), "decode_responses": False}
            try:
                if isinstance(startup_nodes, str):
                    client = RedisCluster.from_url(startup_nodes, **kwargs)
                else:
                    nodes = [ClusterNode(host, port)  # type: ignore[no-untyped-call]
                             for host, port in startup_nodes]
                    client = RedisCluster(startup_nodes=nodes, **kwargs)
                client.set_retry(client_kwargs.get("retry") or Retry(NoBackoff(), 0))
                return client
            except ValueError as exc:
                raise ConfigurationError(f"not a Redis URL ({type(exc).__name__})",
                                         hint="redis://host:port, rediss:// for TLS") from None
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException,
                    OSError) as exc:
                raise SharedTierError("no startup node of the Redis Cluster answered: "
                                      f"{describe(exc)}") from exc

        client = build(DEFAULT_TIMEOUT if timeout is None else timeout)
        if timeout is None:
            fit = _cluster_timeout(MAX_CALL_SECONDS, _cluster_nodes(client))
            if fit < DEFAULT_TIMEOUT:
                client.close()
                if fit < 0.01:
                    raise ConfigurationError(
                        f"this Redis Cluster has too many nodes for the shared tier's bound of "
                        f"{MAX_CALL_SECONDS:.1f} s", hint=_cluster_hint(client, MAX_CALL_SECONDS))
                client = build(fit)
        try:
            return cls(client, namespace=namespace, breaker=breaker, _owned=True)
        except BaseException:
            client.close()
            raise

    def close(self) -> None:
        """Close the client if this tier built it (``from_url``/``from_sentinel``/
        ``from_cluster``; for ``from_sentinel`` also its connections to the sentinels, which
        ``master_for``'s client does not own)."""
        if self._owned:
            self.client.close()
            manager = getattr(getattr(self.client, "connection_pool", None),
                              "sentinel_manager", None)
            for sentinel in getattr(manager, "sentinels", ()):
                sentinel.close()

    def __enter__(self) -> RedisTier:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- the SharedTier calls

    def key(self, stem: str) -> str:
        """The Redis key of a stem."""
        return f"{self.namespace}:e:{stem}"

    def get(self, stem: str) -> bytes | None:
        """The record under ``stem``, or None. Raises ``SharedTierError`` on an outage."""
        key = self.key(stem)

        def get() -> Any:
            try:
                return self.client.get(key)
            except redis.exceptions.ResponseError as exc:
                if "WRONGTYPE" in str(exc):
                    return NOT_A_STRING  # not a record: the reader removes it
                raise

        return self._run(get, key)  # type: ignore[no-any-return]

    def mget(self, stems: Sequence[str]) -> list[bytes | None]:
        """The records under ``stems`` in one ``MGET`` (on a cluster one pipeline of them,
        one per slot, to each master)."""
        if not stems:
            return []
        keys = [self.key(stem) for stem in stems]
        return self._run(lambda: self._mget(keys))

    def put(self, stem: str, record: bytes, expires_at_ms: int) -> bool:
        """Compare-and-set ``record`` (see the module docstring); True if stored."""
        key, version = self.key(stem), record[len(RECORD_MAGIC):RECORD_PREFIX_SIZE]
        return bool(self._run(lambda: self._put(keys=[key],
                                                args=[record, version, expires_at_ms]), key))

    def delete_if(self, stem: str, record: bytes) -> bool:
        """Remove the record under ``stem`` if it is still exactly ``record``."""
        key = self.key(stem)
        return bool(self._run(lambda: self._delete_if(keys=[key], args=[record]), key))

    def replace_if(self, stem: str, old: bytes, new: bytes, expires_at_ms: int) -> bool:
        """Replace the record under ``stem`` by ``new`` only if it is still exactly ``old``."""
        key = self.key(stem)
        return bool(self._run(lambda: self._replace_if(keys=[key],
                                                       args=[old, new, expires_at_ms]), key))

    def report_key(self, host_id: str) -> str:
        """The Redis key of a host's usage report."""
        return f"{self.namespace}:r:{host_id}"

    def put_report(self, host_id: str, report: bytes, expires_at_ms: int) -> None:
        """Store a host's sealed usage report until ``expires_at_ms``."""
        key = self.report_key(host_id)
        self._run(lambda: self.client.set(key, report, pxat=expires_at_ms), key)

    def reports(self) -> dict[str, bytes]:
        """Every host's sealed usage report (``SCAN`` + ``MGET``)."""
        prefix = f"{self.namespace}:r:"

        def scan() -> dict[str, bytes]:
            keys = self._scan(f"{prefix}*")
            values = self._mget(keys) if keys else []
            found = {}
            for key, value in zip(keys, values, strict=True):
                text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
                if value is not None:
                    found[text[len(prefix):]] = bytes(value)
            return found

        return self._run(scan)

    def delete_report(self, host_id: str) -> bool:
        """Remove a host's report; True if there was one."""
        key = self.report_key(host_id)
        return bool(self._run(lambda: self.client.delete(key), key))

    def stems(self) -> Iterator[str]:
        """Every stem with a record (``SCAN``, batches of 500)."""
        prefix = f"{self.namespace}:e:"
        for key in self._run(lambda: self._scan(f"{prefix}*")):
            text = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
            yield text[len(prefix):]

    # ---- the server

    def server_info(self) -> ServerInfo:
        """The server's version and eviction policy, and what is wrong with them.

        Raises:
            SharedTierError: the server did not answer.
        """
        def ask(**node: Any) -> tuple[Any, Any]:
            info = self.client.info("server", **node)
            try:
                answer = self.client.config_get("maxmemory-policy", **node)
            except redis.exceptions.ResponseError:  # CONFIG not allowed (ACL, managed Redis)
                answer = None
            return info, answer

        if not self._cluster:
            return _server_info(*self._call(ask))
        # every master, one call each (redis-py would ask its default node only)
        infos, answers = {}, {}
        for node in self.client.get_primaries():
            infos[node.name], answers[node.name] = self._call(partial(ask, target_nodes=node))
        return _server_info(infos, answers if None not in answers.values() else None)

    def _check_server(self, key: str | None = None) -> None:
        """Check the version of the server (on a cluster: of ``key``'s master, which the
        call is going to need anyway, else of redis-py's default node)."""
        node: dict[str, Any] = {}
        if self._cluster and key is not None:
            with contextlib.suppress(redis.exceptions.RedisClusterException):
                node["target_nodes"] = self.client.nodes_manager.get_node_from_slot(
                    self.client.keyslot(key))
        try:
            info = self.client.info("server", **node)
        except BaseException:
            if self._cluster and not node:  # its default node failed: another one next time
                with contextlib.suppress(Exception):
                    self.client.replace_default_node()
            raise
        version = _version_of(info)
        if _too_old(version):
            self._unusable = (f"Redis {version} is older than 6.2: the shared tier needs "
                              "SET ... PXAT")
        self._checked = version

    def breaker_of(self, stem: str) -> CircuitBreaker:
        """The breaker of the calls on ``stem``: on a cluster that of the master holding its
        slot now (made like :attr:`breaker`), else :attr:`breaker`."""
        return self._breaker_for(self.key(stem))

    # ---- internals

    def _breaker_for(self, key: str | None) -> CircuitBreaker:
        if key is None or not self._cluster:
            return self.breaker
        try:
            node = self.client.nodes_manager.get_node_from_slot(self.client.keyslot(key))
        except redis.exceptions.RedisClusterException:  # no node holds the slot now
            return self.breaker
        with self._node_breakers_lock:
            breaker = self._node_breakers.get(node.name)
            if breaker is None:
                model = self.breaker
                breaker = self._node_breakers[node.name] = CircuitBreaker(
                    model.failure_threshold, model.reset_after, clock=model.clock)
            return breaker

    def _mget(self, keys: Sequence[str]) -> list[bytes | None]:
        if self._cluster:
            return _cluster_mget(self.client, keys)
        return list(self.client.mget(keys))

    def _scan(self, pattern: str) -> list[Any]:
        """The keys matching ``pattern`` (``SCAN``, batches of 500); on a cluster master by
        master, each page one call to one master."""
        if not self._cluster:
            return list(self.client.scan_iter(match=pattern, count=500))
        return [key for node in self.client.get_primaries()
                for key in self.client.scan_iter(match=pattern, count=500, target_nodes=node)]

    def _run(self, fn: Callable[[], T], key: str | None = None) -> T:
        """``fn`` once the server is checked; ``key``: the one key it is about (on a cluster
        its master's breaker counts)."""
        if self._unusable is not None:
            raise SharedTierError(self._unusable, hint="upgrade Redis to 6.2 or later")
        breaker = self._breaker_for(key)
        if self._checked is None:
            self._call(partial(self._check_server, key), breaker)
            if self._unusable is not None:
                raise SharedTierError(self._unusable, hint="upgrade Redis to 6.2 or later")
        return self._call(fn, breaker)

    def _call(self, fn: Callable[[], T], breaker: CircuitBreaker | None = None) -> T:
        breaker = breaker or self.breaker
        if not breaker.allow():
            raise SharedTierError("the shared tier's circuit breaker is open (Redis failed "
                                  "recently)")
        try:
            result = fn()
        except Exception as exc:  # RedisError, RedisClusterException, OSError, a bad reply
            raise _failure(exc, breaker) from exc
        except BaseException:
            breaker.record_failure()
            raise
        breaker.record_success()
        return result


def _failure(exc: Exception, breaker: CircuitBreaker) -> SharedTierError:
    """What a failed call of either tier raises, and what it tells ``breaker``: an answer of
    the server (an error of this command) is no outage, unless it is a replica refusing
    writes or a server out of memory; anything else is (a connection, a bad reply)."""
    if isinstance(exc, redis.exceptions.ResponseError):
        if isinstance(exc, redis.exceptions.ReadOnlyError) or "OOM" in str(exc)[:8]:
            breaker.record_failure()
        else:
            breaker.record_success()
        return SharedTierError(f"Redis refused: {describe(exc)}")
    breaker.record_failure()
    return SharedTierError(f"Redis failed: {describe(exc)}")


def _script(client: Any, script: str) -> Callable[..., Any]:
    """``client.register_script(script)``; on a cluster an ``EVAL`` on the master of the
    key: a registered script's ``NOSCRIPT`` fallback loads it on every master, and fails
    while any one is down."""
    if not _is_cluster(client):
        return client.register_script(script)  # type: ignore[no-any-return]

    def run(keys: Sequence[str], args: Sequence[Any]) -> Any:
        return client.eval(script, len(keys), *keys, *args)

    return run


def _cluster_mget(client: Any, keys: Sequence[str]) -> list[bytes | None]:
    """``keys``' values through a ``RedisCluster``, in order: one pipeline to each master
    holding some of them, of one ``MGET`` per slot (keys of different slots cannot share
    one). Neither retried nor sent again one by one, as ``mget_nonatomic`` would (each of a
    frozen master's ``MGET`` commands in turn, with its retries): a master that fails fails the
    call. A ``MOVED`` answer updates the slot map for the next call."""
    groups: dict[str, tuple[Any, dict[int, list[int]]]] = {}
    for index, key in enumerate(keys):
        slot = client.keyslot(key)
        node = client.nodes_manager.get_node_from_slot(slot)
        groups.setdefault(node.name, (node, {}))[1].setdefault(slot, []).append(index)
    values: list[bytes | None] = [None] * len(keys)
    for node, slots in groups.values():
        with client.get_redis_connection(node).pipeline(transaction=False) as pipe:
            for indexes in slots.values():
                pipe.execute_command("MGET", *(keys[index] for index in indexes))
            answers = pipe.execute(raise_on_error=False)
        for answer in answers:
            if isinstance(answer, redis.exceptions.MovedError):
                client.nodes_manager.move_slot(answer)
        for indexes, answer in zip(slots.values(), answers, strict=True):
            if isinstance(answer, BaseException):
                raise answer
            for index, value in zip(indexes, answer, strict=True):
                values[index] = value
    return values


def _check_namespace(namespace: object) -> None:
    if not isinstance(namespace, str) or not namespace or len(namespace) > 64 \
            or not namespace.isprintable() or any(c in namespace for c in " {}"):
        raise ConfigurationError("namespace must be 1 to 64 printable characters without "
                                 "spaces or braces")


def _server_info(info: Any, policy_answer: Any) -> ServerInfo:
    """A :class:`ServerInfo` from ``INFO server`` and ``CONFIG GET maxmemory-policy`` (None
    when that is not allowed)."""
    version = _version_of(info)
    policies: set[str] = set()
    if isinstance(policy_answer, dict):
        # a cluster's masters answer one each, by node name
        per_node = [answer for answer in policy_answer.values() if isinstance(answer, dict)]
        for answer in per_node or [policy_answer]:
            raw = answer.get("maxmemory-policy", answer.get(b"maxmemory-policy"))
            if raw is not None:
                policies.add(raw.decode() if isinstance(raw, bytes) else str(raw))
    policy = ", ".join(sorted(policies)) if policies else None
    problems = []
    if _too_old(version):
        problems.append(f"Redis {version} is older than 6.2 (PXAT is needed)")
    for each in sorted(policies):
        if not each.startswith("volatile-") and each != "noeviction":
            problems.append(f"maxmemory-policy is {each}: under memory pressure it may evict "
                            "keys without an expiry; use a volatile-* policy")
    return ServerInfo(version, policy, tuple(problems))


def _version_of(info: Any) -> str:
    if isinstance(info, dict) and "redis_version" not in info and info:
        # a cluster answers per node: the oldest counts
        versions = [_version_of(node) for node in info.values() if isinstance(node, dict)]
        return min(versions, key=_parse_version) if versions else "0"
    raw = info.get("redis_version", "0") if isinstance(info, dict) else "0"
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _parse_version(version: str) -> tuple[int, ...]:
    parts = []
    for part in version.split(".")[:3]:
        digits = "".join(c for c in part if c.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def _too_old(version: str) -> bool:
    return _parse_version(version)[:2] < MIN_SERVER_VERSION



# ---- asyncio

def _async_kwargs(timeout: float) -> dict[str, Any]:
    kwargs = _bounded_kwargs(timeout)
    kwargs["retry"] = AsyncRetry(NoBackoff(), 1)
    return kwargs


class AsyncRedisTier:
    """The shared tier on a ``redis.asyncio`` client: ``RedisTier``'s calls as coroutines,
    with the same records, scripts, client check and breaker. Give it to
    ``AsyncFallbackCache(..., shared=tier)``; one tier belongs to one event loop.

    Raises:
        ConfigurationError: a client that can wait longer than the bound, or a bad namespace.
    """

    def __init__(self, client: Any, *, namespace: str = DEFAULT_NAMESPACE,
                 max_call_seconds: float = MAX_CALL_SECONDS,
                 breaker: CircuitBreaker | None = None, clock: Callable[[], float] = time.monotonic,
                 _owned: bool = False) -> None:
        _check_namespace(namespace)
        self.worst_case_seconds = check_client(client, max_call_seconds)
        self.client, self.namespace = client, namespace
        self.breaker = breaker or CircuitBreaker(clock=clock)
        self._owned = _owned
        self._put = client.register_script(_PUT)
        self._delete_if = client.register_script(_DELETE_IF)
        self._replace_if = client.register_script(_REPLACE_IF)
        self._checked: str | None = None
        self._unusable: str | None = None

    def __repr__(self) -> str:
        return f"AsyncRedisTier(namespace={self.namespace!r}, breaker={self.breaker.state})"

    @classmethod
    def from_url(cls, url: str, *, timeout: float = DEFAULT_TIMEOUT,
                 namespace: str = DEFAULT_NAMESPACE, breaker: CircuitBreaker | None = None,
                 **client_kwargs: Any) -> AsyncRedisTier:
        """As ``RedisTier.from_url``, on ``redis.asyncio``."""
        kwargs = {**_async_kwargs(timeout), **client_kwargs, "decode_responses": False}
        try:
            client = redis.asyncio.Redis.from_url(url, **kwargs)
        except (ValueError, redis.exceptions.RedisError):
            raise ConfigurationError("not a Redis URL", hint="redis://host:port/db, rediss:// "
                                     "for TLS, or unix:///path") from None
        return cls(client, namespace=namespace, breaker=breaker, _owned=True)

    async def aclose(self) -> None:
        """Close the client if this tier built it (``from_url``)."""
        if self._owned:
            await self.client.aclose()

    async def __aenter__(self) -> AsyncRedisTier:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def key(self, stem: str) -> str:
        """The Redis key of a stem."""
        return f"{self.namespace}:e:{stem}"

    async def get(self, stem: str) -> bytes | None:
        """The record under ``stem``, or None."""
        async def get() -> Any:
            try:
                return await self.client.get(self.key(stem))
            except redis.exceptions.ResponseError as exc:
                if "WRONGTYPE" in str(exc):
                    return NOT_A_STRING
                raise

        result: bytes | None = await self._run(get)
        return result

    async def mget(self, stems: Sequence[str]) -> list[bytes | None]:
        """The records under ``stems`` in one ``MGET``."""
        if not stems:
            return []
        keys = [self.key(stem) for stem in stems]
        return list(await self._run(lambda: self.client.mget(keys)))

    async def put(self, stem: str, record: bytes, expires_at_ms: int) -> bool:
        """Compare-and-set ``record`` on its clear version."""
        version = record[len(RECORD_MAGIC):RECORD_PREFIX_SIZE]
        return bool(await self._run(lambda: self._put(keys=[self.key(stem)],
                                                      args=[record, version, expires_at_ms])))

    async def delete_if(self, stem: str, record: bytes) -> bool:
        """Remove the record under ``stem`` if it is still exactly ``record``."""
        return bool(await self._run(lambda: self._delete_if(keys=[self.key(stem)],
                                                            args=[record])))

    async def replace_if(self, stem: str, old: bytes, new: bytes, expires_at_ms: int) -> bool:
        """Replace the record under ``stem`` by ``new`` if it is still exactly ``old``."""
        return bool(await self._run(lambda: self._replace_if(
            keys=[self.key(stem)], args=[old, new, expires_at_ms])))

    async def stems(self) -> list[str]:
        """Every stem with a record (``SCAN``)."""
        prefix = f"{self.namespace}:e:"

        async def scan() -> list[str]:
            return [_text(key)[len(prefix):]
                    async for key in self.client.scan_iter(match=f"{prefix}*", count=500)]

        return await self._run(scan)

    async def put_report(self, host_id: str, report: bytes, expires_at_ms: int) -> None:
        """Store a host's sealed usage report."""
        await self._run(lambda: self.client.set(f"{self.namespace}:r:{host_id}", report,
                                                pxat=expires_at_ms))

    async def reports(self) -> dict[str, bytes]:
        """Every host's sealed usage report."""
        prefix = f"{self.namespace}:r:"

        async def scan() -> dict[str, bytes]:
            keys = [key async for key in self.client.scan_iter(match=f"{prefix}*", count=500)]
            values = await self.client.mget(keys) if keys else []
            return {_text(k)[len(prefix):]: bytes(v)
                    for k, v in zip(keys, values, strict=True) if v is not None}

        return await self._run(scan)

    async def delete_report(self, host_id: str) -> bool:
        """Remove a host's report."""
        return bool(await self._run(lambda: self.client.delete(
            f"{self.namespace}:r:{host_id}")))

    async def server_info(self) -> ServerInfo:
        """As ``RedisTier.server_info``."""
        async def ask() -> ServerInfo:
            info = await self.client.info("server")
            try:
                policy_answer = await self.client.config_get("maxmemory-policy")
            except redis.exceptions.ResponseError:
                policy_answer = None
            return _server_info(info, policy_answer)

        return await self._call(ask)

    async def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        if self._unusable is None and self._checked is None:
            version = _version_of(await self._call(lambda: self.client.info("server")))
            if _too_old(version):
                self._unusable = (f"Redis {version} is older than 6.2: the shared tier needs "
                                  "SET ... PXAT")
            self._checked = version
        if self._unusable is not None:
            raise SharedTierError(self._unusable, hint="upgrade Redis to 6.2 or later")
        return await self._call(fn)

    async def _call(self, fn: Callable[[], Awaitable[T]]) -> T:
        if not self.breaker.allow():
            raise SharedTierError("the shared tier's circuit breaker is open (Redis failed "
                                  "recently)")
        try:
            result = await fn()
        except Exception as exc:
            raise _failure(exc, self.breaker) from exc
        except BaseException:
            self.breaker.record_failure()
            raise
        self.breaker.record_success()
        return result


def _text(key: Any) -> str:
    return key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)


class LoopBridge:
    """A sync ``SharedTier`` over an :class:`AsyncRedisTier`, for the async cache's worker
    threads: each call runs as a coroutine on the bound event loop while the calling thread
    waits (at most the tier's worst case and a second). Never call it on the loop itself."""

    def __init__(self, tier: AsyncRedisTier) -> None:
        self.tier = tier
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LoopBridge({self.tier!r})"

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Run the tier's calls on ``loop`` (the cache's; the first one binds it)."""
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = loop

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None:
            coro.close()
            raise SharedTierError("the async shared tier is not bound to an event loop yet")
        try:
            if asyncio.get_running_loop() is loop:
                coro.close()
                raise SharedTierError("the async shared tier was called on its own event loop")
        except RuntimeError:
            pass  # a worker thread: no running loop, as expected
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        try:
            return future.result(timeout=self.tier.worst_case_seconds + 1.0)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise SharedTierError("the async shared tier did not answer in time (its event "
                                  "loop is busy or gone)") from None
        except concurrent.futures.CancelledError:
            raise SharedTierError("the async shared tier's call was cancelled") from None

    def get(self, stem: str) -> bytes | None:
        """``tier.get`` on the loop."""
        return self._wait(self.tier.get(stem))

    def mget(self, stems: Sequence[str]) -> list[bytes | None]:
        """``tier.mget`` on the loop."""
        return self._wait(self.tier.mget(stems))

    def put(self, stem: str, record: bytes, expires_at_ms: int) -> bool:
        """``tier.put`` on the loop."""
        return self._wait(self.tier.put(stem, record, expires_at_ms))

    def delete_if(self, stem: str, record: bytes) -> bool:
        """``tier.delete_if`` on the loop."""
        return self._wait(self.tier.delete_if(stem, record))

    def replace_if(self, stem: str, old: bytes, new: bytes, expires_at_ms: int) -> bool:
        """``tier.replace_if`` on the loop."""
        return self._wait(self.tier.replace_if(stem, old, new, expires_at_ms))

    def stems(self) -> Iterator[str]:
        """``tier.stems`` on the loop."""
        return iter(self._wait(self.tier.stems()))

    def put_report(self, host_id: str, report: bytes, expires_at_ms: int) -> None:
        """``tier.put_report`` on the loop."""
        self._wait(self.tier.put_report(host_id, report, expires_at_ms))

    def reports(self) -> dict[str, bytes]:
        """``tier.reports`` on the loop."""
        return self._wait(self.tier.reports())

    def delete_report(self, host_id: str) -> bool:
        """``tier.delete_report`` on the loop."""
        return self._wait(self.tier.delete_report(host_id))
