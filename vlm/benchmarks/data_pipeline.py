"""Is the data loader the bottleneck? Data-pipeline samples/s next to the model's training step time.

The pipeline is what training runs per sample: render a synthetic scene, build its conversation,
apply the chat template, tokenize, preprocess the image, then collate. The step is forward +
backward + AdamW on the same batches with the assembled model.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time

import torch

from vlm.benchmarks.samples import synthetic_examples
from vlm.build import BuildSpec, build
from vlm.data.collate import Collator
from vlm.data.tokenize import encode_example


def run(n: int = 256, batch_size: int = 8, steps: int = 8, task: str = "instruct", **spec) -> dict:
    torch.manual_seed(0)
    model, processor = build(BuildSpec(**spec))
    size = processor.image_processor.crop_size["height"]
    collate = Collator(processor.tokenizer.pad_token_id)

    start = time.perf_counter()
    examples = synthetic_examples(n, size, (task,))
    samples = [encode_example(ex, processor, max_length=1024) for ex in examples]
    batches = [collate(samples[i : i + batch_size]) for i in range(0, n - batch_size + 1, batch_size)]
    data_s = time.perf_counter() - start

    model.train()
    optimizer = torch.optim.AdamW((p for p in model.parameters() if p.requires_grad), lr=1e-4)
    step_times = []
    for batch in itertools.islice(itertools.cycle(batches), steps + 1):
        start = time.perf_counter()
        model(**batch).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        step_times.append(time.perf_counter() - start)
    step_s = sum(step_times[1:]) / steps  # the first step pays one-off allocation costs
    result = {
        "samples": n,
        "batch_size": batch_size,
        "data_samples_per_s": n / data_s,
        "model_samples_per_s": batch_size / step_s,
        "model_step_s": step_s,
        "data_time_per_step_s": batch_size * data_s / n,
        "vision": spec.get("vision", "tiny-clip"),
        "llm": spec.get("llm", "tiny-llama"),
        "threads": torch.get_num_threads(),
    }
    result["loader_headroom"] = result["data_samples_per_s"] / result["model_samples_per_s"]
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--task", default="instruct")
    parser.add_argument("--vision", default="tiny-clip")
    parser.add_argument("--llm", default="tiny-llama")
    parser.add_argument("--json", help="also write the result here")
    a = parser.parse_args(argv)
    r = run(a.n, a.batch_size, a.steps, a.task, vision=a.vision, llm=a.llm)
    print(
        f"data pipeline : {r['data_samples_per_s']:8.1f} samples/s (one process, render+template+tokenize+collate)"
    )
    print(
        f"model step    : {r['model_samples_per_s']:8.1f} samples/s ({r['model_step_s'] * 1000:.1f} ms per batch of {a.batch_size})"
    )
    print(f"headroom      : {r['loader_headroom']:8.2f}x  (>1: one loader process keeps up with training)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(r, f, indent=2)


if __name__ == "__main__":
    main()
