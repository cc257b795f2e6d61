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
from pathlib import Path

import torch

from vlm.benchmarks.data_pipeline import run as run_data_pipeline
from vlm.benchmarks.generation import run_generation
from vlm.benchmarks.padding import run_padding
from vlm.benchmarks.peak import matmul_peak
from vlm.benchmarks.sizes import SIZES, load_pair
from vlm.benchmarks.training import realistic_samples, run_training

PRECISION_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def run(
    sizes=("tiny", "20M", "100M"),
    precisions=("fp32", "bf16"),
    batch_size: int | None = None,
    rounds: int = 3,
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
        ours, hf, processor, counts = load_pair(size)
        entry = {"parameters": counts, "image_tokens": ours.config.image_seq_length, "training": {}}
        for precision in precisions:
            if precision == "bf16" and slow_bf16 and name != sizes[0]:
                continue
            t = run_training(
                ours, hf, processor, size.image_size, batch_size or size.batch_size, precision, rounds
            )
            for v in t["variants"].values():
                v["mfu"] = v["achieved_gflops"] / result["peak_gflops"][precision]
            entry["training"][precision] = t
        entry["generation"] = run_generation(
            ours, hf, processor, size.image_size, 8, gen_tokens, max(1, rounds - 1)
        )
        result["sizes"][name] = entry
        if name == sizes[0]:
            samples = realistic_samples(processor, 256, size.image_size)
            result["padding"] = run_padding(samples, processor.tokenizer.pad_token_id, 8)
        del ours, hf
    result["data_pipeline"] = run_data_pipeline(n=128, batch_size=8, steps=4)
    return result


def table(r: dict) -> str:
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
                lines.append(
                    f"| {name} | {params} | {precision} | {variant} ({t['batch_size']}) | {v['step_s']:.3f} | {v['tokens_per_s']:.0f} | "
                    f"{v['samples_per_s']:.1f} | {v['speedup_vs_hf']:.2f}x | {v['gflop_per_step']:.1f} | "
                    f"{100 * v['mfu']:.1f} | {v['peak_rss_mb']:.0f} |"
                )
    lines += [
        "",
        "| size | model | TTFT ms | tokens/s batched | tokens/s one-by-one | batched speed-up | vs HF |",
        "|---" * 7 + "|",
    ]
    for name, e in r["sizes"].items():
        for model, g in e["generation"]["models"].items():
            lines.append(
                f"| {name} | {model} | {1000 * g['ttft_s']:.0f} | {g['batched_tokens_per_s']:.0f} | "
                f"{g['single_tokens_per_s']:.0f} | {g['batched_speedup']:.2f}x | {g['speedup_vs_hf']:.2f}x |"
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="tiny,20M,100M")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--batch-size", type=int, help="default: per size (8, 8, 4)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default="runs/bench/results.json")
    a = parser.parse_args(argv)
    r = run(tuple(a.sizes.split(",")), tuple(a.precisions.split(",")), a.batch_size, a.rounds)
    print(table(r))
    Path(a.json).parent.mkdir(parents=True, exist_ok=True)
    Path(a.json).write_text(json.dumps(r, indent=1))
    print(f"\nwrote {a.json}")
    return 0
