"""SIGKILL of a sealed table's rotation at random points, and a resume, with writers updating
random rows throughout (issue 14), on a real PostgreSQL: no row is unreadable at any moment,
no newer write is overwritten, every row ends under the new key."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import vault
from tests.realparts import PostgresServer
from vault.sources import TableTarget
from vault.sources.postgres import PostgresSource

ROOT = Path(__file__).resolve().parents[2]
ROWS = 3000
WRITTEN = 300  # the rows the writers update (the others only the rotation moves)


def run_kills(pg: PostgresServer, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    table = pg.fresh_table_name("kills")
    old = vault.KeyRing([vault.Key.generate()])
    new = old.with_primary(vault.Key.generate())  # deployed everywhere first (two waves)
    names = [f"row-{i:05d}" for i in range(ROWS)]
    with PostgresSource(pg.dsn, table=table, keys=old) as seeder:
        seeder.create_schema()
        for name in names:
            seeder.save(name, {"n": 0, "pad": "x" * rng.randrange(200, 800)})
    acknowledged: dict[str, int] = dict.fromkeys(names, 0)
    problems: list[str] = []
    stop = threading.Event()

    def writer(index: int) -> None:
        local = random.Random(seed + index)
        with PostgresSource(pg.dsn, table=table, keys=new) as source:
            count = 0
            while not stop.is_set():
                name = local.choice(names[index:WRITTEN:2])  # each writer owns its rows
                count += 1
                source.save(name, {"n": count, "by": index})
                acknowledged[name] = count
                time.sleep(0.002)

    def reader() -> None:
        local = random.Random(seed + 99)
        with PostgresSource(pg.dsn, table=table, keys=new) as source:
            while not stop.is_set():
                name = local.choice(names)
                try:
                    if source.load(name) is None:
                        problems.append(f"{name} vanished")
                except vault.VaultError as exc:
                    problems.append(f"{name}: {type(exc).__name__}")

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    env = {**os.environ, "TEST_PG_DSN": pg.dsn, "CREDSEAL_KEYS": new.to_text()}
    argv = [sys.executable, "-m", "tests.helpers.table_rotator", table, "25"]
    mid_walk = 0  # kills that left a committed cursor: the walk was cut short
    try:
        with PostgresSource(pg.dsn, table=table, keys=new) as probe:
            for _ in range(kills):
                proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL)
                assert proc.stdout is not None
                # Killed after a random number of committed batches, or a moment later: at
                # any point of a batch, its cryptography or its transaction.
                for _ in range(rng.randrange(1, 12)):
                    if not proc.stdout.readline():
                        break
                time.sleep(rng.uniform(0, 0.02))
                proc.send_signal(signal.SIGKILL)
                out, _ = proc.communicate(timeout=30)
                doc = probe.sealed.read_mark(probe.mark_row()) or {}  # type: ignore[union-attr]
                if b"done" not in out and isinstance(doc.get("rewrap"), dict):
                    mid_walk += 1
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert problems == []
    assert mid_walk >= max(1, kills // 4), mid_walk  # the kills did land inside the walk
    with PostgresSource(pg.dsn, table=table, keys=new) as source:
        for name in names:
            value: Any = source.load(name)
            assert value["n"] == acknowledged[name], name  # no newer write overwritten
        # The writers sealed with the new key too: every row is under it.
        assert dict(TableTarget(source).key_ids()) == {new.primary.id: ROWS}


def test_killed_rotations_resume_with_writers(pg: PostgresServer) -> None:
    run_kills(pg, kills=4, seed=11)


@pytest.mark.slow
def test_many_killed_rotations_resume_with_writers(pg: PostgresServer) -> None:
    run_kills(pg, kills=24, seed=12)
