"""Benchmark of key rotation (issue 5): durable rewrap throughput vs its floor.

Run: python -m bench.bench_rotation [--quick]
The floor re-writes the same files with the same durable write (temp file, fsync, rename,
fsync directory) and no cryptography. The two run interleaved, entry by entry, on two copies
of the same vault, so both see the same machine. Prints; asserts nothing.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import vault
from bench.creds import baileys_like
from vault import files
from vault import format as fmt
from vault.store import name_stem


def main(argv: list[str] | None = None) -> None:
    """Rewrap N entries under a new key vs re-writing them without crypto; print rates."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 entries instead of 10,000")
    args = parser.parse_args(argv)
    count = 1_000 if args.quick else 10_000
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
        floor_dir = str(work / "floor")
        spent = {"rotate": 0.0, "floor": 0.0}
        clock = time.perf_counter
        for name in rotated.names():
            start = clock()
            outcome, _ = rotated._rewrap(name, new)
            spent["rotate"] += clock() - start
            assert outcome == "rotated"
            stem = name_stem(name)
            start = clock()
            path = f"{floor_dir}/{stem}.cve"
            files.write_atomic(path, files.read_private(path, fmt.MAX_ENVELOPE_SIZE), stem)
            spent["floor"] += clock() - start
        assert {rotated.info(n).key_id for n in rotated.names()} == {new.primary.id}
    ours, floor = count / spent["rotate"], count / spent["floor"]
    print(f"rotation of {count:,} entries: {ours:,.0f} entries/s vs {floor:,.0f} entries/s for "
          f"the durable re-write without crypto: {ours / floor:.2f}x; goal >= 0.8x")


if __name__ == "__main__":
    main()
