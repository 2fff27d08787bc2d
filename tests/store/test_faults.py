"""Disk faults, made for real: a full disk (a small tmpfs) and a read-only disk (an ext4 image
on a loop device, remounted read-only), during put, a healthy get, an outage save, a replay
and a rotation. Each: no acknowledged write lost, no unreadable entry, an error or event
naming what failed, and recovery when the fault clears. Mounting needs root (CI runs as root);
elsewhere these tests skip with the reason, and under CI=true they fail."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import vault
from tests.helpers.backends import FakeClock
from tests.realparts import require
from vault._store.journal import Journal
from vault.cache import CACHE_WRITE_FAILED, CacheEvent
from vault.testing import MemorySource


def _run(*argv: str) -> None:
    subprocess.run(argv, check=True, capture_output=True, timeout=60)


def _can_mount() -> None:
    if os.geteuid() != 0:
        require("mount", "mounting a tmpfs or a loop image needs root")
    for tool in ("mount", "umount"):
        if shutil.which(tool) is None:
            require(tool, f"{tool} is missing (apt-get install mount)")


class Disk:
    """A mounted file system for one test: ``root`` is its mount point."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._filler = root / "filler"

    def fill(self) -> None:
        """Write a filler file until the disk is full (the next write gets ENOSPC)."""
        fd = os.open(self._filler, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            while True:
                os.write(fd, b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        finally:
            os.close(fd)
        for i in range(64):  # use up what is left in smaller pieces, and inodes
            try:
                (self.root / f"filler-{i}").write_bytes(b"\0" * 512)
            except OSError:
                break

    def free(self) -> None:
        """Remove the filler files: the disk has room again."""
        for path in self.root.glob("filler*"):
            path.unlink()


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[Disk]:
    """A 2 MiB tmpfs mounted for this test (full once ``fill()`` ran)."""
    _can_mount()
    root = tmp_path / "tmpfs"
    root.mkdir()
    _run("mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(root))
    try:
        yield Disk(root)
    finally:
        _run("umount", "-l", str(root))


@pytest.fixture
def ro_disk(tmp_path: Path) -> Iterator[tuple[Disk, Callable[[bool], None]]]:
    """An ext4 image on a loop device, mounted read-write; the callable remounts it read-only
    (True) or read-write again (False)."""
    _can_mount()
    if shutil.which("mkfs.ext4") is None:
        require("mkfs.ext4", "mkfs.ext4 is missing (apt-get install e2fsprogs)")
    image, root = tmp_path / "disk.img", tmp_path / "ext4"
    root.mkdir()
    with open(image, "wb") as stream:
        stream.truncate(8 * 1024 * 1024)
    _run("mkfs.ext4", "-q", "-F", str(image))
    _run("mount", "-o", "loop", str(image), str(root))
    root.chmod(0o700)

    def remount(read_only: bool) -> None:
        _run("mount", "-o", f"remount,{'ro' if read_only else 'rw'}", str(root))

    try:
        yield Disk(root), remount
    finally:
        _run("umount", "-l", str(root))


def _cache(source: MemorySource, v: vault.Vault,
           events: list[CacheEvent]) -> vault.FallbackCache:
    return vault.FallbackCache(source, v, on_event=events.append, clock=FakeClock())


def test_full_disk_loses_nothing_acknowledged_and_recovers(full_disk: Disk) -> None:
    """On a full disk: put raises ENOSPC and the old value stays readable, with no temp file
    left; a healthy get serves the source with a cache_write_failed event; an outage save is
    refused (never acknowledged); everything works again once there is room."""
    ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(full_disk.root / "vault", keys=ring)
    v.put("a", {"v": 1})
    source, events = MemorySource({"b": {"v": "source"}}), []
    cache = _cache(source, v, events)
    full_disk.fill()
    with pytest.raises(OSError, match="No space left") as caught:
        v.put("a", {"v": 2, "pad": "x" * 4096})
    assert caught.value.errno == errno.ENOSPC
    assert v.get("a") == {"v": 1} and not list(v.directory.glob(".*.tmp"))
    assert cache.get("b") == {"v": "source"}
    assert [e for e in events if e.kind == CACHE_WRITE_FAILED]
    source.fail_with()
    with pytest.raises(vault.SourceUnavailableError, match="journal could not be written"):
        cache.save("b", {"v": "during the outage", "pad": "x" * 4096})
    full_disk.free()
    assert cache.save("b", {"v": "during the outage"}).journaled
    source.recover()
    cache.breaker.reset()
    v.put("a", {"v": 3})
    assert v.get("a") == {"v": 3} and cache.get("b") == {"v": "during the outage"}
    assert source.snapshot()["b"] == {"v": "during the outage"} and Journal(v).ids() == []


def test_full_disk_during_replay_and_rotation(full_disk: Disk) -> None:
    """A replay whose bookkeeping cannot be written keeps the record and applies it once the
    disk has room (the source already holds it: no conflict); a rotation on a full disk fails
    loudly, every entry still opens, and a rerun finishes it."""
    ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(full_disk.root / "vault", keys=ring)
    source, events = MemorySource(), []
    cache = _cache(source, v, events)
    cache.save("c", {"v": 0})
    for i in range(20):
        v.put(f"e{i}", {"i": i})
    source.fail_with()
    assert cache.save("c", {"v": 1}).journaled
    source.recover()
    cache.breaker.reset()
    full_disk.fill()
    fetched = cache.fetch("c")  # the source took it; recording that failed (no room)
    assert fetched.origin == "cache" and fetched.value == {"v": 1} and len(Journal(v).ids()) == 1
    full_disk.free()
    assert cache.get("c") == {"v": 1} and Journal(v).ids() == [] and not cache.pending.conflicts
    new_ring = ring.with_primary(vault.Key.generate())
    rotator = vault.Vault(v.directory, keys=new_ring)
    full_disk.fill()
    with pytest.raises(OSError):
        rotator.rewrap(workers=1, batch=1)
    assert all(rotator.get(f"e{i}") == {"i": i} for i in range(20))
    full_disk.free()
    report = rotator.rewrap()
    assert report.failed == 0
    assert {info.key_id for info in v.scan().entries} == {new_ring.primary.id}


def test_read_only_disk_keeps_serving_and_recovers(
        ro_disk: tuple[Disk, Callable[[bool], None]]) -> None:
    """On a disk remounted read-only (EROFS): reads work, put and an outage save fail with
    an error naming the cause, a healthy get still serves the source (with an event), and
    writes work again after remounting read-write."""
    disk, remount = ro_disk
    ring = vault.KeyRing([vault.Key.generate()])
    v = vault.Vault(disk.root / "vault", keys=ring)
    v.put("a", {"v": 1})
    source, events = MemorySource({"a": {"v": 2}}), []
    cache = _cache(source, v, events)
    remount(True)
    with pytest.raises(OSError, match="Read-only file system"):
        v.put("a", {"v": 9})
    assert v.get("a") == {"v": 1}
    assert cache.get("a") == {"v": 2}
    assert [e for e in events if e.kind == CACHE_WRITE_FAILED]
    source.fail_with()
    with pytest.raises(vault.SourceUnavailableError, match="journal could not be written"):
        cache.save("a", {"v": 3})
    remount(False)
    assert cache.save("a", {"v": 3}).journaled
    source.recover()
    cache.breaker.reset()
    assert cache.get("a") == {"v": 3} and source.snapshot() == {"a": {"v": 3}}
