"""Benchmark of key rotation (issue 5): durable rewrap throughput vs its floor.

Run: python -m bench.bench_rotation [--quick]
The floor re-writes the same files with the same durable write (temp file, fsync, rename,
fsync directory) and no cryptography, on a copy of the same vault. Two comparisons:
- one entry at a time (workers=1), alternating entry by entry between rotation and floor;
- with 4 workers on both sides (the default of ``Vault.rotate``: one entry's fsync waits
  while another's cryptography runs), alternating in chunks of 500 entries.
Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import vault
from bench.creds import baileys_like
from vault import files
from vault import format as fmt
from vault.rewrap import rewrap_all
from vault.store import name_stem


def _floor_one(directory: str) -> Callable[[str], tuple[str, str | None]]:
    def one(name: str) -> tuple[str, str | None]:
        stem = name_stem(name)
        path = f"{directory}/{stem}.cve"
        files.write_atomic(path, files.read_private(path, fmt.MAX_ENVELOPE_SIZE), stem)
        return "rotated", None
    return one


def _compare(count: int, workers: int, chunk: int) -> tuple[float, float]:
    """Entries per second of (rotation, floor), measured side by side."""
    old = vault.KeyRing([vault.Key.generate()])
    new = old.with_primary(vault.Key.generate())
    cred = baileys_like(pre_keys=8)  # about 2 KB: a creds.json-sized entry
    with tempfile.TemporaryDirectory(prefix="credvault-bench-") as tmp:
        work = Path(tmp)
        seed = vault.Vault(work / "rotated", keys=old, ttl=86400)
        for i in range(count):
            seed.put(f"company-{i}", cred)
        shutil.copytree(work / "rotated", work / "floor")
        rotated = vault.Vault(work / "rotated", keys=new, ttl=86400)
        floor = _floor_one(str(work / "floor"))
        names = rotated.names()
        spent = {"rotate": 0.0, "floor": 0.0}
        for start in range(0, len(names), chunk):
            part = names[start:start + chunk]
            for side, one in (("rotate", lambda n: rotated._rewrap(n, new)), ("floor", floor)):
                began = time.perf_counter()
                report = rewrap_all(part, one, workers=workers)
                spent[side] += time.perf_counter() - began
                assert report.failed == 0
        assert {rotated.info(n).key_id for n in names} == {new.primary.id}
    return count / spent["rotate"], count / spent["floor"]


def main(argv: list[str] | None = None) -> None:
    """Rewrap N entries under a new key vs re-writing them without crypto; print rates."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 entries instead of 10,000")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else 10_000
    for label, workers, chunk in (("one entry at a time", 1, 1), ("4 workers (default)", 4, 500)):
        ours, floor = _compare(count, workers, chunk)
        print(f"rotation of {count:,} entries, {label}: {ours:,.0f} entries/s vs {floor:,.0f} "
              f"entries/s for the same durable re-write without crypto: {ours / floor:.2f}x; "
              "goal >= 0.8x", flush=True)


if __name__ == "__main__":
    main()
