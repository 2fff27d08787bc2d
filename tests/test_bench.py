"""Smoke tests of the benchmarks: each runs on a tiny input and its side effects are right."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench import bench_core, bench_rotation
from bench.creds import baileys_like, json_size


def test_benchmark_credential_is_the_size_the_issue_names() -> None:
    """The put benchmark's credential is about 11.6 KB as the original service wrote it."""
    assert 11_500 <= json_size(baileys_like()) <= 11_700


def test_core_benchmarks_run_and_print_their_goals(tmp_path: Path) -> None:
    """Each core benchmark runs a few rounds and prints one line per figure with its goal."""
    cred = baileys_like()
    lines = (bench_core.bench_put(cred, 3, tmp_path)
             + bench_core.bench_growth(cred, 3, tmp_path, 30)
             + bench_core.bench_seal_open(cred, 3) + bench_core.bench_codec(cred, 3))
    assert len(lines) == 6
    assert all("goal" in line or "anchor" in line or "skipped" in line for line in lines)


@pytest.mark.parametrize("count", [1, 45])
def test_rotation_benchmark_rotates_every_entry(count: int) -> None:
    """Both rotation comparisons rewrap every entry (they check it) and report rates."""
    ours, floors = bench_rotation.compare_default(count, chunk=20)
    assert ours > 0 and set(floors) == set(bench_rotation.FLOOR_POOLS)
    assert all(rate > 0 for rate in floors.values())
    ours1, floor1 = bench_rotation.compare_one_at_a_time(count)
    assert ours1 > 0 and floor1 > 0


def test_a_missed_goal_is_flagged_plainly() -> None:
    """A ratio line says whether its median meets a ratio goal, a missed one in capitals."""
    from bench.timing import Timing, ratio_line, verdict

    slow, fast = Timing("slow", (2.0, 2.0, 2.0)), Timing("fast", (1.0, 1.0, 1.0))
    assert ratio_line("x", slow, fast, "<= 1.2x").endswith("goal <= 1.2x: GOAL MISSED")
    assert ratio_line("x", fast, slow, "<= 1.2x").endswith("goal <= 1.2x: goal met")
    assert ratio_line("x", fast, slow, "(anchor)").endswith("goal (anchor)")
    assert verdict(5.1, ">=", 5.0) == "goal met" and verdict(4.9, ">=", 5.0) == "GOAL MISSED"


def test_keyring_benchmark_runs(tmp_path: Path) -> None:
    """The keyring benchmark sets and gets through the backend (anchor or not) and reports."""
    from bench import bench_keyring

    lines = bench_keyring.bench(2, tmp_path, anchor=False)  # installs nothing
    assert len(lines) == 2 and "per pair" in lines[0] and "FAILED" not in lines[1]


def test_fleet_benchmark_runs(redis_server: Any, tmp_path: Path) -> None:
    """The fleet benchmark runs every comparison on a tiny input against a real redis-server
    (it freezes and thaws it) and prints a line per figure with its goal."""
    from bench import bench_fleet

    lines: list[str] = []
    bench_fleet.bench(redis_server, tmp_path, count=20, first_reads=10, hosts=1, passes=1,
                      prefetch_rounds=1, frozen_gets=20, out=lines.append)
    text = "\n".join(lines)
    assert text.count("goal") >= 4 and "Traceback" not in text


def test_primary_benchmark_runs(pg: Any) -> None:
    """The sealed-primary benchmark rotates a tiny table with every candidate on the session's
    PostgreSQL (ours checks every row is under the new key) and prints its goals."""
    from bench import bench_primary

    lines: list[str] = []
    bench_primary.bench(pg, count=1_200, sizes=[600], rounds=1, growth_rounds=1,
                        table=pg.fresh_table_name("bench"), out=lines.append)
    text = "\n".join(lines)
    assert "goal >= 0.8x" in text and "goal <= 1.3x" in text and "n_dead_tup" in text
    assert "WAL written" in text and "full_page_writes on" in text
    assert text.count("rows/s by median") == len(bench_primary.CANDIDATES)
