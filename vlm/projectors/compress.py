"""2x2 token compression: `pool2x2` (LLaVA-style average pooling) and `pixel_shuffle` (space-to-depth,
InternVL / NVLM / Idefics3), each followed by a two-layer GELU MLP. Both emit ceil(rows/2) x ceil(cols/2) tokens.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from vlm.projectors.base import PROJECTORS
from vlm.projectors.grid import GridProjector
from vlm.projectors.mlp import MLPProjector


@PROJECTORS.register("pool2x2")
class Pool2x2Projector(GridProjector):
    """Average of each 2x2 block of tokens, then the MLP. On an odd side the edge window averages the
    tokens it holds (ceil pooling; no zero padding enters the mean)."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, grid: tuple[int, int] | None = None):
        super().__init__(in_dim, out_dim, bias, grid)
        self.mlp = MLPProjector(in_dim, out_dim, bias)

    def compress(self, features: torch.Tensor) -> torch.Tensor:
        return self.to_tokens(F.avg_pool2d(self.to_map(features), 2, ceil_mode=True))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.compress(features))


@PROJECTORS.register("pixel_shuffle")
class PixelShuffleProjector(GridProjector):
    """Each 2x2 block of tokens becomes one token with 4x the channels (`F.pixel_unshuffle`: channel
    ``4*k + 2*dy + dx`` is channel k of the block's token (dy, dx)), then LayerNorm and the MLP, as
    InternVL's connector. An odd side is zero-padded at the bottom/right first."""

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, grid: tuple[int, int] | None = None):
        super().__init__(in_dim, out_dim, bias, grid)
        self.norm = nn.LayerNorm(4 * in_dim)
        self.mlp = MLPProjector(4 * in_dim, out_dim, bias)

    def compress(self, features: torch.Tensor) -> torch.Tensor:
        rows, cols = self.grid
        padded = F.pad(self.to_map(features), (0, cols % 2, 0, rows % 2))
        return self.to_tokens(F.pixel_unshuffle(padded, 2))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(self.compress(features)))
