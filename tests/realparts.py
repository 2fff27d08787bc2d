"""Real components for tests: a throwaway PostgreSQL cluster, a private Secret Service, outages.

Loaded as a pytest plugin by ``tests/conftest.py``. Fixtures:

- ``postgres_server`` (session): a :class:`PostgresServer` on a free 127.0.0.1 port.
- ``pg`` (function): the same server, running at test start, restarted after the test if the
  test stopped it; tables named with ``pg.fresh_table_name()`` are dropped afterwards.
- ``blackhole_addr``, ``refused_port``, ``unresolvable_host``: network outages.
- ``redis_server`` (function): a :class:`RedisServer` that the test may kill or freeze.
- ``redis_sentinel`` (function): a :class:`RedisSentinelGroup` (master, replica, three
  sentinels) whose master the test may kill to make the sentinels fail over.
- ``redis_cluster`` (function): a :class:`RedisClusterGroup` (three masters of a Redis
  Cluster) whose masters the test may kill or freeze; ``redis_cluster_module`` (module):
  one for the tests of a module that leave it as they found it.
- ``secret_service`` (session): a :class:`SecretService` (private D-Bus bus + gnome-keyring).
- ``use_secret_service`` (function): ``keyring`` in this process talks to it.
- ``no_keyring_backend`` / ``env_without_bus``: the headless case (``fail.Keyring``).

Skip policy: a missing component skips the test locally, but fails it under ``CI=true``
(see :func:`require`), so a skip never hides a gap in CI.
"""

from __future__ import annotations

import contextlib
import gc
import os
import pwd
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pytest

if TYPE_CHECKING:
    import psycopg
    from jeepney.io.blocking import DBusConnection

__all__ = [
    "PostgresServer",
    "SecretService",
    "ci_enabled",
    "free_port",
    "require",
]

LOCALHOST = "127.0.0.1"
PG_DBNAME = "credseal_test"
PG_SUPERUSER = "postgres"
PG_BADAUTH_ROLE = "credseal_badauth"
PG_BADAUTH_PASSWORD = "right-password-for-badauth"
SS_LOGIN_PASSWORD = "credseal-test-login"
PG_INSTALL_HINT = (
    "install postgresql: apt-get install -y --no-install-recommends postgresql "
    "(and the psycopg package in the virtualenv)"
)
SS_INSTALL_HINT = (
    "install gnome-keyring dbus: apt-get install -y --no-install-recommends "
    "gnome-keyring dbus libsecret-tools"
)
SECRETS_BUS_NAME = "org.freedesktop.secrets"
SECRETS_PATH = "/org/freedesktop/secrets"
# gnome-keyring's private interface: unlock a collection with its password, no prompt needed.
GNOME_KEYRING_IFACE = "org.gnome.keyring.InternalUnsupportedGuiltRiddenInterface"
SECRET_SERVICE_BACKEND = "keyring.backends.SecretService.Keyring"
CMD_TIMEOUT = 60.0
WAIT_TIMEOUT = 10.0


# --------------------------------------------------------------------------- skip policy


def ci_enabled() -> bool:
    """Whether the environment variable ``CI`` says we run in CI (``true`` in any case, or 1)."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1"}


def require(component: str, reason: str) -> NoReturn:
    """Give up on a test whose real component is missing.

    Skips the test (``pytest.skip(reason)``) on a developer machine, but fails it under
    ``CI=true`` so that a missing component never passes CI silently.
    """
    if ci_enabled():
        pytest.fail(f"{component} is required under CI=true: {reason}")
    pytest.skip(reason)


# --------------------------------------------------------------------------- small helpers


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (bind port 0, read it, close)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        port: int = sock.getsockname()[1]
    return port


def _port_accepts(port: int, host: str = LOCALHOST) -> bool:
    """Whether a TCP connect to host:port succeeds right now."""
    try:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    except OSError:
        return False


def _wait_until(predicate: Any, timeout: float, what: str) -> None:
    """Poll ``predicate()`` every 20-100 ms until it is true; raise TimeoutError after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _kill_group(proc: subprocess.Popen[Any], timeout: float = 5.0) -> None:
    """Stop a process started with ``start_new_session=True`` and its group: TERM, then KILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=timeout)


def _remove_tree(path: Path, timeout: float = WAIT_TIMEOUT) -> None:
    """Remove the directory ``path`` of a stopped server; raise if it cannot be removed.

    A process that is still on its way out (a PostgreSQL backend after its postmaster was
    killed, a daemon flushing a log) may create a file while the tree is being removed, so
    this retries until ``timeout``; what is left then is an error, never a silent leak.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            shutil.rmtree(path)
        except FileNotFoundError:
            pass  # gone, or a file vanished under rmtree: look again
        except OSError:
            if time.monotonic() > deadline:
                raise
        if not os.path.lexists(path):
            return
        if time.monotonic() > deadline:
            raise OSError(f"could not remove {path}: something keeps creating files in it")
        time.sleep(0.1)


# --------------------------------------------------------------------------- PostgreSQL


def _pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/*/bin`` holding initdb and pg_ctl (Debian layout)."""

    def version(path: Path) -> tuple[int, ...]:
        return tuple(int(part) for part in re.findall(r"\d+", path.parent.name))

    candidates = [
        path
        for path in Path("/usr/lib/postgresql").glob("*/bin")
        if (path / "initdb").is_file() and (path / "pg_ctl").is_file()
    ]
    return max(candidates, key=version, default=None)


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 that tests may stop and start at will.

    All settings live in ``postgresql.conf`` (not ``pg_ctl -o``), so a plain restart comes
    back on the same port. ``start``/``stop`` are idempotent and wait until the server
    accepts connections / is really gone.
    """

    host = LOCALHOST
    user = PG_SUPERUSER
    dbname = PG_DBNAME

    def __init__(self, bindir: Path, base: Path, port: int, run_as: str | None) -> None:
        self.bindir = bindir
        self.base = base
        self.port = port
        self.data_dir = base / "data"
        self.socket_dir = base / "socket"
        self.log_path = base / "server.log"
        self._run_as = run_as
        self._tables: set[str] = set()

    def __repr__(self) -> str:
        return f"PostgresServer(port={self.port}, base={str(self.base)!r})"

    # ---- connection strings

    @property
    def dsn(self) -> str:
        """libpq conninfo for the test database as superuser, with ``connect_timeout=2``."""
        return (
            f"host={self.host} port={self.port} user={self.user} dbname={self.dbname} "
            "connect_timeout=2"
        )

    def dsn_for(self, **overrides: str | int) -> str:
        """``dsn`` with some keywords replaced or added, e.g. ``dsn_for(port=1, dbname="x")``."""
        from psycopg.conninfo import make_conninfo

        return make_conninfo(self.dsn, **overrides)

    @property
    def bad_auth_dsn(self) -> str:
        """A conninfo that reaches the server and fails scram-sha-256 password authentication."""
        return self.dsn_for(user=PG_BADAUTH_ROLE, password="wrong-password")

    def connect(self, **overrides: str | int) -> psycopg.Connection[Any]:
        """A new autocommit connection to ``dsn_for(**overrides)``; the caller closes it."""
        import psycopg

        return psycopg.connect(self.dsn_for(**overrides), autocommit=True)

    # ---- lifecycle

    def _command(self, tool: str, *args: str) -> list[str]:
        exe = str(self.bindir / tool)
        if self._run_as is None:
            return [exe, *args]
        # initdb, pg_ctl and postgres refuse to run as root.
        return ["runuser", "-u", self._run_as, "--", exe, *args]

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self._command(tool, *args),
            cwd=self.base,
            capture_output=True,
            text=True,
            timeout=CMD_TIMEOUT,
        )
        if check and proc.returncode != 0:
            raise RuntimeError(
                f"{tool} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}"
                f"\n--- server log ---\n{_tail(self.log_path)}"
            )
        return proc

    def init(self) -> None:
        """initdb, write the configuration, start, create the test database and the bad role."""
        self.socket_dir.mkdir(mode=0o700)
        if self._run_as is not None:
            entry = pwd.getpwnam(self._run_as)
            for path in (self.base, self.socket_dir):
                os.chown(path, entry.pw_uid, entry.pw_gid)
        self._run(
            "initdb", "-D", str(self.data_dir), "-U", PG_SUPERUSER, "-A", "trust",
            "--no-sync", "--encoding=UTF8", "--locale=C.UTF-8",
        )  # fmt: skip
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(
                "\n# credseal test cluster\n"
                f"listen_addresses = '{LOCALHOST}'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\n"
                "synchronous_commit = off\n"
                "full_page_writes = off\n"
            )
        hba = self.data_dir / "pg_hba.conf"
        # First matching line wins: this rule must come before initdb's trust lines.
        rule = f"host all {PG_BADAUTH_ROLE} {LOCALHOST}/32 scram-sha-256\n"
        hba.write_text(rule + hba.read_text())
        self.start()
        with self.connect(dbname="postgres") as conn:
            conn.execute(f"CREATE DATABASE {PG_DBNAME}")
            conn.execute(f"CREATE ROLE {PG_BADAUTH_ROLE} LOGIN PASSWORD '{PG_BADAUTH_PASSWORD}'")

    def is_running(self) -> bool:
        """Whether the postmaster is alive (``pg_ctl status``)."""
        return self._run("pg_ctl", "status", "-D", str(self.data_dir), check=False).returncode == 0

    def _accepts_queries(self) -> bool:
        import psycopg

        try:
            with psycopg.connect(self.dsn_for(dbname="postgres")) as conn:
                conn.execute("SELECT 1")
        except psycopg.OperationalError:
            return False
        return True

    def start(self) -> None:
        """Start the server if it is down; return once it accepts connections."""
        if not self.is_running():
            self._run(
                "pg_ctl", "start", "-D", str(self.data_dir), "-l", str(self.log_path),
                "-w", "-t", "30",
            )  # fmt: skip
        _wait_until(self._accepts_queries, 30, f"PostgreSQL on port {self.port} to accept")

    def stop(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """Stop the server if it is up (``mode``: "fast" or "immediate"); return once it is down.

        "fast" ends sessions cleanly (clients get ``AdminShutdown``); "immediate" kills them
        like a crash (clients see "server closed the connection unexpectedly").
        """
        if mode not in {"fast", "immediate"}:
            raise ValueError(f"mode must be 'fast' or 'immediate', not {mode!r}")
        if self.is_running():
            self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", mode, "-w", "-t", "30")
        _wait_until(
            lambda: not _port_accepts(self.port) and not self.is_running(),
            30,
            f"PostgreSQL on port {self.port} to stop",
        )

    def restart(self) -> None:
        """Stop ("fast") and start again."""
        self.stop("fast")
        self.start()

    def terminate_backends(self) -> int:
        """Cut every other session on the test database (``pg_terminate_backend``); count them."""
        with self.connect(dbname="postgres") as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE pid <> pg_backend_pid() AND datname = %s",
                (PG_DBNAME,),
            ).fetchall()
        return len(rows)

    def fresh_table_name(self, prefix: str = "t") -> str:
        """A unique table name for this test; the ``pg`` fixture drops it afterwards."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        self._tables.add(name)
        return name

    def drop_fresh_tables(self) -> None:
        """Drop the tables handed out by ``fresh_table_name`` (the server must be running)."""
        if not self._tables:
            return
        from psycopg import sql

        with self.connect() as conn:
            for name in sorted(self._tables):
                conn.execute(
                    sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(name))
                )
        self._tables.clear()

    def destroy(self) -> None:
        """Stop immediately (also a server that a test left stopped) and remove the directory
        (an error if it cannot be removed: the cluster must not outlive the session)."""
        try:
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "stop", "-D", str(self.data_dir), "-m", "immediate", "-w",
                          "-t", "30", check=False)  # fmt: skip
            pid_file = self.data_dir / "postmaster.pid"
            with contextlib.suppress(OSError, ValueError, IndexError):
                os.kill(int(pid_file.read_text().splitlines()[0]), signal.SIGKILL)
        finally:
            _remove_tree(self.base)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL cluster for the whole session (see :class:`PostgresServer`)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        require("PostgreSQL", f"psycopg is not importable; {PG_INSTALL_HINT}")
    bindir = _pg_bindir()
    if bindir is None:
        require("PostgreSQL", f"no /usr/lib/postgresql/*/bin/initdb; {PG_INSTALL_HINT}")
    run_as: str | None = None
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            require("PostgreSQL", f"runuser is missing (needed as root); {PG_INSTALL_HINT}")
        try:
            pwd.getpwnam(PG_SUPERUSER)
        except KeyError:
            require("PostgreSQL", f"no 'postgres' OS user (needed as root); {PG_INSTALL_HINT}")
        run_as = PG_SUPERUSER
    # Not under tmp_path_factory: with run_as the postgres user must reach the directory, and
    # pytest's base directory is private to this user. destroy() removes it at the end.
    port = free_port()
    server = PostgresServer(bindir, Path(tempfile.mkdtemp(prefix="credseal-pg-")), port, run_as)
    try:
        server.init()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def pg(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session server, running when the test starts and again after it, tables dropped."""
    postgres_server.start()
    yield postgres_server
    postgres_server.start()
    postgres_server.drop_fresh_tables()


# --------------------------------------------------------------------------- network outages


@pytest.fixture
def blackhole_addr() -> Iterator[tuple[str, int]]:
    """(host, port) of a socket the kernel accepts connections on but nobody ever answers."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind((LOCALHOST, 0))
        sock.listen(64)  # the backlog completes handshakes; accept() is never called
        yield (LOCALHOST, sock.getsockname()[1])
    finally:
        sock.close()


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port where connecting is refused: held bound but not listening."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        # Bound without listen(): connects get RST, and nobody else can take the port meanwhile.
        sock.bind((LOCALHOST, 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


@pytest.fixture
def unresolvable_host() -> str:
    """A host name that cannot resolve (RFC 2606 reserves ``.invalid``)."""
    return f"credseal-{uuid.uuid4().hex[:8]}.invalid"


# --------------------------------------------------------------------------- Secret Service

_BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"""


class SecretService:
    """A private D-Bus session bus with gnome-keyring-daemon serving an unlocked login keyring.

    The bus has no service directories, so nothing is D-Bus-activated behind our back: a
    stopped daemon stays stopped (no stray re-activated daemon, no prompter), and every
    process this object starts is known by PID.
    """

    def __init__(self, base: Path, password: str = SS_LOGIN_PASSWORD) -> None:
        self.base = base
        self.password = password
        self.home = base / "home"
        self.runtime_dir = base / "run"
        self.bus_socket = base / "bus.sock"
        self.bus_address = ""
        self._bus: subprocess.Popen[str] | None = None
        self._daemon: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"SecretService(bus_address={self.bus_address!r})"

    @property
    def env(self) -> dict[str, str]:
        """The variables a process needs to use this Secret Service through ``keyring``."""
        return {
            "DBUS_SESSION_BUS_ADDRESS": self.bus_address,
            "HOME": str(self.home),
            "XDG_DATA_HOME": str(self.home / ".local" / "share"),
            "XDG_CONFIG_HOME": str(self.home / ".config"),
            "XDG_CACHE_HOME": str(self.home / ".cache"),
            "XDG_RUNTIME_DIR": str(self.runtime_dir),
            "PYTHON_KEYRING_BACKEND": SECRET_SERVICE_BACKEND,
        }

    def subprocess_env(self) -> dict[str, str]:
        """``os.environ`` plus ``env``, without display variables: for ``subprocess.run(env=)``."""
        environ = {**os.environ, **self.env}
        for name in ("DISPLAY", "WAYLAND_DISPLAY"):
            environ.pop(name, None)
        return environ

    # ---- processes

    def start(self) -> None:
        """Start the bus and the daemon; return once the login collection is unlocked."""
        for path in (self.home, self.runtime_dir):
            path.mkdir(mode=0o700)
        config = self.base / "bus.conf"
        config.write_text(_BUS_CONFIG.format(socket=self.bus_socket))
        with (self.base / "bus.log").open("w") as log:
            self._bus = subprocess.Popen(
                ["dbus-daemon", f"--config-file={config}", "--nofork", "--nopidfile",
                 "--print-address=1"],
                stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL,
                env=self.subprocess_env(), start_new_session=True, text=True,
            )  # fmt: skip
        assert self._bus.stdout is not None
        ready, _, _ = select.select([self._bus.stdout], [], [], WAIT_TIMEOUT)
        self.bus_address = self._bus.stdout.readline().strip() if ready else ""
        self._bus.stdout.close()
        if not self.bus_address:
            raise RuntimeError(f"dbus-daemon did not start:\n{_tail(self.base / 'bus.log')}")
        self.start_daemon()

    def start_daemon(self) -> None:
        """Start gnome-keyring-daemon if it is not running; it unlocks (or creates) "login"."""
        if self.is_daemon_running():
            return
        with (self.base / "daemon.log").open("a") as log:
            self._daemon = subprocess.Popen(
                ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
                stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT,
                env=self.subprocess_env(), start_new_session=True,
            )  # fmt: skip
        assert self._daemon.stdin is not None
        # --unlock reads the password from stdin until EOF.
        self._daemon.stdin.write(self.password.encode())
        self._daemon.stdin.close()
        try:
            _wait_until(self._ready, WAIT_TIMEOUT, f"{SECRETS_BUS_NAME} with an unlocked login")
        except TimeoutError as exc:
            raise RuntimeError(f"{exc}:\n{_tail(self.base / 'daemon.log')}") from None

    def stop_daemon(self) -> None:
        """Kill gnome-keyring-daemon (an outage); the bus stays up, with no secrets owner."""
        if self._daemon is not None:
            _kill_group(self._daemon)
            self._daemon = None
        _wait_until(lambda: not self._name_has_owner(), WAIT_TIMEOUT, "the daemon to go")

    def is_daemon_running(self) -> bool:
        """Whether our gnome-keyring-daemon process is alive."""
        return self._daemon is not None and self._daemon.poll() is None

    def close(self) -> None:
        """Kill the daemon and the bus (by process group) and remove the directories, also
        when killing one of them fails (an error if the directory cannot be removed)."""
        procs, self._daemon, self._bus = (self._daemon, self._bus), None, None
        errors: list[Exception] = []
        for proc in procs:
            if proc is not None:
                try:
                    _kill_group(proc)
                except Exception as exc:  # kill the other one and remove the files anyway
                    errors.append(exc)
        _remove_tree(self.base)
        if errors:
            raise errors[0]

    # ---- D-Bus access (our own connections, independent of os.environ)

    @contextlib.contextmanager
    def connection(self) -> Iterator[DBusConnection]:
        """A jeepney connection to this bus, closed on exit."""
        from jeepney.io.blocking import open_dbus_connection

        conn = open_dbus_connection(bus=self.bus_address)
        try:
            yield conn
        finally:
            conn.close()

    def _name_has_owner(self) -> bool:
        from jeepney import message_bus

        with self.connection() as conn:
            reply = conn.send_and_get_reply(message_bus.NameHasOwner(SECRETS_BUS_NAME))
        return bool(reply.body[0])

    def _login_path(self, conn: DBusConnection) -> str:
        from secretstorage.util import DBusAddressWrapper

        service = DBusAddressWrapper(SECRETS_PATH, "org.freedesktop.Secret.Service", conn)
        (path,) = service.call("ReadAlias", "s", "default")
        return str(path)

    def _ready(self) -> bool:
        if self._daemon is not None and self._daemon.poll() is not None:
            raise RuntimeError(f"gnome-keyring-daemon exited ({self._daemon.returncode})")
        if not self._name_has_owner():
            return False
        import secretstorage

        with self.connection() as conn:
            path = self._login_path(conn)  # "/" until the login collection exists
            return path != "/" and not secretstorage.Collection(conn, path).is_locked()

    def is_locked(self) -> bool:
        """Whether the default (login) collection is locked; raises if it does not exist."""
        import secretstorage

        with self.connection() as conn:
            path = self._login_path(conn)
            if path == "/":
                raise RuntimeError("the Secret Service has no default collection")
            return bool(secretstorage.Collection(conn, path).is_locked())

    def lock(self) -> None:
        """Lock the default collection: ``keyring`` then raises ``KeyringLocked``."""
        import secretstorage

        with self.connection() as conn:
            secretstorage.Collection(conn, self._login_path(conn)).lock()

    def unlock(self) -> None:
        """Unlock the default collection with its password, without a prompt."""
        from secretstorage.util import DBusAddressWrapper, format_secret, open_session

        with self.connection() as conn:
            path = self._login_path(conn)
            secret = format_secret(open_session(conn), self.password.encode(), "text/plain")
            iface = DBusAddressWrapper(SECRETS_PATH, GNOME_KEYRING_IFACE, conn)
            iface.call("UnlockWithMasterPassword", "o(oayays)", path, secret)

    def clear(self) -> int:
        """Delete every item in the default collection; return how many."""
        import secretstorage

        with self.connection() as conn:
            items = list(secretstorage.Collection(conn, self._login_path(conn)).get_all_items())
            for item in items:
                item.delete()
        return len(items)

    def reset(self) -> None:
        """Back to the initial state: daemon running, collection unlocked and empty."""
        self.start_daemon()
        if self.is_locked():
            self.unlock()
        self.clear()


REDIS_INSTALL_HINT = "install it with `apt-get install redis-server` (.ci/run does)"


class RedisServer:
    """A throwaway redis-server on 127.0.0.1 (no persistence) that tests may kill, freeze
    (SIGSTOP: connections are accepted, replies never come), thaw and restart empty.

    For the shared tier (issue 13). ``start``/``kill`` are idempotent and wait until the
    server answers / is gone.
    """

    host = LOCALHOST

    def __init__(self, binary: str, base: Path, port: int) -> None:
        self.binary, self.base, self.port = binary, base, port
        self.log_path = base / "redis.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"RedisServer(port={self.port})"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> None:
        """Start it (empty: nothing is saved) and wait until it answers PING."""
        if self._proc is not None and self._proc.poll() is None:
            return
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", LOCALHOST, "--save", "",
                 "--appendonly", "no", "--dir", str(self.base), "--daemonize", "no",
                 "--enable-debug-command", "local"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        _wait_until(self.answers, WAIT_TIMEOUT, f"redis-server on port {self.port}")

    def answers(self) -> bool:
        """Whether it replies +PONG to a PING within a second."""
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        """SIGKILL (an outage: connections are refused from now on); waits until it is gone."""
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, signal.SIGCONT)  # a frozen one must die too
                os.killpg(self._proc.pid, signal.SIGKILL)
            self._proc.wait(timeout=WAIT_TIMEOUT)
        self._proc = None

    def freeze(self) -> None:
        """SIGSTOP: the kernel still accepts connections; no reply ever comes."""
        assert self._proc is not None and self._proc.poll() is None, "not running"
        os.killpg(self._proc.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT after :meth:`freeze`."""
        if self._proc is not None and self._proc.poll() is None:
            os.killpg(self._proc.pid, signal.SIGCONT)

    def restart_empty(self) -> None:
        """Kill and start again: every key is gone (a restart that lost its data)."""
        self.kill()
        self.start()

    def close(self) -> None:
        try:
            self.kill()
        finally:
            _remove_tree(self.base)


@pytest.fixture(scope="session")
def redis_binary() -> str:
    """The redis-server binary (skips on a laptop without it, fails under CI=true)."""
    binary = shutil.which("redis-server")
    if binary is None:
        require("redis-server", f"redis-server is missing; {REDIS_INSTALL_HINT}")
    assert binary is not None
    return binary


@pytest.fixture
def redis_server(redis_binary: str) -> Iterator[RedisServer]:
    """A fresh redis-server for one test (it may kill or freeze it); removed afterwards."""
    server = RedisServer(redis_binary, Path(tempfile.mkdtemp(prefix="credseal-redis-")),
                         free_port())
    try:
        server.start()
        yield server
    finally:
        server.close()


SENTINEL_SERVICE = "credseal-test"
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 5000
# Sentinels find each other through hello messages on the master, sent every 2 s.
SENTINEL_WAIT_TIMEOUT = 30.0


class RedisSentinelGroup:
    """A throwaway Redis Sentinel deployment on 127.0.0.1: a master, one replica and three
    sentinels (quorum 2), nothing persisted, all in one temp directory.

    Debian's package has no ``redis-sentinel`` binary: each sentinel is ``redis-server
    <its conf> --sentinel`` on a config file written here (a sentinel rewrites its file as it
    learns). Short timings make a failover take a few seconds: the master is subjectively down
    after ``down-after-milliseconds`` 1000, ``failover-timeout`` is 5000.

    :meth:`start` returns once the replica is in sync and every sentinel knows the master, the
    replica and the two other sentinels. Tests kill the master (:meth:`kill_master`) and wait
    until the sentinels have promoted the replica (:meth:`wait_for_failover`); every process
    is SIGKILLed and the directory removed by :meth:`close`.
    """

    host = LOCALHOST

    def __init__(self, binary: str, base: Path, service_name: str = SENTINEL_SERVICE) -> None:
        self.binary, self.base, self.service_name = binary, base, service_name
        ports: list[int] = []
        while len(ports) < 5:
            port = free_port()
            if port not in ports:
                ports.append(port)
        #: the data nodes' ports: the first master, then its replica
        self.data_ports: tuple[int, int] = (ports[0], ports[1])
        self.sentinel_ports: tuple[int, ...] = tuple(ports[2:])
        self._procs: dict[int, subprocess.Popen[bytes]] = {}  # by port, data nodes and sentinels

    def __repr__(self) -> str:
        return (f"RedisSentinelGroup(service={self.service_name!r}, data={self.data_ports}, "
                f"sentinels={self.sentinel_ports})")

    @property
    def sentinels(self) -> list[tuple[str, int]]:
        """The sentinels' addresses, for ``RedisTier.from_sentinel`` or redis-py's
        ``Sentinel``."""
        return [(self.host, port) for port in self.sentinel_ports]

    # ---- starting

    def start(self) -> None:
        """Start the master and its replica, wait until the replica is in sync, then the
        sentinels, and wait until each knows the master, the replica and the others."""
        master, replica = self.data_ports
        self._start_data_node(master)
        self._start_data_node(replica, "--replicaof", self.host, str(master))
        self._wait(lambda: self._info(replica).get("master_link_status") == "up",
                   WAIT_TIMEOUT, f"the replica on port {replica} to be in sync")
        for port in self.sentinel_ports:
            self._start_sentinel(port, master)
        self._wait(self._sentinels_agree, SENTINEL_WAIT_TIMEOUT,
                   "every sentinel to know the master, the replica and 2 other sentinels")

    def _spawn(self, port: int, args: list[str]) -> None:
        log = (self.base / f"{port}.log").open("ab")
        try:
            self._procs[port] = subprocess.Popen([self.binary, *args], stdout=log,
                                                 stderr=subprocess.STDOUT,
                                                 start_new_session=True)
        finally:
            log.close()

    def _start_data_node(self, port: int, *extra: str) -> None:
        directory = self.base / f"node-{port}"
        directory.mkdir()
        # no diskless-sync delay (5 s by default): the replica syncs at once
        self._spawn(port, ["--port", str(port), "--bind", self.host, "--save", "",
                           "--appendonly", "no", "--dir", str(directory), "--daemonize", "no",
                           "--repl-diskless-sync-delay", "0", *extra])
        self._wait(lambda: self._answers(port), WAIT_TIMEOUT, f"redis-server on port {port}")

    def _start_sentinel(self, port: int, master: int) -> None:
        directory = self.base / f"sentinel-{port}"
        directory.mkdir()
        name = self.service_name
        conf = directory / "sentinel.conf"
        conf.write_text(
            f'port {port}\nbind {self.host}\ndaemonize no\ndir "{directory}"\n'
            "sentinel resolve-hostnames no\n"
            f"sentinel monitor {name} {self.host} {master} 2\n"
            f"sentinel down-after-milliseconds {name} {SENTINEL_DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {name} {SENTINEL_FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {name} 1\n")
        self._spawn(port, [str(conf), "--sentinel"])
        self._wait(lambda: self._answers(port), WAIT_TIMEOUT, f"the sentinel on port {port}")

    def _sentinels_agree(self) -> bool:
        for port in self.sentinel_ports:
            state = self._master_state(port)
            if state is None or state.get("num-other-sentinels") != 2 \
                    or state.get("num-slaves") != 1 or not self._usable(state):
                return False
        return True

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        try:
            _wait_until(predicate, timeout, what)
        except TimeoutError as exc:
            logs = "\n".join(f"--- {path.name}\n{_tail(path)}"
                             for path in sorted(self.base.glob("*.log")))
            raise TimeoutError(f"{exc}; {self!r}\n{logs}") from None

    # ---- asking the nodes (short timeouts, no retries; None when a node does not answer)

    def _client(self, port: int) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(host=self.host, port=port, socket_timeout=1.0,
                           socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0),
                           decode_responses=True)

    def _ask(self, port: int, ask: Any) -> Any:
        import redis

        try:
            with self._client(port) as client:
                return ask(client)
        except (redis.exceptions.RedisError, OSError):
            return None

    def _answers(self, port: int) -> bool:
        return self._ask(port, lambda client: client.ping()) is True

    def _info(self, port: int) -> dict[str, Any]:
        """``INFO replication`` of a data node ({} if it does not answer)."""
        return self._ask(port, lambda client: client.info("replication")) or {}

    def _master_state(self, sentinel_port: int) -> dict[str, Any] | None:
        """``SENTINEL MASTER <service>`` as one sentinel sees it."""
        state = self._ask(sentinel_port, lambda client: client.sentinel_master(self.service_name))
        return state if isinstance(state, dict) else None

    @staticmethod
    def _usable(state: dict[str, Any]) -> bool:
        """Whether a sentinel reports the master as up (redis-py's ``check_master_state``)."""
        return bool(state.get("is_master")) and not state.get("is_sdown") \
            and not state.get("is_odown")

    # ---- the test's view and faults

    def master_port(self) -> int:
        """The master's port as the first sentinel that answers reports it.

        Raises:
            RuntimeError: no sentinel answered.
        """
        for port in self.sentinel_ports:
            address = self._ask(port, lambda client: client.sentinel_get_master_addr_by_name(
                self.service_name))
            if address:
                return int(address[1])
        raise RuntimeError(f"no sentinel of {self!r} answered")

    def kill_master(self) -> int:
        """SIGKILL the current master's process group (connections are refused from now on);
        returns its port once it is gone."""
        port = self.master_port()
        proc = self._procs.get(port)
        assert proc is not None and proc.poll() is None, f"the master on {port} is not running"
        self._kill(proc)
        return port

    def wait_for_failover(self, old_port: int, timeout: float = SENTINEL_WAIT_TIMEOUT) -> int:
        """Wait until every sentinel reports a master other than ``old_port`` that is up, and
        that node says it is a master; return its port.

        Raises:
            TimeoutError: no failover within ``timeout`` seconds (with the logs' tails).
        """
        promoted: list[int] = []

        def done() -> bool:
            ports = set()
            for port in self.sentinel_ports:
                state = self._master_state(port)
                if state is None or not self._usable(state):
                    return False
                ports.add(int(state["port"]))
            if len(ports) != 1 or old_port in ports:
                return False
            (port,) = ports
            if self._info(port).get("role") != "master":
                return False
            promoted[:] = [port]
            return True

        self._wait(done, timeout, f"the sentinels to promote a master other than {old_port}")
        return promoted[0]

    # ---- stopping

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)  # a frozen one must die too
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT_TIMEOUT)

    def close(self) -> None:
        """SIGKILL every process (sentinels first: no failover during the teardown) and
        remove the directory; raises the first error after trying everything."""
        errors: list[Exception] = []
        for port in (*self.sentinel_ports, *self.data_ports):
            proc = self._procs.pop(port, None)
            if proc is not None:
                try:
                    self._kill(proc)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    errors.append(exc)
        _remove_tree(self.base)
        if errors:
            raise errors[0]


@pytest.fixture
def redis_sentinel(redis_binary: str) -> Iterator[RedisSentinelGroup]:
    """A fresh :class:`RedisSentinelGroup` for one test (master, replica, three sentinels),
    ready: the replica in sync, every sentinel aware of all of them. Removed afterwards."""
    try:
        import redis  # noqa: F401
    except ImportError:
        require("redis-py", 'redis-py is missing: pip install -e ".[dev]"')
    group = RedisSentinelGroup(redis_binary, Path(tempfile.mkdtemp(prefix="credseal-sentinel-")))
    try:
        group.start()
        yield group
    finally:
        group.close()


CLUSTER_NODE_TIMEOUT_MS = 2000
CLUSTER_SLOTS = 16384
CLUSTER_WAIT_TIMEOUT = 20.0


class RedisClusterGroup:
    """A throwaway Redis Cluster on 127.0.0.1: ``masters`` redis-servers (no replicas),
    nothing persisted, all in one temp directory.

    Each node runs with ``--cluster-enabled yes``, its own ``nodes-<port>.conf`` and
    ``--cluster-node-timeout`` 2000; ``--cluster-require-full-coverage no`` keeps the other
    masters serving their slots once a killed master is flagged as failed (with ``yes``,
    the default, the whole cluster would refuse every key then). Where the server has
    ``cluster-port`` (Redis 7) each node's bus port is a free port too, not port + 10000.

    :meth:`start` creates the cluster with ``redis-cli --cluster create`` when there is a
    ``redis-cli`` (else by ``CLUSTER ADDSLOTSRANGE`` and ``CLUSTER MEET`` through redis-py)
    and returns once every node says ``cluster_state:ok`` and knows every node and slot.
    Tests :meth:`kill` a master; :meth:`close` SIGKILLs every process and removes the
    directory.
    """

    host = LOCALHOST

    def __init__(self, binary: str, base: Path, masters: int = 3,
                 cli: str | None = None) -> None:
        self.binary, self.base, self.cli = binary, base, cli
        self._bus_option = _redis_major(binary) >= 7  # cluster-port: bus ports of our own
        ports: list[int] = []
        while len(ports) < (2 if self._bus_option else 1) * masters:
            port = free_port()
            if port not in ports and (self._bus_option or _bus_port_free(port)):
                ports.append(port)
        #: the masters' ports, in the order their slot ranges go (the first has slot 0)
        self.ports: tuple[int, ...] = tuple(ports[:masters])
        self._bus_ports = dict(zip(self.ports, ports[masters:], strict=False))
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._slots: dict[int, tuple[int, int]] = {}  # port -> (first slot, last slot)

    def __repr__(self) -> str:
        return f"RedisClusterGroup(ports={self.ports})"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """Every master's (host, port), for ``RedisCluster``'s startup nodes."""
        return [(self.host, port) for port in self.ports]

    # ---- starting

    def start(self) -> None:
        """Start every node, create the cluster and wait until every node agrees it is ok."""
        for port in self.ports:
            self._start_node(port)
        if self.cli is not None:
            self._create_with_cli()
        else:
            self._create_by_hand()
        self._wait(self._agreed, CLUSTER_WAIT_TIMEOUT,
                   "every node to say cluster_state:ok and know every node and slot")
        self._slots = self._slot_ranges()

    def _start_node(self, port: int) -> None:
        directory = self.base / f"node-{port}"
        directory.mkdir()
        args = [self.binary, "--port", str(port), "--bind", self.host, "--save", "",
                "--appendonly", "no", "--dir", str(directory), "--daemonize", "no",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.base / f"nodes-{port}.conf"),
                "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
                "--cluster-require-full-coverage", "no"]
        if self._bus_option:
            args += ["--cluster-port", str(self._bus_ports[port])]
        log = (self.base / f"{port}.log").open("ab")
        try:
            self._procs[port] = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                                 start_new_session=True)
        finally:
            log.close()
        self._wait(lambda: self._ask(port, lambda client: client.ping()) is True,
                   WAIT_TIMEOUT, f"redis-server on port {port}")

    def _create_with_cli(self) -> None:
        assert self.cli is not None
        proc = subprocess.run(
            [self.cli, "--cluster", "create",
             *(f"{self.host}:{port}" for port in self.ports),
             "--cluster-replicas", "0", "--cluster-yes"],
            capture_output=True, text=True, timeout=CMD_TIMEOUT, stdin=subprocess.DEVNULL)
        if proc.returncode != 0:
            raise RuntimeError(f"redis-cli --cluster create failed ({proc.returncode}):\n"
                               f"{proc.stdout}{proc.stderr}")

    def _create_by_hand(self) -> None:
        """What ``redis-cli --cluster create`` does: even slot ranges, one epoch per node,
        every node meets the first."""
        count = len(self.ports)
        for index, port in enumerate(self.ports):
            first = index * CLUSTER_SLOTS // count
            last = (index + 1) * CLUSTER_SLOTS // count - 1
            self.command(port, "CLUSTER", "ADDSLOTSRANGE", first, last)
            self.command(port, "CLUSTER", "SET-CONFIG-EPOCH", index + 1)
        first_port = self.ports[0]
        for port in self.ports[1:]:
            bus = [self._bus_ports[first_port]] if self._bus_option else []
            self.command(port, "CLUSTER", "MEET", self.host, first_port, *bus)

    def _agreed(self) -> bool:
        for port in self.ports:
            info = self._ask(port, lambda client: client.execute_command("CLUSTER", "INFO"))
            text = info.decode() if isinstance(info, bytes) else str(info or "")
            fields = dict(line.split(":", 1) for line in text.split() if ":" in line)
            if fields.get("cluster_state") != "ok" \
                    or fields.get("cluster_known_nodes") != str(len(self.ports)) \
                    or fields.get("cluster_slots_assigned") != str(CLUSTER_SLOTS) \
                    or fields.get("cluster_size") != str(len(self.ports)):
                return False
        return True

    def _slot_ranges(self) -> dict[int, tuple[int, int]]:
        answer = self.command(self.ports[0], "CLUSTER", "SLOTS")
        ranges: dict[int, tuple[int, int]] = {}
        for first, last, master, *_ in answer:
            port = int(master[1])
            assert port not in ranges, f"{self!r}: {port} holds more than one slot range"
            ranges[port] = (int(first), int(last))
        assert set(ranges) == set(self.ports), ranges
        return ranges

    def _wait(self, predicate: Any, timeout: float, what: str) -> None:
        try:
            _wait_until(predicate, timeout, what)
        except TimeoutError as exc:
            logs = "\n".join(f"--- {path.name}\n{_tail(path)}"
                             for path in sorted(self.base.glob("*.log")))
            raise TimeoutError(f"{exc}; {self!r}\n{logs}") from None

    # ---- asking one node (a plain client: short timeouts, no retries)

    def _client(self, port: int) -> Any:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        return redis.Redis(host=self.host, port=port, socket_timeout=2.0,
                           socket_connect_timeout=1.0, retry=Retry(NoBackoff(), 0))

    def command(self, port: int, *args: Any) -> Any:
        """``args`` as one command to the node on ``port`` (a plain client; raises if it does
        not answer)."""
        with self._client(port) as client:
            return client.execute_command(*args)

    def _ask(self, port: int, ask: Any) -> Any:
        """``ask(client)`` on the node on ``port``; None when it does not answer."""
        import redis

        try:
            with self._client(port) as client:
                return ask(client)
        except (redis.exceptions.RedisError, OSError):
            return None

    # ---- the test's view and faults

    def slot_of(self, key: str | bytes) -> int:
        """The hash slot of ``key`` (``CLUSTER KEYSLOT`` on a node that answers)."""
        for port in self.ports:
            slot = self._ask(port, lambda client: client.execute_command(
                "CLUSTER", "KEYSLOT", key))
            if slot is not None:
                return int(slot)
        raise RuntimeError(f"no node of {self!r} answered")

    def port_of(self, key: str | bytes) -> int:
        """The port of the master that holds ``key``'s slot (as the cluster was created)."""
        slot = self.slot_of(key)
        for port, (first, last) in self._slots.items():
            if first <= slot <= last:
                return port
        raise AssertionError(f"slot {slot} is nobody's in {self!r}")

    def keys_on(self, port: int, pattern: str = "*") -> list[bytes]:
        """The keys the master on ``port`` holds (``KEYS``, asked directly)."""
        keys: list[bytes] = self.command(port, "KEYS", pattern)
        return keys

    def is_running(self, port: int) -> bool:
        proc = self._procs.get(port)
        return proc is not None and proc.poll() is None

    def kill(self, port: int) -> None:
        """SIGKILL the master on ``port`` (its connections are refused from now on); returns
        once it is gone. Its slots have no replica: they stay unserved."""
        proc = self._procs.get(port)
        assert proc is not None and proc.poll() is None, f"the node on {port} is not running"
        self._kill(proc)

    def freeze(self, port: int) -> None:
        """SIGSTOP the master on ``port``: connections are accepted, no reply comes. Thaw it
        within ``CLUSTER_NODE_TIMEOUT_MS``, or the others flag it as failed."""
        proc = self._procs.get(port)
        assert proc is not None and proc.poll() is None, f"the node on {port} is not running"
        os.killpg(proc.pid, signal.SIGSTOP)

    def thaw(self, port: int) -> None:
        """SIGCONT after :meth:`freeze`."""
        proc = self._procs.get(port)
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGCONT)

    def wait_until_failed(self, port: int, timeout: float = CLUSTER_WAIT_TIMEOUT) -> None:
        """Wait until every other running node flags the node on ``port`` ``fail`` (after
        ``CLUSTER_NODE_TIMEOUT_MS`` and a majority's reports)."""

        def flagged(other: int) -> bool:
            text = self._ask(other, lambda client: client.execute_command("CLUSTER", "NODES"))
            lines = (text.decode() if isinstance(text, bytes) else str(text or "")).splitlines()
            for line in lines:
                fields = line.split()
                if len(fields) > 2 and fields[1].split("@")[0].endswith(f":{port}"):
                    return "fail" in fields[2].split(",")
            return False

        others = [other for other in self.ports if other != port and self.is_running(other)]
        self._wait(lambda: all(flagged(other) for other in others), timeout,
                   f"the other nodes to flag {port} as failed")

    # ---- stopping

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGCONT)  # a frozen one must die too
                os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT_TIMEOUT)

    def close(self) -> None:
        """SIGKILL every node and remove the directory; raises the first error after trying
        everything."""
        errors: list[Exception] = []
        for port in self.ports:
            proc = self._procs.pop(port, None)
            if proc is not None:
                try:
                    self._kill(proc)
                except (OSError, subprocess.TimeoutExpired) as exc:
                    errors.append(exc)
        _remove_tree(self.base)
        if errors:
            raise errors[0]


def _redis_major(binary: str) -> int:
    """The major version of a redis-server binary (``--version``), 0 if unknown."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True,
                             timeout=CMD_TIMEOUT).stdout
    except (OSError, subprocess.TimeoutExpired):
        return 0
    match = re.search(r"v=(\d+)\.", out)
    return int(match.group(1)) if match else 0


def _bus_port_free(port: int) -> bool:
    """Whether ``port`` + 10000 (a node's cluster bus before Redis 7) can be bound now."""
    if port + 10000 > 65535:
        return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOCALHOST, port + 10000))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def _cluster_group(binary: str) -> Iterator[RedisClusterGroup]:
    try:
        import redis  # noqa: F401
    except ImportError:
        require("redis-py", 'redis-py is missing: pip install -e ".[dev]"')
    group = RedisClusterGroup(binary, Path(tempfile.mkdtemp(prefix="credseal-cluster-")),
                              cli=shutil.which("redis-cli"))
    try:
        group.start()
        yield group
    finally:
        group.close()


@pytest.fixture
def redis_cluster(redis_binary: str) -> Iterator[RedisClusterGroup]:
    """A fresh :class:`RedisClusterGroup` for one test (three masters, no replicas), ready:
    every node says ``cluster_state:ok``. The test may kill or freeze masters. Removed
    afterwards. About two seconds to start (a node turns ok 2 s after it started)."""
    with _cluster_group(redis_binary) as group:
        yield group


@pytest.fixture(scope="module")
def redis_cluster_module(redis_binary: str) -> Iterator[RedisClusterGroup]:
    """One :class:`RedisClusterGroup` for a test module's tests that leave it as they found
    it (no kill; a key namespace of their own)."""
    with _cluster_group(redis_binary) as group:
        yield group


@pytest.fixture(scope="session")
def secret_service() -> Iterator[SecretService]:
    """A private Secret Service for the session (see :class:`SecretService`)."""
    for binary in ("dbus-daemon", "gnome-keyring-daemon"):
        if shutil.which(binary) is None:
            require("Secret Service", f"{binary} is missing; {SS_INSTALL_HINT}")
    try:
        import jeepney  # noqa: F401
        import keyring.backends.SecretService  # noqa: F401
        import secretstorage  # noqa: F401
    except ImportError as exc:
        require("Secret Service", f"{exc}; install keyring (with SecretStorage, jeepney)")
    service = SecretService(Path(tempfile.mkdtemp(prefix="credseal-ss-")))
    try:
        service.start()
        yield service
    finally:
        service.close()


@pytest.fixture
def use_secret_service(
    secret_service: SecretService, monkeypatch: pytest.MonkeyPatch
) -> Iterator[SecretService]:
    """Point ``keyring`` in this process at the private Secret Service for one test.

    Sets ``secret_service.env`` in ``os.environ`` and ``keyring.set_keyring(SecretService
    .Keyring())`` (keyring caches its backend, so it must be set explicitly). Afterwards the
    daemon is running again, the collection unlocked and empty, and the previous backend and
    environment are restored.

    **keyring 25.7 leaks a D-Bus connection** whenever its SecretService backend raises from
    ``get_preferred_collection`` (``KeyringLocked``, ``InitError``): the socket is closed only
    by the garbage collector, with a ``ResourceWarning`` that ``filterwarnings = error`` turns
    into a failure of whichever test happens to run the collector. This fixture ignores
    exactly those warnings (unclosed sockets to this private bus) for the test, and collects
    them in its teardown so that none reaches a later test.
    """
    import keyring
    import keyring.core
    from keyring.backends import SecretService as SecretServiceBackend

    leak = rf"unclosed <socket\.socket .*raddr={re.escape(str(secret_service.bus_socket))}>"
    secret_service.reset()
    for name, value in secret_service.env.items():
        monkeypatch.setenv(name, value)
    # monkeypatch restores the cached backend, even if it was None (not yet detected).
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)
    keyring.set_keyring(SecretServiceBackend.Keyring())
    # pytest reads filterwarnings marks before setup, so the filter is installed here, inside
    # pytest's own catch_warnings for this test, and removed again at teardown.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=leak, category=ResourceWarning)
        yield secret_service
        secret_service.reset()
        gc.collect()  # close keyring's leaked bus connections now, while the filter applies


def _headless_env(environ: Mapping[str, str], base: Path) -> dict[str, str]:
    env = dict(environ)
    for name in ("DBUS_SESSION_BUS_ADDRESS", "PYTHON_KEYRING_BACKEND", "DISPLAY",
                 "WAYLAND_DISPLAY"):  # fmt: skip
        env.pop(name, None)
    config_home, runtime_dir = base / "config", base / "run"
    for path in (config_home, runtime_dir):
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    # An empty config home: no keyringrc.cfg can choose a backend. An empty runtime dir:
    # GDBus (libsecret) and dbus-python fall back to $XDG_RUNTIME_DIR/bus on a desktop.
    env["XDG_CONFIG_HOME"] = str(config_home)
    env["XDG_RUNTIME_DIR"] = str(runtime_dir)
    return env


@pytest.fixture
def env_without_bus(tmp_path: Path) -> dict[str, str]:
    """``os.environ`` as on a headless server (no session bus): for ``subprocess.run(env=)``."""
    return _headless_env(os.environ, tmp_path / "headless")


@pytest.fixture
def no_keyring_backend(
    env_without_bus: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """In this process, no session bus and keyring re-detected: ``fail.Keyring`` for real.

    keyring memoizes the viable backends (``keyring.backend.get_all_keyring`` is ``@once``)
    and the chosen one (``keyring.core._keyring_backend``): both are reset here and restored
    afterwards.
    """
    import keyring.backend
    import keyring.core
    from keyring.backends import fail

    for name in set(os.environ) - set(env_without_bus):
        monkeypatch.delenv(name)
    for name, value in env_without_bus.items():
        if os.environ.get(name) != value:
            monkeypatch.setenv(name, value)
    monkeypatch.setattr(keyring.core, "_keyring_backend", keyring.core._keyring_backend)
    detect = keyring.backend.get_all_keyring
    saved = vars(detect).pop("saved_result", None)
    try:
        keyring.core.init_backend()
        if not isinstance(keyring.get_keyring(), fail.Keyring):
            pytest.fail(
                f"without a session bus keyring still chose {keyring.get_keyring()!r}: "
                "another backend is installed (never install keyrings.alt)"
            )
        yield
    finally:
        vars(detect).pop("saved_result", None)
        if saved is not None:
            detect.saved_result = saved  # type: ignore[attr-defined]
