"""Padding fraction on a realistic length mix (captions + multi-turn conversations): plain batching
in random order, LLaVA's length grouping, and padding-free packing."""

from __future__ import annotations

import torch

from vlm.data.collate import Collator, PackedCollator, padding_fraction
from vlm.data.sampler import ModalityLengthGroupedSampler


def run_padding(samples: list[dict], pad_token_id: int, batch_size: int = 8, pack_tokens: int = 2048) -> dict:
    collate = Collator(pad_token_id)
    order = torch.randperm(len(samples), generator=torch.Generator().manual_seed(0)).tolist()
    lengths = [len(s["input_ids"]) for s in samples]
    has_image = [bool(s.get("pixel_values") is not None) for s in samples]
    grouped = list(ModalityLengthGroupedSampler(lengths, has_image, batch_size, seed=0))

    def batches(indices: list[int]) -> list[dict]:
        return [
            collate([samples[i] for i in indices[k : k + batch_size]])
            for k in range(0, len(indices), batch_size)
        ]

    packs, current = [], []
    for i in order:  # greedy in arrival order: a pack closes when the next sample does not fit
        if current and sum(lengths[j] for j in current) + lengths[i] > pack_tokens:
            packs.append(current)
            current = []
        current.append(i)
    packs.append(current)
    packed = [PackedCollator(pack_tokens)([samples[i] for i in p]) for p in packs]
    fill = sum(lengths) / (len(packs) * pack_tokens)
    return {
        "samples": len(samples),
        "batch_size": batch_size,
        "plain": padding_fraction(batches(order)),
        "length_grouped": padding_fraction(batches(grouped)),
        "packed": padding_fraction(packed),
        "pack_tokens": pack_tokens,
        "pack_fill": fill,
    }
