"""The projector seam: maps vision features (n, tokens, c_vision) to LLM embeddings (n, tokens', d_llm)."""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
from torch import nn

from vlm.registry import Registry


class Projector(nn.Module, ABC):
    """Subclasses say how many tokens they emit for a token grid, so the processor can expand `<image>`.

    ``grid`` is the encoder's patch-token grid (rows, cols); spatial projectors need it.
    ``keeps_grid``: its output tokens still lie on a (possibly coarser) row-major grid, which anyres
    needs to rejoin tiles and unpad them; learned queries (a resampler) have no grid place.
    """

    keeps_grid = True
    needs_grid = False  # built on the encoder's token grid: refuses prefix tokens ("full")

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, grid: tuple[int, int] | None = None):
        super().__init__()
        self.in_dim, self.out_dim = in_dim, out_dim
        self.grid = tuple(grid) if grid is not None else None

    @classmethod
    def num_tokens(cls, tokens_in: int, grid: tuple[int, int]) -> int:
        return tokens_in

    @abstractmethod
    def forward(self, features: torch.Tensor) -> torch.Tensor: ...


PROJECTORS: Registry[type[Projector]] = Registry("projector", package="vlm.projectors")
