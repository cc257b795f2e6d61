"""Batching encoded samples: dynamic padding (``Collator``) or packing into one row (``PackedCollator``).

Both take the dicts ``encode_example`` returns and concatenate ``pixel_values`` (and, for
``high_res`` anyres/tiles, each image's tiles and ``image_sizes``) over the samples in order, which
is the order the model scatters image features into the image placeholder runs.

Packing isolation: a packed row carries ``position_ids`` that restart at 0 for every sample and
*no* ``attention_mask``. transformers then detects the packed format from the position resets
(``masking_utils.find_packed_sequence_indices``) and builds a block-diagonal causal mask for
sdpa/eager/flex, while flash-attention uses the same resets as ``cu_seqlens``. That detection is
skipped whenever a KV cache exists, so the batch also carries ``use_cache=False``. The first label
of every sample is ``-100``: with the shifted loss it would be predicted from the previous sample.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

import torch

from vlm.data.tokenize import IGNORE_INDEX

Sample = dict[str, Any]


class Collator:
    """Pads a list of samples to the longest (rounded up to ``pad_to_multiple_of``)."""

    def __init__(
        self,
        pad_token_id: int,
        padding_side: Literal["right", "left"] = "right",
        pad_to_multiple_of: int | None = None,
    ):
        if padding_side not in ("right", "left"):
            raise ValueError(f"padding_side must be 'right' or 'left', not {padding_side!r}")
        self.pad_token_id = pad_token_id
        self.padding_side = padding_side
        self.pad_to_multiple_of = pad_to_multiple_of

    def __call__(self, samples: Sequence[Sample]) -> dict[str, torch.Tensor]:
        width = max(len(s["input_ids"]) for s in samples)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        batch = {
            "input_ids": torch.stack([self._pad(s["input_ids"], width, self.pad_token_id) for s in samples]),
            "attention_mask": torch.stack(
                [self._pad(torch.ones_like(s["input_ids"]), width, 0) for s in samples]
            ),
            "labels": torch.stack([self._pad(s["labels"], width, IGNORE_INDEX) for s in samples]),
        }
        return _with_pixels(batch, samples)

    def _pad(self, row: torch.Tensor, width: int, value: int) -> torch.Tensor:
        fill = row.new_full((width - len(row),), value)
        return torch.cat([row, fill] if self.padding_side == "right" else [fill, row])


class PackedCollator:
    """Concatenates samples into a single row of at most ``max_tokens`` tokens, isolated per sample.

    Returns ``input_ids``, ``labels`` and ``position_ids`` of shape ``(1, total)``, ``use_cache=False``
    and, when any sample has images, ``pixel_values``. Use ``pack()`` to split a stream of samples
    into groups that fit.
    """

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens

    def __call__(self, samples: Sequence[Sample]) -> dict[str, Any]:
        total = sum(len(s["input_ids"]) for s in samples)
        if total > self.max_tokens:
            raise ValueError(f"{len(samples)} samples hold {total} tokens > max_tokens={self.max_tokens}")
        labels = []
        for s in samples:
            row = s["labels"].clone()
            row[0] = IGNORE_INDEX
            labels.append(row)
        batch = {
            "input_ids": torch.cat([s["input_ids"] for s in samples]).unsqueeze(0),
            "labels": torch.cat(labels).unsqueeze(0),
            "position_ids": torch.cat([torch.arange(len(s["input_ids"])) for s in samples]).unsqueeze(0),
            "use_cache": False,
        }
        return _with_pixels(batch, samples)

    def pack(self, samples: Iterable[Sample]) -> list[list[Sample]]:
        """Greedy, order-preserving grouping of ``samples`` into packs of at most ``max_tokens``."""
        packs: list[list[Sample]] = [[]]
        used = 0
        for s in samples:
            n = len(s["input_ids"])
            if n > self.max_tokens:
                raise ValueError(f"a sample of {n} tokens cannot fit max_tokens={self.max_tokens}")
            if used + n > self.max_tokens:
                packs.append([])
                used = 0
            packs[-1].append(s)
            used += n
        return [p for p in packs if p]


def padding_fraction(batches: Iterable[dict[str, torch.Tensor]]) -> float:
    """Share of token slots that are padding over ``batches`` (0.0 for packed or unpadded batches)."""
    slots = real = 0
    for batch in batches:
        slots += batch["input_ids"].numel()
        mask = batch.get("attention_mask")
        real += int(mask.sum()) if mask is not None else batch["input_ids"].numel()
    return 1.0 - real / slots if slots else 0.0


def _with_pixels(batch: dict[str, Any], samples: Sequence[Sample]) -> dict[str, Any]:
    pixels = [s["pixel_values"] for s in samples if s.get("pixel_values") is not None]
    if pixels:
        batch["pixel_values"] = torch.cat(pixels)
    sizes = [s["image_sizes"] for s in samples if s.get("image_sizes") is not None]
    if sizes:  # high_res: images hold different numbers of tiles; the model splits them by size
        batch["image_sizes"] = torch.cat(sizes)
    return batch
