"""Evaluation throughput: questions/s of `vlm eval`'s generation core at batch size 1 and batched, on
the same questions, alternating rounds; also checks the answers are identical.

`python -m vlm.benchmarks.eval_throughput [--model PATH] [--n 96] [--batch-sizes 1,16]`; without ``--model``
it assembles the tiny default parts (random weights: generation runs to ``max_new_tokens``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

from vlm.build import BuildSpec, build
from vlm.eval.generate import generate_answers
from vlm.eval.runner import load_model, prompt_for
from vlm.eval.task import get_task


def _model(path: str | None):
    if path:
        return load_model(path)
    torch.manual_seed(0)
    model, processor = build(BuildSpec(vision="tiny-clip", projector="mlp2x_gelu", llm="tiny-llama"))
    with tempfile.TemporaryDirectory() as tmp:  # through the saved folder, as `vlm eval` loads it
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        return load_model(tmp)


def run(
    model_path: str | None = None,
    task: str = "synthetic_vqa",
    n: int = 96,
    batch_sizes=(1, 16),
    rounds: int = 2,
    max_new_tokens: int = 8,
) -> dict:
    model, processor = _model(model_path)
    spec = get_task(task)
    samples = spec.read(Path(spec.default_data()))[:n]
    prompts = [prompt_for(spec, s, "llava15", [r.load(s.id) for r in s.images]) for s in samples]
    generate_answers(
        model, processor, prompts[: max(batch_sizes)], max(batch_sizes), max_new_tokens
    )  # warm-up
    times: dict[int, list[float]] = {b: [] for b in batch_sizes}
    answers: dict[int, list[str]] = {}
    for _ in range(rounds):
        for b in batch_sizes:
            start = time.perf_counter()
            answers[b] = generate_answers(model, processor, prompts, b, max_new_tokens)
            times[b].append(time.perf_counter() - start)
    per_s = {b: n / statistics.median(t) for b, t in times.items()}
    base = min(batch_sizes)
    return {
        "task": task,
        "questions": n,
        "max_new_tokens": max_new_tokens,
        "model": model_path or "tiny-clip + mlp2x_gelu + tiny-llama (random)",
        "threads": torch.get_num_threads(),
        "questions_per_s": per_s,
        "speedup_vs_batch_1": {b: per_s[b] / per_s[base] for b in batch_sizes},
        "identical_answers": all(answers[b] == answers[base] for b in batch_sizes),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", help="a model folder (default: tiny parts, random weights)")
    parser.add_argument("--task", default="synthetic_vqa")
    parser.add_argument("--n", type=int, default=96)
    parser.add_argument("--batch-sizes", default="1,16")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=8)
    parser.add_argument("--json", help="also write the result here")
    a = parser.parse_args(argv)
    sizes = tuple(int(b) for b in a.batch_sizes.split(","))
    r = run(a.model, a.task, a.n, sizes, a.rounds, a.max_new_tokens)
    print(
        f"{r['task']}: {r['questions']} questions, {r['max_new_tokens']} new tokens max, {r['threads']} threads"
    )
    print(f"model: {r['model']}")
    print(f"{'batch size':>10} {'questions/s':>12} {'speed-up':>9}")
    for b in sizes:
        print(f"{b:>10} {r['questions_per_s'][b]:>12.1f} {r['speedup_vs_batch_1'][b]:>8.2f}x")
    print(f"answers identical across batch sizes: {r['identical_answers']}")
    if a.json:
        Path(a.json).write_text(json.dumps(r, indent=1))


if __name__ == "__main__":
    main()
