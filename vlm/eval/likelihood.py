"""Scoring candidate replies by likelihood (Prismatic's way for multiple choice, lmms-eval's
``loglikelihood``): the summed log-probability of each continuation after the generation prompt."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from PIL import Image
from transformers import PreTrainedModel, ProcessorMixin

from vlm.eval.generate import Messages


def continuation_logprobs(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    messages: Messages,
    images: Sequence[Image.Image],
    continuations: Sequence[str],
    with_greedy: bool = False,
) -> list[float] | list[tuple[float, bool]]:
    """Summed log p(continuation | conversation + generation prompt + images), one per continuation.

    Each continuation is appended to the templated prompt text and the whole is tokenized, so tokens
    that merge across the boundary are handled: the scored tokens are those after the longest common
    prefix with the prompt alone. Rows are right-padded; padding is never scored. ``with_greedy``
    returns ``(logprob, is_greedy)`` pairs instead, is_greedy saying whether greedy decoding would
    produce exactly these tokens (lmms-eval's ``loglikelihood`` contract)."""
    if not continuations:
        raise ValueError("need at least one continuation to score")
    prompt = processor.apply_chat_template([list(messages)], add_generation_prompt=True, tokenize=False)[0]
    texts = [prompt + c for c in continuations]
    kwargs = {"images": [list(images)] * len(texts)} if images else {}
    tokenizer = processor.tokenizer
    previous, tokenizer.padding_side = tokenizer.padding_side, "right"
    try:
        full = processor(text=texts, padding=True, return_tensors="pt", **kwargs)
        alone = processor(
            text=[prompt], return_tensors="pt", **({"images": [list(images)]} if images else {})
        )
    finally:
        tokenizer.padding_side = previous
    full = {k: v.to(model.device) for k, v in full.items() if isinstance(v, torch.Tensor)}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            logits = model(**full).logits.float()
    finally:
        model.train(was_training)
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    ids, mask = full["input_ids"], full["attention_mask"]
    prompt_ids = alone["input_ids"][0].to(ids.device)
    out = []
    for row in range(len(texts)):
        length = int(mask[row].sum())
        start = _common_prefix(ids[row, :length], prompt_ids)
        if start >= length:
            raise ValueError(f"continuation {continuations[row]!r} adds no tokens to the prompt")
        targets = ids[row, start:length]
        scored = logprobs[row, start - 1 : length - 1]
        total = float(scored.gather(-1, targets[:, None]).sum())
        out.append((total, bool((scored.argmax(-1) == targets).all())) if with_greedy else total)
    return out


def _common_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    n = min(len(a), len(b))
    differs = (a[:n] != b[:n]).nonzero()
    return int(differs[0]) if len(differs) else n
