"""Projectors that work on the encoder's patch-token grid and halve it on each side.

Tokens arrive flattened row-major, as every encoder emits them. An odd side is ceil-halved
(7x7 -> 4x4); each projector says how it fills the missing half block. Prefix tokens kept by
``vision_feature_select_strategy="full"`` (CLS, registers) have no place on the grid, so these
projectors refuse them rather than guess.
"""

from __future__ import annotations

import math

import torch

from vlm.projectors.base import Projector


class GridProjector(Projector):
    """Base of the spatial projectors: grid checks and token <-> feature-map reshapes."""

    needs_grid = True

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, grid: tuple[int, int] | None = None):
        super().__init__(in_dim, out_dim, bias, grid)
        if self.grid is None:
            raise ValueError(f"{type(self).__name__} works on the token grid: construct it with grid=(rows, cols)")

    @staticmethod
    def reduced_grid(grid: tuple[int, int]) -> tuple[int, int]:
        return math.ceil(grid[0] / 2), math.ceil(grid[1] / 2)

    @classmethod
    def num_tokens(cls, tokens_in: int, grid: tuple[int, int]) -> int:
        cls.check_tokens(tokens_in, grid)
        rows, cols = cls.reduced_grid(grid)
        return rows * cols

    @classmethod
    def check_tokens(cls, tokens_in: int, grid: tuple[int, int]) -> None:
        rows, cols = grid
        if tokens_in == rows * cols:
            return
        extra = tokens_in - rows * cols
        hint = (
            f" ({extra} prefix tokens such as CLS, kept by vision_feature_select_strategy='full', have no "
            "grid position: use 'default')" if extra > 0 else ""
        )
        raise ValueError(f"{cls.__name__} needs exactly {rows}x{cols}={rows * cols} patch tokens, got {tokens_in}{hint}")

    def to_map(self, features: torch.Tensor) -> torch.Tensor:
        """(n, rows*cols, c) -> (n, c, rows, cols)."""
        self.check_tokens(features.shape[1], self.grid)
        return features.transpose(1, 2).unflatten(2, self.grid)

    @staticmethod
    def to_tokens(feature_map: torch.Tensor) -> torch.Tensor:
        """(n, c, rows, cols) -> (n, rows*cols, c), row-major."""
        return feature_map.flatten(2).transpose(1, 2)
