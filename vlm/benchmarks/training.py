"""Training-step throughput: ours vs Hugging Face Llava with identical weights, same samples, same
precision, measured alternately in one process.

Variants on the same samples: ``hf`` (LlavaForConditionalGeneration, padded batch, its own loss),
``ours-same-work`` (our model doing exactly the same work: a sanity check, ~1.0x), ``ours`` (the
training path: the LM head only where a next token is supervised) and ``ours-packed`` (that, on one
padding-free packed row; on CPU the packed row's attention is a dense masked L x L, so it pays only
when padding is large).
A step is forward + backward + AdamW. FLOPs are counted by `torch.utils.flop_counter` on one step.
"""

from __future__ import annotations

import ctypes
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext, suppress

import psutil
import torch
from torch.utils.flop_counter import FlopCounterMode

from vlm.benchmarks.measure import ratio
from vlm.benchmarks.samples import synthetic_examples
from vlm.data.collate import Collator, PackedCollator
from vlm.data.tokenize import encode_example


def realistic_samples(processor, n: int, image_size: int, tasks: tuple[str, ...] = ("caption", "instruct")) -> list[dict]:
    """A LLaVA-like mix (default: half captions, short; half multi-turn conversations, longer)."""
    examples = synthetic_examples(n, image_size, tasks)
    return [encode_example(ex, processor, max_length=2048) for ex in examples]


def _peak_rss_delta(step: Callable[[], None]) -> tuple[float, int]:
    """Run ``step``; its wall time and the peak resident-memory growth while it ran (sampled)."""
    with suppress(OSError):  # no glibc: nothing to trim
        ctypes.CDLL("libc.so.6").malloc_trim(0)  # hand freed memory back so the baseline is honest
    proc, peak, done = psutil.Process(), [0], threading.Event()
    base = proc.memory_info().rss

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss - base)
            time.sleep(0.002)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    start = time.perf_counter()
    step()
    elapsed = time.perf_counter() - start
    done.set()
    watcher.join()
    return elapsed, peak[0]


def _stepper(model: torch.nn.Module, batch: dict, precision: str, **forward) -> Callable[[], None]:
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else nullcontext()

    def step() -> None:
        with autocast:
            loss = model(**batch, **forward).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _flops(step: Callable[[], None]) -> int:
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return counter.get_total_flops()


def run_training(ours, hf, processor, image_size: int, batch_size: int, precision: str, rounds: int,
                 tasks: tuple[str, ...] = ("caption", "instruct")) -> dict:
    """Every variant's step, alternating within each round after a warm-up (the FLOP-counting step);
    speed-ups are medians of the per-round ratios to HF's step, with their range."""
    samples = realistic_samples(processor, batch_size, image_size, tasks)
    padded = Collator(processor.tokenizer.pad_token_id)(samples)
    packed = PackedCollator(10**9)(samples)
    ours.train()
    hf.train()
    packed = {k: v for k, v in packed.items() if k != "use_cache"}
    steps = {
        "hf": _stepper(hf, padded, precision),
        "ours-same-work": _stepper(ours, padded, precision),
        "ours": _stepper(ours, padded, precision, logits_to_keep="supervised"),
        "ours-packed": _stepper(ours, packed, precision, logits_to_keep="supervised"),
    }
    flops = {name: _flops(step) for name, step in steps.items()}  # also the warm-up step
    times: dict[str, list[float]] = {name: [] for name in steps}
    memory: dict[str, int] = {name: 0 for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            elapsed, rss = _peak_rss_delta(step)
            times[name].append(elapsed)
            memory[name] = max(memory[name], rss)
    real_tokens = int(padded["attention_mask"].sum())
    out = {
        "precision": precision,
        "batch_size": batch_size,
        "real_tokens": real_tokens,
        "padded_tokens": padded["input_ids"].numel(),
        "variants": {},
    }
    for name in steps:
        t = statistics.median(times[name])
        speedup = ratio(times["hf"], times[name])
        out["variants"][name] = {
            "step_s": t,
            "step_s_range": [min(times[name]), max(times[name])],
            "speedup_vs_hf": speedup.median,
            "speedup_range": [speedup.low, speedup.high],
            "samples_per_s": batch_size / t,
            "tokens_per_s": real_tokens / t,
            "gflop_per_step": flops[name] / 1e9,
            "achieved_gflops": flops[name] / t / 1e9,
            "peak_rss_mb": memory[name] / 2**20,
        }
    for v in out["variants"].values():
        v["memory_vs_hf"] = v["peak_rss_mb"] / max(out["variants"]["hf"]["peak_rss_mb"], 1e-9)
    return out
