"""The reusable batched generation core for every evaluation: chat prompts + images -> answer strings.

Prompts are left-padded (so every row's last prompt token sits in the same column and generation
continues all rows in step) with an ``attention_mask``; transformers derives ``position_ids`` from
that mask, so a row's greedy answer does not depend on what else is in its batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from PIL import Image
from transformers import PreTrainedModel, PreTrainedTokenizerBase, ProcessorMixin

Messages = list[dict[str, Any]]
Prompt = tuple[Messages, list[Image.Image]]


def generate_answers(
    model: PreTrainedModel,
    processor: ProcessorMixin,
    prompts: Sequence[Prompt],
    batch_size: int = 32,
    max_new_tokens: int = 16,
) -> list[str]:
    """Greedy answers, one per ``(messages, images)`` prompt, in order.

    ``messages`` are chat messages as in ``Example.messages`` without the reply to be generated;
    their ``{"type": "image"}`` items refer to ``images`` in order. The generation prompt is added
    by the chat template. Only the new tokens are decoded (special tokens skipped) and stripped.
    The model is put in eval mode and its previous mode restored afterwards.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    was_training = model.training
    model.eval()
    answers: list[str] = []
    try:
        for start in range(0, len(prompts), batch_size):
            answers.extend(
                _generate_batch(model, processor, prompts[start : start + batch_size], max_new_tokens)
            )
    finally:
        model.train(was_training)
    return answers


def _generate_batch(
    model: PreTrainedModel, processor: ProcessorMixin, prompts: Sequence[Prompt], max_new_tokens: int
) -> list[str]:
    tokenizer = processor.tokenizer
    inputs = _prompt_inputs(model, processor, prompts)
    settings: dict[str, Any] = {"max_new_tokens": max_new_tokens, "do_sample": False}
    if model.generation_config.pad_token_id is None:
        settings["pad_token_id"] = tokenizer.pad_token_id
    with torch.inference_mode():
        out = model.generate(**inputs, **settings)
    new_tokens = out[:, inputs["input_ids"].shape[1] :]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


def _prompt_inputs(model: PreTrainedModel, processor: ProcessorMixin, prompts: Sequence[Prompt]) -> dict:
    """Left-padded model inputs for a batch of prompts, with the generation prompt added."""
    with left_padding(processor.tokenizer):
        inputs = processor.apply_chat_template(
            [list(messages) for messages, _ in prompts],
            add_generation_prompt=True,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            processor_kwargs={"images": [list(images) for _, images in prompts], "padding": True},
        )
    return {k: v.to(model.device) for k, v in inputs.items() if isinstance(v, torch.Tensor)}


def first_token_margins(
    model: PreTrainedModel, processor: ProcessorMixin, prompts: Sequence[Prompt], first: str, second: str,
    batch_size: int = 32,
) -> list[float]:
    """Per prompt, ``logit(first) - logit(second)`` for the reply's first token (each word's first token)."""
    ids = [processor.tokenizer.encode(word, add_special_tokens=False)[0] for word in (first, second)]
    was_training = model.training
    model.eval()
    margins: list[float] = []
    try:
        for start in range(0, len(prompts), batch_size):
            inputs = _prompt_inputs(model, processor, prompts[start : start + batch_size])
            with torch.inference_mode():
                logits = model(**inputs).logits[:, -1].float()
            margins += (logits[:, ids[0]] - logits[:, ids[1]]).tolist()
    finally:
        model.train(was_training)
    return margins


@contextmanager
def left_padding(tokenizer: PreTrainedTokenizerBase) -> Iterator[None]:
    """Left padding for the duration of the block; the tokenizer's own setting is restored after."""
    previous = tokenizer.padding_side
    tokenizer.padding_side = "left"
    try:
        yield
    finally:
        tokenizer.padding_side = previous
