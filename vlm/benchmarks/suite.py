"""`python bench/run.py` / `vlm bench`: the performance table, ours next to HF Llava with identical weights.

Per size: training-step throughput (fp32 and bf16 autocast) with FLOPs, MFU against the matmul peak
measured in the same run, and peak memory; generation (time to first token, tokens/s, batched vs
one at a time). Once: padding fraction (plain / length-grouped / packed) and the data pipeline's
samples/s against the model's step time. Writes everything as JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

import torch

from vlm.benchmarks.data_pipeline import run as run_data_pipeline
from vlm.benchmarks.generation import run_generation
from vlm.benchmarks.measure import Ratio
from vlm.benchmarks.padding import run_padding
from vlm.benchmarks.peak import matmul_peak
from vlm.benchmarks.sizes import SIZES, load_pair
from vlm.benchmarks.training import realistic_samples, run_training

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def run(
    sizes=("tiny", "20M", "100M", "128k"),
    precisions=("fp32", "bf16"),
    batch_size: int | None = None,
    rounds: int = 7,
    gen_tokens: int = 16,
) -> dict:
    """``batch_size`` None: each size's own (8, 8, 4). bf16 runs on every size only where this CPU's
    bf16 matmul is at least half as fast as fp32; otherwise on the first size only, and says so."""
    torch.manual_seed(0)
    peaks = {p: matmul_peak(PRECISION_DTYPES[p]) / 1e9 for p in ("fp32", "bf16")}
    slow_bf16 = peaks["bf16"] < 0.5 * peaks["fp32"]
    result: dict = {
        "machine": {
            "threads": torch.get_num_threads(),
            "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__,
        },
        "peak_gflops": peaks,
        "notes": [],
        "sizes": {},
    }
    if slow_bf16 and "bf16" in precisions:
        result["notes"].append(
            f"bf16 matmul runs at {peaks['bf16']:.1f} GFLOP/s here vs {peaks['fp32']:.1f} fp32 (no native bf16 "
            f"instructions on this CPU): bf16 measured on {sizes[0]} only"
        )
    for name in sizes:
        size = SIZES[name]
        progress(f"{name}: building ours and HF Llava with the same weights")
        ours, hf, processor, counts = load_pair(size)
        entry = {"parameters": counts, "image_tokens": ours.config.image_seq_length, "training": {}}
        for precision in precisions:
            if precision == "bf16" and slow_bf16 and name != sizes[0]:
                continue
            progress(f"{name}: training steps, {precision}, {rounds} alternating rounds")
            t = run_training(
                ours, hf, processor, size.image_size, batch_size or size.batch_size, precision, rounds, size.tasks
            )
            for v in t["variants"].values():
                v["mfu"] = v["achieved_gflops"] / result["peak_gflops"][precision]
            entry["training"][precision] = t
        progress(f"{name}: generation, {rounds} alternating rounds")
        entry["generation"] = run_generation(ours, hf, processor, size.image_size, 8, gen_tokens, rounds)
        result["sizes"][name] = entry
        if name == sizes[0]:
            samples = realistic_samples(processor, 256, size.image_size)
            result["padding"] = run_padding(samples, processor.tokenizer.pad_token_id, 8)
        del ours, hf
    progress("data pipeline")
    result["data_pipeline"] = run_data_pipeline(n=128, batch_size=8, steps=4)
    result["targets"] = targets(result)
    return result


def progress(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def targets(r: dict) -> list[str]:
    """One line per target: met or not, with the median ratio and its range over the rounds."""
    lines = []
    for name, e in r["sizes"].items():
        fp32 = e["training"].get("fp32", {}).get("variants", {})
        if "ours-same-work" in fp32:
            same = fp32["ours-same-work"]
            lines.append(_line(f"{name}: no overhead, ours-same-work >= 1.0x HF", same["speedup_vs_hf"], same["speedup_range"], 1.0))
        goal = {"100M": 1.5, "tiny": 1.3}.get(name)
        if goal and "ours" in fp32:
            lines.append(_line(f"{name}: training >= {goal}x HF", fp32["ours"]["speedup_vs_hf"], fp32["ours"]["speedup_range"], goal))
        if name == "128k" and "ours" in fp32:
            memory = fp32["ours"]["memory_vs_hf"]
            lines.append(f"{name}: peak memory <= 0.6x HF: {'met' if memory <= 0.6 else 'not met'} ({memory:.2f}x)")
        g = e["generation"]["models"]["ours"]
        lines.append(_line(f"{name}: generation tokens/s batched >= 1.1x HF", g["speedup_vs_hf"], g["speedup_range"], 1.1))
        lines.append(_line(f"{name}: generation tokens/s one by one >= 1.1x HF", g["single_speedup_vs_hf"],
                           g["single_speedup_range"], 1.1))
        lines.append(_line(f"{name}: time to first token <= 1.0x HF", g["ttft_vs_hf"], g["ttft_range"], 1.0, lower=True))
        lines.append(f"{name}: identical greedy tokens: {'yes' if e['generation']['identical_tokens'] else 'NO'}")
    return lines


def _line(what: str, median: float, span: list[float], target: float, lower: bool = False) -> str:
    return f"{what}: {Ratio(median, span[0], span[1], 0).verdict(target, not lower)} ({median:.2f}x [{span[0]:.2f}-{span[1]:.2f}])"


def table(r: dict) -> str:
    """The tables (speed-ups: median of per-round ratios [min-max]) and the target verdicts."""
    peaks = ", ".join(f"{p} {g:.0f} GFLOP/s" for p, g in r["peak_gflops"].items())
    lines = [f"matmul peak measured now: {peaks} ({r['machine']['threads']} threads)", *r["notes"], ""]
    lines += [
        "| size | params | precision | variant (batch) | step s | tokens/s | samples/s | vs HF | GFLOP/step | MFU % | peak MB |",
        "|---" * 11 + "|",
    ]
    for name, e in r["sizes"].items():
        params = f"{e['parameters']['total'] / 1e6:.1f}M"
        for precision, t in e["training"].items():
            for variant, v in t["variants"].items():
                low, high = v["speedup_range"]
                lines.append(
                    f"| {name} | {params} | {precision} | {variant} ({t['batch_size']}) | {v['step_s']:.3f} | {v['tokens_per_s']:.0f} | "
                    f"{v['samples_per_s']:.1f} | {v['speedup_vs_hf']:.2f}x [{low:.2f}-{high:.2f}] | {v['gflop_per_step']:.1f} | "
                    f"{100 * v['mfu']:.1f} | {v['peak_rss_mb']:.0f} |"
                )
    lines += [
        "",
        "| size | model | TTFT ms | TTFT vs HF | tokens/s batched | vs HF | tokens/s one-by-one | vs HF |",
        "|---" * 8 + "|",
    ]
    for name, e in r["sizes"].items():
        for model, g in e["generation"]["models"].items():
            lines.append(
                f"| {name} | {model} | {1000 * g['ttft_s']:.0f} | {_range(g['ttft_vs_hf'], g['ttft_range'])} | "
                f"{g['batched_tokens_per_s']:.0f} | {_range(g['speedup_vs_hf'], g['speedup_range'])} | "
                f"{g['single_tokens_per_s']:.0f} | {_range(g['single_speedup_vs_hf'], g['single_speedup_range'])} |"
            )
    p = r["padding"]
    lines += [
        "",
        f"padding fraction ({p['samples']} samples, captions + conversations, batch {p['batch_size']}): "
        f"plain {100 * p['plain']:.1f} %, length-grouped {100 * p['length_grouped']:.1f} %, "
        f"packed {100 * p['packed']:.1f} % (packs filled to {100 * p['pack_fill']:.0f} % of {p['pack_tokens']} tokens)",
    ]
    d = r["data_pipeline"]
    lines.append(
        f"data pipeline: {d['data_samples_per_s']:.0f} samples/s vs model {d['model_samples_per_s']:.0f} samples/s "
        f"(tiny model; headroom {d['loader_headroom']:.1f}x, one loader process)"
    )
    lines += ["", "targets (met by the median; a range across the target leaves it undecided):", *r["targets"]]
    return "\n".join(lines)


def _range(median: float, span: list[float]) -> str:
    return f"{median:.2f}x [{span[0]:.2f}-{span[1]:.2f}]"


def quiet() -> None:
    """No third-party progress bars or notes between the suite's lines."""
    import warnings

    from huggingface_hub.utils import disable_progress_bars
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    disable_progress_bars()
    warnings.filterwarnings("ignore")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="tiny,20M,100M,128k")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch-size", type=int, help="default: per size (8, 8, 4)")
    parser.add_argument("--rounds", type=int, default=7, help="alternating rounds after the warm-up (7)")
    parser.add_argument("--json", default="runs/bench/results.json")
    a = parser.parse_args(argv)
    quiet()
    r = run(tuple(a.sizes.split(",")), tuple(a.precisions.split(",")), a.batch_size, a.rounds)
    print(table(r))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(r, indent=1))
    print(f"\nwrote {a.json}")
    return 0
