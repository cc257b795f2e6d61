"""Examples -> model inputs: chat template, image-token expansion, assistant-only labels, length limit.

The assistant mask comes from transformers itself: every template wraps assistant replies (and
their end-of-turn marker) in ``{% generation %}``, and ``apply_chat_template(...,
return_assistant_tokens_mask=True)`` maps those character spans onto tokens, accounting for the
expansion of each ``<image>`` marker into the image placeholder run.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from vlm.data.errors import BadSample, BadSampleKind
from vlm.data.example import Example
from vlm.processing import VLMProcessor

IGNORE_INDEX = -100
Truncation = Literal["text", "drop"]


def encode_example(
    example: Example, processor: VLMProcessor, max_length: int, truncation: Truncation = "text"
) -> dict[str, Any]:
    """Tokenize ``example`` for training.

    Returns ``input_ids`` and ``labels`` (1-D long tensors; labels are ``-100`` everywhere but on
    assistant reply tokens and their end-of-turn marker), ``pixel_values`` (``(num_images, 3, H, W)``,
    for ``high_res`` anyres/tiles ``(num_tiles, 3, H, W)`` plus ``image_sizes``; ``None`` for a
    text-only sample), ``num_images`` and ``length``. Each image's placeholder run has the length
    the processor's layout gives for its size.

    Over ``max_length``: ``truncation="drop"`` raises ``BadSample(TOO_LONG)``. ``"text"`` keeps the
    longest prefix of whole turns that ends with an assistant reply and fits (with that prefix's
    images); if even the first reply does not fit, it cuts text tokens after the last image run,
    as long as at least one supervised token survives. Image runs are never cut.
    """
    if truncation not in ("text", "drop"):
        raise ValueError(f"truncation must be 'text' or 'drop', not {truncation!r}")
    encoded = _encode(example.messages, example.images, processor)
    if encoded["length"] <= max_length:
        return encoded
    if truncation == "drop":
        raise _too_long(example, f"{encoded['length']} tokens > max_length={max_length}")
    return _truncate(example, processor, max_length, encoded)


def _encode(messages: list[dict[str, Any]], images: list, processor: VLMProcessor) -> dict[str, Any]:
    out = processor.apply_chat_template(
        messages,
        tokenize=True,
        return_dict=True,
        return_assistant_tokens_mask=True,
        processor_kwargs={"images": images} if images else {},
    )
    # tensors only now: transformers walks the token offsets element by element to place the assistant mask,
    # which over tensors took most of a multi-turn sample's encoding time
    out.convert_to_tensors(tensor_type="pt")
    input_ids = out["input_ids"][0].long()
    assistant = out["assistant_masks"][0].bool() & (input_ids != processor.image_token_id)
    encoded = {
        "input_ids": input_ids,
        "labels": input_ids.masked_fill(~assistant, IGNORE_INDEX),
        "pixel_values": out["pixel_values"] if images else None,
        "num_images": len(images),
        "length": len(input_ids),
    }
    if images and "image_sizes" in out:  # high_res: each image's real tiles, stacked (no padding tiles)
        layout = processor.layout
        sizes = layout.sizes(out["image_sizes"], len(images))
        encoded["pixel_values"] = layout.stack_tiles(out["pixel_values"], sizes)
        encoded["image_sizes"] = out["image_sizes"]
    return encoded


def _truncate(
    example: Example, processor: VLMProcessor, max_length: int, full: dict[str, Any]
) -> dict[str, Any]:
    n = len(example.messages)
    ends = [
        i + 1 for i, message in enumerate(example.messages) if message["role"] == "assistant" and i + 1 < n
    ]
    # Whole trailing turns first: the longest conversation prefix ending in a reply that fits.
    shortest = full
    for end in reversed(ends):
        shortest = _encode_prefix(example, processor, end)
        if shortest["length"] <= max_length:
            return shortest
    # Then cut the text of the first exchange, never into an image run.
    return _cut_text(example, processor, shortest, max_length)


def _encode_prefix(example: Example, processor: VLMProcessor, end: int) -> dict[str, Any]:
    messages = example.messages[:end]
    return _encode(messages, example.images[: _count_images(messages)], processor)


def _cut_text(
    example: Example, processor: VLMProcessor, encoded: dict[str, Any], max_length: int
) -> dict[str, Any]:
    image_positions = (encoded["input_ids"] == processor.image_token_id).nonzero()
    after_images = int(image_positions[-1]) + 1 if len(image_positions) else 0
    if after_images > max_length:
        raise _too_long(example, f"its image tokens end at {after_images} > max_length={max_length}")
    labels = encoded["labels"][:max_length]
    if not _supervised(labels):
        raise _too_long(example, f"no assistant token falls within max_length={max_length}")
    return {**encoded, "input_ids": encoded["input_ids"][:max_length], "labels": labels, "length": max_length}


def _count_images(messages: list[dict[str, Any]]) -> int:
    return sum(
        1
        for message in messages
        if not isinstance(message["content"], str)
        for item in message["content"]
        if item.get("type") == "image"
    )


def _supervised(labels: torch.Tensor) -> bool:
    return bool((labels != IGNORE_INDEX).any())


def _too_long(example: Example, detail: str) -> BadSample:
    return BadSample(BadSampleKind.TOO_LONG, example.id, detail)
