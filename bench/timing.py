"""Side-by-side timing for the benchmarks: ratios measured in one run, interleaved.

The machine is shared and noisy, so candidates are run alternately, round after round, and
compared by median (and by minimum, the least disturbed run). Nothing here asserts a time.
"""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Timing:
    """Per-call times of one candidate, in seconds."""

    name: str
    samples: tuple[float, ...]

    @property
    def median(self) -> float:
        """Median time per call."""
        return statistics.median(self.samples)

    @property
    def minimum(self) -> float:
        """Fastest call."""
        return min(self.samples)

    def quantile(self, q: float) -> float:
        """The q-quantile (0 < q < 1) of the per-call times."""
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def interleave(candidates: dict[str, Callable[[], object]], rounds: int,
               warmup: int = 3) -> dict[str, Timing]:
    """Call every candidate once per round, alternating, and return their timings."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    clock = time.perf_counter
    for _ in range(rounds):
        for name, fn in candidates.items():
            start = clock()
            fn()
            samples[name].append(clock() - start)
    return {name: Timing(name, tuple(s)) for name, s in samples.items()}


def us(seconds: float) -> str:
    """Format seconds as microseconds."""
    return f"{seconds * 1e6:,.1f} us"


_GOAL = re.compile(r"(<=|>=) *([0-9.]+) *x")


def verdict(value: float, op: str, limit: float) -> str:
    """``"goal met"`` or ``"GOAL MISSED"`` (plainly, in capitals) for ``value op limit``."""
    met = value <= limit if op == "<=" else value >= limit
    return "goal met" if met else "GOAL MISSED"


def ratio_line(label: str, ours: Timing, anchor: Timing, goal: str) -> str:
    """One report line: the ratio of medians (and of minima), with the goal beside it and, for
    a ratio goal (``<= 1.2x``), whether the median meets it."""
    ratio = ours.median / anchor.median
    found = _GOAL.fullmatch(goal.strip())
    judged = f": {verdict(ratio, found.group(1), float(found.group(2)))}" if found else ""
    return (f"{label}: {ratio:.2f}x by median "
            f"({us(ours.median)} vs {us(anchor.median)}), "
            f"{ours.minimum / anchor.minimum:.2f}x by minimum; goal {goal}{judged}")
