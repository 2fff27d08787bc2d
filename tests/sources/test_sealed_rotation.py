"""Rotation, retirement and migration of a sealed primary table (issue 14), on real SQLite
and PostgreSQL: keyset pages, one transaction per batch, compare-and-set updates, a cursor
that survives a crash."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import vault
from tests.realparts import PostgresServer
from vault._crypto import format as fmt
from vault.errors import FormatError, KeyInUseError
from vault.ops import check_unused
from vault.sources._sealed import TableTarget
from vault.sources.postgres import PostgresSource
from vault.sources.sqlite import SQLiteSource

NAMES = [f"row-{i:04d}" for i in range(230)]


@pytest.fixture(params=["sqlite", "postgres"])
def make_source(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A factory of sources on one table: ``make_source(keys=..., migrating=...)``."""
    made: list[Any] = []
    if request.param == "sqlite":
        db = tmp_path / "app.db"

        def make(**kwargs: Any) -> Any:
            made.append(SQLiteSource(db, **kwargs))
            return made[-1]
    else:
        pg: PostgresServer = request.getfixturevalue("pg")
        table = pg.fresh_table_name("rot")

        def make(**kwargs: Any) -> Any:
            made.append(PostgresSource(pg.dsn, table=table, **kwargs))
            return made[-1]
    yield make
    for source in made:
        source.close()


def hook_walk(source: Any, *, submit: Any = None, page: Any = None) -> None:
    """Make ``source``'s walks call ``submit(rows, mark)`` before each batch is sent and
    ``page(after)`` before each page is read (the pipelined PostgreSQL walk and SQLite's)."""
    real_walk = source.walk

    def walk() -> Any:
        made = real_walk()
        real_submit, real_page = made.submit, made.page

        def hooked_submit(rows: list[Any], mark: bytes | None, *more: Any) -> None:
            if submit is not None:
                submit(rows, mark)
            real_submit(rows, mark, *more)

        def hooked_page(after: str, limit: int) -> list[Any]:
            if page is not None:
                page(after)
            return list(real_page(after, limit))

        made.submit, made.page = hooked_submit, hooked_page
        return made

    source.walk = walk


def seeded(make_source: Any) -> tuple[vault.KeyRing, Any, vault.KeyRing]:
    """A sealed table of NAMES ({"i": i}) under a ring A: (A, its source, the ring [B, A])."""
    old = vault.KeyRing([vault.Key.generate()])
    source = make_source(keys=old)
    source.create_schema()
    for i, name in enumerate(NAMES):
        source.save(name, {"i": i})
    return old, source, old.with_primary(vault.Key.generate())


def key_ids(source: Any) -> dict[str, int]:
    return dict(TableTarget(source).key_ids())


def test_rotation_rewraps_every_row_and_keeps_newer_writes(make_source: Any) -> None:
    old, source, new = seeded(make_source)
    rotated = make_source(keys=new)
    target = TableTarget(rotated, batch=50)

    # A service writes rows while the walk runs: their values are kept. (The walk reads
    # ahead: when the second batch is sent, the first three pages have been read.)
    pages = 0

    def replace(rows: list[Any], mark: bytes | None) -> None:
        nonlocal pages
        pages += 1
        if pages == 2:
            source.save(NAMES[170], {"i": "written meanwhile"})  # on a page not yet read
            source.save(NAMES[60], {"i": "written in this batch"})  # this page: CAS loses

    hook_walk(rotated, submit=replace)
    report = target.rewrap_batched(new)
    assert report.failed == 0 and report.rewrapped + report.skipped + report.current == 230
    assert report.skipped == 1  # the row written between read and write kept its value
    # by key, exactly: the rows replaced, the skipped one not counted
    assert report.by_key == {old.primary.id: report.rewrapped} and report.rewrapped == 229
    assert rotated.load(NAMES[60]) == {"i": "written in this batch"}
    assert rotated.load(NAMES[170]) == {"i": "written meanwhile"}
    assert [rotated.load(n) for n in NAMES[:3]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    # The row kept by the CAS was written under the old key by the old-ring service (the
    # one written on a later page was read after it, and rewrapped): a second pass moves it;
    # then every row is under the new key and nothing holds the old one.
    assert target.rewrap_batched(new).rewrapped == 1
    assert key_ids(rotated) == {new.primary.id: 230}
    assert TableTarget(rotated).sealed_under(old.primary.id) == []


def test_a_crashed_rotation_resumes_after_its_last_batch(make_source: Any) -> None:
    old, _source, new = seeded(make_source)
    crashing = make_source(keys=new)
    calls = 0

    def replace(rows: list[Any], mark: bytes | None) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt  # killed before the third batch was sent

    hook_walk(crashing, submit=replace)
    with pytest.raises(KeyboardInterrupt):
        TableTarget(crashing, batch=50).rewrap_batched(new)
    assert key_ids(crashing) == {new.primary.id: 100, old.primary.id: 130}
    # Every row opens at every moment (old and new key both in the ring).
    assert all(crashing.load(n) == {"i": i} for i, n in enumerate(NAMES))
    resumed = make_source(keys=new)
    seen: list[str] = []
    hook_walk(resumed, page=seen.append)
    report = TableTarget(resumed, batch=50).rewrap_batched(new)
    assert seen[0] == NAMES[99]  # started after the last committed batch
    assert report.rewrapped == 130 and key_ids(resumed) == {new.primary.id: 230}


def test_retire_asks_the_table(make_source: Any, tmp_path: Path) -> None:
    old = vault.KeyRing([vault.Key.generate()])
    source = make_source(keys=old)
    source.create_schema()
    source.save("a", 1)
    new = old.with_primary(vault.Key.generate())
    v = vault.Vault(tmp_path / "v", keys=new)
    target = TableTarget(make_source(keys=new))
    with pytest.raises(KeyInUseError, match="primary"):
        check_unused(v, old.primary.id, extra_targets=[target])
    target.rewrap_batched(new)
    check_unused(v, old.primary.id, extra_targets=[target])


def test_migrating_a_plaintext_table(make_source: Any) -> None:
    plain = make_source()
    plain.create_schema()
    for i, name in enumerate(NAMES[:120]):
        plain.save(name, {"i": i, "b": bytes([i])})
    ring = vault.KeyRing([vault.Key.generate()])
    migrating = make_source(keys=ring, migrating=True)
    assert key_ids(migrating) == {"plaintext": 120}  # the dry run's count
    report = TableTarget(migrating, batch=40).rewrap_batched(ring)
    assert report.rewrapped == 120 and report.failed == 0
    assert migrating.mark_sealed()
    assert key_ids(migrating) == {ring.primary.id: 120}
    sealed = make_source(keys=ring)
    assert [sealed.load(n) for n in NAMES[:3]] == [{"i": i, "b": bytes([i])} for i in range(3)]
    plain.save("late", {"i": "plaintext written by an old service"})
    with pytest.raises(FormatError, match="plaintext"):
        sealed.load("late")


def test_a_forged_row_fails_and_stays(make_source: Any) -> None:
    ring = vault.KeyRing([vault.Key.generate()])
    source = make_source(keys=ring)
    source.create_schema()
    source.save("a", 1)
    source.save("b", 2)
    # b's envelope copied under a: it does not open as a
    stored = dict(source.rows_after("", 10))
    source.replace_rows([("a", stored["a"], stored["b"])])
    new = ring.with_primary(vault.Key.generate())
    report = TableTarget(make_source(keys=new)).rewrap_batched(new)
    assert report.failed == 1 and report.failures[0][0] == "a"
    assert fmt.parse(bytes(dict(source.rows_after("", 10))["a"]))[0].key_id.hex() == \
        ring.primary.id


def test_progress_counts_up_to_the_rows_left(make_source: Any) -> None:
    _old, _source, new = seeded(make_source)
    calls: list[tuple[int, int]] = []
    report = TableTarget(make_source(keys=new), batch=100).rewrap_batched(
        new, progress=lambda done, total: calls.append((done, total)))
    # after each batch commits: the rows walked so far, of the 230 counted at the start
    assert calls == [(100, 230), (200, 230), (230, 230)]
    assert report.rewrapped == 230


def test_a_batch_larger_than_the_socket_buffer(pg: PostgresServer) -> None:
    """Batches of megabytes (12 KB rows, 300 a batch: about 7 MB of parameters), one of them
    sent while the walk's backend is frozen, all commit, and every row comes back intact."""
    table = pg.fresh_table_name("big")
    old = vault.KeyRing([vault.Key.generate()])
    values = {f"creds-{i:03d}": {"blob": bytes([i % 256]) * 9_000, "i": i} for i in range(650)}
    with PostgresSource(pg.dsn, table=table, keys=old) as source:
        source.create_schema()
        for name, value in values.items():
            source.save(name, value)
    new = old.with_primary(vault.Key.generate())
    with PostgresSource(pg.dsn, table=table, keys=new) as rotated:
        # The walk's backend frozen (SIGSTOP) for 0.3 s as the second batch goes out: its
        # socket fills, the send waits for it, then goes on.
        real_walk, frozen = rotated.walk, []

        def walk() -> Any:
            made = real_walk()
            real_submit = made.submit

            def submit(rows: list[Any], mark: bytes | None, *more: Any) -> None:
                if len(frozen) == 1:
                    pid = made._conn.pgconn.backend_pid
                    os.kill(pid, signal.SIGSTOP)
                    threading.Timer(0.3, os.kill, (pid, signal.SIGCONT)).start()
                frozen.append(len(rows))
                real_submit(rows, mark, *more)

            made.submit = submit
            return made

        rotated.walk = walk  # type: ignore[method-assign]
        report = TableTarget(rotated, batch=300).rewrap_batched(new)
        assert frozen == [300, 300, 50, 0]
        assert (report.rewrapped, report.skipped, report.failed) == (650, 0, 0)
        assert key_ids(rotated) == {new.primary.id: 650}
    with PostgresSource(pg.dsn, table=table, keys=vault.KeyRing([new.primary])) as fresh:
        assert all(fresh.load(name) == value for name, value in values.items())


def test_a_batch_the_server_refuses_stops_the_walk_and_resumes(pg: PostgresServer) -> None:
    """A batch that fails on the server (a trigger raises for one of its rows) raises; the
    batches before it are committed with their cursor, nothing of it is, and the next run
    starts after the last committed batch."""
    import psycopg

    table = pg.fresh_table_name("refused")
    old = vault.KeyRing([vault.Key.generate()])
    with PostgresSource(pg.dsn, table=table, keys=old) as source:
        source.create_schema()
        for i, name in enumerate(NAMES):
            source.save(name, {"i": i})
    with pg.connect() as conn:
        conn.execute(f"CREATE FUNCTION {table}_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN RAISE EXCEPTION 'refused by a trigger'; END $$")
        conn.execute(f"CREATE TRIGGER refuse BEFORE UPDATE ON {table} FOR EACH ROW "
                     f"WHEN (NEW.name = '{NAMES[120]}') EXECUTE FUNCTION {table}_refuse()")
    new = old.with_primary(vault.Key.generate())
    with PostgresSource(pg.dsn, table=table, keys=new) as rotated:
        with pytest.raises(psycopg.Error, match="refused by a trigger"):
            TableTarget(rotated, batch=50).rewrap_batched(new)
        assert key_ids(rotated) == {new.primary.id: 100, old.primary.id: 130}
        assert all(rotated.load(n) == {"i": i} for i, n in enumerate(NAMES))
        with pg.connect() as conn:
            conn.execute(f"DROP TRIGGER refuse ON {table}")
        seen: list[str] = []
        hook_walk(rotated, page=seen.append)
        report = TableTarget(rotated, batch=50).rewrap_batched(new)
        assert seen[0] == NAMES[99] and report.rewrapped == 130
        assert key_ids(rotated) == {new.primary.id: 230}


def test_a_table_target_needs_a_sync_source_and_a_sane_batch(tmp_path: Path) -> None:
    from vault.errors import ConfigurationError
    from vault.sources.postgres import AsyncPostgresSource

    ring = vault.KeyRing([vault.Key.generate()])
    async_source = AsyncPostgresSource("postgresql://127.0.0.1:9/none", keys=ring)
    with pytest.raises(ConfigurationError, match="sync source"):
        TableTarget(async_source)
    with SQLiteSource(tmp_path / "app.db", keys=ring) as source:
        for batch in (0, -1, 10_001, True):
            with pytest.raises(ConfigurationError, match="batch"):
                TableTarget(source, batch=batch)


def test_a_plaintext_row_planted_in_a_sealed_table_is_not_sealed(make_source: Any) -> None:
    """A rotation never turns a planted plaintext row into an authenticated one: on a table
    marked sealed it is a failure, left as it is (only a migration seals plaintext)."""
    ring = vault.KeyRing([vault.Key.generate()])
    source = make_source(keys=ring)
    source.create_schema()  # an empty sealed table: marked sealed
    source.save("a", 1)
    plain = make_source()
    plain.save("planted", {"i": "written by a writer of the table"})
    new = ring.with_primary(vault.Key.generate())
    for migrating in (False, True):
        rotated = make_source(keys=new, migrating=migrating)
        report = TableTarget(rotated).rewrap_batched(new)
        assert [name for name, _ in report.failures] == ["planted"]
        assert "plaintext" in report.failures[0][1]
    assert key_ids(source)["plaintext"] == 1


def test_pages_of_large_rows_are_cut_by_their_size(pg: PostgresServer) -> None:
    """A page holds at most about 8 MiB of stored values (one row at least), whatever the
    batch's row count: a batch's statement stays a few megabytes."""
    from vault.sources.postgres import PAGE_BYTES

    table = pg.fresh_table_name("large")
    old = vault.KeyRing([vault.Key.generate()])
    with PostgresSource(pg.dsn, table=table, keys=old) as source:
        source.create_schema()
        for i in range(60):
            source.save(f"blob-{i:02d}", {"b": os.urandom(300_000), "i": i})
    new = old.with_primary(vault.Key.generate())
    with PostgresSource(pg.dsn, table=table, keys=new) as rotated:
        sizes: list[int] = []
        hook_walk(rotated, submit=lambda rows, mark: sizes.append(len(rows)))
        report = TableTarget(rotated, batch=500).rewrap_batched(new)
        assert report.rewrapped == 60 and sum(sizes) == 60
        per_row = 300_000 * 4 // 3  # the codec's base64
        assert max(sizes) <= PAGE_BYTES // per_row + 1 and len(sizes) >= 3, sizes
        assert key_ids(rotated) == {new.primary.id: 60}


def test_a_count_that_does_not_fit_the_timeout_falls_back_to_the_estimate(
        pg: PostgresServer) -> None:
    import psycopg

    table = pg.fresh_table_name("count")
    ring = vault.KeyRing([vault.Key.generate()])
    with PostgresSource(pg.dsn, table=table, keys=ring, statement_timeout=0.5) as source:
        source.create_schema()
        for i, name in enumerate(NAMES):
            source.save(name, {"i": i})
        assert source.count_after("") == 230 and source.count_after(NAMES[99]) == 130
        with pg.connect() as admin:
            admin.execute(f"ANALYZE {table}")
        with psycopg.connect(pg.dsn) as locker:  # the count waits for this lock: cancelled
            locker.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
            estimate = source.count_after("")
            locker.rollback()
        assert 230 <= estimate <= 231  # the planner's estimate (the table mark included)
