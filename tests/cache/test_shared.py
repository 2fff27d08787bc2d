"""The fallback cache with a shared tier (a fleet), on the in-memory tier and source.

The same behaviour against a real redis-server is in tests/cache/test_redis.py; here each
"host" is a cache with its own vault directory, all on one MemorySource and one MemoryTier.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import vault
from tests.hygiene import CANARY_VALUE
from vault._store.entries import name_stem
from vault._store.stamp import unstamp
from vault._store.store import entries_of
from vault.cache import CacheEvent, FallbackCache
from vault.cache._shared import RECORD_PREFIX_SIZE, pack_record, record_version
from vault.errors import ConfigurationError, SourceUnavailableError
from vault.testing import MemorySource
from vault.testing._tier import MemoryTier

CRED = {"token": CANARY_VALUE, "noiseKey": os.urandom(32)}

Host = Callable[..., FallbackCache]


@pytest.fixture
def source() -> MemorySource:
    return MemorySource({"c1": CRED})


@pytest.fixture
def tier() -> MemoryTier:
    return MemoryTier()


@pytest.fixture
def events() -> list[CacheEvent]:
    return []


@pytest.fixture
def host(make_vault: Callable[..., vault.Vault], source: MemorySource, tier: MemoryTier,
         events: list[CacheEvent]) -> Host:
    """A factory of hosts: a cache on its own directory, the shared source and tier."""
    def make(directory: str, **kwargs: Any) -> FallbackCache:
        kwargs.setdefault("shared", tier)
        kwargs.setdefault("on_event", events.append)
        return FallbackCache(source, make_vault(directory), **kwargs)
    return make


def shared_version(tier: MemoryTier, name: str) -> int | None:
    raw = tier.raw().get(name_stem(name))
    return None if raw is None else record_version(raw)


def kinds(events: list[CacheEvent]) -> list[str]:
    return [event.kind for event in events]


def test_a_source_without_versions_is_refused(make_vault: Callable[..., vault.Vault],
                                              tier: MemoryTier) -> None:
    class Plain:
        def load(self, name: str) -> Any:
            return None

        def save(self, name: str, value: Any) -> None:
            pass

        def delete(self, name: str) -> None:
            pass

    with pytest.raises(ConfigurationError, match="versions"):
        FallbackCache(Plain(), make_vault(), shared=tier)


def test_a_healthy_get_writes_through_to_both_tiers(host: Host, tier: MemoryTier,
                                                    source: MemorySource) -> None:
    a = host("a")
    assert a.fetch("c1").origin == "source"
    _, version = source.load_versioned("c1")
    raw = tier.raw()[name_stem("c1")]
    assert record_version(raw) == version
    # The record's envelope is the local file's format, sealed and stamped with the version.
    _, plaintext = entries_of(a.vault).open_envelope(raw[RECORD_PREFIX_SIZE:], kind=1, name="c1")
    assert unstamp(plaintext).version == version
    assert CANARY_VALUE.encode() not in raw
    assert a.vault.get("c1") == CRED  # the local copy reads as before


def test_a_new_host_serves_from_the_shared_tier_during_an_outage(
        host: Host, source: MemorySource, tier: MemoryTier, events: list[CacheEvent]) -> None:
    host("a").get("c1")
    source.fail_with()
    fresh = host("fresh")  # an empty directory
    fetched = fresh.fetch("c1")
    assert (fetched.value, fetched.origin) == (CRED, "shared")
    assert fresh.degraded and "degraded" in kinds(events)
    # The shared copy is now the new host's local copy (written just after the answer):
    # with Redis down too, it still serves.
    assert fresh.wait_for_copies()
    tier.fail_with()
    again = fresh.fetch("c1")
    assert (again.value, again.origin) == (CRED, "cache")
    assert "shared_unavailable" in kinds(events)


def test_outage_saves_reach_other_hosts_and_the_source_later(
        host: Host, source: MemorySource, tier: MemoryTier) -> None:
    a, b = host("a"), host("b")
    a.get("c1"), b.get("c1")
    source.fail_with()
    result = a.save("c1", {"token": "v2"})
    assert result.journaled
    # B's local copy is older than A's shared one: B serves A's, and keeps it.
    assert b.fetch("c1").value == {"token": "v2"}
    assert b.wait_for_copies()
    assert b.fetch("c1").origin == "cache"
    source.recover()
    assert a.get("c1") == {"token": "v2"}  # replayed, then read back
    assert source.snapshot()["c1"] == {"token": "v2"}
    _, version = source.load_versioned("c1")
    assert shared_version(tier, "c1") == version


def test_deletes_leave_tombstones_other_hosts_honour(host: Host, source: MemorySource,
                                                     tier: MemoryTier) -> None:
    a, b = host("a"), host("b")
    a.get("c1"), b.get("c1")
    a.delete("c1")
    source.fail_with()
    fetched = b.fetch("c1")
    assert (fetched.value, fetched.origin) == (None, "shared")
    assert b.wait_for_copies()
    assert not Path(entries_of(b.vault).path("c1")).exists()  # the tombstone was adopted
    # A delete during the outage is shared too.
    source.recover()
    a.save("c2", {"x": 1}), b.get("c2")
    source.fail_with()
    assert a.delete("c2").journaled
    assert b.get("c2") is None


def test_a_shared_copy_never_goes_back_in_version(host: Host, source: MemorySource,
                                                  tier: MemoryTier) -> None:
    a, b = host("a", shared_refresh=0), host("b")
    a.get("c1")
    old = shared_version(tier, "c1")
    b.save("c1", {"token": "v2"})
    new = shared_version(tier, "c1")
    assert old is not None and new is not None and new > old
    # A writes its older copy again (its refresh is due at every get): refused by version.
    copies = a._copies
    assert copies is not None
    written = a._seal_shared("c1", old, CRED)
    assert written is not None
    copies.write_value("c1", old, *written)
    assert shared_version(tier, "c1") == new
    source.fail_with()
    assert a.get("c1") == {"token": "v2"}  # the newer shared copy beats A's local one


def test_a_host_never_serves_a_copy_older_than_one_it_has_seen(
        host: Host, source: MemorySource, tier: MemoryTier) -> None:
    a = host("a")
    a.get("c1")
    path = Path(entries_of(a.vault).path("c1"))
    older = path.read_bytes()
    a.save("c1", {"token": "v2"})
    path.write_bytes(older)  # the local copy rolled back (a restored backup, say)
    tier.clear()
    source.fail_with()
    with pytest.raises(SourceUnavailableError, match="older"):
        a.get("c1")


@pytest.mark.parametrize("forge", ["garbage", "tampered", "versions"])
def test_forged_records_are_removed_and_never_served(host: Host, source: MemorySource,
                                                     tier: MemoryTier,
                                                     events: list[CacheEvent],
                                                     forge: str) -> None:
    a = host("a")
    a.get("c1")
    stem = name_stem("c1")
    raw = tier.raw()[stem]
    if forge == "garbage":
        planted = b"CSR1" + b"9" * 41 + b"not an envelope"
    elif forge == "tampered":
        planted = raw[:-1] + bytes([raw[-1] ^ 1])
    else:  # a bigger clear version than the one sealed inside
        planted = pack_record(10**19, raw[RECORD_PREFIX_SIZE:])
    tier.plant(stem, planted, 2**62)
    source.fail_with()
    fresh = host("fresh")
    with pytest.raises(SourceUnavailableError):
        fresh.get("c1")
    assert "shared_rejected" in kinds(events)
    assert stem not in tier.raw()  # compare-and-delete removed it


def test_a_planted_record_cannot_block_writes(host: Host, tier: MemoryTier,
                                              source: MemorySource) -> None:
    stem = name_stem("c1")
    tier.plant(stem, b"CSR1" + b"~" * 41 + b"blocks every clear version", 2**62)
    host("a").get("c1")
    _, version = source.load_versioned("c1")
    assert shared_version(tier, "c1") == version


def test_a_record_under_an_unknown_key_is_skipped_not_removed(
        host: Host, source: MemorySource, tier: MemoryTier, events: list[CacheEvent],
        tmp_path: Path) -> None:
    host("a").get("c1")
    raw = tier.raw()[name_stem("c1")]
    source.fail_with()
    other = FallbackCache(source, vault.Vault(tmp_path / "other",
                                              keys=vault.KeyRing([vault.Key.generate()])),
                          shared=tier, on_event=events.append)
    with pytest.raises(SourceUnavailableError):
        other.get("c1")
    assert "shared_skipped" in kinds(events)
    assert tier.raw()[name_stem("c1")] == raw


def test_a_failing_shared_tier_never_fails_a_call(host: Host, tier: MemoryTier,
                                                  events: list[CacheEvent]) -> None:
    a = host("a")
    tier.fail_with()
    assert a.get("c1") == CRED
    assert a.save("c9", {"n": 1}).journaled is False
    assert "shared_unavailable" in kinds(events)
    tier.recover()
    a.save("c9", {"n": 2})
    assert "shared_recovered" in kinds(events)
    assert shared_version(tier, "c9") is not None


def test_a_tier_that_lost_its_data_is_filled_again(host: Host, tier: MemoryTier) -> None:
    a = host("a", shared_refresh=0)
    a.get("c1")
    tier.clear()
    a.get("c1")
    assert name_stem("c1") in tier.raw()
    lazy = host("lazy")  # the default refresh: a version it wrote is not written again soon
    lazy.get("c1")
    tier.clear()
    lazy.get("c1")
    assert name_stem("c1") not in tier.raw()


def test_prefetch_warms_a_new_host_in_one_round_trip(host: Host, source: MemorySource,
                                                     tier: MemoryTier) -> None:
    a = host("a")
    names = [f"company-{i}" for i in range(20)]
    for i, name in enumerate(names):
        a.save(name, {"i": i})
    source.fail_with()
    fresh = host("fresh")
    tier.calls.clear()
    report = fresh.prefetch([*names, "missing"])
    assert (report.asked, report.found, report.copied, report.shared_answered) == \
        (21, 20, 20, True)
    assert [op for op, _ in tier.calls if op != "put_report"] == ["mget"]  # one round trip
    tier.fail_with()
    assert [fresh.get(name) for name in names] == [{"i": i} for i in range(20)]
    assert fresh.prefetch(names).shared_answered is False


def test_prefetch_keeps_newer_local_copies(host: Host, source: MemorySource,
                                           tier: MemoryTier) -> None:
    a = host("a")
    a.get("c1")
    tier.clear()
    b = host("b")
    b.save("c1", {"token": "newer"})
    # the tier now holds B's newer copy; A's is older: copied. B's own: kept.
    assert a.prefetch(["c1"]).copied == 1
    assert b.prefetch(["c1"]).copied == 0
    shutil.rmtree(a.vault.directory / "quarantine", ignore_errors=True)


def test_the_shared_rewrap_target(host: Host, source: MemorySource, tier: MemoryTier,
                                  ring: vault.KeyRing) -> None:
    """Rewrap keeps name, times and stamp; a record written meanwhile is not overwritten; a
    forged one is removed; one under a key the ring lacks fails and stays."""
    from vault._crypto import format as fmt
    from vault._store.rewrap import PendingWrite, rewrap
    from vault.cache import shared_target

    a = host("a")
    for name in ("c1", "c2", "c3"):
        a.save(name, {"n": name})
    target = shared_target(tier, a.vault)
    assert target.key_ids() == {ring.primary.id: 3}
    new_ring = ring.with_primary(vault.Key.generate())
    before = {stem: fmt.parse(raw[RECORD_PREFIX_SIZE:])[0] for stem, raw in tier.raw().items()}

    # c1 is rewritten by a host between the prepare and the write: skipped, not overwritten.
    pending = target.prepare(name_stem("c1"), new_ring)
    assert isinstance(pending, PendingWrite)
    a.save("c1", {"n": "newer"})
    assert pending.commit() == ("skipped", None)
    tier.plant(name_stem("c4"), b"CSR1" + b"0" * 41 + b"forged", 2**62)
    report = rewrap(target, new_ring)
    assert (report.rewrapped, report.current, report.skipped) == (3, 0, 1)  # c1..c3; c4
    assert name_stem("c4") not in tier.raw()
    for stem, raw in tier.raw().items():
        header = fmt.parse(raw[RECORD_PREFIX_SIZE:])[0]
        assert header.key_id.hex() == new_ring.primary.id
        if header.name != "c1":
            assert (header.created_at, header.expires_at) == \
                (before[stem].created_at, before[stem].expires_at)
    source.fail_with()
    b = FallbackCache(source, vault.Vault(a.vault.directory.parent / "b", keys=new_ring),
                      shared=tier)
    assert [b.get(name) for name in ("c1", "c2", "c3")] == \
        [{"n": "newer"}, {"n": "c2"}, {"n": "c3"}]
    assert target.sealed_under(ring.primary.id) == []
    lacking = vault.KeyRing([vault.Key.generate()])
    failed = rewrap(target, lacking)
    assert failed.failed == 3 and len(tier.raw()) == 3


def test_hosts_publish_usage_reports_that_retire_asks(
        host: Host, source: MemorySource, tier: MemoryTier, ring: vault.KeyRing,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from vault import _clock
    from vault._store.rewrap import rewrap
    from vault.cache import shared_target
    from vault.cache._shared import publish_report
    from vault.errors import KeyInUseError
    from vault.ops import check_unused

    a = host("a", report_interval=0)
    a.get("c1")
    source.fail_with()
    a.save("c1", {"n": 2})  # a journal record under the old key too
    source.recover()
    target = shared_target(tier, a.vault)
    reports, bad = target.reports()
    assert bad == 0 and len(reports) == 1
    report = reports[0]
    assert report.recent and report.directory == os.path.realpath(a.vault.directory)
    assert report.journal == {ring.primary.id: 1}
    assert report.entries == {ring.primary.id: 1}

    new_ring = ring.with_primary(vault.Key.generate())
    operator = vault.Vault(a.vault.directory.parent / "operator", keys=new_ring)
    op_target = shared_target(tier, operator)
    rewrap(op_target, new_ring)
    with pytest.raises(KeyInUseError, match=f"host {report.host_id}.*reported 1 entries, "
                                            "1 journal records"):
        check_unused(operator, ring.primary.id, extra_targets=[op_target])

    # A planted report is not believed (nor does it block); a stale one still refuses.
    tier.plant_report("f" * 32, b"forged")
    assert shared_target(tier, operator).reports()[1] == 1
    real_now = _clock.now_ms
    monkeypatch.setattr(_clock, "now_ms", lambda: real_now() - 3_600_000)
    publish_report(tier, entries_of(a.vault), a.journal.key_ids())  # an hour ago
    monkeypatch.setattr(_clock, "now_ms", real_now)
    with pytest.raises(KeyInUseError, match="has not reported since"):
        check_unused(operator, ring.primary.id, extra_targets=[op_target])

    # The host moves to the new ring and its copies and journal follow: nothing refuses.
    b = FallbackCache(source, vault.Vault(a.vault.directory, keys=new_ring), shared=tier,
                      report_interval=0)
    rewrap(entries_of(b.vault), new_ring)
    b.get("c1")  # replays the journal, then reports
    assert [r.uses(ring.primary.id) for r in op_target.reports()[0]] == [False]
    check_unused(operator, ring.primary.id, extra_targets=[op_target])
    assert op_target.forget_host(report.host_id) and op_target.reports()[0] == []


def test_the_async_cache_with_a_shared_tier(make_vault: Callable[..., vault.Vault],
                                            tier: MemoryTier) -> None:
    """The same fleet behaviour through AsyncFallbackCache (tier calls in worker threads)."""
    import asyncio

    from vault.cache import AsyncFallbackCache
    from vault.testing import AsyncMemorySource

    source = AsyncMemorySource({"c1": CRED})

    async def main() -> None:
        a = AsyncFallbackCache(source, make_vault("a"), shared=tier, report_interval=0)
        assert (await a.fetch("c1")).origin == "source"
        source.fail_with()
        fresh = AsyncFallbackCache(source, make_vault("fresh"), shared=tier)
        fetched = await fresh.fetch("c1")
        assert (fetched.value, fetched.origin) == (CRED, "shared")
        assert (await a.save("c1", {"token": "v2"})).journaled
        assert await fresh.get("c1") == {"token": "v2"}
        assert (await a.delete("c1")).journaled
        assert await fresh.get("c1") is None
        report = await AsyncFallbackCache(source, make_vault("third"),
                                          shared=tier).prefetch(["c1"])
        assert (report.found, report.copied) == (1, 1)
        source.recover()
        assert await a.replay() == 2  # the save, then the delete
        assert "c1" not in source.snapshot()
        assert target_reports(tier, a.vault) == 3  # a, fresh and third reported

    def target_reports(tier: MemoryTier, v: vault.Vault) -> int:
        from vault.cache import shared_target

        return len(shared_target(tier, v).reports()[0])

    asyncio.run(main())
    with pytest.raises(ConfigurationError, match="versions"):
        class Plain:
            async def load(self, name: str) -> Any:
                return None

            async def save(self, name: str, value: Any) -> None:
                pass

            async def delete(self, name: str) -> None:
                pass
        AsyncFallbackCache(Plain(), make_vault("plain"), shared=tier)


# ---- ordering across hosts and clocks (review of the fleet change)

def test_a_missing_name_publishes_no_tombstone(host: Host, source: MemorySource,
                                               tier: MemoryTier) -> None:
    """A healthy read of an absent name must not outrank a create committing meanwhile: it
    writes nothing to the tier, and removes only value copies dated well before it."""
    from vault.cache._core import ABSENT_MARGIN_US

    a, b = host("a"), host("b")
    assert a.get("nobody") is None
    assert tier.raw() == {} or name_stem("nobody") not in tier.raw()
    # A create that committed after A's read started: its record is younger than the margin.
    b.save("fresh", {"n": 1})
    source.delete("fresh")  # gone from the source behind the caches' back, but just now
    assert a.get("fresh") is None
    assert name_stem("fresh") in tier.raw()  # younger than the margin: kept
    # An old copy of a name deleted behind the cache's back is removed by the next read.
    b.save("old", {"n": 1})
    record = tier.raw()[name_stem("old")]
    envelope = record[RECORD_PREFIX_SIZE:]
    stale = pack_record(source.load_versioned("old")[1] - 2 * ABSENT_MARGIN_US, envelope)
    tier.plant(name_stem("old"), stale, 2**62)
    source.delete("old")
    a.get("old")
    assert name_stem("old") not in tier.raw()  # older than the margin: removed


def test_a_conflicted_outage_write_loses_to_the_source(host: Host, source: MemorySource,
                                                       tier: MemoryTier) -> None:
    """An outage save the journal sets aside as a conflict must not keep winning in Redis
    over the value the source kept (it is provisional, based on an older version)."""
    b = host("b")
    b.save("c9", {"pw": "current"})
    tier.clear()  # the record is lost (a restart)
    source.fail_with()
    a = host("a")  # never saw c9: its save's base is unknown, a conflict on replay
    assert a.save("c9", {"pw": "outage-write"}).journaled
    source.recover()
    a.replay()
    assert a.pending.conflicts == 1
    b2 = host("b")  # B restarted
    assert b2.get("c9") == {"pw": "current"}  # the source's value, written through to Redis
    source.fail_with()
    assert host("c").get("c9") == {"pw": "current"}


def test_a_host_clock_ahead_of_the_database_does_not_win(host: Host, source: MemorySource,
                                                          tier: MemoryTier,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    from vault.cache import _core

    a, b = host("a"), host("b")
    a.get("c1"), b.get("c1")
    real = _core.now_us
    monkeypatch.setattr(_core, "now_us", lambda: real() + 30_000_000)  # A's clock: +30 s
    source.fail_with()
    assert a.save("c1", {"n": "outage"}).journaled
    source.recover()
    a.replay()
    monkeypatch.setattr(_core, "now_us", real)
    b.save("c1", {"n": "later"})  # a newer source version than the replayed one
    source.fail_with()
    assert host("fresh").get("c1") == {"n": "later"}
    assert b.get("c1") == {"n": "later"}


def test_adopting_never_replaces_a_newer_local_copy(host: Host, source: MemorySource,
                                                    tier: MemoryTier) -> None:
    a = host("a")
    a.get("c1")
    older = tier.raw()[name_stem("c1")]
    source.fail_with()
    assert a.save("c1", {"n": "newer, journaled"}).journaled  # local: provisional, newer
    tier.plant(name_stem("c1"), older, 2**62)  # Redis rolled back to the older copy
    copy = a._copies.open("c1", name_stem("c1"), older, _clock_now())  # type: ignore[union-attr]
    assert copy is not None
    a._adopt("c1", copy)
    assert a.get("c1") == {"n": "newer, journaled"}


def _clock_now() -> int:
    from vault import _clock

    return _clock.now_ms()


def test_the_shared_rewrap_reads_a_batch_at_a_time(host: Host, tier: MemoryTier,
                                                   ring: vault.KeyRing) -> None:
    """rotate's path (rewrap_batched): one MGET per batch, every record moved, a rerun has
    nothing to do (resumable)."""
    from vault.cache import shared_target

    a = host("a", report_interval=None)
    for i in range(25):
        a.save(f"n{i}", {"i": i})
    target = shared_target(tier, a.vault)
    target.batch = 10
    new_ring = ring.with_primary(vault.Key.generate())
    tier.calls.clear()
    report = target.rewrap_batched(new_ring)
    assert (report.rewrapped, report.failed, report.by_key) == (25, 0, {ring.primary.id: 25})
    assert [op for op, _ in tier.calls].count("mget") == 3
    assert target.rewrap_batched(new_ring).current == 25
