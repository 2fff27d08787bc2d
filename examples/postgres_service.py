"""The quickstart's story against PostgreSQL: a service keeps its credentials through an outage.

    EXAMPLE_PG_DSN="host=db.internal dbname=app user=svc connect_timeout=3" \\
        python examples/postgres_service.py

Each service start is a new process; the DSN and the key reach it through the environment,
never the command line. The outage is simulated by pointing the restarted service at a local
port that refuses connections, unless you give commands that really stop and start your
server: EXAMPLE_PG_STOP and EXAMPLE_PG_START (e.g. "pg_ctlcluster 16 main stop").
The table (EXAMPLE_PG_TABLE, default credseal_example) is created if missing.
"""

from __future__ import annotations

import logging
import os
import shlex
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from psycopg.conninfo import make_conninfo

import vault
from vault.cache import FallbackCache
from vault.sources.postgres import PostgresSource

NAME = "company-42"


def service(workdir: Path, phase: str) -> None:
    """One start of the service: open the vault and PostgreSQL, then do ``phase``."""
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="     log: %(levelname)s %(name)s: %(message)s")
    ring = vault.KeyRing.from_text(os.environ["CREDSEAL_KEYS"])
    v = vault.Vault(workdir / "vault-data", keys=ring, ttl=3600)
    table = os.environ.get("EXAMPLE_PG_TABLE", "credseal_example")
    with PostgresSource(os.environ["EXAMPLE_PG_DSN"], table=table) as source:
        cache = FallbackCache(source, v)
        if phase == "first":
            source.create_schema()
            cache.save(NAME, {"token": os.urandom(16), "registrationId": 4711})
        got = cache.fetch(NAME)
        print(f"   [pid {os.getpid()}] {NAME!r} from the {got.origin}: registrationId="
              f"{got.value['registrationId']}, degraded={cache.degraded}")
        if phase == "outage":
            result = cache.save(NAME, {**got.value, "registrationId": 4712})
            print(f"   [pid {os.getpid()}] saved registrationId=4712: "
                  f"journaled={result.journaled}")


def start_service(workdir: Path, phase: str, env: dict[str, str]) -> None:
    """Start the service as a new process and wait for it."""
    subprocess.run([sys.executable, __file__, "--service", phase, str(workdir)], env=env,
                   check=True)


def main() -> None:
    """Healthy start, outage and restart, recovery and replay."""
    if "EXAMPLE_PG_DSN" not in os.environ:
        sys.exit("set EXAMPLE_PG_DSN to a PostgreSQL connection string (see the docstring)")
    workdir = Path(tempfile.mkdtemp(prefix="credseal-pg-example-"))
    env = {**os.environ, "CREDSEAL_KEYS": vault.KeyRing([vault.Key.generate()]).to_text()}
    stop, start = os.environ.get("EXAMPLE_PG_STOP"), os.environ.get("EXAMPLE_PG_START")

    print("1. The service starts and saves its credentials; PostgreSQL is up.")
    start_service(workdir, "first", env)
    with socket.socket() as closed_port:  # bound, not listening: connections are refused
        closed_port.bind(("127.0.0.1", 0))
        if stop and start:
            print("2. PostgreSQL is stopped and the service restarts.")
            subprocess.run(shlex.split(stop), check=True, capture_output=True)
            outage_env = env
        else:
            print("2. PostgreSQL is unreachable (simulated: a port that refuses connections) "
                  "and the service restarts.")
            outage_env = {**env, "EXAMPLE_PG_DSN": make_conninfo(
                env["EXAMPLE_PG_DSN"], host="127.0.0.1", port=closed_port.getsockname()[1])}
        start_service(workdir, "outage", outage_env)
    print("3. PostgreSQL is back and the service restarts: the journal is replayed first.")
    if stop and start:
        subprocess.run(shlex.split(start), check=True, capture_output=True)
    start_service(workdir, "recovered", env)
    print(f"(the vault is in {workdir})")


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--service":
        service(Path(sys.argv[3]), sys.argv[2])
    else:
        main()
