"""`resampler`: a Perceiver resampler (Flamingo; Qwen-VL uses one such layer) to a fixed number of tokens.

Learned queries (latents) attend to the image tokens projected to the LLM width; as in Flamingo the
keys and values are the image tokens and the latents together, and each layer is pre-norm
cross-attention then a GELU feed-forward, both residual; a final LayerNorm. No grid is needed, so
prefix tokens may come along. The query count is part of the key: ``resampler`` has 64 queries,
``resampler16``, ``resampler32``, ``resampler144`` and ``resampler256`` (Qwen-VL) as named.
"""

from __future__ import annotations

import torch
from torch import nn

from vlm.projectors.base import PROJECTORS, Projector

HEAD_DIM = 64


class ResamplerLayer(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.ffn = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, latents: torch.Tensor, media: torch.Tensor) -> torch.Tensor:
        queries = self.norm_latents(latents)
        keys = torch.cat([self.norm_media(media), queries], dim=1)
        latents = latents + self.attn(queries, keys, keys, need_weights=False)[0]
        return latents + self.ffn(latents)


class ResamplerProjector(Projector):
    keeps_grid = False
    num_queries = 64
    depth = 2

    def __init__(self, in_dim: int, out_dim: int, bias: bool = True, grid: tuple[int, int] | None = None):
        super().__init__(in_dim, out_dim, bias, grid)
        heads = out_dim // HEAD_DIM if out_dim % HEAD_DIM == 0 else 1
        self.input = nn.Linear(in_dim, out_dim, bias=bias)
        self.queries = nn.Parameter(nn.init.trunc_normal_(torch.empty(self.num_queries, out_dim), std=0.02))
        self.layers = nn.ModuleList(ResamplerLayer(out_dim, heads) for _ in range(self.depth))
        self.norm = nn.LayerNorm(out_dim)

    @classmethod
    def num_tokens(cls, tokens_in: int, grid: tuple[int, int]) -> int:
        return cls.num_queries

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        media = self.input(features)
        latents = self.queries.to(media.dtype).expand(features.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(latents, media)
        return self.norm(latents)


PROJECTORS.register("resampler", ResamplerProjector)
for _queries in (16, 32, 144, 256):
    PROJECTORS.register(
        f"resampler{_queries}",
        type(f"Resampler{_queries}Projector", (ResamplerProjector,), {"num_queries": _queries}),
    )
