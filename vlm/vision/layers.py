"""Layer and block bookkeeping for towers from other libraries (timm, open_clip), which report block
outputs rather than transformers' ``hidden_states``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn


def block_indices(feature_layers: Sequence[int], depth: int) -> list[int]:
    """0-based block indices for ``vision_feature_layer`` values counted like transformers'
    ``hidden_states``: k is block k's output, -1 the last block's, -2 the one before (LLaVA's).

    0 (the embeddings before any block) is not a block output, so it is refused.
    """
    indices = []
    for layer in feature_layers:
        if layer == 0 or not -depth <= layer <= depth:
            raise ValueError(
                f"vision_feature_layer {layer} does not name one of this tower's {depth} blocks: use 1..{depth} "
                f"or -{depth}..-1 (0, the embeddings, is not a block output)"
            )
        indices.append(layer - 1 if layer > 0 else depth + layer)
    return indices


def stage_blocks(root: nn.Module, stages: Sequence[nn.Module]) -> list[nn.Module]:
    """``stages`` as `VisionEncoder.blocks()`: each parameter of ``root`` outside them (stems, class tokens,
    final norms, heads) joins the stage registered before it, or the first, so every parameter is in one block."""
    owner = {id(p): i for i, stage in enumerate(stages) for p in stage.parameters()}
    loose: list[list[nn.Parameter]] = [[] for _ in stages]
    current = 0
    for param in root.parameters():
        if id(param) in owner:
            current = owner[id(param)]
        else:
            loose[current].append(param)
    return [nn.ModuleList([stage, nn.ParameterList(extra)]) if extra else stage
            for stage, extra in zip(stages, loose, strict=True)]


def concat_levels(
    levels: Sequence[int], take: Sequence[int], patches: Sequence[torch.Tensor],
    prefixes: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """The tokens of ``levels`` (in that order) from the outputs for ``take`` (sorted, unique):
    (n, tokens, channels) patches, each level's prefix tokens in front when given, concatenated on channels."""
    position = {level: i for i, level in enumerate(take)}
    parts = [patches[position[level]] if prefixes is None
             else torch.cat([prefixes[position[level]], patches[position[level]]], dim=1) for level in levels]
    return torch.cat(parts, dim=-1)
