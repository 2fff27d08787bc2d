"""Rotation of a sealed primary table: ``TableTarget.rewrap_batched`` on PostgreSQL vs its floor.

Run: python -m bench.bench_primary [--quick | --full] [--small] [--sized] [--profile]
Starts a throwaway PostgreSQL cluster (the tests' helper, ``tests.realparts.PostgresServer``,
as ``bench_cache`` does: ``fsync``, ``synchronous_commit`` and ``full_page_writes`` off), which
needs ``postgresql`` installed; removes it at the end.

The table holds rows shaped like a Baileys auth store, 100 per company: 90% of 200-800 bytes
(pre-keys, sessions) and 10% of 2-12 KB (creds, app-state keys), sizes of the stored envelope,
drawn uniformly with a fixed seed, written in random physical order: 1.17 KB mean, 0.53 KB
median (the issue's "about 0.6 KB mean" cannot hold with these shares and ranges: their
smallest possible mean is 0.39 KB, uniform draws give 1.15 KB). ``--small``: every row of
200-800 bytes, nothing in TOAST. 100,000 rows (``--full``: 1,000,000; ``--quick``: 3,000).
``--sized``: the server sized for the table (``shared_buffers`` 3 GB, ``max_wal_size`` 8 GB).
Every row is sealed under key A once, in memory; before every
measured run the table is emptied and re-seeded with those envelopes (``TRUNCATE``, binary
``COPY``, ``VACUUM (ANALYZE)``, ``CHECKPOINT``: not measured), so every candidate starts from
the same table. Autovacuum is off on the table: it neither runs during a measurement nor
removes the dead rows before they are counted. The candidates, each from its first read to its
last commit, the order changing from round to round:

1. ours: ``TableTarget(PostgresSource(dsn, table=t, keys=[B, A])).rewrap_batched(ring)``:
   keyset pages of 500 (binary results), every row opened, sealed under B and opened again,
   one transaction per batch: one statement of compare-and-set updates
   (``UPDATE ... FROM (VALUES ...) WHERE t.name = v.name AND t.value = v.old``) plus the
   table mark with the walk's cursor, sent in pipeline mode so that the next page is sealed
   while the server writes this one.
2. the floor: plain psycopg, the same statements (the same page ``SELECT``, the same batch
   statement with the mark, the same read of the mark first and write at the end) one after
   the other, with no cryptography: the new value is the old bytes reversed. Goal: ours >=
   0.8x the floor's rows/s. Context, no goal: the floor through the same pipelined walk as
   ours (what pipelining gives a walk with nothing to overlap), and the floor with the first
   version's statements (an ``executemany`` of single-row ``UPDATE ... WHERE name = %s AND
   value = <old>`` and an upsert of the mark per batch).
3. context, no goal: the plain-SQL bulk shape: the same page reads, the new values ``COPY``-ed
   (binary) into a temporary staging table, then ``UPDATE t SET value = s.value FROM staging s
   WHERE t.name = s.name`` (no compare-and-set): once for the whole table in one transaction,
   and per batch of 500 (one transaction each).

Also printed: the cryptography alone (``TableTarget._reseal`` of every row, in memory), the
table's bloat after a rotation (``pg_total_relation_size`` before and after, ``n_dead_tup``),
and the growth of the time per row from 10,000 rows to the full size (ours and the floor;
goal: largest/smallest time per row <= 1.3). ``--profile``: one more run of ours under
cProfile (the top functions). Prints; asserts nothing about time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import psycopg
from psycopg import sql

import vault
from bench.timing import verdict
from tests.realparts import PostgresServer
from vault import codec
from vault.sources._sealed import MARK_NAME, RowSeal, TableTarget
from vault.sources.postgres import (
    PAGE_BYTES,
    PostgresSource,
    replace_parameters,
    replace_statement,
)

TABLE = "bench_sealed_primary"
BATCH = 500
PER_COMPANY = 100  # rows per company: the first 10 are the large ones
LARGE_PER_COMPANY = 10
SMALL_SIZES = (200, 800)
LARGE_SIZES = (2_048, 12_288)
SEED = 14
STATS_WAIT = 10.0  # seconds to wait for the server's statistics of a run
GOAL_RATIO = 0.8
GOAL_LINEAR = 1.3


@dataclass(frozen=True)
class Table:
    """The seeded rows (sorted by name, sealed under A for ``table``) and the table mark."""

    table: str
    rows: list[tuple[str, bytes]]
    mark: bytes
    old: vault.KeyRing  # [A]
    ring: vault.KeyRing  # [B, A]: the rotation's ring

    def stored_sizes(self, count: int) -> list[int]:
        return [len(value) for _, value in self.rows[:count]]


def make_table(table: str, count: int, large_per_company: int = LARGE_PER_COMPANY) -> Table:
    """``count`` rows sealed under a new key A, sizes drawn with a fixed seed; the first
    ``large_per_company`` rows of every 100 are the large ones."""
    rng = random.Random(SEED)
    old = vault.KeyRing([vault.Key.generate()])
    seal = RowSeal(old, table, migrating=False)
    empty = len(codec.dumps({"k": b""}))
    rows = []
    for i in range(count):
        company, slot = divmod(i, PER_COMPANY)
        if slot < large_per_company:
            name = f"co{company:07d}/" + ("creds" if slot == 0 else f"app-state-sync-key-{slot}")
            size = rng.randint(*LARGE_SIZES)
        else:
            kind = "pre-key" if slot % 2 else "session"
            name = f"co{company:07d}/{kind}-{slot}"
            size = rng.randint(*SMALL_SIZES)
        # envelope = 112-byte header + name + table prefix + codec JSON + 16-byte tag
        fixed = 112 + len(name) + len(seal.prefix) + 16 + empty
        plaintext = codec.dumps({"k": os.urandom(max(1, (size - fixed) * 3 // 4))})
        rows.append((name, seal.seal_plaintext(name, plaintext)))
    rows.sort()
    return Table(table, rows, seal.mark("sealed"), old, old.with_primary(vault.Key.generate()))


class Database:
    """The admin connection: seeding, statistics, the table's creation and removal."""

    def __init__(self, server: PostgresServer, table: Table) -> None:
        self.dsn = server.dsn
        self.table = table
        self.ident = sql.Identifier(table.table)
        self.conn = psycopg.connect(self.dsn, autocommit=True)
        self._orders: dict[int, list[int]] = {}
        source = PostgresSource(self.dsn, table=table.table, keys=table.old)
        try:
            source.create_schema()  # the library's table (and its mark)
        finally:
            source.close()
        self.conn.execute(sql.SQL("ALTER TABLE {} SET (autovacuum_enabled = false, "
                                  "toast.autovacuum_enabled = false)").format(self.ident))

    def seed(self, count: int) -> None:
        """Empty the table and write the first ``count`` rows, in a random physical order."""
        order = self._orders.get(count)
        if order is None:
            order = self._orders[count] = random.Random(count).sample(range(count), count)
        rows = self.table.rows
        self.conn.execute(sql.SQL("TRUNCATE {}").format(self.ident))
        copy_sql = sql.SQL("COPY {} (name, value) FROM STDIN (FORMAT BINARY)").format(self.ident)
        with self.conn.cursor().copy(copy_sql) as copy:
            copy.set_types(["text", "bytea"])
            copy.write_row((MARK_NAME, self.table.mark))
            for i in order:
                copy.write_row(rows[i])
        self.conn.execute(sql.SQL("VACUUM (ANALYZE) {}").format(self.ident))
        self.conn.execute("CHECKPOINT")

    def stats(self) -> dict[str, int]:
        """Sizes and counters of the table (``pg_stat_user_tables``, a fresh snapshot)."""
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        name = self.table.table
        row = self.conn.execute(
            "SELECT pg_total_relation_size(c.oid), pg_relation_size(c.oid), "
            "pg_indexes_size(c.oid), coalesce(pg_total_relation_size(c.reltoastrelid), 0), "
            "s.n_live_tup, s.n_dead_tup, s.n_tup_upd, s.n_tup_hot_upd, "
            "coalesce(ts.n_dead_tup, 0) "
            "FROM pg_class c JOIN pg_stat_user_tables s ON s.relid = c.oid "
            "LEFT JOIN pg_stat_all_tables ts ON ts.relid = c.reltoastrelid "
            "WHERE c.oid = %s::regclass", (name,)).fetchone()
        assert row is not None
        keys = ("total", "heap", "indexes", "toast", "live", "dead", "updated", "hot",
                "toast_dead")
        return dict(zip(keys, (int(v) for v in row), strict=True))

    def stats_after(self, before: dict[str, int], updates: int) -> dict[str, int]:
        """The statistics once the server counted ``updates`` more updated rows (a backend
        reports when its connection closes; waits at most ``STATS_WAIT``)."""
        deadline = time.monotonic() + STATS_WAIT
        while True:
            now = self.stats()
            if now["updated"] - before["updated"] >= updates or time.monotonic() > deadline:
                return now
            time.sleep(0.05)

    def wal_lsn(self) -> str:
        row = self.conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()
        assert row is not None
        return str(row[0])

    def wal_since(self, lsn: str) -> int:
        """Bytes of WAL written since ``lsn``."""
        row = self.conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s::pg_lsn)",
                                (lsn,)).fetchone()
        assert row is not None
        return int(row[0])

    def full_page_writes(self, on: bool) -> None:
        """Turn ``full_page_writes`` on (as in production) or back to the bench's setting."""
        if on:
            self.conn.execute("ALTER SYSTEM SET full_page_writes = on")
        else:
            self.conn.execute("ALTER SYSTEM RESET full_page_writes")
        self.conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + STATS_WAIT
        while time.monotonic() < deadline:
            row = self.conn.execute("SHOW full_page_writes").fetchone()
            if row is not None and (row[0] == "on") == on:
                return
            time.sleep(0.05)
        raise RuntimeError("full_page_writes did not change")

    def setting(self, name: str) -> str:
        row = self.conn.execute(sql.SQL("SHOW {}").format(sql.Identifier(name))).fetchone()
        return str(row[0]) if row else "?"

    def server_version(self) -> str:
        row = self.conn.execute("SHOW server_version").fetchone()
        return str(row[0]) if row else "?"

    def close(self) -> None:
        try:
            self.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(self.ident))
        finally:
            self.conn.close()


# ---- the candidates

@dataclass(frozen=True)
class Result:
    """One run: wall-clock and this process's CPU seconds, and the row updates the server
    counts for it."""

    seconds: float
    cpu: float
    updates: int


def run_ours(db: Database, count: int, profile: cProfile.Profile | None = None
             ) -> Result:
    """``TableTarget.rewrap_batched`` with a ring of B (primary) and A."""
    ring = db.table.ring
    source = PostgresSource(db.dsn, table=db.table.table, keys=ring)
    try:
        source.mark_row()  # connected before the clock starts
        target = TableTarget(source, batch=BATCH)
        start, cpu = time.perf_counter(), time.process_time()
        if profile is not None:
            profile.enable()
        report = target.rewrap_batched(ring)
        if profile is not None:
            profile.disable()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        under = target.key_ids()  # not timed: every row's header now names B
        assert under == {ring.primary.id: count}, under
    finally:
        source.close()
    assert (report.rewrapped, report.failed, report.skipped, report.current) == (count, 0, 0, 0), \
        report
    batches = -(-count // BATCH)
    return Result(elapsed, cpu, count + batches + 1)  # the rows and the mark's upserts


class Statements:
    """The library's statements for the table, written out again (``vault/sources/postgres``)."""

    def __init__(self, table: str) -> None:
        ident = sql.Identifier(table)
        # the library's own page statement (its parameters: after, the mark's name, the row
        # limit, PAGE_BYTES); building a source does not connect
        self.page = PostgresSource("dbname=unused", table=table)._page
        self.replace = sql.SQL("UPDATE {} SET value = %s WHERE name = %s AND value = %s"
                               ).format(ident)
        self.select = sql.SQL("SELECT value FROM {} WHERE name = %s").format(ident)
        self.upsert = sql.SQL(
            "INSERT INTO {} AS cur (name, value, updated_at) VALUES (%s, %s, clock_timestamp()) "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value, updated_at = "
            "greatest(clock_timestamp(), cur.updated_at + interval '1 microsecond') "
            "RETURNING (extract(epoch from cur.updated_at) * 1000000)::bigint").format(ident)
        self.bulk_update = sql.SQL("UPDATE {} AS t SET value = s.value FROM bench_staging s "
                                   "WHERE t.name = s.name").format(ident)


def run_floor(db: Database, count: int) -> Result:
    """The same reads and compare-and-set writes as ours, no cryptography (the new value is
    the old bytes reversed): the library's own statements (``PostgresSource``'s page
    ``SELECT`` with binary results, ``replace_statement`` through a ``RawCursor``, one
    statement per batch with the mark), one after the other on one connection."""
    q = Statements(db.table.table)
    parts = tuple(db.table.table.split("."))
    mark = db.table.mark  # a sealed mark's size; the floor writes it as it is
    done = 0
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        conn.execute("SET plan_cache_mode = force_custom_plan")
        start, cpu = time.perf_counter(), time.process_time()
        conn.execute(q.select, (MARK_NAME,)).fetchone()
        raw = psycopg.RawCursor(conn)
        after = ""
        batches = 0
        while True:
            rows = conn.execute(q.page, (after, MARK_NAME, BATCH, PAGE_BYTES),
                                binary=True).fetchall()
            if not rows:
                break
            triples = [(name, value, value[::-1]) for name, value in rows]
            statement = replace_statement(parts, len(triples), True)
            with conn.transaction():
                done += len(raw.execute(statement, replace_parameters(triples, mark),
                                        binary=True).fetchall())
            batches += 1
            after = rows[-1][0]
        with conn.transaction():
            raw.execute(replace_statement(parts, 0, True), replace_parameters([], mark))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert done == count, (done, count)
    return Result(elapsed, cpu, count + batches + 1)


def run_floor_pipelined(db: Database, count: int) -> Result:
    """Context, no goal: the floor through the library's pipelined walk (the same loop as
    ours, the read-ahead included, with no cryptography): what pipelining alone gives a
    walk with nothing to overlap."""
    mark = db.table.mark
    done = 0
    source = PostgresSource(db.dsn, table=db.table.table)
    try:
        start, cpu = time.perf_counter(), time.process_time()
        source.mark_row()
        with source.walk() as walk:
            rows = walk.page("", BATCH)
            ahead = walk.page(rows[-1][0], BATCH) if rows else []
            flying = False
            while rows:
                triples = [(name, value, value[::-1]) for name, value in rows]
                replaced, read = walk.collect()
                if flying:
                    done += len(replaced)
                    ahead = read
                walk.submit(triples, mark, ahead[-1][0] if ahead else None,
                            BATCH)
                flying, rows = True, ahead
            done += len(walk.collect()[0])
            walk.submit([], mark)
            walk.collect()
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        source.close()
    assert done == count, (done, count)
    batches = -(-count // BATCH)
    return Result(elapsed, cpu, count + batches + 1)


def run_floor_executemany(db: Database, count: int) -> Result:
    """Context, no goal: the floor with the statements of the first version (an
    ``executemany`` of single-row ``UPDATE ... WHERE name = %s AND value = %s`` and an upsert
    of the mark per batch, text results)."""
    q = Statements(db.table.table)
    mark = db.table.mark
    done = 0
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        start, cpu = time.perf_counter(), time.process_time()
        conn.execute(q.select, (MARK_NAME,)).fetchone()
        after = ""
        batches = 0
        while True:
            rows = conn.execute(q.page, (after, MARK_NAME, BATCH, PAGE_BYTES)).fetchall()
            if not rows:
                break
            with conn.transaction():
                cursor = conn.cursor()
                cursor.executemany(q.replace, [(value[::-1], name, value)
                                               for name, value in rows])
                done += max(0, cursor.rowcount)
                conn.execute(q.upsert, (MARK_NAME, mark))
            batches += 1
            after = rows[-1][0]
        with conn.transaction():
            conn.execute(q.upsert, (MARK_NAME, mark))
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert done == count, (done, count)
    return Result(elapsed, cpu, count + batches + 1)


def _copy_staging(conn: psycopg.Connection[Any], rows: list[tuple[str, bytes]]) -> None:
    with conn.cursor().copy("COPY bench_staging (name, value) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["text", "bytea"])
        for name, value in rows:
            copy.write_row((name, value[::-1]))


def run_bulk_whole(db: Database, count: int) -> Result:
    """The same page reads, every new value COPY-ed to a staging table, one UPDATE ... FROM
    for the whole table, all in one transaction."""
    q = Statements(db.table.table)
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        start, cpu = time.perf_counter(), time.process_time()
        with conn.transaction():
            conn.execute("CREATE TEMPORARY TABLE bench_staging (name text, value bytea) "
                         "ON COMMIT DROP")
            after = ""
            while True:
                rows = conn.execute(q.page, (after, MARK_NAME, BATCH, PAGE_BYTES)).fetchall()
                if not rows:
                    break
                _copy_staging(conn, rows)
                after = rows[-1][0]
            conn.execute("ANALYZE bench_staging")
            done = conn.execute(q.bulk_update).rowcount
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert done == count, (done, count)
    return Result(elapsed, cpu, count)


def run_bulk_batched(db: Database, count: int) -> Result:
    """The same with one COPY and one UPDATE ... FROM per page of 500 (a transaction each)."""
    q = Statements(db.table.table)
    done = 0
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        start, cpu = time.perf_counter(), time.process_time()
        conn.execute("CREATE TEMPORARY TABLE bench_staging (name text PRIMARY KEY, value bytea) "
                     "ON COMMIT DELETE ROWS")
        # The staging table has no statistics: without this the planner may scan the whole
        # table for each page (a hash join); with it, 500 index look-ups.
        conn.execute("SET enable_hashjoin = off")
        conn.execute("SET enable_mergejoin = off")
        after = ""
        while True:
            rows = conn.execute(q.page, (after, MARK_NAME, BATCH, PAGE_BYTES)).fetchall()
            if not rows:
                break
            with conn.transaction():
                _copy_staging(conn, rows)
                done += conn.execute(q.bulk_update).rowcount
            after = rows[-1][0]
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert done == count, (done, count)
    return Result(elapsed, cpu, count)


OURS, FLOOR = "ours (TableTarget.rewrap_batched)", "floor (same SQL, no crypto)"
FLOOR_MANY = "floor, first version's SQL (executemany)"
FLOOR_PIPED = "floor, pipelined like ours"
BULK, BULK_BATCHED = "bulk: COPY + one UPDATE FROM", "bulk: COPY + UPDATE FROM per 500"
CANDIDATES: dict[str, Callable[[Database, int], Result]] = {
    OURS: run_ours, FLOOR: run_floor, FLOOR_PIPED: run_floor_pipelined,
    FLOOR_MANY: run_floor_executemany, BULK: run_bulk_whole, BULK_BATCHED: run_bulk_batched}


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float
    before: dict[str, int]
    after: dict[str, int]
    wal: int  # bytes of WAL the server wrote during the run


def measure(db: Database, count: int, names: list[str], rounds: int, first: int = 0
            ) -> dict[str, list[Run]]:
    """Every candidate in ``names`` ``rounds`` times on a freshly seeded table of ``count``
    rows, the order rotating from round to round (starting at ``first``)."""
    runs: dict[str, list[Run]] = {name: [] for name in names}
    for r in range(rounds):
        shift = (first + r) % len(names)
        for name in names[shift:] + names[:shift]:
            db.seed(count)
            before, lsn = db.stats(), db.wal_lsn()
            result = CANDIDATES[name](db, count)
            wal = db.wal_since(lsn)
            runs[name].append(Run(result.seconds, result.cpu, before,
                                  db.stats_after(before, result.updates), wal))
    return runs


def crypto_alone(table: Table, count: int) -> float:
    """Seconds per row of the rewrap's cryptography (open, seal under B, open again) alone."""
    target = TableTarget(SimpleNamespace(sealed=RowSeal(table.ring, table.table,
                                                        migrating=False)))
    rows = table.rows[:count]
    start = time.perf_counter()
    for name, stored in rows:
        target._reseal(name, stored, table.ring)
    return (time.perf_counter() - start) / len(rows)


def _mb(size: int) -> str:
    return f"{size / 1e6:,.1f} MB"


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} rows/s"


def bloat_line(name: str, run: Run) -> str:
    b, a = run.before, run.after
    return (f"  {name:<36} total {_mb(b['total'])} -> {_mb(a['total'])} "
            f"({a['total'] / b['total']:.2f}x; heap {_mb(b['heap'])} -> {_mb(a['heap'])}, "
            f"toast {_mb(b['toast'])} -> {_mb(a['toast'])}, indexes {_mb(b['indexes'])} -> "
            f"{_mb(a['indexes'])}); n_dead_tup {a['dead']:,} (before {b['dead']:,}; "
            f"its TOAST table's {a['toast_dead']:,}), {a['updated'] - b['updated']:,} rows "
            f"updated, {a['hot'] - b['hot']:,} of them HOT")


def bench(server: PostgresServer, *, count: int, sizes: list[int], rounds: int,
          growth_rounds: int, table: str = TABLE, profile: bool = False, small: bool = False,
          out: Callable[[str], None] = print) -> None:
    """Every comparison on a running ``server``; ``sizes``: the growth's smaller sizes (the
    last point is ``count``); ``small``: every row of 200-800 bytes; lines go to ``out`` as
    they come."""
    started = time.monotonic()
    data = make_table(table, count, 0 if small else LARGE_PER_COMPANY)
    sealed_in = time.monotonic() - started
    db = Database(server, data)
    try:
        stored = data.stored_sizes(count)
        large = sum(1 for s in stored if s >= LARGE_SIZES[0])
        out(f"sealed primary rotation on PostgreSQL {db.server_version()} (throwaway cluster, "
            f"fsync off), {count:,} rows in batches of {BATCH}: {count - large:,} of "
            f"{SMALL_SIZES[0]}-{SMALL_SIZES[1]} B, {large:,} of {LARGE_SIZES[0] // 1024}-"
            f"{LARGE_SIZES[1] // 1024} KB; stored values {statistics.mean(stored):,.0f} B mean "
            f"(median {statistics.median(stored):,.0f} B), {_mb(sum(stored))} in all; "
            f"sealed under A in {sealed_in:.1f} s (not measured); server: "
            f"shared_buffers {db.setting('shared_buffers')}, max_wal_size "
            f"{db.setting('max_wal_size')}")
        names = list(CANDIDATES)
        main = measure(db, count, names, rounds)
        best = {name: min(r.seconds for r in runs) for name, runs in main.items()}
        med = {name: statistics.median(r.seconds for r in runs) for name, runs in main.items()}
        out(f"{rounds} round(s), each candidate on a freshly seeded table, the order rotating:")
        for name in names:
            cpu = statistics.median(r.cpu / r.seconds for r in main[name])
            out(f"  {name:<36} {rate(count, med[name]):>16} by median "
                f"({med[name]:.2f} s), {rate(count, best[name]):>16} best; this process "
                f"busy {cpu:.0%} of the time")
        per_row = crypto_alone(data, min(count, 20_000))
        out(f"  context: the cryptography alone (open, seal under B, open again; in memory): "
            f"{per_row * 1e6:.1f} us per row, {1 / per_row:,.0f} rows/s; the floor's "
            f"{med[FLOOR] / count * 1e6:.1f} us per row plus that is "
            f"{count / (med[FLOOR] + per_row * count):,.0f} rows/s")
        ratio, ratio_best = med[FLOOR] / med[OURS], best[FLOOR] / best[OURS]
        out(f"ours vs the floor, rows/s: {ratio:.2f}x by median, {ratio_best:.2f}x by best; "
            f"goal >= {GOAL_RATIO}x: {verdict(ratio, '>=', GOAL_RATIO)}")
        piped = med[FLOOR_PIPED] / med[OURS]
        out(f"ours vs the floor pipelined like ours (context): {piped:.2f}x by median (the "
            f"pipelined floor is {med[FLOOR] / med[FLOOR_PIPED]:.2f}x the floor's rows/s)")
        out(f"bulk context: whole-table COPY + UPDATE is {med[FLOOR] / med[BULK]:.2f}x the "
            f"floor's rows/s, per batch {med[FLOOR] / med[BULK_BATCHED]:.2f}x (no goal; no "
            "compare-and-set)")
        out("bloat after one rotation (first round; autovacuum off on the table):")
        for name in names:
            out(bloat_line(name, main[name][0]))
        out("WAL written by one rotation (median; full_page_writes off, the bench's setting):")
        table_mb = main[OURS][0].before["total"]
        for name in names:
            wal = statistics.median(r.wal for r in main[name])
            out(f"  {name:<36} {_mb(wal)} ({wal / count:,.0f} B per row, "
                f"{wal / table_mb:.2f}x the table's size before)")
        db.full_page_writes(True)
        try:
            db.seed(count)  # ends with a CHECKPOINT: every page's first change logs it whole
            lsn = db.wal_lsn()
            run_ours(db, count)
            wal = db.wal_since(lsn)
        finally:
            db.full_page_writes(False)
        out(f"  ours with full_page_writes on (production), right after a checkpoint: "
            f"{_mb(wal)} ({wal / count:,.0f} B per row, {wal / table_mb:.2f}x the table)")

        growth: dict[int, dict[str, list[float]]] = {}
        for i, size in enumerate(sizes):
            runs = measure(db, size, [OURS, FLOOR], growth_rounds, first=i)
            growth[size] = {n: [r.seconds for r in rs] for n, rs in runs.items()}
        growth[count] = {n: [r.seconds for r in main[n]] for n in (OURS, FLOOR)}
        out(f"growth: time per row by median ({growth_rounds} round(s) per smaller size, "
            f"{rounds} at {count:,})")
        for name in (OURS, FLOOR):
            per = {size: statistics.median(t[name]) / size for size, t in growth.items()}
            points = ", ".join(f"{size:,}: {p * 1e6:.1f} us" for size, p in per.items())
            spread = max(per.values()) / min(per.values())
            judged = f"goal <= {GOAL_LINEAR}x: {verdict(spread, '<=', GOAL_LINEAR)}" \
                if name == OURS else "context"
            out(f"  {name:<36} {points}; largest/smallest {spread:.2f}x ({judged})")
        # What our code adds, size by size: the server's own growth (a table outgrowing its
        # caches, checkpoints) is the floor's too.
        ratios = ", ".join(
            f"{size:,}: {statistics.median(t[OURS]) / statistics.median(t[FLOOR]):.2f}x"
            for size, t in growth.items())
        out(f"  ours / the floor, time per row (context): {ratios}")

        if profile:
            db.seed(count)
            prof = cProfile.Profile()
            seconds = run_ours(db, count, prof).seconds
            text = io.StringIO()
            pstats.Stats(prof, stream=text).sort_stats("tottime").print_stats(18)
            out(f"cProfile of ours ({count:,} rows, {seconds:.2f} s under the profiler), by "
                "own time:")
            for row in text.getvalue().splitlines():
                if row.strip() and not row.startswith(("   Ordered", "   List")):
                    out("  " + row.rstrip())
    finally:
        db.close()


def main(argv: list[str] | None = None) -> None:
    """Start a throwaway PostgreSQL cluster, measure, print, remove everything."""
    from bench.bench_cache import start_server

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="3,000 rows, one round")
    size.add_argument("--full", action="store_true", help="1,000,000 rows")
    parser.add_argument("--profile", action="store_true",
                        help="one more run of ours under cProfile")
    parser.add_argument("--small", action="store_true",
                        help="every row of 200-800 bytes (no large rows, nothing in TOAST)")
    parser.add_argument("--sized", action="store_true",
                        help="a server sized for the table: shared_buffers 3 GB, "
                             "max_wal_size 8 GB (the defaults otherwise)")
    args = parser.parse_args(argv)
    if args.quick:
        plan: dict[str, Any] = {"count": 3_000, "sizes": [1_000], "rounds": 1,
                                "growth_rounds": 1}
    elif args.full:
        plan = {"count": 1_000_000, "sizes": [10_000, 30_000, 100_000, 300_000], "rounds": 1,
                "growth_rounds": 2}
    else:
        plan = {"count": 100_000, "sizes": [10_000, 30_000], "rounds": 3, "growth_rounds": 3}
    server = start_server()
    try:
        if args.sized:
            with server.connect(dbname="postgres") as conn:
                conn.execute("ALTER SYSTEM SET shared_buffers = '3GB'")
                conn.execute("ALTER SYSTEM SET max_wal_size = '8GB'")
            server.restart()
        bench(server, **plan, profile=args.profile, small=args.small,
              out=lambda s: print(s, flush=True))
    finally:
        server.destroy()  # stops the cluster and removes its directory


if __name__ == "__main__":
    main()
