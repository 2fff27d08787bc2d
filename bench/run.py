"""Every benchmark of credseal, in one run: python -m bench.run [--quick]

Each figure is a ratio measured side by side against its anchor (a plain durable write, the
original single-file design, Fernet, Tink's AES-GCM AEAD, json.loads, a raw-key ring, a healthy
PostgreSQL, a plain Redis GET or MGET, the same SQL without cryptography), with its goal beside
it. Nothing is asserted: the machine is shared and noisy, so read the medians and minima
together. bench/README.md explains each line.
"""

from __future__ import annotations

import argparse
import time

from bench import (
    bench_cache,
    bench_core,
    bench_fleet,
    bench_instructions,
    bench_kdf,
    bench_keyring,
    bench_primary,
    bench_rotation,
)


def main(argv: list[str] | None = None) -> None:
    """Run the core, KDF, cache, fleet, rotation, sealed primary and keyring benchmarks in
    order."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="fewer rounds and 1,000 instead of 10,000 entries")
    args = parser.parse_args(argv)
    quick = ["--quick"] if args.quick else []
    for title, run in (("put, growth, seal+open, codec", bench_core.main),
                       ("seal+open instruction counts (noise-free)", bench_instructions.main),
                       ("passphrase key derivation", bench_kdf.main),
                       ("cache reads while the database is down", bench_cache.main),
                       ("fleet tier (Redis) while the database is down", bench_fleet.main),
                       ("key rotation throughput", bench_rotation.main),
                       ("sealed primary table rotation (PostgreSQL)", bench_primary.main),
                       ("keyring backend vs keyrings.cryptfile", bench_keyring.main)):
        print(f"== {title}", flush=True)
        started = time.monotonic()
        run(quick)
        print(f"   ({time.monotonic() - started:.0f} s)\n", flush=True)


if __name__ == "__main__":
    main()
