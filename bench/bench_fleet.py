"""The fleet tier during a database outage: ``FallbackCache`` with a ``RedisTier``.

Run: python -m bench.bench_fleet [--quick]
Starts a throwaway redis-server (the tests' helper, ``tests.realparts.RedisServer``: a free
port on 127.0.0.1, nothing saved), which needs ``redis-server`` installed; removes it at the
end. A writer host fills the source (``vault.testing.MemorySource``) and Redis through its
cache; then the source fails (``fail_with()``, the database is down) and other hosts read:

1. a host with **no** local copy: ``get`` (origin "shared") vs a plain redis-py ``GET`` of
   the record plus our open (``open_envelope`` + decode). Measured on first reads: every
   name is read once on a fresh host directory (each round a new one), because the first
   read also copies the shared copy into the vault (a durable write) and a second read of the
   name is then a read "with a local copy". Goal: p99 <= 1.2x. Context (no goal): the floor
   plus the write the cache makes (the entry lock file held around ``write_atomic``).
2. a host **with** a local copy: ``get`` (origin "cache") vs ``GET`` + open + the local
   file's read + open (the cache reads both tiers to serve the newest). Goal: p99 <= 1.2x.
3. a new host's cold start: ``prefetch`` of every name vs one ``MGET`` and the same durable
   writes without cryptography (``vault._files.write_atomic`` of each envelope). Goal <= 1.5x.
   Context (no goal): the same floor under the vault's entry lock files.
   Also the time until every name is *served*: the ``MGET`` and every record opened
   (``SharedCopies.read_many``), timed on its own in the same rounds.
4. Redis frozen (SIGSTOP) with the tier's breaker open (two failing calls opened it): ``get``
   served from the local copy. Goal: p99 <= 5 ms.

Ours and the floors alternate call by call (which one goes first alternates too). Prints;
asserts nothing about time.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import vault
from bench.creds import baileys_like
from bench.timing import Timing, ratio_line, us, verdict
from tests.realparts import RedisServer, free_port
from vault import _clock
from vault import _files as files
from vault._crypto import format as fmt
from vault._store.entries import ENTRY_SUFFIX, LOCKS_DIR, EntryStore, name_stem
from vault._store.store import entries_of
from vault.cache import FallbackCache
from vault.cache._shared import RECORD_PREFIX_SIZE, SharedCopies
from vault.cache.redis import RedisTier
from vault.testing import MemorySource

TTL = 86_400
WARM_UP = "warm-up"  # read twice by every new host before it is measured; never measured


def line(timing: Timing) -> str:
    """p50, p99 and max of one candidate."""
    return (f"{timing.name:<34} p50 {us(timing.median):>12}   p99 {us(timing.quantile(0.99)):>12}"
            f"   max {us(max(timing.samples)):>12}")


def p99_line(label: str, ours: Timing, floor: Timing, limit: float) -> str:
    """One report line judged by the ratio of the p99s (medians and minima beside it)."""
    ratio = ours.quantile(0.99) / floor.quantile(0.99)
    return (f"{label}: {ratio:.2f}x by p99 ({us(ours.quantile(0.99))} vs "
            f"{us(floor.quantile(0.99))}), {ours.median / floor.median:.2f}x by median, "
            f"{ours.minimum / floor.minimum:.2f}x by minimum; "
            f"goal p99 <= {limit}x: {verdict(ratio, '<=', limit)}")


def alternate(candidates: dict[str, Callable[[str], object]], names: list[str],
              passes: int = 1) -> dict[str, Timing]:
    """Call every candidate on each name in turn, the first one changing from name to name,
    and return their per-call timings."""
    order = list(candidates)
    samples: dict[str, list[float]] = {key: [] for key in order}
    clock = time.perf_counter
    i = 0
    for _ in range(passes):
        for name in names:
            shift = i % len(order)
            for key in order[shift:] + order[:shift]:
                fn = candidates[key]
                start = clock()
                fn(name)
                samples[key].append(clock() - start)
            i += 1
    return {key: Timing(key, tuple(s)) for key, s in samples.items()}


def locked_write(directory: str, name: str, envelope: bytes) -> None:
    """The vault's write of a copy without the vault (``EntryStore.write_sealed``): the
    entry's lock file (created on first use) held around ``write_atomic``."""
    stem = name_stem(name)
    with files.FileLock(f"{directory}/{LOCKS_DIR}/{stem}.lock", timeout=10.0, what=stem):
        files.write_atomic(f"{directory}/{stem}{ENTRY_SUFFIX}", envelope, stem)


def scratch_dir(path: Path) -> str:
    """A new private directory with a lock directory, like a vault's."""
    files.ensure_private_dir(str(path))
    files.ensure_private_dir(f"{path}/{LOCKS_DIR}")
    return str(path)


def merge(parts: list[dict[str, Timing]]) -> dict[str, Timing]:
    """The samples of several rounds, per candidate."""
    return {key: Timing(key, tuple(s for part in parts for s in part[key].samples))
            for key in parts[0]}


class Fleet:
    """A Redis tier, a source that is down, a writer host that filled both, and the floors."""

    def __init__(self, server: RedisServer, work: Path, count: int) -> None:
        self.work = work
        self.ring = vault.KeyRing([vault.Key.generate()])
        self.tier = RedisTier.from_url(server.url)
        self.client = self.tier.client  # the floors' plain redis-py calls: the same client
        self.source = MemorySource()
        self.names = [f"company-{i}" for i in range(count)]
        writer = FallbackCache(self.source, self.host("writer"), shared=self.tier)
        for name in [*self.names, WARM_UP]:
            writer.save(name, baileys_like(pre_keys=8))  # about 2 KB: a creds.json
        writer.close()
        self.value_size = len(vault.codec.dumps(baileys_like(pre_keys=8)))
        self.source.fail_with()  # the database is down from now on
        self.entries = entries_of(self.host("floor-ring"))  # opens with the fleet's ring
        self._hosts = 0
        self.tier_failures = 0  # failed calls of the tier on the measured hosts

    def _tier_failed(self, tier: str) -> None:
        if tier == "shared":
            self.tier_failures += 1

    def host(self, label: str) -> vault.Vault:
        """A new host directory (empty) with the fleet's ring."""
        return vault.Vault(self.work / label, keys=self.ring, ttl=TTL)

    def new_cache(self) -> FallbackCache:
        """A fresh host's cache, its source breaker opened and its Redis connection made by
        two reads of a name outside the measured ones (also the host's first usage report)."""
        self._hosts += 1
        cache = FallbackCache(self.source, self.host(f"host-{self._hosts}"), shared=self.tier)
        cache.add_listener(on_write_failure=self._tier_failed)
        for _ in range(2):
            cache.fetch(WARM_UP)
        assert cache.breaker.state == "open", cache.breaker.state
        return cache

    def key(self, name: str) -> str:
        return self.tier.key(name_stem(name))

    def open_record(self, name: str, raw: bytes) -> Any:
        """Our open of a record: ``open_envelope`` + decode."""
        _, plaintext = self.entries.open_envelope(raw[RECORD_PREFIX_SIZE:],
                                                  kind=fmt.KIND_ENTRY, name=name)
        return EntryStore.decode(name, plaintext)[1]

    def open_local(self, host: vault.Vault, name: str) -> Any:
        """The local file read + open + decode, as the cache reads its copy."""
        data = files.read_private(entries_of(host).path(name), fmt.MAX_ENVELOPE_SIZE)
        _, plaintext = self.entries.open_envelope(data, kind=fmt.KIND_ENTRY, name=name)
        return EntryStore.decode(name, plaintext)[1]

    def get_open(self, name: str) -> Any:
        """The floor of a shared read: a plain ``GET`` and our open."""
        raw = self.client.get(self.key(name))
        assert raw is not None
        return self.open_record(name, raw)

    def close(self) -> None:
        self.tier.close()


def bench_no_local_copy(fleet: Fleet, names: list[str], rounds: int) -> tuple[list[str],
                                                                             FallbackCache]:
    """First reads on fresh hosts (origin "shared") vs GET + open; also GET + open + the
    same locked durable write the cache makes (context). Returns the lines and the last
    host."""
    parts, origins, failures = [], set(), fleet.tier_failures
    for r in range(rounds):
        cache = fleet.new_cache()
        scratch = scratch_dir(fleet.work / f"scratch-{r}")

        def ours(name: str, cache: FallbackCache = cache) -> None:
            origins.add(cache.fetch(name).origin)

        def floor_written(name: str, scratch: str = scratch) -> None:
            raw = fleet.client.get(fleet.key(name))
            fleet.open_record(name, raw)
            locked_write(scratch, name, raw[RECORD_PREFIX_SIZE:])

        parts.append(alternate({"ours (first read, no local copy)": ours,
                                "floor GET+open": fleet.get_open,
                                "GET+open+locked durable write": floor_written}, names))
        assert cache.wait_for_copies()  # the copies are written just after each answer
        assert set(cache.vault.names()) >= set(names)  # every first read adopted its copy
    assert origins == {"shared"}, origins
    t = merge(parts)
    ours_t, floor_t, written_t = t.values()
    lines = [f"outage get, host with no local copy: {len(names)} names each read once on a "
             f"fresh host directory, {rounds} host(s), {len(ours_t.samples)} first reads "
             "(each copies the shared copy into the vault: a durable write); "
             f"{fleet.tier_failures - failures} failed call(s) of the tier"]
    lines += ["  " + line(timing) for timing in t.values()]
    lines.append(p99_line("no local copy vs GET+open", ours_t, floor_t, 1.2))
    lines.append(ratio_line("no local copy vs GET+open+the same locked durable write",
                            ours_t, written_t, "none: where the time goes"))
    return lines, cache


def bench_local_copy(fleet: Fleet, cache: FallbackCache, names: list[str],
                     passes: int) -> list[str]:
    """Reads on a host with a local copy (origin "cache") vs GET + open + local read + open."""
    host, origins, failures = cache.vault, set(), fleet.tier_failures

    def ours(name: str) -> None:
        origins.add(cache.fetch(name).origin)

    def floor(name: str) -> None:
        fleet.get_open(name)
        fleet.open_local(host, name)

    t = alternate({"ours (local copy)": ours, "floor GET+open+read+open": floor}, names, passes)
    assert origins == {"cache"}, origins
    ours_t, floor_t = t.values()
    lines = [f"outage get, host with a local copy: {len(names)} names, {passes} pass(es), "
             f"{len(ours_t.samples)} reads; {fleet.tier_failures - failures} failed call(s) "
             "of the tier"]
    lines += ["  " + line(timing) for timing in t.values()]
    lines.append(p99_line("local copy vs GET+open+local read+open", ours_t, floor_t, 1.2))
    return lines


def bench_prefetch(fleet: Fleet, names: list[str], rounds: int) -> list[str]:
    """prefetch on fresh hosts vs one MGET + the same durable writes; and the time until
    every name is served (the MGET and every record opened, no writes)."""
    samples: dict[str, list[float]] = {"prefetch": [], "floor": [], "locked": [], "served": [],
                                       "mget": []}
    keys = [fleet.key(name) for name in names]
    clock = time.perf_counter

    def ours(r: int) -> None:
        cache = fleet.new_cache()
        start = clock()
        report = cache.prefetch(names)
        samples["prefetch"].append(clock() - start)
        assert report.found == report.copied == len(names), report
        assert len(cache.vault.names()) >= len(names)
        cache.close()

    def floor(r: int) -> None:
        directory = scratch_dir(fleet.work / f"floor-{r}")
        start = clock()
        raws = fleet.client.mget([fleet.key(name) for name in names])
        got = clock()
        for name, raw in zip(names, raws, strict=True):
            stem = name_stem(name)
            files.write_atomic(f"{directory}/{stem}{ENTRY_SUFFIX}", raw[RECORD_PREFIX_SIZE:],
                               stem)
        samples["floor"].append(clock() - start)
        samples["mget"].append(got - start)

    def locked(r: int) -> None:  # context: the floor with the vault's entry locks
        directory = scratch_dir(fleet.work / f"locked-{r}")
        start = clock()
        raws = fleet.client.mget([fleet.key(name) for name in names])
        for name, raw in zip(names, raws, strict=True):
            locked_write(directory, name, raw[RECORD_PREFIX_SIZE:])
        samples["locked"].append(clock() - start)

    def served(r: int) -> None:
        cache = fleet.new_cache()
        copies = SharedCopies(fleet.tier, entries_of(cache.vault), cache.health,
                              refresh_seconds=60.0)
        start = clock()
        found = copies.read_many(names, _clock.now_ms())
        samples["served"].append(clock() - start)
        assert found is not None and len(found) == len(names)
        cache.close()

    fleet.client.mget(keys)  # warm the connection and the server's pages
    steps = [ours, floor, locked, served]
    for r in range(rounds):
        shift = r % len(steps)
        for step in steps[shift:] + steps[:shift]:
            step(r)
    t = {key: Timing(key, tuple(s)) for key, s in samples.items()}
    lines = [f"cold start during the outage: prefetch of {len(names):,} names on a fresh host, "
             f"{rounds} rounds"]
    lines += [f"  {label:<46} median {t[key].median * 1000:9.1f} ms   min "
              f"{t[key].minimum * 1000:9.1f} ms" for key, label in
              (("prefetch", "prefetch (MGET, open, durable writes)"),
               ("floor", "floor MGET + write_atomic of each record"),
               ("locked", "the floor under the vault's entry lock files"),
               ("served", "served: MGET + every record opened"),
               ("mget", "  of the floor: the MGET alone"))]
    lines.append(ratio_line("prefetch vs MGET + the same durable writes", t["prefetch"],
                            t["floor"], "<= 1.5x"))
    lines.append(ratio_line("prefetch vs the floor under the same entry locks", t["prefetch"],
                            t["locked"], "none: where the time goes"))
    lines.append(f"every name served after {t['served'].median * 1000:.1f} ms by median "
                 f"({t['served'].median / t['prefetch'].median:.0%} of the prefetch; the "
                 f"local copies are durable after {t['prefetch'].median * 1000:.1f} ms)")
    return lines


def bench_frozen(fleet: Fleet, server: RedisServer, cache: FallbackCache, names: list[str],
                 gets: int) -> list[str]:
    """Redis frozen, the tier's breaker opened by two failing calls: gets from the local copy."""
    host, origins = cache.vault, set()
    server.freeze()
    try:
        opening = []
        for name in names[:2]:  # each waits for the frozen Redis: they open the breaker
            start = time.perf_counter()
            origins.add(cache.fetch(name).origin)
            opening.append(time.perf_counter() - start)
        state = fleet.tier.breaker.state

        def ours(name: str) -> None:
            origins.add(cache.fetch(name).origin)

        passes = max(1, -(-gets // len(names)))
        t = alternate({"ours (Redis frozen, breaker open)": ours,
                       "local read+open (anchor)": lambda name: fleet.open_local(host, name)},
                      names, passes)
        state_after = fleet.tier.breaker.state
    finally:
        server.thaw()
    assert origins == {"cache"}, origins
    ours_t, anchor_t = t.values()
    p99_ms = ours_t.quantile(0.99) * 1000
    lines = [f"outage get with Redis frozen (SIGSTOP): {len(ours_t.samples)} gets served from "
             f"the local copy, the tier's breaker {state} (after: {state_after})"]
    lines += ["  " + line(timing) for timing in t.values()]
    lines.append(f"  the two calls that opened the breaker: "
                 f"{', '.join(f'{s:.2f} s' for s in opening)} (the tier's bound: "
                 f"{fleet.tier.worst_case_seconds:.2f} s per call)")
    lines.append(ratio_line("frozen Redis, breaker open vs local read+open", ours_t, anchor_t,
                            "p99 <= 5 ms"))
    lines.append(f"p99 with Redis frozen and the breaker open: {p99_ms:.3f} ms "
                 f"(goal <= 5 ms: {verdict(p99_ms, '<=', 5.0)})")
    return lines


def bench(server: RedisServer, work: Path, *, count: int, first_reads: int, hosts: int,
          passes: int, prefetch_rounds: int, frozen_gets: int,
          out: Callable[[str], None] = print) -> None:
    """Every fleet benchmark on a running ``server``; lines go to ``out`` as they come."""
    logger = logging.getLogger("vault.cache")
    level = logger.level
    logger.setLevel(logging.ERROR)  # the degraded and shared_unavailable warnings
    try:
        fleet = Fleet(server, work, count)
        try:
            out(f"{count:,} names of {fleet.value_size:,} bytes in Redis, written by one "
                "host; the source (MemorySource) is down")
            measured = fleet.names[:first_reads]
            lines, cache = bench_no_local_copy(fleet, measured, hosts)
            for text in lines + bench_local_copy(fleet, cache, measured, passes):
                out(text)
            for text in bench_prefetch(fleet, fleet.names, prefetch_rounds):
                out(text)
            for text in bench_frozen(fleet, server, cache, measured, frozen_gets):
                out(text)
        finally:
            fleet.close()
    finally:
        logger.setLevel(level)


def main(argv: list[str] | None = None) -> None:
    """Start a throwaway redis-server, measure, print, remove everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="200 instead of 1,000 names, fewer rounds")
    quick = parser.parse_args(argv).quick
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server is not installed: apt-get install redis-server")
    work = Path(tempfile.mkdtemp(prefix="credseal-bench-fleet-"))
    server = RedisServer(binary, Path(tempfile.mkdtemp(prefix="credseal-bench-redis-")),
                         free_port())
    try:
        server.start()
        if quick:
            bench(server, work, count=200, first_reads=100, hosts=1, passes=2,
                  prefetch_rounds=2, frozen_gets=500, out=lambda s: print(s, flush=True))
        else:
            bench(server, work, count=1_000, first_reads=500, hosts=3, passes=6,
                  prefetch_rounds=5, frozen_gets=3_000, out=lambda s: print(s, flush=True))
    finally:
        server.close()  # thaws, kills and removes its directory
        shutil.rmtree(work, ignore_errors=True)  # every host's vault and the floors' files


if __name__ == "__main__":
    main()
