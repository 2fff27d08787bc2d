"""Rotation, retirement and migration of a sealed primary table (issue 14), on real SQLite
and PostgreSQL: keyset pages, one transaction per batch, compare-and-set updates, a cursor
that survives a crash."""

from __future__ import annotations

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


def key_ids(source: Any) -> dict[str, int]:
    return dict(TableTarget(source).key_ids())


def test_rotation_rewraps_every_row_and_keeps_newer_writes(make_source: Any) -> None:
    old = vault.KeyRing([vault.Key.generate()])
    source = make_source(keys=old)
    source.create_schema()
    for i, name in enumerate(NAMES):
        source.save(name, {"i": i})
    new = old.with_primary(vault.Key.generate())
    rotated = make_source(keys=new)
    target = TableTarget(rotated, batch=50)

    # A service writes a row between the pages of the walk: its value is kept.
    pages = 0
    real_replace = rotated.replace_rows

    def replace(rows: list[Any], mark: bytes | None = None) -> int:
        nonlocal pages
        pages += 1
        if pages == 2:
            source.save(NAMES[120], {"i": "written meanwhile"})  # on a later page
            source.save(NAMES[60], {"i": "written in this batch"})  # this page: CAS loses
        return real_replace(rows, mark)

    rotated.replace_rows = replace  # type: ignore[method-assign]
    report = target.rewrap_batched(new)
    rotated.replace_rows = real_replace  # type: ignore[method-assign]
    assert report.failed == 0 and report.rewrapped + report.skipped + report.current == 230
    assert report.skipped == 1  # the row written between read and write kept its value
    assert rotated.load(NAMES[60]) == {"i": "written in this batch"}
    assert rotated.load(NAMES[120]) == {"i": "written meanwhile"}
    assert [rotated.load(n) for n in NAMES[:3]] == [{"i": 0}, {"i": 1}, {"i": 2}]
    # The row kept by the CAS was written under the old key by the old-ring service (the
    # one written on a later page was read after it, and rewrapped): a second pass moves it;
    # then every row is under the new key and nothing holds the old one.
    assert target.rewrap_batched(new).rewrapped == 1
    assert key_ids(rotated) == {new.primary.id: 230}
    assert TableTarget(rotated).sealed_under(old.primary.id) == []


def test_a_crashed_rotation_resumes_after_its_last_batch(make_source: Any) -> None:
    old = vault.KeyRing([vault.Key.generate()])
    source = make_source(keys=old)
    source.create_schema()
    for i, name in enumerate(NAMES):
        source.save(name, {"i": i})
    new = old.with_primary(vault.Key.generate())
    crashing = make_source(keys=new)
    calls = 0
    real = crashing.replace_rows

    def replace(rows: list[Any], mark: bytes | None = None) -> int:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise KeyboardInterrupt  # killed before the third batch committed
        return real(rows, mark)

    crashing.replace_rows = replace  # type: ignore[method-assign]
    with pytest.raises(KeyboardInterrupt):
        TableTarget(crashing, batch=50).rewrap_batched(new)
    assert key_ids(crashing) == {new.primary.id: 100, old.primary.id: 130}
    # Every row opens at every moment (old and new key both in the ring).
    assert all(crashing.load(n) == {"i": i} for i, n in enumerate(NAMES))
    resumed = make_source(keys=new)
    seen: list[str] = []
    real2 = resumed.rows_after

    def rows_after(after: str, limit: int) -> list[Any]:
        seen.append(after)
        return real2(after, limit)

    resumed.rows_after = rows_after  # type: ignore[method-assign]
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
