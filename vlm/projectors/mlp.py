"""Linear and LLaVA-style MLP projectors (`linear`, `mlp2x_gelu`, `mlp3x_gelu`, ...)."""

from __future__ import annotations

import torch
from torch import nn

from vlm.projectors.base import PROJECTORS, Projector


class MLPProjector(Projector):
    """``depth`` linear layers with GELU between them; layer names match HF Llava (`linear_1`, `linear_2`)."""

    depth = 2

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, grid: tuple[int, int] | None = None):
        super().__init__(in_dim, out_dim, bias, grid)
        for i in range(1, self.depth + 1):
            setattr(self, f"linear_{i}", nn.Linear(in_dim if i == 1 else out_dim, out_dim, bias=bias))
        self.act = nn.GELU()

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.linear_1(features)
        for i in range(2, self.depth + 1):
            x = getattr(self, f"linear_{i}")(self.act(x))
        return x


@PROJECTORS.register("linear")
class LinearProjector(MLPProjector):
    depth = 1


for _depth in (2, 3, 4):
    PROJECTORS.register(
        f"mlp{_depth}x_gelu", type(f"MLP{_depth}xGELUProjector", (MLPProjector,), {"depth": _depth})
    )
