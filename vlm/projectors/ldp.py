"""`ldp`: MobileVLM's Lightweight Downsample Projector (LDP, v1 of MobileVLM, not V2's LDPv2).

A pointwise two-layer GELU MLP to the LLM width, then two MobileNetV3 inverted-residual blocks on the
token grid (torchvision's block: depthwise 3x3 conv, squeeze-excitation with a hard sigmoid, pointwise
conv; LayerNorm over channels, hard-swish). The first block has stride 1 and a residual, the second
stride 2, which halves the grid: ceil(rows/2) x ceil(cols/2) tokens (the 3x3 conv with padding 1 covers
an odd edge). LDPv2 instead average-pools to a fixed 12x12 grid and adds a depthwise positional conv.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.mobilenetv3 import InvertedResidual, InvertedResidualConfig
from torchvision.ops.misc import SqueezeExcitation

from vlm.projectors.base import PROJECTORS
from vlm.projectors.grid import GridProjector
from vlm.projectors.mlp import MLPProjector


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of an NCHW map (as timm's, eps 1e-6)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__(channels, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x.permute(0, 2, 3, 1), self.normalized_shape, self.weight, self.bias, self.eps).permute(0, 3, 1, 2)


@PROJECTORS.register("ldp")
class LDPProjector(GridProjector):
    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, grid: tuple[int, int] | None = None):
        super().__init__(in_dim, out_dim, bias, grid)
        if out_dim % 8:  # torchvision rounds block widths to multiples of 8
            raise ValueError(f"the ldp projector needs an LLM width divisible by 8, got {out_dim}")
        self.mlp = MLPProjector(in_dim, out_dim, bias)
        squeeze = partial(SqueezeExcitation, scale_activation=nn.Hardsigmoid)
        self.blocks = nn.Sequential(*(
            InvertedResidual(InvertedResidualConfig(out_dim, 3, out_dim, out_dim, True, "HS", stride, 1, 1.0),
                             LayerNorm2d, squeeze)
            for stride in (1, 2)
        ))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.to_tokens(self.blocks(self.to_map(self.mlp(features))))
