"""The real-component fixtures of tests/realparts.py do what they promise."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import keyring
import keyring.backend
import keyring.core
import keyring.errors
import psycopg
import psycopg.errors
import pytest
from keyring.backends import SecretService as SecretServiceBackend
from keyring.backends import fail
from psycopg import sql

from tests.realparts import PostgresServer, RedisServer, SecretService, require

SERVICE = "credseal-test"


def _elapsed(func: Any) -> tuple[BaseException, float]:
    """Call func, expecting it to raise; return the exception and the seconds it took."""
    start = time.monotonic()
    try:
        func()
    except Exception as exc:
        return exc, time.monotonic() - start
    raise AssertionError(f"{func} did not raise")


def _keyring_state() -> tuple[object, dict[str, str], object]:
    return (
        keyring.core._keyring_backend,
        {k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
        vars(keyring.backend.get_all_keyring).get("saved_result"),
    )


# --------------------------------------------------------------------------- guards


@pytest.fixture
def server_left_clean(postgres_server: PostgresServer) -> Iterator[list[str]]:
    """Checks, after the ``pg`` fixture's teardown, that the server runs and tables are gone."""
    tables: list[str] = []
    yield tables
    assert postgres_server.is_running()
    with postgres_server.connect() as conn:
        for name in tables:
            assert conn.execute("SELECT to_regclass(%s)", (name,)).fetchone() == (None,)


@pytest.fixture
def keyring_left_clean(secret_service: SecretService) -> Iterator[None]:
    """Checks, after the keyring fixtures' teardown, that keyring and os.environ are restored."""
    before = _keyring_state()
    yield
    assert _keyring_state() == before
    assert secret_service.is_daemon_running()
    assert not secret_service.is_locked()
    assert secret_service.clear() == 0


# --------------------------------------------------------------------------- skip policy


@pytest.mark.parametrize("value", ["true", "TRUE", "True", "1", " true "])
def test_require_fails_under_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    """Under CI=true (any case) or CI=1, require() fails the test instead of skipping it."""
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match=r"^Widget is required under CI=true: gone$"):
        require("Widget", "gone")


@pytest.mark.parametrize("value", [None, "", "false", "0", "yes"])
def test_require_skips_outside_ci(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    """Without CI=true, require() skips the test with the given reason."""
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match=r"^gone$"):
        require("Widget", "gone")


# --------------------------------------------------------------------------- PostgreSQL


def test_postgres_round_trips_a_value(pg: PostgresServer) -> None:
    """psycopg connects to the throwaway server's dsn and round-trips a value through a table."""
    table = sql.Identifier(pg.fresh_table_name())
    with psycopg.connect(pg.dsn) as conn:
        conn.execute(
            sql.SQL("CREATE TABLE {} (name text PRIMARY KEY, value bytea NOT NULL)").format(table)
        )
        conn.execute(
            sql.SQL("INSERT INTO {} VALUES (%s, %s)").format(table), ("db/password", b"s3cr3t")
        )
        query = sql.SQL("SELECT value, current_database(), inet_server_port() FROM {}")
        row = conn.execute(query.format(table)).fetchone()
        assert row == (b"s3cr3t", "credseal_test", pg.port)


def test_dsn_for_overrides_keywords(pg: PostgresServer) -> None:
    """dsn_for() replaces keywords of dsn and keeps the others, connect_timeout included."""
    dsn = pg.dsn_for(dbname="postgres", application_name="realparts")
    assert "connect_timeout=2" in dsn
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT current_database(), current_setting('application_name')")
        assert row.fetchone() == ("postgres", "realparts")


def test_fast_stop_refuses_connections_and_shuts_down_sessions(pg: PostgresServer) -> None:
    """After stop("fast") a new connection is refused at once and an open one gets AdminShutdown."""
    conn = psycopg.connect(pg.dsn)
    try:
        conn.execute("SELECT 1")
        pg.stop("fast")
        assert not pg.is_running()
        with pytest.raises(psycopg.errors.AdminShutdown, match="administrator command"):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    exc, seconds = _elapsed(lambda: psycopg.connect(pg.dsn))
    assert isinstance(exc, psycopg.OperationalError)
    assert "Connection refused" in str(exc)
    assert seconds < 2


def test_immediate_stop_cuts_open_connection_and_start_recovers(pg: PostgresServer) -> None:
    """stop("immediate") breaks an open connection; start() brings the server back."""
    conn = psycopg.connect(pg.dsn)
    try:
        conn.execute("SELECT 1")
        pg.stop("immediate")
        with pytest.raises(psycopg.OperationalError, match="closed the connection unexpectedly"):
            conn.execute("SELECT 1")
        assert conn.broken
    finally:
        conn.close()
    pg.start()
    assert pg.is_running()
    with psycopg.connect(pg.dsn) as again:
        assert again.execute("SELECT 1").fetchone() == (1,)


def test_stop_and_start_are_idempotent(pg: PostgresServer) -> None:
    """Stopping a stopped server and starting a running one are no-ops that still wait."""
    pg.stop("fast")
    pg.stop("immediate")
    assert not pg.is_running()
    pg.start()
    pg.start()
    assert pg.is_running()
    with pytest.raises(ValueError, match="mode"):
        pg.stop("smart")  # type: ignore[arg-type]


def test_restart_comes_back_on_the_same_port(pg: PostgresServer) -> None:
    """restart() (a plain pg_ctl start) comes back on the configured port, not 5432."""
    pg.restart()
    with psycopg.connect(pg.dsn) as conn:
        assert conn.execute("SELECT inet_server_port()").fetchone() == (pg.port,)


def test_terminate_backends_cuts_open_connection(pg: PostgresServer) -> None:
    """terminate_backends() ends other sessions, which see AdminShutdown on their next query."""
    conn = psycopg.connect(pg.dsn)
    try:
        conn.execute("SELECT 1")
        assert pg.terminate_backends() >= 1
        with pytest.raises(psycopg.errors.AdminShutdown, match="administrator command"):
            conn.execute("SELECT 1")
    finally:
        conn.close()
    assert pg.is_running()


def test_bad_auth_dsn_fails_authentication(pg: PostgresServer) -> None:
    """bad_auth_dsn reaches the server and fails scram-sha-256 password authentication."""
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(pg.bad_auth_dsn)


def test_pg_fixture_restarts_server_and_drops_tables(
    server_left_clean: list[str], pg: PostgresServer
) -> None:
    """A test may leave the server stopped: the pg fixture restarts it and drops fresh tables."""
    table = pg.fresh_table_name("leftover")
    server_left_clean.append(table)
    with pg.connect() as conn:
        conn.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(table)))
    pg.stop("immediate")


# --------------------------------------------------------------------------- network outages


def test_refused_port_is_refused_at_once(pg: PostgresServer, refused_port: int) -> None:
    """Connecting to refused_port fails immediately with "Connection refused"."""
    exc, seconds = _elapsed(lambda: psycopg.connect(pg.dsn_for(port=refused_port)))
    assert isinstance(exc, psycopg.OperationalError)
    assert "Connection refused" in str(exc)
    assert seconds < 2


def test_unresolvable_host_fails_quickly(pg: PostgresServer, unresolvable_host: str) -> None:
    """Connecting to unresolvable_host fails quickly with a resolution error."""
    exc, seconds = _elapsed(lambda: psycopg.connect(pg.dsn_for(host=unresolvable_host)))
    assert isinstance(exc, psycopg.OperationalError)
    assert "resolve host" in str(exc)
    assert seconds < 10


def test_blackhole_times_out_after_connect_timeout(
    pg: PostgresServer, blackhole_addr: tuple[str, int]
) -> None:
    """A socket that never answers makes psycopg raise ConnectionTimeout after connect_timeout."""
    host, port = blackhole_addr
    exc, seconds = _elapsed(lambda: psycopg.connect(pg.dsn_for(host=host, port=port)))
    assert isinstance(exc, psycopg.errors.ConnectionTimeout)
    assert 1.5 < seconds < 10


# --------------------------------------------------------------------------- Secret Service


def test_keyring_round_trip_through_secret_service(
    keyring_left_clean: None, use_secret_service: SecretService
) -> None:
    """keyring set/get/delete work through the real Secret Service backend."""
    assert isinstance(keyring.get_keyring(), SecretServiceBackend.Keyring)
    keyring.set_password(SERVICE, "db", "s3cr3t")
    assert keyring.get_password(SERVICE, "db") == "s3cr3t"
    keyring.delete_password(SERVICE, "db")
    assert keyring.get_password(SERVICE, "db") is None
    with pytest.raises(keyring.errors.PasswordDeleteError):
        keyring.delete_password(SERVICE, "db")


def test_subprocess_uses_the_secret_service(use_secret_service: SecretService) -> None:
    """A subprocess with secret_service.subprocess_env() reads what this process stored."""
    keyring.set_password(SERVICE, "shared", "from-parent")
    code = "import keyring; print(type(keyring.get_keyring()).__module__, " \
        "keyring.get_password('credseal-test', 'shared'))"  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=use_secret_service.subprocess_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert out == ["keyring.backends.SecretService", "from-parent"]


def test_locked_collection_raises_keyring_locked(
    keyring_left_clean: None, use_secret_service: SecretService
) -> None:
    """A locked collection makes keyring raise KeyringLocked; unlock() restores access."""
    keyring.set_password(SERVICE, "db", "s3cr3t")
    use_secret_service.lock()
    assert use_secret_service.is_locked()
    with pytest.raises(keyring.errors.KeyringLocked, match="Failed to unlock the collection"):
        keyring.get_password(SERVICE, "db")
    with pytest.raises(keyring.errors.KeyringLocked):
        keyring.set_password(SERVICE, "other", "x")
    use_secret_service.unlock()
    assert keyring.get_password(SERVICE, "db") == "s3cr3t"
    use_secret_service.lock()  # left locked on purpose: the fixture must unlock it


def test_stopped_daemon_raises_init_error(
    keyring_left_clean: None, use_secret_service: SecretService
) -> None:
    """With the daemon gone keyring raises InitError; a restarted daemon has the items back."""
    keyring.set_password(SERVICE, "db", "s3cr3t")
    use_secret_service.stop_daemon()
    with pytest.raises(keyring.errors.InitError, match=r"org\.freedesktop\.secrets"):
        keyring.get_password(SERVICE, "db")
    use_secret_service.start_daemon()
    assert not use_secret_service.is_locked()
    assert keyring.get_password(SERVICE, "db") == "s3cr3t"
    use_secret_service.stop_daemon()  # left stopped on purpose: the fixture must restart it


def test_no_keyring_backend_is_fail_keyring(
    keyring_left_clean: None, no_keyring_backend: None
) -> None:
    """Without a session bus keyring detects fail.Keyring, which raises NoKeyringError."""
    assert "DBUS_SESSION_BUS_ADDRESS" not in os.environ
    assert isinstance(keyring.get_keyring(), fail.Keyring)
    with pytest.raises(keyring.errors.NoKeyringError, match="No recommended backend"):
        keyring.set_password(SERVICE, "db", "s3cr3t")
    with pytest.raises(keyring.errors.NoKeyringError):
        keyring.get_password(SERVICE, "db")


def test_env_without_bus_gives_subprocess_fail_keyring(env_without_bus: dict[str, str]) -> None:
    """A subprocess run with env_without_bus detects fail.Keyring and gets NoKeyringError."""
    code = (
        "import keyring, keyring.errors\n"
        "print(type(keyring.get_keyring()).__module__)\n"
        "try:\n"
        "    keyring.get_password('credseal-test', 'db')\n"
        "except keyring.errors.NoKeyringError:\n"
        "    print('NoKeyringError')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env=env_without_bus,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout.split()
    assert out == ["keyring.backends.fail", "NoKeyringError"]


# ---- redis-server (the shared tier's component, issue 13)


def test_redis_server_answers_dies_freezes_and_comes_back_empty(
        redis_server: RedisServer) -> None:
    """The fixture's faults are real: SIGKILL refuses connections, SIGSTOP accepts them and
    never replies (a client with a short timeout and no retries gives up), a restart is
    empty."""
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    def client() -> redis.Redis:
        return redis.Redis(host=redis_server.host, port=redis_server.port,
                           socket_timeout=0.5, socket_connect_timeout=0.5,
                           retry=Retry(NoBackoff(), 0))
    c = client()
    assert c.set("k", b"v") and c.get("k") == b"v"
    redis_server.freeze()
    try:
        with pytest.raises(redis.exceptions.TimeoutError):
            client().get("k")
    finally:
        redis_server.thaw()
    assert c.get("k") == b"v"
    redis_server.kill()
    with pytest.raises(redis.exceptions.ConnectionError):
        client().get("k")
    redis_server.start()
    assert client().get("k") is None  # nothing was saved
