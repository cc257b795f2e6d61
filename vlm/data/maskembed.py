"""Images and MaskEmbed patch masks for locality alignment (the ``maskembed`` stage).

Each item is one image's normalised pixels and three patch masks: m, its complement 1 - m, and all
ones. m keeps each patch with a probability that is itself drawn uniformly from
``[min_keep, max_keep]``, so masks range from nearly empty to nearly full. Masks are seeded per
item, so a resumed run (or another process) draws the same ones.
"""

from __future__ import annotations

from typing import Any

import torch

from vlm.data.registry import open_source


def sample_masks(n_patches: int, generator: torch.Generator, min_keep: float = 0.0, max_keep: float = 1.0) -> torch.Tensor:
    """(3, n_patches) float masks: m, 1 - m, ones."""
    keep = min_keep + (max_keep - min_keep) * torch.rand((), generator=generator)
    m = (torch.rand(n_patches, generator=generator) < keep).float()
    return torch.stack([m, 1 - m, torch.ones_like(m)])


class MaskedImages(torch.utils.data.Dataset):
    """The first image of each sample of a stage's data source (any `DATA_SOURCES` member), processed by
    the encoder's image processor, with their masks."""

    def __init__(self, data, processor, side: int, min_keep: float = 0.0, max_keep: float = 1.0, seed: int = 0):
        if not 0.0 <= min_keep <= max_keep <= 1.0:
            raise ValueError(f"need 0 <= min_keep <= max_keep <= 1, got {min_keep}, {max_keep}")
        source = open_source(data, seed)
        self._image, self._n = (lambda i: source[i].images[0]), len(source)
        self.processor, self.side = processor, side
        self.min_keep, self.max_keep, self.seed = min_keep, max_keep, seed
        self.source = self

    def __len__(self) -> int:
        return self._n

    def modality_lengths(self) -> tuple[list[int], list[bool]]:
        return [0] * self._n, [True] * self._n

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        pixels = self.processor(images=[self._image(index)], return_tensors="pt")["pixel_values"][0]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + index)
        return {"pixel_values": pixels, "masks": sample_masks(self.side * self.side, generator, self.min_keep, self.max_keep)}

    @staticmethod
    def collate(items: list[dict[str, Any]]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([it[k] for it in items]) for k in ("pixel_values", "masks")}
