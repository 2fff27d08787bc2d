"""Benchmark of the passphrase key source: the KDF runs once per process.

Opening N entries with a passphrase-derived ring costs one Argon2id derivation plus N opens
under the unwrapped ring key, the same opens as with a raw key. Shown side by side:
- the marginal cost per open, passphrase-derived ring vs raw-key ring (goal <= 1.1x);
- a cold start: one derivation + N opens vs N raw opens;
- Argon2id's time per derivation for each profile, and what a per-value KDF would cost.

Run: python -m bench.bench_kdf [--quick]. Prints ratios measured in one run; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import vault
from bench.timing import Timing, interleave, ratio_line, us
from vault import codec
from vault._crypto import format as fmt
from vault._crypto import kdf
from vault._store.entries import ENTRY_SUFFIX, name_stem
from vault.keysources import PassphraseKeySource

PASSPHRASE = "benchmark passphrase: not a secret"


def write_entries(directory: Path, ring: vault.KeyRing, count: int) -> list[str]:
    """Write ``count`` sealed entries straight to disk (no fsync: this is set-up, not timed)."""
    now = time.time_ns() // 1_000_000
    names = []
    for i in range(count):
        name = f"service-{i:05d}/db"
        plaintext = codec.dumps({"user": f"svc{i}", "password": os.urandom(18).hex()})
        envelope = ring.seal(kind=fmt.KIND_ENTRY, name=name, plaintext=plaintext,
                             created_at=now, expires_at=now + 86_400_000)
        fd = os.open(directory / f"{name_stem(name)}{ENTRY_SUFFIX}",
                     os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(envelope)
        names.append(name)
    return names


def per_open(timing: Timing, count: int) -> Timing:
    """The same timing divided by the number of opens per call."""
    return Timing(timing.name, tuple(s / count for s in timing.samples))


def bench_opens(directory: Path, key: vault.Key, names: list[str], rounds: int) -> list[str]:
    """Marginal cost per open: a warm passphrase-derived ring vs the raw key."""
    raw = vault.Vault(directory, keys=vault.KeyRing([key]))
    derived = vault.Vault(directory, keys=PassphraseKeySource(directory, PASSPHRASE))
    assert derived.keys.primary == key  # the same ring key, unwrapped from the keyfile

    def open_all(v: vault.Vault) -> None:
        for name in names:
            v.get(name)

    t = interleave({"raw": lambda: open_all(raw), "passphrase": lambda: open_all(derived)},
                   rounds=rounds, warmup=1)
    n = len(names)
    return [ratio_line(f"open, per entry, passphrase-derived ring vs raw key ({n:,} entries)",
                       per_open(t["passphrase"], n), per_open(t["raw"], n), "<= 1.1x")]


def bench_cold(directory: Path, key: vault.Key, names: list[str], rounds: int) -> list[str]:
    """A process start: derive once, then open everything; vs the same opens with a raw key."""
    def cold_passphrase() -> None:
        v = vault.Vault(directory, keys=PassphraseKeySource(directory, PASSPHRASE))
        for name in names:
            v.get(name)

    def cold_raw() -> None:
        v = vault.Vault(directory, keys=vault.KeyRing([key]))
        for name in names:
            v.get(name)

    t = interleave({"raw": cold_raw, "passphrase": cold_passphrase}, rounds=rounds, warmup=1)
    return [ratio_line(f"cold start, 1 derivation + {len(names):,} opens vs {len(names):,} raw "
                       "opens", t["passphrase"], t["raw"], "one derivation, amortized")]


def bench_profiles(count: int, rounds: int) -> list[str]:
    """Argon2id per derivation for each profile, and the per-value-KDF projection."""
    salt = os.urandom(kdf.SALT_SIZE)
    t = interleave({name: (lambda p=params: kdf.derive(PASSPHRASE, salt, p))
                    for name, params in kdf.PROFILES.items()}, rounds=rounds, warmup=1)
    lines = []
    for name, timing in t.items():
        p = kdf.PROFILES[name]
        lines.append(f"Argon2id {name} (t={p.time_cost}, m={p.memory_cost_kib} KiB, "
                     f"p={p.parallelism}): {us(timing.median)} per derivation by median, "
                     f"{us(timing.minimum)} minimum")
    default = t[kdf.DEFAULT_PROFILE].median
    lines.append(f"a per-value KDF (one derivation per entry) would cost {default * count:,.1f} s "
                 f"for {count:,} entries; here it is {default:.3f} s once per process")
    return lines


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print one line per measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 entries, fewer rounds")
    args = parser.parse_args(argv)
    count, rounds = (1_000, 3) if args.quick else (10_000, 5)
    work = Path(tempfile.mkdtemp(prefix="credseal-bench-kdf-"))
    try:
        directory = work / "vault"
        key = vault.Key.generate()
        source = PassphraseKeySource(directory, PASSPHRASE, profile=kdf.DEFAULT_PROFILE)
        source.create(key)
        names = write_entries(directory, vault.KeyRing([key]), count)
        for line in (*bench_opens(directory, key, names, rounds),
                     *bench_cold(directory, key, names, rounds),
                     *bench_profiles(count, rounds=7)):
            print(line, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
