"""Benchmarks run and report their numbers (no speed thresholds: those live in the printed output)."""

import re

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


def test_performance_suite_runs_every_part_and_prints_the_table():
    from vlm.benchmarks.suite import run as suite_run
    from vlm.benchmarks.suite import table

    result = suite_run(sizes=("tiny",), precisions=("fp32",), batch_size=2, rounds=1, gen_tokens=2)
    training = result["sizes"]["tiny"]["training"]["fp32"]["variants"]
    assert set(training) == {"hf", "ours-same-work", "ours", "ours-packed"}
    assert training["hf"]["speedup_vs_hf"] == 1.0
    # the supervised-only head really skips work: fewer FLOPs than the same model on the same batch
    assert training["ours"]["gflop_per_step"] < training["ours-same-work"]["gflop_per_step"]
    assert all(0 < v["mfu"] for v in training.values())
    padding = result["padding"]
    assert padding["packed"] == 0.0 and padding["length_grouped"] <= padding["plain"]
    assert set(result["sizes"]["tiny"]["generation"]["models"]) == {"hf", "ours"}
    assert result["sizes"]["tiny"]["generation"]["identical_tokens"] is True  # ours and HF greedy agree
    assert training["ours"]["speedup_range"][0] <= training["ours"]["speedup_vs_hf"] <= training["ours"]["speedup_range"][1]
    text = table(result)
    assert re.search(r"\| tiny \| [0-9.]+M \| fp32 \| ours \(2\) \|", text) and "padding fraction" in text and "data pipeline" in text
    assert "tiny: no overhead, ours-same-work >= 1.0x HF: " in text and "tiny: identical greedy tokens: yes" in text
