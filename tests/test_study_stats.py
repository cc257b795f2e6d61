"""A study's statistics, worked by hand."""

import math

import pytest

from vlm.studies.stats import estimate, paired, verdict


def test_mean_and_t_interval():
    # 1, 2, 3: mean 2, sample sd 1; t(0.975, 2 df) = 4.303; half width 4.303 / sqrt(3) = 2.4843
    e = estimate([1.0, 2.0, 3.0])
    assert e.mean == 2.0 and e.half_width == pytest.approx(2.48434, abs=1e-5) and e.n == 3
    assert str(e) == "2.00 ± 2.48"
    # 0.70, 0.74: mean 0.72, sd 0.028284; t(1 df) = 12.706; half width 12.706 x 0.028284 / sqrt(2) = 0.25412
    assert estimate([0.70, 0.74]).half_width == pytest.approx(0.25412, abs=1e-5)
    one = estimate([0.5])
    assert one.mean == 0.5 and math.isnan(one.half_width) and str(one) == "0.50"
    with pytest.raises(ValueError):
        estimate([])


def test_paired_differences_and_verdicts():
    d = paired([3.0, 4.0, 5.0], [1.0, 1.0, 1.0])  # differences 2, 3, 4: mean 3, half width 2.4843
    assert d.mean == 3.0 and d.low == pytest.approx(0.51566, abs=1e-5)
    assert verdict(d) == "supported" and verdict(d, higher_is_better=False) == "not supported"
    assert verdict(paired([1.0, 3.0, 2.0], [2.0, 2.0, 2.0])) == "inconclusive"  # -1, 1, 0: the interval spans 0
    assert verdict(paired([0.98, 0.99], [1.0, 1.0]), margin=-0.5) == "supported"  # within 0.5: "matches"
    assert verdict(paired([2.0], [1.0])) == "inconclusive"  # one seed: no interval
    with pytest.raises(ValueError, match="same seeds"):
        paired([1.0, 2.0], [1.0])


def test_benchmark_ratios_are_medians_of_paired_rounds():
    from vlm.benchmarks.measure import ratio

    r = ratio([2.0, 2.2, 1.8, 2.0], [1.0, 1.0, 1.2, 2.0])  # per round 2.0, 2.2, 1.5, 1.0
    assert (r.median, r.low, r.high, r.rounds) == (1.75, 1.0, 2.2, 4) and str(r) == "1.75x [1.00-2.20]"
    assert r.verdict(1.5) == "met (range spans the target: undecided)" and r.verdict(0.9) == "met"
    assert ratio([1.0], [2.0]).verdict(1.0) == "not met"
    # rounds 0.8 and 1.25: median 1.025, above a lower-is-better target of 1.0
    assert ratio([1.0, 1.0], [1.25, 0.8]).verdict(1.0, higher_is_better=False) == "not met (range spans the target: undecided)"
    with pytest.raises(ValueError):
        ratio([1.0], [])
