"""Statistics of a study over seeds: mean with a Student-t 95 % confidence interval, the same for paired
differences between arms (seed s of one arm against seed s of the other), and a verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

# two-sided 95 % quantiles of Student's t, by degrees of freedom (1..30); larger: the normal 1.96
T_975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float  # the 95 % interval is mean +- half_width (nan with one value)
    n: int

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def __str__(self) -> str:
        return f"{self.mean:.2f}" if self.n < 2 else f"{self.mean:.2f} ± {self.half_width:.2f}"


def estimate(values: Sequence[float]) -> Estimate:
    """Mean and the half width of its 95 % t interval: t(0.975, n-1) x sample sd / sqrt(n)."""
    n = len(values)
    if n == 0:
        raise ValueError("no values to estimate from")
    mean = sum(values) / n
    if n == 1:
        return Estimate(mean, math.nan, 1)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    t = T_975[n - 2] if n - 1 <= len(T_975) else 1.96
    return Estimate(mean, t * sd / math.sqrt(n), n)


def paired(treatment: Sequence[float], control: Sequence[float]) -> Estimate:
    """The per-seed differences ``treatment - control``, estimated."""
    if len(treatment) != len(control):
        raise ValueError(f"paired values need the same seeds: {len(treatment)} vs {len(control)}")
    return estimate([t - c for t, c in zip(treatment, control, strict=True)])


def verdict(difference: Estimate, higher_is_better: bool = True, margin: float = 0.0) -> str:
    """``supported`` when the whole interval lies on the claimed side of ``margin``, ``not supported`` when it
    lies wholly on the other side, else ``inconclusive`` (also with one seed: no interval)."""
    if difference.n < 2:
        return "inconclusive"
    low, high = (difference.low, difference.high) if higher_is_better else (-difference.high, -difference.low)
    if low > margin:
        return "supported"
    if high < margin:
        return "not supported"
    return "inconclusive"
