"""Tests of vault.rewrap: the rewrap rule shared by entries and journal records."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import vault
from vault._crypto import format as fmt
from vault._store.entries import name_stem
from vault._store.rewrap import PendingWrite, RewrapReport, rewrap_all, rewrap_file
from vault._store.store import entries_of
from vault.errors import DecryptionError


@pytest.mark.parametrize(("workers", "batch"), [(1, 1), (4, 1), (4, 2), (8, 64)])
def test_rewrap_all_counts_in_order(workers: int, batch: int) -> None:
    """Outcomes are counted, progress is reported in order, failures carry their error type
    and never a value, whatever the number of workers."""
    outcomes = {"a": ("rewrapped", "k1"), "b": ("current", None), "c": ("skipped", None),
                "d": ("rewrapped", "k1"), "e": ("rewrapped", "k2")}
    seen: list[tuple[int, int]] = []

    def one(item: str, wait: bool) -> tuple[str, str | None]:
        if item == "f":
            raise DecryptionError("entry failed authentication")
        return outcomes[item]

    report = rewrap_all([*outcomes, "f"], one, lambda done, total: seen.append((done, total)),
                        workers=workers, batch=batch)
    assert (report.rewrapped, report.current, report.skipped, report.failed) == (3, 1, 1, 1)
    assert report.by_key == {"k1": 2, "k2": 1}
    assert report.failures == (("f", "DecryptionError: entry failed authentication"),)
    assert seen == [(i, 6) for i in range(1, 7)]


def test_rewrap_file_outcomes(make_vault: Callable[..., vault.Vault],
                              ring: vault.KeyRing) -> None:
    """A file under an old key is rewrapped, one under the primary is current, a missing one
    is skipped; the new file opens to the same plaintext with the same timestamps."""
    v = make_vault(ttl=3600)
    entries_of(v).put("x", {"v": 1}, 1_700_000_000_000)
    stem = name_stem("x")
    path = entries_of(v).path("x")
    new_ring = ring.with_primary(vault.Key.generate())
    before = fmt.parse(Path(path).read_bytes())[0]
    assert rewrap_file(path, stem, entries_of(v).lock("x"), new_ring, kind=fmt.KIND_ENTRY,
                       name="x") == ("rewrapped", ring.primary.id)
    after = fmt.parse(Path(path).read_bytes())[0]
    assert after.key_id.hex() == new_ring.primary.id
    assert (after.created_at, after.expires_at) == (before.created_at, before.expires_at)
    assert rewrap_file(path, stem, entries_of(v).lock("x"), new_ring, kind=fmt.KIND_ENTRY,
                       name="x") == ("current", None)
    v.delete("x")
    assert rewrap_file(path, stem, entries_of(v).lock("x"), new_ring, kind=fmt.KIND_ENTRY,
                       name="x") == ("skipped", None)


def _vault_with_entries(make_vault: Callable[..., vault.Vault], ring: vault.KeyRing,
                        count: int) -> tuple[vault.Vault, list[str], vault.KeyRing]:
    v = make_vault()
    for i in range(count):
        v.put(f"e{i}", {"i": i, "b": bytes([i]) * 40})
    return v, v.names(), ring.with_primary(vault.Key.generate())


def _lock_is_free(v: vault.Vault, name: str) -> bool:
    lock = entries_of(v).lock(name)
    if not lock.acquire(blocking=False):
        return False
    lock.release()
    return True


@pytest.mark.parametrize(("workers", "batch", "batch_bytes"),
                         [(1, 1, 1 << 20), (4, 3, 1 << 20), (8, 64, 1 << 20), (4, 64, 1)])
def test_batches_hold_locks_until_written_and_release_them(
        make_vault: Callable[..., vault.Vault], ring: vault.KeyRing, workers: int, batch: int,
        batch_bytes: int) -> None:
    """A batch holds the locks of its prepared entries (at most ``batch`` of them, fewer once
    its envelopes reach ``batch_bytes``) until each is written; afterwards every lock is free
    and every entry opens under the new primary to its old value."""
    v, names, new_ring = _vault_with_entries(make_vault, ring, 10)
    before = {n: v.get(n) for n in names}
    held: list[int] = []

    def prepare(name: str, wait: bool) -> tuple[str, str | None] | PendingWrite | None:
        held.append(sum(not _lock_is_free(v, n) for n in names))
        return entries_of(v).prepare(name, new_ring, wait)

    report = rewrap_all(names, prepare, workers=workers, batch=batch, batch_bytes=batch_bytes)
    assert report.rewrapped == len(names)
    assert max(held) == min(batch, len(names), 1 if batch_bytes == 1 else batch) - 1
    assert all(_lock_is_free(v, n) for n in names)
    v2 = make_vault(keys=new_ring)
    assert {n: v2.get(n) for n in names} == before
    assert {v2.info(n).key_id for n in names} == {new_ring.primary.id}


def test_an_error_while_preparing_releases_the_batch_and_writes_nothing_of_it(
        make_vault: Callable[..., vault.Vault], ring: vault.KeyRing) -> None:
    """An error other than VaultError while a batch is prepared stops the run; the entries
    already prepared are left as they were and their locks are released."""
    v, names, new_ring = _vault_with_entries(make_vault, ring, 6)

    def prepare(name: str, wait: bool) -> tuple[str, str | None] | PendingWrite | None:
        if name == names[3]:
            raise OSError("disk gone")
        return entries_of(v).prepare(name, new_ring, wait)

    with pytest.raises(OSError, match="disk gone"):
        rewrap_all(names, prepare, workers=4, batch=64)
    assert all(_lock_is_free(v, n) for n in names)
    assert {v.info(n).key_id for n in names} == {ring.primary.id}


@pytest.mark.parametrize("workers", [1, 4])
def test_an_error_while_writing_stops_after_the_batch_with_every_lock_released(
        make_vault: Callable[..., vault.Vault], ring: vault.KeyRing, workers: int) -> None:
    """A write that fails with an OSError stops the run once the rest of its batch is
    written; no lock stays held and every entry opens (old or new key)."""
    v, names, new_ring = _vault_with_entries(make_vault, ring, 6)

    def prepare(name: str, wait: bool) -> tuple[str, str | None] | PendingWrite | None:
        ready = entries_of(v).prepare(name, new_ring, wait)
        if name == names[2]:
            assert isinstance(ready, PendingWrite)
            ready.abandon()
            lock = entries_of(v).lock(name)
            lock.acquire()
            return PendingWrite(str(v.directory / "missing-dir" / "x.cve"), b"x", "x", lock,
                                "k")
        return ready

    with pytest.raises(FileNotFoundError):
        rewrap_all(names, prepare, workers=workers, batch=64)
    assert all(_lock_is_free(v, n) for n in names)
    v2 = make_vault(keys=new_ring)
    assert all(v2.get(n)["i"] == int(n[1:]) for n in names)
    assert v.info(names[2]).key_id == ring.primary.id


def test_a_batch_never_waits_for_a_lock_while_holding_others(
        make_vault: Callable[..., vault.Vault], ring: vault.KeyRing) -> None:
    """When an entry's lock is busy, the batch writes what it prepared and releases those
    locks before it waits; once the lock is free, the rotation finishes."""
    v, names, new_ring = _vault_with_entries(make_vault, ring, 8)
    blocker = entries_of(v).lock(names[5])
    blocker.acquire()
    reports: list[RewrapReport] = []
    worker = threading.Thread(target=lambda: reports.append(rewrap_all(
        names, lambda n, wait: entries_of(v).prepare(n, new_ring, wait), workers=4, batch=64)))
    worker.start()
    try:
        deadline = time.monotonic() + 10
        while any(v.info(n).key_id != new_ring.primary.id for n in names[:5]):
            assert time.monotonic() < deadline, "entries before the busy one were not written"
            time.sleep(0.01)
        assert all(_lock_is_free(v, n) for n in names[:5])  # written and released: not held
        assert v.info(names[5]).key_id == ring.primary.id and worker.is_alive()
    finally:
        blocker.release()
    worker.join(timeout=10)
    assert reports and reports[0].rewrapped == len(names)
    assert {v.info(n).key_id for n in names} == {new_ring.primary.id}


def test_prepare_rewrap_without_waiting_leaves_a_busy_entry_alone(
        make_vault: Callable[..., vault.Vault], ring: vault.KeyRing) -> None:
    """prepare_rewrap(wait=False) on a locked entry returns None and changes nothing."""
    v, names, new_ring = _vault_with_entries(make_vault, ring, 1)
    with entries_of(v).lock(names[0]):
        assert entries_of(v).prepare(names[0], new_ring, wait=False) is None
    assert v.info(names[0]).key_id == ring.primary.id
    ready = entries_of(v).prepare(names[0], new_ring, wait=False)
    assert isinstance(ready, PendingWrite)
    assert ready.commit() == ("rewrapped", ring.primary.id)
