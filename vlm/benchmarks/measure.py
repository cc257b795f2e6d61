"""How the suite turns repeated timings into numbers to steer by: the two sides of a comparison run
alternately (A B A B ...) after a warm-up, and each ratio is the median of the per-round ratios, with
their range; a target is decided only when the whole range lies on one side of it."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Ratio:
    median: float
    low: float
    high: float
    rounds: int

    def __str__(self) -> str:
        return f"{self.median:.2f}x [{self.low:.2f}-{self.high:.2f}]"

    def verdict(self, target: float, higher_is_better: bool = True) -> str:
        """``met`` / ``not met`` by the median; ``(range spans the target)`` when the rounds disagree."""
        met = self.median >= target if higher_is_better else self.median <= target
        spans = self.low < target < self.high
        return ("met" if met else "not met") + (" (range spans the target: undecided)" if spans else "")


def ratio(reference: Sequence[float], candidate: Sequence[float]) -> Ratio:
    """Per-round ``reference / candidate`` (a speed-up when both are times), summarised."""
    if len(reference) != len(candidate) or not reference:
        raise ValueError(f"need the same, non-zero number of rounds: {len(reference)} vs {len(candidate)}")
    per_round = [r / c for r, c in zip(reference, candidate, strict=True)]
    return Ratio(statistics.median(per_round), min(per_round), max(per_round), len(per_round))
