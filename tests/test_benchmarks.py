"""Benchmarks run and report their numbers (no speed thresholds: those live in the printed output)."""

from vlm.benchmarks.data_pipeline import run


def test_data_pipeline_benchmark_reports_both_rates():
    result = run(n=16, batch_size=4, steps=1)
    assert result["data_samples_per_s"] > 0 and result["model_samples_per_s"] > 0
    assert result["loader_headroom"] == result["data_samples_per_s"] / result["model_samples_per_s"]
