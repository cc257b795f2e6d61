"""Benchmarks run and report their numbers (no speed thresholds: those live in the printed output)."""

from vlm.benchmarks.data_pipeline import run


def test_data_pipeline_benchmark_reports_both_rates():
    result = run(n=16, batch_size=4, steps=1)
    assert result["data_samples_per_s"] > 0 and result["model_samples_per_s"] > 0
    assert result["loader_headroom"] == result["data_samples_per_s"] / result["model_samples_per_s"]


def test_eval_throughput_benchmark_reports_speedup_and_identical_answers():
    from vlm.benchmarks.eval_throughput import run as eval_run

    result = eval_run(n=6, batch_sizes=(1, 3), rounds=1, max_new_tokens=3)
    assert set(result["questions_per_s"]) == {1, 3} and result["speedup_vs_batch_1"][1] == 1.0
    assert result["identical_answers"] is True
