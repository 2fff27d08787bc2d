"""Tests of compare-and-set replay: a journaled write applies only over the value it was based
on, so an old or replanted record never overwrites a newer value in the primary source."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from tests.helpers.backends import FakeClock
from vault._store.journal import Journal
from vault._store.state import StateFile
from vault._store.store import entries_of
from vault.cache import JOURNAL_CONFLICT, CacheEvent, FallbackCache, Pending
from vault.sources import ABSENT, value_digest
from vault.sources.sqlite import SQLiteSource
from vault.testing import MemorySource


@pytest.fixture
def sqlite_source(tmp_path: Path) -> SQLiteSource:
    """An empty SQLite source (the embedded default) with its table."""
    path = tmp_path / "primary.db"
    path.touch()
    source = SQLiteSource(path)
    source.create_schema()
    return source


def _cache(source: object, v: vault.Vault, events: list[CacheEvent],
           clock: FakeClock) -> FallbackCache:
    return FallbackCache(source, v, on_event=events.append, clock=clock)  # type: ignore[arg-type]


def _recover(source: MemorySource, cache: FallbackCache, clock: FakeClock) -> None:
    source.recover()
    clock.advance(cache.breaker.reset_after)


def test_replanted_journal_record_never_rewrites_a_newer_value(
        make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    """A3 copies a record during an outage and puts it back long after recovery, when the
    operator has saved a newer value: the record is refused (applied already: at or below the
    sealed high-water mark) and quarantined, never applied; the primary and the cached copy
    keep the newer value."""
    source, clock, events = MemorySource(), FakeClock(), []
    v = make_vault()
    cache = _cache(source, v, events, clock)
    cache.save("c1", {"v": 0})
    source.fail_with()
    rid = cache.save("c1", {"v": 1}).record_id
    assert rid is not None
    stolen = tmp_path / "stolen.cvj"
    shutil.copy2(v.directory / "journal" / f"{rid}.cvj", stolen)
    _recover(source, cache, clock)
    assert cache.get("c1") == {"v": 1} and source.snapshot() == {"c1": {"v": 1}}
    cache.save("c1", {"v": 2})  # the operator's newer value
    shutil.copy2(stolen, v.directory / "journal" / f"{rid}.cvj")  # replanted
    assert cache.get("c1") == {"v": 2}
    assert source.snapshot() == {"c1": {"v": 2}} and v.get("c1") == {"v": 2}
    assert Journal(v).ids() == [] and Journal(v).conflict_ids() == []
    assert cache.pending == Pending(0, None, 0)
    refused = [e for e in events if e.kind == "quarantined" and "applied already" in e.message]
    assert len(refused) == 1 and list((v.directory / "quarantine").glob(f"*{rid}.cvj"))


def test_replanted_record_cannot_apply_twice_even_where_its_base_is_back(
        make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    """A-B-A: after a record applied, the primary is set back to the value it was based on;
    the replanted record would pass compare-and-set, but the high-water mark refuses it."""
    source, clock, events = MemorySource(), FakeClock(), []
    v = make_vault()
    cache = _cache(source, v, events, clock)
    cache.save("c1", "A")
    source.fail_with()
    rid = cache.save("c1", "B").record_id
    stolen = (v.directory / "journal" / f"{rid}.cvj").read_bytes()
    _recover(source, cache, clock)
    assert cache.get("c1") == "B"
    source.save("c1", "A")  # back to the record's base
    (v.directory / "journal" / f"{rid}.cvj").write_bytes(stolen)
    (v.directory / "journal" / f"{rid}.cvj").chmod(0o600)
    assert cache.get("c1") == "A" and source.snapshot() == {"c1": "A"}
    assert Journal(v).ids() == [] and cache.pending.conflicts == 0


def test_a_forged_vault_state_never_blocks_a_healthy_source(
        make_vault: Callable[..., vault.Vault]) -> None:
    """A keyless vault.state (the vault's sealed state) is not followed: pending records wait,
    an error event says why, and the healthy source is read all the same."""
    source, clock, events = MemorySource({"c1": "primary's"}), FakeClock(), []
    v = make_vault()
    cache = _cache(source, v, events, clock)
    cache.save("c0", "x")
    source.fail_with()
    cache.save("c0", "y")
    (v.directory / "vault.state").write_bytes(b"CVLT" + bytes(200))
    (v.directory / "vault.state").chmod(0o600)
    _recover(source, cache, clock)
    assert cache.fetch("c1").origin == "source"
    assert len(Journal(v).ids()) == 1
    assert any(e.kind == "journal_blocked" and "does not open" in e.message for e in events)


def test_a_write_based_on_an_unknown_value_is_a_conflict(
        make_vault: Callable[..., vault.Vault]) -> None:
    """A save during an outage of a name this host has no copy of is based on "unknown": it
    applies only if the primary already holds that value, else it is a conflict."""
    source, clock, events = MemorySource({"c1": "primary's"}), FakeClock(), []
    cache = _cache(source, make_vault(), events, clock)
    source.fail_with()
    cache.save("c1", "mine")
    cache.save("c2", "same")
    assert Journal(cache.vault).read(Journal(cache.vault).ids()[0]).base is None
    _recover(source, cache, clock)
    source.save("c2", "same")
    assert cache.get("c1") == "primary's"
    assert source.snapshot() == {"c1": "primary's", "c2": "same"}
    assert cache.pending.conflicts == 1 and cache.pending.count == 0


def test_replay_retried_after_a_crash_counts_as_applied(
        make_vault: Callable[..., vault.Vault]) -> None:
    """A record whose value the primary already holds (the process died after the write and
    before deleting the record) is applied again without a conflict."""
    source, clock, events = MemorySource(), FakeClock(), []
    cache = _cache(source, make_vault(), events, clock)
    cache.save("c1", {"v": 0})
    source.fail_with()
    cache.save("c1", {"v": 1})
    cache.delete("c1")
    _recover(source, cache, clock)
    source.save("c1", {"v": 1})  # the first record reached the source before a crash
    assert cache.get("c1") is None and source.snapshot() == {}
    assert cache.pending == Pending(0, None, 0)
    assert not [e for e in events if e.kind == JOURNAL_CONFLICT]


def test_two_hosts_journaling_one_name_end_with_one_write_and_one_conflict(
        make_vault: Callable[..., vault.Vault], sqlite_source: SQLiteSource) -> None:
    """Two hosts (two vault directories, one primary) save the same name during one outage:
    the first replay wins, the other host's record is a visible conflict, nothing is lost."""
    clock, events = FakeClock(), []
    host_a = _cache(sqlite_source, make_vault("a"), events, clock)
    host_b = _cache(sqlite_source, make_vault("b"), events, clock)
    host_a.save("c1", {"v": 0})
    assert host_b.get("c1") == {"v": 0}
    host_a.breaker.record_failure()
    host_a.breaker.record_failure()  # both hosts see the outage: their breakers open
    host_b.breaker.record_failure()
    host_b.breaker.record_failure()
    assert host_a.save("c1", {"v": "a"}).journaled and host_b.save("c1", {"v": "b"}).journaled
    clock.advance(host_a.breaker.reset_after)
    assert host_a.get("c1") == {"v": "a"} and host_b.get("c1") == {"v": "a"}
    assert sqlite_source.load("c1") == {"v": "a"}
    assert host_a.pending.conflicts == 0 and host_b.pending.conflicts == 1
    (rid,) = Journal(host_b.vault).conflict_ids()
    record = Journal(host_b.vault).read_conflict(rid)
    assert record.value == {"v": "b"} and record.base == value_digest({"v": 0})


def test_journaled_writes_chain_their_bases(make_vault: Callable[..., vault.Vault]) -> None:
    """Each journaled write is based on what get returned then: the copy, then the newest
    pending write (a delete: ABSENT); key order does not change a digest."""
    source, clock, events = MemorySource(), FakeClock(), []
    cache = _cache(source, make_vault(), events, clock)
    cache.save("c1", {"a": 1, "b": 2})
    source.fail_with()
    cache.save("c1", {"v": 1})
    cache.delete("c1")
    cache.save("c1", {"v": 2})
    journal = Journal(cache.vault)
    bases = [journal.read(rid).base for rid in journal.ids()]
    assert bases == [value_digest({"b": 2, "a": 1}), value_digest({"v": 1}), ABSENT]
    _recover(source, cache, clock)
    assert cache.get("c1") == {"v": 2} and cache.pending == Pending(0, None, 0)


def test_planted_record_name_cannot_hide_later_records(
        make_vault: Callable[..., vault.Vault]) -> None:
    """A keyless file named 99999999999999999999-1-00000000.cvj used to push every later id to
    21 digits, invisible to replay although save said journaled: now the sequence comes from
    records that open, the planted one is quarantined, and the acknowledged write lands."""
    source, clock, events = MemorySource(), FakeClock(), []
    v = make_vault()
    cache = _cache(source, v, events, clock)
    cache.save("c1", {"v": 0})
    source.fail_with()
    cache.save("c1", {"v": 1})
    planted = v.directory / "journal" / "99999999999999999999-1-00000000.cvj"
    planted.write_bytes(b"CVLT" + bytes(200))
    planted.chmod(0o600)
    result = cache.save("c1", {"v": 2})
    assert result.journaled and result.record_id in Journal(v).ids()
    assert len(result.record_id or "") < 40
    _recover(source, cache, clock)
    assert cache.get("c1") == {"v": 2} and source.snapshot() == {"c1": {"v": 2}}
    assert not planted.exists() and list((v.directory / "quarantine").glob("*.cvj"))


def test_a_symlink_as_record_or_state_blocks_nothing(
        make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    """A symlink planted as a journal record is quarantined (it used to make every call serve
    cached copies, the healthy source unread); a symlink as vault.state is not followed, and
    the source is read all the same; saves during an outage are still journaled."""
    source, clock, events = MemorySource({"c1": "primary's"}), FakeClock(), []
    v = make_vault()
    cache = _cache(source, v, events, clock)
    cache.save("c0", "x")
    (v.directory / "journal").mkdir(mode=0o700, exist_ok=True)
    (v.directory / "journal" / "01700000000000000000-1-00000000.cvj").symlink_to("/etc/hostname")
    assert cache.fetch("c1").origin == "source" and Journal(v).ids() == []
    (v.directory / "vault.state").unlink(missing_ok=True)
    (v.directory / "vault.state").symlink_to("/etc/hostname")
    source.fail_with()
    assert cache.save("c1", "mine").journaled
    _recover(source, cache, clock)
    assert cache.fetch("c1").origin == "source" and len(Journal(v).ids()) == 1


def test_a_record_waiting_for_its_key_is_not_passed_by_the_mark(tmp_path: Path) -> None:
    """A record waiting for a key (not deployed here yet) keeps the high-water mark below it,
    so when the key comes back it applies instead of being refused as applied already."""
    first, second = vault.Key.generate(), vault.Key.generate()
    directory = tmp_path / "v"
    source, clock, events = MemorySource({"a": 0, "b": 0}), FakeClock(), []
    both = vault.Vault(directory, keys=vault.KeyRing([first, second]))
    seed = _cache(source, both, events, clock)
    assert seed.get("a") == 0 and seed.get("b") == 0
    StateFile(entries_of(both)).named(second.id)  # published (env source): a known key
    source.fail_with()
    later_key = vault.Vault(directory, keys=vault.KeyRing([second, first]))
    assert _cache(source, later_key, events, clock).save("a", 1).journaled  # under second
    assert seed.save("b", 1).journaled  # under first, appended after it
    source.recover()
    only_first = _cache(source, vault.Vault(directory, keys=vault.KeyRing([first]),
                                            ), events, clock)
    assert only_first.get("b") == 1 and len(Journal(later_key).ids()) == 1  # "a" waits
    back = _cache(source, vault.Vault(directory, keys=vault.KeyRing([second, first])), events,
                  clock)
    assert back.get("a") == 1 and source.snapshot() == {"a": 1, "b": 1}


def test_a_row_the_codec_refuses_is_a_conflict_of_its_name_only(
        make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    """A primary row the stricter codec refuses (a duplicate key) makes that name's replayed
    write a conflict; other names and reads go on (it used to raise from every call)."""
    path = tmp_path / "primary.db"
    path.touch()
    source = SQLiteSource(path)
    source.create_schema()
    clock, events = FakeClock(), []
    cache = _cache(source, make_vault(), events, clock)
    cache.save("bad", {"v": 0})
    cache.save("good", {"v": 0})
    cache.breaker.record_failure()
    cache.breaker.record_failure()
    assert cache.save("bad", {"v": 1}).journaled and cache.save("good", {"v": 1}).journaled
    import sqlite3

    with sqlite3.connect(path) as raw:
        raw.execute("UPDATE credentials SET value = ? WHERE name = 'bad'", ('{"v":2,"v":3}',))
    clock.advance(cache.breaker.reset_after)
    assert cache.get("good") == {"v": 1} and cache.pending.conflicts == 1
    source.close()


def test_conflicts_are_rewrapped_and_block_retire(tmp_path: Path) -> None:
    """A conflict waits for an operator, maybe across a rotation: rotation reseals it under
    the new key, and retire refuses while it is sealed under the old one (an unsettled
    conflict used to become unreadable once its key was retired)."""
    from vault.keysources import PassphraseKeySource
    from vault.ops import retire, rotate

    directory = tmp_path / "v"
    source = PassphraseKeySource(directory, "pw", profile="test")
    source.create(vault.Key.generate())
    old = source.load().primary.id
    v = vault.Vault(directory, keys=source)
    primary, clock, events = MemorySource({"c1": "theirs"}), FakeClock(), []
    cache = _cache(primary, v, events, clock)
    primary.fail_with()
    cache.save("c1", "mine")  # no copy: based on an unknown value
    _recover(primary, cache, clock)
    assert cache.get("c1") == "theirs" and cache.pending.conflicts == 1
    new = vault.Key.generate()
    source.add(new)
    source.promote(new.id)
    v.rewrap()
    with pytest.raises(vault.KeyInUseError, match="1 journal records"):
        retire(v, source, old)
    result = rotate(v, source, rewrap_only=True)
    assert result.journal.rewrapped == 1
    retire(v, source, old)
    (rid,) = Journal(v).conflict_ids()
    assert Journal(v).read_conflict(rid).value == "mine"


def test_resolve_apply_never_applies_a_copy_planted_among_the_conflicts(
        make_vault: Callable[..., vault.Vault], tmp_path: Path) -> None:
    """A3 copies an old applied record into conflicts/: `journal resolve --apply` would have
    written that stale value over the primary. Only records the vault's replay set aside (a
    list in the sealed state) can be applied; the copy is quarantined."""
    from vault.ops import journal_report, resolve_conflicts

    source, clock, events = MemorySource(), FakeClock(), []
    v = make_vault()
    cache = _cache(source, v, events, clock)
    cache.save("c1", "old")
    source.fail_with()
    rid = cache.save("c1", "stale").record_id
    copy = (v.directory / "journal" / f"{rid}.cvj").read_bytes()
    _recover(source, cache, clock)
    assert cache.get("c1") == "stale"
    cache.save("c1", "current")
    (v.directory / "journal" / "conflicts").mkdir(mode=0o700, exist_ok=True)
    (v.directory / "journal" / "conflicts" / f"{rid}.cvj").write_bytes(copy)
    (v.directory / "journal" / "conflicts" / f"{rid}.cvj").chmod(0o600)
    assert [i.state for i in journal_report(v).items] == ["unreadable"]
    with pytest.raises(vault.EntryNotFoundError, match="no journal conflict"):
        resolve_conflicts(v, "c1", apply_to=source)
    assert source.snapshot() == {"c1": "current"} and Journal(v).conflict_ids() == []
