"""Benchmark of key rotation: durable rewrap throughput vs its floor.

Run: python -m bench.bench_rotation [--quick]
The floor re-writes the same files with the same durable write (temp file, fsync, rename,
fsync directory) and no cryptography, on a copy of the same vault, with a pool of threads.
The rotation runs as ``Vault.rotate`` does (prepare a batch in one thread, write it with a
pool). Both sides alternate in chunks of 500 entries. The floor is measured at several pool
sizes and the rotation is compared with the same pool size and with the fastest floor.
A second comparison runs both strictly one entry at a time, alternating entry by entry.
Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import vault
from bench.creds import baileys_like
from bench.timing import verdict
from vault import _files as files
from vault._crypto import format as fmt
from vault._store.entries import name_stem
from vault._store.rewrap import PendingWrite, rewrap_all
from vault._store.store import REWRAP_BATCH, REWRAP_WORKERS, entries_of

FLOOR_POOLS = (1, 4, 8, 16)


def _floor_one(directory: str) -> Callable[[str], None]:
    def one(name: str) -> None:
        stem = name_stem(name)
        path = f"{directory}/{stem}.cve"
        files.write_atomic(path, files.read_private(path, fmt.MAX_ENVELOPE_SIZE), stem)
    return one


def _setup(work: Path, count: int) -> tuple[vault.Vault, vault.KeyRing, Callable[[str], None]]:
    old = vault.KeyRing([vault.Key.generate()])
    new = old.with_primary(vault.Key.generate())
    cred = baileys_like(pre_keys=8)  # about 2 KB: a creds.json-sized entry
    seed = vault.Vault(work / "rotated", keys=old, ttl=86400)
    for i in range(count):
        seed.put(f"company-{i}", cred)
    shutil.copytree(work / "rotated", work / "floor")
    return (vault.Vault(work / "rotated", keys=new, ttl=86400), new,
            _floor_one(str(work / "floor")))


def _check(rotated: vault.Vault, names: list[str], new: vault.KeyRing) -> None:
    assert {rotated.info(n).key_id for n in names} == {new.primary.id}


def compare_default(count: int, chunk: int = 500, workers: int = REWRAP_WORKERS,
                    batch: int = REWRAP_BATCH) -> tuple[float, dict[int, float]]:
    """Entries per second of the rotation and of the floor at each pool size."""
    with tempfile.TemporaryDirectory(prefix="credseal-bench-") as tmp:
        rotated, new, floor = _setup(Path(tmp), count)
        names = rotated.names()
        spent = {"rotate": 0.0, **{f"floor{w}": 0.0 for w in FLOOR_POOLS}}
        pools = {w: ThreadPoolExecutor(w) for w in FLOOR_POOLS}
        try:
            for start in range(0, len(names), chunk):
                part = names[start:start + chunk]
                began = time.perf_counter()
                report = rewrap_all(part, lambda n, w: entries_of(rotated).prepare(n, new, w),
                                    workers=workers, batch=batch)
                spent["rotate"] += time.perf_counter() - began
                assert report.failed == 0 and report.rewrapped == len(part)
                for w, pool in pools.items():
                    began = time.perf_counter()
                    list(pool.map(floor, part))
                    spent[f"floor{w}"] += time.perf_counter() - began
        finally:
            for pool in pools.values():
                pool.shutdown()
        _check(rotated, names, new)
    return count / spent["rotate"], {w: count / spent[f"floor{w}"] for w in FLOOR_POOLS}


def compare_one_at_a_time(count: int) -> tuple[float, float]:
    """Entries per second of (rotation, floor), both one entry at a time, entry by entry."""
    with tempfile.TemporaryDirectory(prefix="credseal-bench-") as tmp:
        rotated, new, floor = _setup(Path(tmp), count)
        names = rotated.names()
        spent = {"rotate": 0.0, "floor": 0.0}
        for name in names:
            began = time.perf_counter()
            pending = entries_of(rotated).prepare(name, new)
            assert isinstance(pending, PendingWrite)
            pending.commit()
            middle = time.perf_counter()
            floor(name)
            spent["rotate"] += middle - began
            spent["floor"] += time.perf_counter() - middle
        _check(rotated, names, new)
    return count / spent["rotate"], count / spent["floor"]


def main(argv: list[str] | None = None) -> None:
    """Rewrap N entries under a new key vs re-writing them without crypto; print rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 entries instead of 10,000")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else 10_000
    ours, floors = compare_default(count)
    best = max(floors, key=lambda w: floors[w])
    same = floors.get(REWRAP_WORKERS)
    print(f"rotation of {count:,} entries (default: batches of {REWRAP_BATCH}, "
          f"{REWRAP_WORKERS} writer threads): {ours:,.0f} entries/s; goal >= 0.8x the floor",
          flush=True)
    print("  floor, the same durable re-write without crypto, by thread pool: "
          + ", ".join(f"{w}: {rate:,.0f}/s" for w, rate in floors.items()))
    if same is not None:
        print(f"  vs the floor with {REWRAP_WORKERS} threads: {ours / same:.2f}x")
    print(f"  vs the fastest floor ({best} threads): {ours / floors[best]:.2f}x: "
          f"{verdict(ours / floors[best], '>=', 0.8)}", flush=True)
    ours1, floor1 = compare_one_at_a_time(count)
    print(f"rotation of {count:,} entries strictly one at a time: {ours1:,.0f} entries/s vs "
          f"{floor1:,.0f} entries/s for the floor one at a time: {ours1 / floor1:.2f}x "
          "(context: every fsync wait leaves the CPU cold for the next entry's cryptography)",
          flush=True)


if __name__ == "__main__":
    main()
