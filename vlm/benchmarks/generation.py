"""Generation: time to first token and decode tokens/s, ours vs HF Llava `generate` with the same
weights and the same left-padded inputs, batched and one prompt at a time. Every call produces
exactly ``new_tokens`` tokens (``min_new_tokens``), so both models do the same work."""

from __future__ import annotations

import statistics
import time

import torch

from vlm.benchmarks.measure import ratio
from vlm.benchmarks.samples import synthetic_examples


def _inputs(processor, image_size: int, n: int) -> list[dict]:
    return [([ex.messages[0]], ex.images) for ex in synthetic_examples(n, image_size, ("vqa",))]


def _batch(processor, prompts: list) -> dict:
    tokenizer = processor.tokenizer
    previous, tokenizer.padding_side = tokenizer.padding_side, "left"
    try:
        return processor.apply_chat_template(
            [m for m, _ in prompts],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"images": [list(i) for _, i in prompts], "padding": True},
        )
    finally:
        tokenizer.padding_side = previous


def _generate(model, batch: dict, tokens: int, pad_id: int) -> torch.Tensor:
    settings = dict(max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, pad_token_id=pad_id)
    with torch.inference_mode():
        return model.generate(**batch, **settings)


def _timed(model, batch: dict, tokens: int, pad_id: int) -> float:
    start = time.perf_counter()
    _generate(model, batch, tokens, pad_id)
    return time.perf_counter() - start


def run_generation(
    ours, hf, processor, image_size: int, batch_size: int = 8, new_tokens: int = 16, rounds: int = 2
) -> dict:
    ours.eval()
    hf.eval()
    prompts = _inputs(processor, image_size, batch_size)
    batched = {k: v for k, v in _batch(processor, prompts).items() if isinstance(v, torch.Tensor)}
    singles = [
        {k: v for k, v in _batch(processor, [p]).items() if isinstance(v, torch.Tensor)} for p in prompts
    ]
    pad = processor.tokenizer.pad_token_id
    models = {"hf": hf, "ours": ours}
    results: dict[str, dict[str, list[float]]] = {n: {"ttft": [], "batched": [], "single": []} for n in models}
    for round_ in range(rounds + 1):  # round 0 warms every shape up (first calls pay one-off kernel setup)
        for name, model in models.items():
            ttft = _timed(model, singles[0], 1, pad)
            batched_s = _timed(model, batched, new_tokens, pad)
            single_s = sum(_timed(model, s, new_tokens, pad) for s in singles)
            if round_:
                results[name]["ttft"].append(ttft)
                results[name]["batched"].append(batched_s)
                results[name]["single"].append(single_s)
    same = all(torch.equal(_generate(ours, b, new_tokens, pad), _generate(hf, b, new_tokens, pad)) for b in [batched, *singles])
    out = {"batch_size": batch_size, "new_tokens": new_tokens, "rounds": rounds, "identical_tokens": same, "models": {}}
    hf = results["hf"]
    for name, r in results.items():
        batched_s, single_s = statistics.median(r["batched"]), statistics.median(r["single"])
        batched, single, ttft = ratio(hf["batched"], r["batched"]), ratio(hf["single"], r["single"]), ratio(r["ttft"], hf["ttft"])
        out["models"][name] = {
            "ttft_s": statistics.median(r["ttft"]),
            "batched_tokens_per_s": batch_size * new_tokens / batched_s,
            "single_tokens_per_s": batch_size * new_tokens / single_s,
            "batched_speedup": single_s / batched_s,
            "speedup_vs_hf": batched.median,  # tokens/s, batched
            "speedup_range": [batched.low, batched.high],
            "single_speedup_vs_hf": single.median,
            "single_speedup_range": [single.low, single.high],
            "ttft_vs_hf": ttft.median,  # ours / HF's time to first token: below 1 is faster
            "ttft_range": [ttft.low, ttft.high],
        }
    return out
